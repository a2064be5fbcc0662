// SPDX-License-Identifier: GPL-2.0
// nicop-chase: the second NIC operation against what verbs alone can do.
// A linked list lives in a region of a target device; a client reaches the
// node N links from the head either with N+1 dependent RDMA READs (read a
// node, follow its next pointer) or with one chase NIC operation
// (bpf/chase.bpf.c runs at the target's responder and answers the value).
// Both over urdma in one process, one QP, busy-polled.  Reports latency
// percentiles per depth and method, and checks that both methods find the
// same node (exit 1 if not).
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "../../../bpf/chase.h"
#include "../../../bpf/nicop.h"
#include "fastpath/cli.h"
#include "fastpath/histogram.h"
#include "fastpath/report.h"
#include "urdma/verbs.h"
#include "volt/setup.h"

namespace {

constexpr const char* kTool = "nicop-chase";
constexpr std::uint32_t kChaseOp = 2;
constexpr std::size_t kRegion = 1 << 20;

struct Options {
  std::vector<std::uint32_t> depths{1, 2, 4, 8, 16};
  std::uint32_t iters = 2000;
  std::string target_backend = "udp:ip=127.19.1.1";
  std::string client_backend = "udp:ip=127.19.1.2";
  std::string object = CHASE_DEFAULT_OBJECT;
  std::string json;
};

std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

ibv_wc poll_one(urdma::Cq& cq, urdma::Qp& qp) {
  ibv_wc wc{};
  const std::uint64_t give_up = now_ns() + 10'000'000'000ULL;
  while (cq.poll(1, &wc) == 0) {
    if (now_ns() > give_up)
      throw std::runtime_error(std::string("no completion within 10 s (QP ") + urdma::qp_state_str(qp.state()) + ": " +
                               qp.error_reason() + ")");
  }
  if (wc.status != IBV_WC_SUCCESS)
    throw std::runtime_error(std::string("completion error: ") + urdma::wc_status_str(wc.status) + " " +
                             qp.error_reason());
  return wc;
}

int run(const Options& o) {
  for (std::uint32_t d : o.depths)
    if (d > CHASE_MAX_LINKS)
      throw std::invalid_argument("depth " + std::to_string(d) + " is more than the chase program follows (" +
                                  std::to_string(CHASE_MAX_LINKS) + ")");

  // The target: a region with a list of CHASE_MAX_LINKS + 1 nodes at random
  // places, the chase program loaded.  Its application does nothing more.
  auto tdev = urdma::Device::open("chase-target", o.target_backend);
  auto tpd = tdev->alloc_pd();
  volt::Buffer region(kRegion);
  auto tmr = tpd->reg_mr(region.data(), region.size(),
                         IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ | urdma::URDMA_ACCESS_NIC_OP);
  tdev->load_nic_op(kChaseOp, o.object, "nicop", 0);
  std::vector<std::uint64_t> slots;
  for (std::size_t off = CHASE_NODE_SIZE; off + CHASE_NODE_SIZE <= kRegion; off += 4096)
    slots.push_back(reinterpret_cast<std::uint64_t>(region.data() + off));
  std::shuffle(slots.begin(), slots.end(), std::mt19937_64(42));
  slots.resize(CHASE_MAX_LINKS + 1);
  for (std::size_t i = 0; i < slots.size(); ++i) {
    const std::uint64_t node[2] = {i + 1 < slots.size() ? slots[i + 1] : 0, 1000 + i};
    std::memcpy(reinterpret_cast<void*>(slots[i]), node, sizeof node);
  }
  auto tq = volt::QpBundle::make(*tdev, *tpd);

  // The client: one QP, a scratch buffer for READ data and NIC-op results.
  auto cdev = urdma::Device::open("chase-client", o.client_backend);
  auto cpd = cdev->alloc_pd();
  volt::Buffer scratch(4096);
  auto cmr = cpd->reg_mr(scratch.data(), scratch.size(), IBV_ACCESS_LOCAL_WRITE);
  auto cq = volt::QpBundle::make(*cdev, *cpd);
  volt::connect_qp(*cq.qp, volt::qp_addr(*tdev, *tq.qp, 0x111), 0x222);
  volt::connect_qp(*tq.qp, volt::qp_addr(*cdev, *cq.qp, 0x222), 0x111);

  auto read_chain = [&](std::uint32_t depth) {
    std::uint64_t addr = slots[0], node[2] = {0, 0};
    for (std::uint32_t k = 0; k <= depth; ++k) {
      ibv_sge sge{reinterpret_cast<std::uint64_t>(scratch.data()), CHASE_NODE_SIZE, cmr->lkey()};
      ibv_send_wr wr{};
      ibv_send_wr* bad = nullptr;
      wr.sg_list = &sge;
      wr.num_sge = 1;
      wr.opcode = IBV_WR_RDMA_READ;
      wr.send_flags = IBV_SEND_SIGNALED;
      wr.wr.rdma.remote_addr = addr;
      wr.wr.rdma.rkey = tmr->rkey();
      if (const int rc = cq.qp->post_send(&wr, &bad)) throw std::runtime_error("post READ: " + std::to_string(rc));
      poll_one(*cq.send_cq, *cq.qp);
      std::memcpy(node, scratch.data(), sizeof node);
      addr = node[0];
      if (addr == 0) break;
    }
    return node[1];
  };
  auto chase = [&](std::uint32_t depth) {
    urdma::NicOpWr wr;
    wr.op_id = kChaseOp;
    wr.remote_addr = slots[0];
    wr.rkey = tmr->rkey();
    wr.length = CHASE_NODE_SIZE;
    wr.arg0 = depth;
    wr.result = {reinterpret_cast<std::uint64_t>(scratch.data() + 64), sizeof(nicop_result), cmr->lkey()};
    if (const int rc = cq.qp->post_nic_op(wr)) throw std::runtime_error("post NIC op: " + std::to_string(rc));
    poll_one(*cq.send_cq, *cq.qp);
    nicop_result r{};
    std::memcpy(&r, scratch.data() + 64, sizeof r);
    if (r.status != CHASE_ST_OK) throw std::runtime_error("chase answered status " + std::to_string(r.status));
    return r.result;
  };

  fastpath::Table table({"depth", "method", "round_trips", "p50_us", "p99_us", "mean_us", "speedup_p50"});
  nlohmann::json runs = nlohmann::json::array();
  for (std::uint32_t depth : o.depths) {
    const std::uint64_t want = 1000 + depth;
    fastpath::LatencyHistogram h_read, h_chase;
    for (std::uint32_t i = 0; i < o.iters + o.iters / 10; ++i) {
      const bool warm = i < o.iters / 10;
      // Alternate the methods so a change in the machine's load hits both.
      std::uint64_t t0 = now_ns();
      const std::uint64_t a = read_chain(depth);
      std::uint64_t t1 = now_ns();
      const std::uint64_t b = chase(depth);
      std::uint64_t t2 = now_ns();
      if (a != want || b != want)
        throw std::runtime_error("depth " + std::to_string(depth) + ": READs found " + std::to_string(a) +
                                 ", the chase " + std::to_string(b) + ", the list says " + std::to_string(want));
      if (!warm) {
        h_read.record(t1 - t0);
        h_chase.record(t2 - t1);
      }
    }
    const double speedup = static_cast<double>(h_read.percentile(50)) / static_cast<double>(h_chase.percentile(50));
    auto row = [&](const char* method, std::uint32_t trips, const fastpath::LatencyHistogram& h, std::string sp) {
      table.add_row({std::to_string(depth), method, std::to_string(trips), fastpath::fixed(h.percentile(50) / 1e3, 1),
                     fastpath::fixed(h.percentile(99) / 1e3, 1), fastpath::fixed(h.mean() / 1e3, 1), sp});
      runs.push_back({{"depth", depth}, {"method", method}, {"round_trips", trips}, {"latency", h.to_json()}});
    };
    row("reads", depth + 1, h_read, "");
    row("chase", 1, h_chase, fastpath::fixed(speedup, 2) + "x");
    std::cerr << kTool << ": depth " << depth << " done\n";
  }
  table.print(std::cout);
  if (!o.json.empty())
    fastpath::write_json({{"tool", kTool},
                          {"iters", o.iters},
                          {"target_backend", o.target_backend},
                          {"client_backend", o.client_backend},
                          {"runs", runs}},
                         o.json);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "nicop-chase: a remote pointer chase as one NIC operation (bpf/chase.bpf.c) against N dependent RDMA READs, "
      "over urdma"};
  Options o;
  app.add_option("--depths", o.depths, "links to follow (each <= 16)")->delimiter(',');
  app.add_option("--iters", o.iters, "measured chases per depth and method")->check(CLI::Range(10u, 10'000'000u));
  app.add_option("--target-backend", o.target_backend, "urdma back-end spec of the list's host")->capture_default_str();
  app.add_option("--client-backend", o.client_backend, "urdma back-end spec of the client")->capture_default_str();
  app.add_option("--object", o.object, "the chase program's ELF (built from bpf/chase.bpf.c)")->capture_default_str();
  app.add_option("--json", o.json, "also write the figures as JSON to this file ('-' = stdout)");
  if (const int rc = fastpath::cli::parse(app, argc, argv); rc >= 0) return rc;
  try {
    return run(o);
  } catch (const std::exception& e) {
    fastpath::cli::error(kTool, e.what());
    return 1;
  }
}
