// SPDX-License-Identifier: GPL-2.0
// NIC-operation runtime: librte_bpf loading (and refusing), the helpers'
// rules, wait queues, holds, QP death, timeouts, unload; VOLT against a
// reference FIFO reader-writer lock; the pointer chase.  No transport: the
// tests drive NicOpRuntime with requests on a local buffer.
#include "nicop.h"

#include <gtest/gtest.h>
#include <rte_log.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>

#include "../../../bpf/chase.h"
#include "../../../bpf/volt.h"

#ifndef URDMA_BPF_DIR
#error "URDMA_BPF_DIR (where bpf/Makefile puts the NIC operations) must be defined"
#endif

namespace urdma {
namespace {

std::string prog(const std::string& name) {
  return std::string(URDMA_BPF_DIR) + "/" + name + ".bpf.o";
}

constexpr std::uint32_t kVolt = 1, kChase = 2, kProbe = 3;

// bpf/nicop_probe.bpf.c's commands.
enum Probe : std::uint64_t {
  kLoad = 1,
  kStore = 2,
  kCas = 3,
  kFaa = 4,
  kRegionLoad = 5,
  kAnswerTwice = 6,
  kAnswerAndPark = 7,
  kNothing = 8,
  kReturnError = 9,
  kRuntimeStatus = 10,
  kPark = 11,
  kWake = 12,
  kHold = 13,
  kParkFullAnswer = 14,
};

// A memory region: host words, seen by requesters at kVa.
class Region {
 public:
  static constexpr std::uint64_t kVa = 0x7f00'0000'0000;
  explicit Region(std::size_t words) : words_(words, 0) {}

  std::uint64_t& at(std::uint64_t va) { return words_.at((va - kVa) / 8); }
  std::uint64_t len() const { return words_.size() * 8; }

  NicOpRequest req(std::uint32_t op, std::uint32_t qpn, std::uint64_t va, std::uint32_t len, std::uint64_t arg0,
                   std::uint64_t arg1 = 0, std::uint64_t now = 0) {
    NicOpRequest r;
    r.token = std::uint64_t{qpn} << 24 | (psn_++ & 0xffffff);
    r.qpn = qpn;
    r.op_id = op;
    r.va = va;
    r.len = len;
    r.arg0 = arg0;
    r.arg1 = arg1;
    r.obj = host() + (va - kVa);
    r.region = host();
    r.region_va = kVa;
    r.region_len = len_bytes();
    r.now_ns = now;
    return r;
  }
  std::uint8_t* host() { return reinterpret_cast<std::uint8_t*>(words_.data()); }

 private:
  std::uint64_t len_bytes() const { return words_.size() * 8; }
  std::vector<std::uint64_t> words_;
  std::uint32_t psn_ = 0;
};

struct Result {
  bool parked = false;
  std::uint64_t token = 0;
  std::vector<NicOpAnswer> out;

  // The answer to this request (it must be there exactly once).
  NicOpAnswer own() const {
    std::optional<NicOpAnswer> a;
    for (const NicOpAnswer& x : out)
      if (x.token == token) {
        EXPECT_FALSE(a.has_value()) << "two answers for one request";
        a = x;
      }
    EXPECT_TRUE(a.has_value()) << "no answer";
    return a.value_or(NicOpAnswer{});
  }
  // Answers to others (woken waiters), in order.
  std::vector<NicOpAnswer> woken() const {
    std::vector<NicOpAnswer> v;
    for (const NicOpAnswer& x : out)
      if (x.token != token) v.push_back(x);
    return v;
  }
};

class NicOpTest : public ::testing::Test {
 protected:
  Result call(std::uint32_t op, std::uint32_t qpn, std::uint64_t va, std::uint32_t len, std::uint64_t arg0,
              std::uint64_t arg1 = 0, std::uint64_t now = 0) {
    Result res;
    NicOpRequest r = mem.req(op, qpn, va, len, arg0, arg1, now);
    res.token = r.token;
    res.parked = rt.run(r, res.out);
    return res;
  }
  std::size_t parked_sum(const std::set<std::uint32_t>& qpns) const {
    std::size_t n = 0;
    for (std::uint32_t q : qpns) n += rt.parked(q);
    return n;
  }

  NicOpRuntime rt;
  Region mem{4096};
};

// ---- loading ---------------------------------------------------------------

TEST_F(NicOpTest, LoadsVoltChaseAndProbeWithTheJit) {
  rt.load(kVolt, prog("volt"), "nicop");
  rt.load(kChase, prog("chase"), "nicop");
  rt.load(kProbe, prog("nicop_probe"), "nicop");
  EXPECT_TRUE(rt.loaded(kVolt) && rt.loaded(kChase) && rt.loaded(kProbe));
  EXPECT_FALSE(rt.loaded(99));
#if defined(__x86_64__) || defined(__aarch64__)
  EXPECT_TRUE(rt.jitted(kVolt));
  EXPECT_TRUE(rt.jitted(kChase));
#endif
  rt.set_jit(false);
  EXPECT_FALSE(rt.jitted(kVolt));
  try {
    rt.load(kVolt, prog("chase"), "nicop");
    FAIL() << "an id loaded twice";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("already loaded"), std::string::npos) << e.what();
  }
  try {
    rt.load(kNicOpKeepAliveId, prog("volt"), "nicop");
    FAIL() << "the keep-alive's id was loaded";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("reserved for the transport's keep-alive"), std::string::npos) << e.what();
  }
}

std::string load_error(const std::string& path, const std::string& section = "nicop") {
  NicOpRuntime rt;
  try {
    rt.load(7, path, section);
  } catch (const std::runtime_error& e) {
    EXPECT_FALSE(rt.loaded(7));
    return e.what();
  }
  ADD_FAILURE() << path << " loaded";
  return {};
}

TEST(NicOpLoad, TheValidatorRefusesALoop) {
  const std::string e = load_error(prog("nicop_bad_loop"));
  EXPECT_NE(e.find("rejected by librte_bpf's validator"), std::string::npos) << e;
  EXPECT_NE(e.find("loops detected"), std::string::npos) << e;
  EXPECT_NE(e.find("loop at pc:"), std::string::npos) << e;
  std::printf("  bad loop:   %s\n", e.c_str());
}

TEST(NicOpLoad, TheValidatorRefusesAnAccessPastTheContext) {
  const std::string e = load_error(prog("nicop_bad_ctx"));
  EXPECT_NE(e.find("rejected by librte_bpf's validator"), std::string::npos) << e;
  EXPECT_NE(e.find("memory boundary violation"), std::string::npos) << e;
  std::printf("  bad ctx:    %s\n", e.c_str());
}

TEST(NicOpLoad, AnUnknownHelperIsRefusedByName) {
  const std::string e = load_error(prog("nicop_bad_helper"));
  EXPECT_NE(e.find("unknown helper nicop_format_disk"), std::string::npos) << e;
  EXPECT_NE(e.find("nicop_region_load"), std::string::npos) << e;  // the list of helpers
  std::printf("  bad helper: %s\n", e.c_str());
}

TEST(NicOpLoad, GlobalsAndCallsOfItsOwnAreRefusedSayingSo) {
  const std::string g = load_error(prog("nicop_bad_global"));
  EXPECT_NE(g.find("reference to data nicop_runs"), std::string::npos) << g;
  EXPECT_NE(g.find("no globals, static data or maps"), std::string::npos) << g;
  const std::string c = load_error(prog("nicop_bad_call"));
  EXPECT_NE(c.find("call to a function of its own"), std::string::npos) << c;
  std::printf("  bad global: %s\n  bad call:   %s\n", g.c_str(), c.c_str());
}

TEST(NicOpLoad, FileSectionAndFormatErrorsSayWhat) {
  EXPECT_NE(load_error("/nonexistent/x.bpf.o").find("No such file"), std::string::npos);
  EXPECT_NE(load_error("/dev/zero").find("not a regular file"), std::string::npos);
  EXPECT_NE(load_error(prog("volt"), "xrp").find("no section xrp (code sections: nicop)"), std::string::npos);
  EXPECT_NE(load_error("/proc/self/exe").find("not a 64-bit little-endian relocatable BPF object"), std::string::npos);
  const std::string txt = ::testing::TempDir() + "/nicop_not_elf.o";
  std::ofstream(txt) << "not an object\n";
  EXPECT_NE(load_error(txt).find("not an ELF file"), std::string::npos);
  std::filesystem::remove(txt);
}

TEST(NicOpLoad, TheLogStreamIsRestoredAndAGoodLoadFollowsABadOne) {
  FILE* before = rte_log_get_stream();
  load_error(prog("nicop_bad_loop"));
  EXPECT_EQ(rte_log_get_stream(), before);
  NicOpRuntime rt;
  rt.load(kVolt, prog("volt"), "nicop");
  EXPECT_EQ(rte_log_get_stream(), before);
  EXPECT_TRUE(rt.loaded(kVolt));
}

// ---- the runtime's rules (probe program) ------------------------------------

class ProbeTest : public NicOpTest {
 protected:
  void SetUp() override { rt.load(kProbe, prog("nicop_probe"), "nicop"); }
  static constexpr std::uint64_t kObj = Region::kVa + 256;  // a 16-byte object
  Result probe(std::uint32_t qpn, std::uint64_t cmd, std::uint64_t arg = 0, std::uint64_t va = kObj,
               std::uint32_t len = 16) {
    return call(kProbe, qpn, va, len, cmd, arg);
  }
  std::uint32_t status(std::uint64_t cmd, std::uint64_t arg) { return probe(5, cmd, arg).own().status; }
};

TEST_F(ProbeTest, ObjectHelpersCheckEveryOffset) {
  mem.at(kObj) = 11;
  mem.at(kObj + 8) = 22;
  EXPECT_EQ(probe(5, kLoad, 0).own().result, 11u);
  EXPECT_EQ(probe(5, kLoad, 8).own().result, 22u);
  for (std::uint64_t bad : {std::uint64_t{16}, std::uint64_t{4}, std::uint64_t{9}, ~std::uint64_t{7},
                            std::uint64_t{1} << 63, Region::kVa}) {
    EXPECT_EQ(status(kLoad, bad), NICOP_ST_PROG_ERROR) << bad;
    EXPECT_EQ(status(kStore, bad), NICOP_ST_PROG_ERROR) << bad;
    EXPECT_EQ(status(kCas, bad), NICOP_ST_PROG_ERROR) << bad;
    EXPECT_EQ(status(kFaa, bad), NICOP_ST_PROG_ERROR) << bad;
  }
  EXPECT_NE(rt.last_error(kProbe).find("outside the 16-byte object"), std::string::npos) << rt.last_error(kProbe);
  EXPECT_EQ(mem.at(kObj + 16), 0u);  // nothing written past the object
  EXPECT_EQ(mem.at(kObj - 8), 0u);

  mem.at(kObj) = 0;
  EXPECT_EQ(probe(5, kCas, 0).own().result, 0u);  // 0 -> 9
  EXPECT_EQ(mem.at(kObj), 9u);
  EXPECT_EQ(probe(5, kCas, 0).own().result, 9u);  // expects 0: no swap
  EXPECT_EQ(mem.at(kObj), 9u);
  EXPECT_EQ(probe(5, kFaa, 8).own().result, 22u);
  EXPECT_EQ(mem.at(kObj + 8), 23u);
  EXPECT_EQ(probe(5, kStore, 8).own().status, NICOP_ST_OK);
  EXPECT_EQ(mem.at(kObj + 8), 7u);
  // An object of 8 bytes: offset 8 is outside.
  EXPECT_EQ(probe(5, kLoad, 8, kObj, 8).own().status, NICOP_ST_PROG_ERROR);
}

TEST_F(ProbeTest, RegionLoadStaysInsideTheRegion) {
  mem.at(Region::kVa) = 1;
  mem.at(Region::kVa + mem.len() - 8) = 2;
  EXPECT_EQ(probe(5, kRegionLoad, Region::kVa).own().result, 1u);
  EXPECT_EQ(probe(5, kRegionLoad, Region::kVa + mem.len() - 8).own().result, 2u);
  for (std::uint64_t bad : {Region::kVa - 8, Region::kVa + mem.len(), Region::kVa + mem.len() - 4, Region::kVa + 4,
                            std::uint64_t{0}, ~std::uint64_t{7}})
    EXPECT_EQ(status(kRegionLoad, bad), NICOP_ST_PROG_ERROR) << std::hex << bad;
  EXPECT_NE(rt.last_error(kProbe).find("nicop_region_load"), std::string::npos);
}

TEST_F(ProbeTest, AnswerParkAndReturnRules) {
  EXPECT_EQ(status(kAnswerTwice, 0), NICOP_ST_PROG_ERROR);
  EXPECT_NE(rt.last_error(kProbe).find("twice"), std::string::npos);
  EXPECT_EQ(status(kAnswerAndPark, 0), NICOP_ST_PROG_ERROR);
  EXPECT_NE(rt.last_error(kProbe).find("nicop_park after nicop_answer"), std::string::npos);
  EXPECT_EQ(rt.parked_total(), 0u);  // a failed run parks nothing
  EXPECT_EQ(status(kNothing, 0), NICOP_ST_NO_ANSWER);
  EXPECT_EQ(status(kReturnError, 0), NICOP_ST_PROG_ERROR);
  EXPECT_NE(rt.last_error(kProbe).find("returned 1"), std::string::npos);
  EXPECT_EQ(status(kRuntimeStatus, 0), NICOP_ST_PROG_ERROR);
  EXPECT_NE(rt.last_error(kProbe).find("is the runtime's"), std::string::npos);
  EXPECT_EQ(status(12345, 0), 1u);  // the program's own status
  // An operation that is not loaded.
  EXPECT_EQ(call(42, 5, kObj, 16, 0).own().status, NICOP_ST_UNLOADED);
}

// (Under DPDK 22.11's JIT this also checks that helpers realign the stack:
// the wake's push_back faulted on a movaps before they did.)
TEST_F(ProbeTest, ParkWakeAndTheParkLimit) {
  Result p1 = probe(6, kPark);
  EXPECT_TRUE(p1.parked);
  EXPECT_TRUE(p1.out.empty());
  EXPECT_EQ(rt.parked(6), 1u);
  Result p2 = probe(7, kPark);
  EXPECT_TRUE(p2.parked);
  Result w = probe(5, kWake, 42);
  ASSERT_EQ(w.out.size(), 2u);
  EXPECT_EQ(w.out[0].token, p1.token);  // FIFO, and before the waker's own answer
  EXPECT_EQ(w.out[0].status, 42u);
  EXPECT_EQ(w.out[0].result, 77u);
  EXPECT_EQ(w.own().result, 6u);  // nicop_wake returned the woken QP
  EXPECT_EQ(rt.parked(6), 0u);
  EXPECT_EQ(rt.parked(7), 1u);
  EXPECT_EQ(probe(5, kWake, 0x100).own().status, NICOP_ST_PROG_ERROR);  // the runtime's status
  EXPECT_EQ(rt.parked(7), 1u);                                          // not woken
  EXPECT_EQ(probe(5, kWake, 0).woken().at(0).token, p2.token);
  EXPECT_EQ(probe(5, kWake, 0).own().result, ~std::uint64_t{0});  // empty queue: -1

  rt.set_park_limit(8, 2);
  EXPECT_TRUE(probe(8, kPark).parked);
  EXPECT_TRUE(probe(8, kPark, 0, kObj + 16).parked);  // another queue, same QP
  Result full = probe(8, kPark);
  EXPECT_FALSE(full.parked);
  EXPECT_EQ(full.own().status, NICOP_ST_QUEUE_FULL);
  EXPECT_EQ(probe(8, kParkFullAnswer).own().status, NICOP_ST_PROG_ERROR);  // answering after the refusal
  EXPECT_EQ(rt.parked(8), 2u);
  EXPECT_EQ(rt.parked_total(), 2u);
}

TEST_F(ProbeTest, EngineEventsMayNotAnswerAndTheirFailuresOnlyCount) {
  EXPECT_EQ(probe(9, kHold).own().status, NICOP_ST_OK);
  std::vector<NicOpAnswer> out;
  rt.qp_died(9, out);
  EXPECT_TRUE(out.empty());
  EXPECT_NE(rt.last_error(kProbe).find("nicop_answer outside a request"), std::string::npos) << rt.last_error(kProbe);
  rt.qp_died(9, out);  // the hold is gone: nothing runs
  EXPECT_TRUE(out.empty());
}

TEST_F(ProbeTest, ForgetRegionAnswersItsWaitersAndDropsItsHolds) {
  Result p = probe(6, kPark);
  ASSERT_TRUE(p.parked);
  EXPECT_EQ(probe(9, kHold).own().status, NICOP_ST_OK);
  std::vector<NicOpAnswer> out;
  rt.forget_region(mem.host(), out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].token, p.token);
  EXPECT_EQ(out[0].status, NICOP_ST_REGION_GONE);
  EXPECT_EQ(rt.parked_total(), 0u);
  const std::string before = rt.last_error(kProbe);
  out.clear();
  rt.qp_died(9, out);  // its hold was forgotten: no QP_DIED run
  EXPECT_EQ(rt.last_error(kProbe), before);
}

// Random requests, QP deaths and expiries: the runtime answers every
// request once and its books stay consistent.
TEST_F(ProbeTest, RandomAbuseNeverBreaksTheBooks) {
  std::vector<NicOpAnswer> none;
  rt.unload(kProbe, none);
  rt.load(kProbe, prog("nicop_probe"), "nicop", 1000);
  std::mt19937_64 rng(7);
  rt.set_jit(false);  // the interpreter for the first half
  const std::vector<std::uint64_t> args = {
      0, 8, 16, 4, Region::kVa, Region::kVa + 8, Region::kVa + mem.len(), ~std::uint64_t{0}, 0x100, 5};
  std::set<std::uint32_t> qpns;
  std::set<std::uint64_t> open;  // parked tokens
  std::uint64_t now = 1;
  for (int i = 0; i < 20000; ++i) {
    if (i == 10000) rt.set_jit(true);
    now += rng() % 50;
    const std::uint32_t qpn = 10 + rng() % 6;
    qpns.insert(qpn);
    std::vector<NicOpAnswer> out;
    const int what = static_cast<int>(rng() % 100);
    std::uint64_t token = 0;
    bool parked = false;
    if (what < 2) {
      rt.qp_died(qpn, out);
      std::erase_if(open, [&](std::uint64_t t) { return (t >> 24) == qpn; });
    } else if (what < 5) {
      rt.expire(now, out);
    } else {
      const std::uint64_t va = kObj + 16 * (rng() % 3);
      NicOpRequest r = mem.req(kProbe, qpn, va, 16, rng() % 16, args[rng() % args.size()], now);
      token = r.token;
      parked = rt.run(r, out);
    }
    int own = 0;
    for (const NicOpAnswer& a : out) {
      if (a.token == token) {
        ++own;
      } else {
        ASSERT_EQ(open.erase(a.token), 1u) << "an answer for no parked request";
      }
    }
    if (token != 0) {
      ASSERT_EQ(own, parked ? 0 : 1);
      if (parked) open.insert(token);
    }
    ASSERT_EQ(rt.parked_total(), open.size());
    ASSERT_EQ(parked_sum(qpns), open.size());
  }
  std::vector<NicOpAnswer> out;
  rt.unload(kProbe, out);
  EXPECT_EQ(out.size(), open.size());
  for (const NicOpAnswer& a : out) EXPECT_EQ(a.status, NICOP_ST_UNLOADED);
  EXPECT_EQ(rt.parked_total(), 0u);
}

// ---- VOLT --------------------------------------------------------------------

class VoltTest : public NicOpTest {
 protected:
  void SetUp() override { rt.load(kVolt, prog("volt"), "nicop"); }
  static std::uint64_t lock_va(int i) { return Region::kVa + 64 + 16 * static_cast<std::uint64_t>(i); }
  Result volt(std::uint32_t qpn, std::uint64_t cmd, int lock = 0, std::uint64_t now = 0) {
    return call(kVolt, qpn, lock_va(lock), VOLT_LOCK_SIZE, cmd, 0, now);
  }
  std::uint64_t state(int lock = 0) { return mem.at(lock_va(lock)); }
  std::uint64_t holder(int lock = 0) { return mem.at(lock_va(lock) + 8) & VOLT_HOLDER_MASK; }
};

TEST_F(VoltTest, ExclusiveGrantParkAndHandOverInFifoOrder) {
  Result a = volt(1, VOLT_ACQUIRE_EXCL);
  EXPECT_FALSE(a.parked);
  EXPECT_EQ(a.own().status, VOLT_ST_OK);
  EXPECT_EQ(a.own().result, 1u);  // generation
  EXPECT_EQ(state(), VOLT_STATE_EXCL);
  EXPECT_EQ(holder(), 1u);
  Result b = volt(2, VOLT_ACQUIRE_EXCL);
  Result c = volt(3, VOLT_ACQUIRE_EXCL);
  EXPECT_TRUE(b.parked && c.parked);
  EXPECT_TRUE(b.out.empty() && c.out.empty());
  EXPECT_EQ(rt.parked_total(), 2u);

  Result nb = volt(3, VOLT_RELEASE);  // a waiter is no owner
  EXPECT_EQ(nb.own().status, VOLT_ST_NOT_OWNER);
  EXPECT_EQ(volt(9, VOLT_RELEASE).own().status, VOLT_ST_NOT_OWNER);
  EXPECT_EQ(holder(), 1u);

  Result ra = volt(1, VOLT_RELEASE);
  ASSERT_EQ(ra.out.size(), 2u);
  EXPECT_EQ(ra.out[0].token, b.token);
  EXPECT_EQ(ra.out[0].status, VOLT_ST_OK);
  EXPECT_EQ(ra.out[0].result, 2u);
  EXPECT_EQ(ra.own().status, VOLT_ST_OK);
  EXPECT_EQ(holder(), 2u);
  EXPECT_EQ(volt(1, VOLT_RELEASE).own().status, VOLT_ST_NOT_OWNER);  // released twice
  Result rb = volt(2, VOLT_RELEASE);
  ASSERT_EQ(rb.woken().size(), 1u);
  EXPECT_EQ(rb.woken()[0].token, c.token);
  EXPECT_EQ(holder(), 3u);
  EXPECT_EQ(volt(3, VOLT_RELEASE).woken().size(), 0u);
  EXPECT_EQ(state(), 0u);
  EXPECT_EQ(rt.parked_total(), 0u);
}

TEST_F(VoltTest, BadCommandObjectAndReEntry) {
  EXPECT_EQ(volt(1, 77).own().status, VOLT_ST_BAD_COMMAND);
  EXPECT_EQ(call(kVolt, 1, lock_va(0), 8, VOLT_ACQUIRE_EXCL).own().status, VOLT_ST_BAD_OBJECT);
  EXPECT_EQ(volt(1, VOLT_ACQUIRE_EXCL).own().status, VOLT_ST_OK);
  EXPECT_EQ(volt(1, VOLT_ACQUIRE_EXCL).own().status, VOLT_ST_ALREADY_HELD);
  EXPECT_EQ(volt(1, VOLT_ACQUIRE_SHARED).own().status, VOLT_ST_ALREADY_HELD);
  EXPECT_EQ(volt(1, VOLT_RELEASE).own().status, VOLT_ST_OK);
  EXPECT_EQ(volt(2, VOLT_ACQUIRE_SHARED).own().status, VOLT_ST_OK);
  EXPECT_EQ(volt(2, VOLT_ACQUIRE_EXCL).own().status, VOLT_ST_ALREADY_HELD);  // no upgrade
  EXPECT_EQ(volt(2, VOLT_RELEASE).own().status, VOLT_ST_OK);
  EXPECT_EQ(state(), 0u);
}

TEST_F(VoltTest, ReadersShareAndNeverOvertakeAWaitingWriter) {
  EXPECT_EQ(volt(1, VOLT_ACQUIRE_SHARED).own().status, VOLT_ST_OK);
  EXPECT_EQ(volt(2, VOLT_ACQUIRE_SHARED).own().status, VOLT_ST_OK);
  EXPECT_EQ(state(), 2u);
  Result w = volt(3, VOLT_ACQUIRE_EXCL);
  EXPECT_TRUE(w.parked);
  Result r4 = volt(4, VOLT_ACQUIRE_SHARED);  // a writer waits: the reader queues
  Result r5 = volt(5, VOLT_ACQUIRE_SHARED);
  EXPECT_TRUE(r4.parked && r5.parked);
  Result w6 = volt(6, VOLT_ACQUIRE_EXCL);
  EXPECT_TRUE(w6.parked);
  EXPECT_EQ(volt(4, VOLT_RELEASE).own().status, VOLT_ST_NOT_OWNER);  // waits, holds nothing
  EXPECT_TRUE(volt(1, VOLT_RELEASE).woken().empty());
  Result last = volt(2, VOLT_RELEASE);
  ASSERT_EQ(last.woken().size(), 1u);
  EXPECT_EQ(last.woken()[0].token, w.token);
  EXPECT_EQ(state(), VOLT_STATE_EXCL);
  Result wr = volt(3, VOLT_RELEASE);  // both readers, together, and not the writer behind them
  ASSERT_EQ(wr.woken().size(), 2u);
  EXPECT_EQ(wr.woken()[0].token, r4.token);
  EXPECT_EQ(wr.woken()[1].token, r5.token);
  EXPECT_EQ(state(), 2u);
  EXPECT_TRUE(volt(7, VOLT_ACQUIRE_SHARED).parked);  // behind the waiting writer
  volt(4, VOLT_RELEASE);
  Result r5r = volt(5, VOLT_RELEASE);
  ASSERT_EQ(r5r.woken().size(), 1u);
  EXPECT_EQ(r5r.woken()[0].token, w6.token);
  EXPECT_EQ(holder(), 6u);
}

TEST_F(VoltTest, MoreReadersThanOneRunGrantsAreNotStranded) {
  EXPECT_EQ(volt(1, VOLT_ACQUIRE_EXCL).own().status, VOLT_ST_OK);
  std::vector<Result> readers;
  for (std::uint32_t q = 100; q < 100 + VOLT_MAX_READERS_PER_RUN + 4; ++q)
    readers.push_back(volt(q, VOLT_ACQUIRE_SHARED));
  Result rel = volt(1, VOLT_RELEASE);
  ASSERT_EQ(rel.woken().size(), std::size_t{VOLT_MAX_READERS_PER_RUN});
  for (std::size_t i = 0; i < VOLT_MAX_READERS_PER_RUN; ++i) EXPECT_EQ(rel.woken()[i].token, readers[i].token);
  EXPECT_EQ(rt.parked_total(), 4u);
  // The next run on the lock grants the rest first, then a newcomer that now
  // finds nobody waiting.
  Result late = volt(200, VOLT_ACQUIRE_SHARED);
  ASSERT_EQ(late.out.size(), 5u);
  for (std::size_t i = 0; i < 4; ++i) EXPECT_EQ(late.out[i].token, readers[VOLT_MAX_READERS_PER_RUN + i].token);
  EXPECT_EQ(late.own().status, VOLT_ST_OK);
  EXPECT_EQ(state(), VOLT_MAX_READERS_PER_RUN + 5u);
  EXPECT_EQ(rt.parked_total(), 0u);
}

TEST_F(VoltTest, AHolderThatDiesHandsOverWithLockInterrupted) {
  volt(1, VOLT_ACQUIRE_EXCL);
  Result b = volt(2, VOLT_ACQUIRE_EXCL);
  Result c = volt(3, VOLT_ACQUIRE_SHARED);
  std::vector<NicOpAnswer> out;
  rt.qp_died(1, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].token, b.token);
  EXPECT_EQ(out[0].status, VOLT_ST_LOCK_INTERRUPTED);
  EXPECT_EQ(holder(), 2u);
  EXPECT_EQ(state(), VOLT_STATE_EXCL);  // the writer that repairs clears the flag
  Result rb = volt(2, VOLT_RELEASE);
  ASSERT_EQ(rb.woken().size(), 1u);
  EXPECT_EQ(rb.woken()[0].token, c.token);
  EXPECT_EQ(rb.woken()[0].status, VOLT_ST_OK);

  // No waiter: the next acquirer is told, readers too, until a writer.
  volt(3, VOLT_RELEASE);
  volt(4, VOLT_ACQUIRE_EXCL);
  out.clear();
  rt.qp_died(4, out);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(state(), VOLT_STATE_INTERRUPTED);
  EXPECT_EQ(volt(5, VOLT_ACQUIRE_SHARED).own().status, VOLT_ST_LOCK_INTERRUPTED);
  volt(5, VOLT_RELEASE);
  EXPECT_EQ(volt(6, VOLT_ACQUIRE_EXCL).own().status, VOLT_ST_LOCK_INTERRUPTED);
  volt(6, VOLT_RELEASE);
  EXPECT_EQ(volt(7, VOLT_ACQUIRE_EXCL).own().status, VOLT_ST_OK);
  volt(7, VOLT_RELEASE);

  // A reader's death releases its share without interrupting.
  volt(8, VOLT_ACQUIRE_SHARED);
  Result w = volt(9, VOLT_ACQUIRE_EXCL);
  out.clear();
  rt.qp_died(8, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].token, w.token);
  EXPECT_EQ(out[0].status, VOLT_ST_OK);
}

TEST_F(VoltTest, AWaiterThatDiesIsNeverGranted) {
  volt(1, VOLT_ACQUIRE_EXCL);
  volt(2, VOLT_ACQUIRE_EXCL);
  Result c = volt(3, VOLT_ACQUIRE_EXCL);
  std::vector<NicOpAnswer> out;
  rt.qp_died(2, out);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(rt.parked(2), 0u);
  Result ra = volt(1, VOLT_RELEASE);
  ASSERT_EQ(ra.woken().size(), 1u);
  EXPECT_EQ(ra.woken()[0].token, c.token);
  EXPECT_EQ(holder(), 3u);

  // The writer at the head dies while readers hold: the readers behind it
  // are granted at once (NICOP_EV_WAITER_GONE), not at the next release.
  volt(3, VOLT_RELEASE);
  volt(10, VOLT_ACQUIRE_SHARED);
  volt(11, VOLT_ACQUIRE_EXCL);
  Result r12 = volt(12, VOLT_ACQUIRE_SHARED);
  out.clear();
  rt.qp_died(11, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].token, r12.token);
  EXPECT_EQ(state(), 2u);
}

TEST_F(VoltTest, ParkLimitTimeoutAndUnload) {
  std::vector<NicOpAnswer> out;
  rt.unload(kVolt, out);
  rt.load(kVolt, prog("volt"), "nicop", 1'000'000);  // 1 ms
  volt(1, VOLT_ACQUIRE_EXCL, 0, 1000);
  volt(1, VOLT_ACQUIRE_EXCL, 1, 1000);
  rt.set_park_limit(2, 2);
  Result w0 = volt(2, VOLT_ACQUIRE_EXCL, 0, 5000);
  Result w1 = volt(2, VOLT_ACQUIRE_EXCL, 1, 6000);
  ASSERT_TRUE(w0.parked && w1.parked);
  Result full = volt(2, VOLT_ACQUIRE_SHARED, 0, 7000);
  EXPECT_EQ(full.own().status, NICOP_ST_QUEUE_FULL);
  EXPECT_EQ(rt.parked(2), 2u);
  EXPECT_EQ(state(0), VOLT_STATE_EXCL);  // nothing changed
  EXPECT_EQ(rt.next_deadline(), 1'005'000u);

  out.clear();
  rt.expire(1'004'999, out);
  EXPECT_TRUE(out.empty());
  rt.expire(1'005'000, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].token, w0.token);
  EXPECT_EQ(out[0].status, NICOP_ST_TIMEOUT);
  EXPECT_EQ(rt.next_deadline(), 1'006'000u);
  EXPECT_EQ(holder(0), 1u);  // a timed-out waiter is not granted later
  EXPECT_TRUE(volt(1, VOLT_RELEASE, 0).woken().empty());

  out.clear();
  rt.unload(kVolt, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].token, w1.token);
  EXPECT_EQ(out[0].status, NICOP_ST_UNLOADED);
  EXPECT_EQ(rt.parked_total(), 0u);
  EXPECT_EQ(rt.next_deadline(), UINT64_MAX);
  EXPECT_EQ(volt(1, VOLT_RELEASE, 1).own().status, NICOP_ST_UNLOADED);
}

TEST_F(VoltTest, TimeoutOfTheHeadWriterLetsTheReadersBehindIn) {
  std::vector<NicOpAnswer> out;
  rt.unload(kVolt, out);
  rt.load(kVolt, prog("volt"), "nicop", 1000);
  volt(1, VOLT_ACQUIRE_SHARED, 0, 100);
  Result w = volt(2, VOLT_ACQUIRE_EXCL, 0, 200);
  Result r = volt(3, VOLT_ACQUIRE_SHARED, 0, 900);
  rt.expire(1200, out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].token, w.token);
  EXPECT_EQ(out[0].status, NICOP_ST_TIMEOUT);
  EXPECT_EQ(out[1].token, r.token);
  EXPECT_EQ(out[1].status, VOLT_ST_OK);
  EXPECT_EQ(rt.next_deadline(), UINT64_MAX);
}

// A reference FIFO reader-writer lock, as volt.h specifies it.
struct RwModel {
  struct Waiting {
    std::uint32_t qpn;
    bool excl;
    std::uint64_t token;
  };
  struct Grant {
    std::uint64_t token;
    std::uint32_t status;
  };
  std::optional<std::uint32_t> writer;
  std::multiset<std::uint32_t> readers;
  std::deque<Waiting> queue;
  bool interrupted = false;

  bool can(bool excl) const { return excl ? !writer && readers.empty() : !writer; }
  Grant grant(const Waiting& w) {
    Grant g{w.token, interrupted ? std::uint32_t{VOLT_ST_LOCK_INTERRUPTED} : std::uint32_t{VOLT_ST_OK}};
    if (w.excl) {
      writer = w.qpn;
      interrupted = false;
    } else {
      readers.insert(w.qpn);
    }
    return g;
  }
  std::vector<Grant> promote() {
    std::vector<Grant> v;
    while (!queue.empty() && can(queue.front().excl)) {
      v.push_back(grant(queue.front()));
      queue.pop_front();
    }
    return v;
  }
  std::optional<Grant> acquire(std::uint32_t qpn, bool excl, std::uint64_t token) {
    if (queue.empty() && can(excl)) return grant({qpn, excl, token});
    queue.push_back({qpn, excl, token});
    return std::nullopt;
  }
  std::vector<Grant> release(std::uint32_t qpn, bool died) {
    if (writer == qpn) {
      writer.reset();
      interrupted = interrupted || died;
    } else {
      readers.erase(readers.find(qpn));
    }
    return promote();
  }
  std::vector<Grant> waiter_died(std::uint32_t qpn) {
    std::erase_if(queue, [&](const Waiting& w) { return w.qpn == qpn; });
    return promote();
  }
};

// Random acquire/release/death sequences on a few locks against the model:
// the same grants in the same order with the same statuses, strict FIFO
// (grants in arrival order), mutual exclusion, and the lock words agree.
TEST_F(VoltTest, RandomSequencesMatchAFifoReaderWriterModel) {
  struct Client {
    std::uint32_t qpn;
    enum { kIdle, kWaiting, kHolding } st = kIdle;
    int lock = 0;
    bool excl = false;
    std::uint64_t token = 0;
  };
  std::size_t grants = 0, interrupted = 0;
  for (int seq = 0; seq < 100; ++seq) {
    SCOPED_TRACE("sequence " + std::to_string(seq));
    std::vector<NicOpAnswer> drop;
    rt.unload(kVolt, drop);
    rt.load(kVolt, prog("volt"), "nicop");
    std::mt19937_64 rng(1000 + seq);
    rt.set_jit(seq % 3 != 0);  // a third of the sequences on the interpreter
    const bool shared_too = seq % 2 == 1;
    const int nlocks = 1 + seq % 3;
    const int nclients = 2 + seq % 7;
    for (int l = 0; l < 3; ++l) mem.at(lock_va(l)) = mem.at(lock_va(l) + 8) = 0;
    std::vector<RwModel> model(nlocks);
    std::vector<Client> clients;
    std::uint32_t next_qpn = 1000 * (seq + 1);
    for (int i = 0; i < nclients; ++i) clients.push_back({next_qpn++});
    std::map<std::uint64_t, std::uint64_t> arrival;  // token -> arrival number
    std::vector<std::uint64_t> last_grant(nlocks, 0);
    std::uint64_t arrivals = 0;

    auto apply = [&](int lock, const std::vector<RwModel::Grant>& expect, const std::vector<NicOpAnswer>& got) {
      ASSERT_EQ(got.size(), expect.size());
      for (std::size_t i = 0; i < got.size(); ++i) {
        ASSERT_EQ(got[i].token, expect[i].token);
        ASSERT_EQ(got[i].status, expect[i].status);
        ASSERT_GT(arrival.at(got[i].token), last_grant[lock]) << "granted out of arrival order";
        last_grant[lock] = arrival.at(got[i].token);
        for (Client& c : clients)
          if (c.token == got[i].token && c.st == Client::kWaiting) c.st = Client::kHolding;
        ++grants;
        interrupted += got[i].status == VOLT_ST_LOCK_INTERRUPTED;
      }
    };

    for (int step = 0; step < 300; ++step) {
      Client& c = clients[rng() % clients.size()];
      const int roll = static_cast<int>(rng() % 100);
      if (roll < 4 && c.st != Client::kIdle) {  // its QP dies; a new QP takes its place
        std::vector<NicOpAnswer> out;
        rt.qp_died(c.qpn, out);
        RwModel& m = model[c.lock];
        auto expect = c.st == Client::kWaiting ? m.waiter_died(c.qpn) : m.release(c.qpn, true);
        apply(c.lock, expect, out);
        if (HasFatalFailure()) return;
        c = Client{next_qpn++};
      } else if (c.st == Client::kIdle) {
        c.lock = static_cast<int>(rng() % nlocks);
        c.excl = !shared_too || rng() % 3 == 0;
        Result r = volt(c.qpn, c.excl ? VOLT_ACQUIRE_EXCL : VOLT_ACQUIRE_SHARED, c.lock);
        c.token = r.token;
        arrival[r.token] = ++arrivals;
        c.st = Client::kWaiting;
        auto g = model[c.lock].acquire(c.qpn, c.excl, r.token);
        ASSERT_EQ(r.parked, !g.has_value());
        apply(c.lock, g ? std::vector{*g} : std::vector<RwModel::Grant>{}, r.out);
        if (HasFatalFailure()) return;
      } else if (c.st == Client::kHolding) {
        Result r = volt(c.qpn, VOLT_RELEASE, c.lock);
        ASSERT_EQ(r.own().status, VOLT_ST_OK);
        c.st = Client::kIdle;
        apply(c.lock, model[c.lock].release(c.qpn, false), r.woken());
        if (HasFatalFailure()) return;
      }
      // Mutual exclusion, and the lock words say what the model says.
      for (int l = 0; l < nlocks; ++l) {
        int writers = 0, readers = 0;
        for (const Client& x : clients)
          if (x.st == Client::kHolding && x.lock == l) (x.excl ? writers : readers)++;
        ASSERT_LE(writers, 1);
        ASSERT_TRUE(writers == 0 || readers == 0);
        const std::uint64_t s = state(l);
        ASSERT_EQ((s & VOLT_STATE_EXCL) != 0, model[l].writer.has_value());
        ASSERT_EQ(s & VOLT_STATE_READERS, model[l].readers.size());
        ASSERT_EQ((s & VOLT_STATE_INTERRUPTED) != 0, model[l].interrupted);
        if (model[l].writer) {
          ASSERT_EQ(holder(l), *model[l].writer);
        }
      }
      std::size_t waiting = 0;
      for (const RwModel& m : model) waiting += m.queue.size();
      ASSERT_EQ(rt.parked_total(), waiting);
    }
  }
  std::printf("  %zu grants checked against the model, %zu of them LOCK_INTERRUPTED\n", grants, interrupted);
}

// ---- chase -------------------------------------------------------------------

class ChaseTest : public NicOpTest {
 protected:
  void SetUp() override { rt.load(kChase, prog("chase"), "nicop"); }
  // A list of n nodes scattered over the region; returns the first's va.
  std::vector<std::uint64_t> make_list(std::size_t n, std::uint64_t seed) {
    std::vector<std::uint64_t> slots;
    for (std::uint64_t i = 1; i < mem.len() / CHASE_NODE_SIZE; ++i) slots.push_back(Region::kVa + i * CHASE_NODE_SIZE);
    std::shuffle(slots.begin(), slots.end(), std::mt19937_64(seed));
    slots.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      mem.at(slots[i]) = i + 1 < n ? slots[i + 1] : 0;
      mem.at(slots[i] + 8) = 1000 + i;
    }
    return slots;
  }
  Result chase(std::uint64_t va, std::uint64_t links) { return call(kChase, 5, va, CHASE_NODE_SIZE, links); }
};

TEST_F(ChaseTest, FollowsTheLinksToTheLastNode) {
  const auto list = make_list(10, 1);
  EXPECT_EQ(chase(list[0], CHASE_MAX_LINKS).own().result, 1009u);  // stops at the end
  EXPECT_EQ(chase(list[0], 9).own().result, 1009u);
  EXPECT_EQ(chase(list[0], 3).own().result, 1003u);
  EXPECT_EQ(chase(list[0], 0).own().result, 1000u);
  EXPECT_EQ(chase(list[4], 16).own().result, 1009u);
  Result too_many = chase(list[0], CHASE_MAX_LINKS + 1);
  EXPECT_EQ(too_many.own().status, CHASE_ST_TOO_MANY_LINKS);
  EXPECT_EQ(call(kChase, 5, list[0], 8, 1).own().status, CHASE_ST_BAD_OBJECT);

  const auto longer = make_list(40, 2);
  EXPECT_EQ(chase(longer[0], CHASE_MAX_LINKS).own().result, 1000u + CHASE_MAX_LINKS);
  EXPECT_EQ(chase(longer[CHASE_MAX_LINKS], CHASE_MAX_LINKS).own().result, 1000u + 2 * CHASE_MAX_LINKS);
}

TEST_F(ChaseTest, ALinkOutsideTheRegionIsAProgramError) {
  const auto list = make_list(10, 3);
  mem.at(list[5]) = Region::kVa + mem.len();  // just past the region
  Result r = chase(list[0], CHASE_MAX_LINKS);
  EXPECT_EQ(r.own().status, NICOP_ST_PROG_ERROR);
  EXPECT_NE(rt.last_error(kChase).find("nicop_region_load"), std::string::npos) << rt.last_error(kChase);
  mem.at(list[5]) = list[6] + 4;  // misaligned
  EXPECT_EQ(chase(list[0], CHASE_MAX_LINKS).own().status, NICOP_ST_PROG_ERROR);
  mem.at(list[5]) = Region::kVa + mem.len() - 8;  // the node's value would be outside
  EXPECT_EQ(chase(list[0], CHASE_MAX_LINKS).own().status, NICOP_ST_PROG_ERROR);
  EXPECT_EQ(chase(list[0], 5).own().result, 1005u);  // stops before the bad link
}

// ---- a micro-measure (printed, not asserted) -------------------------------

TEST_F(NicOpTest, MicroMeasureJitAgainstInterpreter) {
  rt.load(kVolt, prog("volt"), "nicop");
  rt.load(kChase, prog("chase"), "nicop");
  std::vector<std::uint64_t> nodes;
  for (std::uint64_t i = 0; i < 11; ++i) nodes.push_back(Region::kVa + 1024 + 16 * i * 7);
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    mem.at(nodes[i]) = i + 1 < nodes.size() ? nodes[i + 1] : 0;
    mem.at(nodes[i] + 8) = i;
  }
  constexpr int kRuns = 100000;
  std::vector<NicOpAnswer> out;
  out.reserve(4);
  auto measure = [&](bool jit, auto&& one) {
    rt.set_jit(jit);
    for (int i = 0; i < 1000; ++i) one();
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < kRuns; ++i) one();
    const auto t1 = std::chrono::steady_clock::now();
    return std::chrono::duration<double, std::nano>(t1 - t0).count() / kRuns;
  };
  NicOpRequest ch = mem.req(kChase, 5, nodes[0], 16, 10);
  auto chase10 = [&] {
    out.clear();
    rt.run(ch, out);
    if (out.at(0).result != 10) std::abort();
  };
  NicOpRequest acq = mem.req(kVolt, 5, Region::kVa + 64, 16, VOLT_ACQUIRE_EXCL);
  NicOpRequest rel = mem.req(kVolt, 5, Region::kVa + 64, 16, VOLT_RELEASE);
  auto acquire_release = [&] {
    out.clear();
    rt.run(acq, out);
    rt.run(rel, out);
    if (out.size() != 2 || out[0].status != 0 || out[1].status != 0) std::abort();
  };
  const double cj = measure(true, chase10), ci = measure(false, chase10);
  const double vj = measure(true, acquire_release) / 2, vi = measure(false, acquire_release) / 2;
  std::printf("  ns per run (JIT / interpreter): chase of 10 links %.0f / %.0f, VOLT acquire or release %.0f / %.0f\n",
              cj, ci, vj, vi);
  RecordProperty("chase10_jit_ns", static_cast<int>(cj));
  RecordProperty("chase10_interp_ns", static_cast<int>(ci));
  RecordProperty("volt_jit_ns", static_cast<int>(vj));
  RecordProperty("volt_interp_ns", static_cast<int>(vi));
}

}  // namespace
}  // namespace urdma
