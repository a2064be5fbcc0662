// SPDX-License-Identifier: GPL-2.0
//
// rubble-client: put, get and delete keys on a RubbleDB chain, and show a
// node's statistics.  Writes go to the head, reads to the tail.
//
//   $ rubble-client --head 127.0.0.1:7000 --tail 127.0.0.1:7002 put user1 hello
//   ok (seq 1)
//   $ rubble-client --head 127.0.0.1:7000 --tail 127.0.0.1:7002 get user1
//   hello
//   $ rubble-client --chain 127.0.0.1:7001 get user1      # any member: follows the view
//   $ rubble-client --chain 127.0.0.1:7000,127.0.0.1:7001 put user1 x  # any live one of several
//   hello
//   $ rubble-client --tail 127.0.0.1:7002 scan user 10
//   user1 hello
//   $ rubble-client stats 127.0.0.1:7002
//   role tail, mode rubble, chain 3f2a..., position 2, applied 1, acked 1, ...
//   $ rubble-client fill --count 2000 && rubble-client check --count 2000
//   put 2000 keys (k00000000..k00001999, 1024-byte values)
//   2000 of 2000 keys read back correctly at the tail
#include <algorithm>
#include <iostream>
#include <string>

#include "chain.h"
#include "client.h"
#include "fastpath/cli.h"

namespace {

constexpr const char* kTool = "rubble-client";

int fail(const grpc::Status& st) {
  fastpath::cli::error(kTool, fastpath::rubble::describe(st));
  return 1;
}

void print_stats(const fastpath::rubble::wire::StatsReply& r) {
  std::cout << "role " << r.role() << ", mode " << r.mode() << ", chain " << r.chain_id() << ", position "
            << r.position() << ", pid " << r.pid() << "\n"
            << "applied " << r.applied_seq() << ", acked " << r.acked_seq() << ", cpu " << r.cpu_seconds() << " s\n"
            << "flushes " << r.flushes() << ", compactions " << r.compactions() << ", flushed " << r.flush_bytes()
            << " B, compacted " << r.compact_bytes() << " B\n"
            << "live SSTs " << r.live_sst_files() << " (" << r.live_sst_bytes() << " B), slots " << r.slots_in_use()
            << "/" << r.slots_total() << ", SSTs shipped " << r.ssts_shipped() << " (" << r.bytes_shipped()
            << " B), catch-ups " << r.catchups() << "\n"
            << "replication bytes sent " << r.bytes_sent() << ", received " << r.bytes_received()
            << ", acknowledgement bytes sent " << r.ack_bytes_sent() << ", reply bytes sent " << r.reply_bytes_sent()
            << "\n"
            << "RocksDB WAL bytes " << r.wal_bytes() << ", io write_bytes " << r.io_write_bytes() << "\n";
}

// The value fill writes for key number i: the key, then hex digits of a
// pseudo-random stream seeded by i (so values do not compress away and
// check can tell any wrong or stale value), up to size bytes.
std::string fill_value(const std::string& key, std::uint64_t i, std::size_t size) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string v = key + ":";
  std::uint64_t x = i * 0x9E3779B97F4A7C15ull + 1;
  while (v.size() < size) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    for (int b = 0; b < 64 && v.size() < size; b += 4) v += kHex[(x >> b) & 15];
  }
  v.resize(size);
  return v;
}

std::string fill_key(const std::string& prefix, std::uint64_t i) {
  std::string n = std::to_string(i);
  return prefix + std::string(n.size() < 8 ? 8 - n.size() : 0, '0') + n;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"rubble-client: put, get and delete keys on a RubbleDB chain; show a node's statistics"};
  app.require_subcommand(1);
  std::string head = "127.0.0.1:7000", tail = "127.0.0.1:7002", key, value, addr;
  app.add_option("--head", head, "the chain's head (writes)")->capture_default_str();
  app.add_option("--tail", tail, "the chain's tail (reads)")->capture_default_str();
  std::vector<std::string> chain;
  app.add_option("--chain", chain,
                 "members of the chain (comma-separated or repeated; any live one will do): follow the chain's view "
                 "to the head and the tail, retrying while it re-forms (instead of --head and --tail)")
      ->delimiter(',');
  double retry_s = 10;
  app.add_option("--retry-for", retry_s, "with --chain: give up after this many seconds without a head or tail")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 3600.0));
  auto* put = app.add_subcommand("put", "write KEY = VALUE; returns once the tail has it");
  put->add_option("key", key, "key")->required();
  put->add_option("value", value, "value")->required();
  auto* get = app.add_subcommand("get", "read KEY at the tail");
  get->add_option("key", key, "key")->required();
  auto* del = app.add_subcommand("del", "delete KEY");
  del->add_option("key", key, "key")->required();
  std::uint32_t limit = 10;
  auto* scan = app.add_subcommand("scan", "list up to LIMIT keys >= START at the tail, one 'key value' per line");
  scan->add_option("start", key, "first key")->required();
  scan->add_option("limit", limit, "most keys to list")->capture_default_str();
  auto* stats = app.add_subcommand("stats", "show the statistics of the node at ADDR");
  stats->add_option("addr", addr, "node address")->required();
  std::uint64_t count = 1000;
  std::string prefix = "k";
  std::uint64_t value_size = 1024;
  auto* fill = app.add_subcommand("fill", "put COUNT keys PREFIX00000000.. with values check can verify");
  auto* check = app.add_subcommand("check", "read back what fill wrote, at the tail; exit 1 on any wrong value");
  for (auto* sc : {fill, check}) {
    sc->add_option("--count", count, "number of keys")->capture_default_str();
    sc->add_option("--prefix", prefix, "key prefix")->capture_default_str();
    sc->add_option("--value-size", value_size, "value size in bytes")
        ->capture_default_str()
        ->check(CLI::Range(16, 4 << 20));
  }
  std::uint32_t batch = 1;
  fill->add_option("--batch", batch, "keys per Write call (1: one Put per key)")
      ->capture_default_str()
      ->check(CLI::Range(1, static_cast<int>(fastpath::rubble::kMaxWriteOps)));
  if (int rc = fastpath::cli::parse(app, argc, argv); rc >= 0) return rc;

  auto c = chain.empty() ? fastpath::rubble::ChainClient(head, tail)
                         : fastpath::rubble::ChainClient::follow(
                               chain, std::chrono::milliseconds(static_cast<std::int64_t>(retry_s * 1000)));
  std::uint64_t seq = 0;
  if (*put) {
    if (auto st = c.put(key, value, &seq); !st.ok()) return fail(st);
    std::cout << "ok (seq " << seq << ")\n";
  } else if (*del) {
    if (auto st = c.del(key, &seq); !st.ok()) return fail(st);
    std::cout << "ok (seq " << seq << ")\n";
  } else if (*get) {
    bool found = false;
    if (auto st = c.get(key, &value, &found); !st.ok()) return fail(st);
    if (!found) {
      std::cerr << kTool << ": " << key << ": not found\n";
      return 3;
    }
    std::cout << value << "\n";
  } else if (*fill) {
    for (std::uint64_t i = 0; i < count; i += batch) {
      fastpath::rubble::wire::WriteRequest req;
      for (std::uint64_t j = i; j < std::min(count, i + batch); ++j) {
        auto* op = req.add_ops();
        op->set_type(fastpath::rubble::wire::KvOp::PUT);
        op->set_key(fill_key(prefix, j));
        op->set_value(fill_value(op->key(), j, value_size));
      }
      const auto st = batch == 1 ? c.put(req.ops(0).key(), req.ops(0).value(), &seq) : c.write(req, &seq);
      if (!st.ok()) {
        std::cerr << kTool << ": after " << i << " of " << count << " keys:\n";
        return fail(st);
      }
    }
    std::cout << "put " << count << " keys (" << fill_key(prefix, 0) << ".." << fill_key(prefix, count - 1) << ", "
              << value_size << "-byte values)\n";
  } else if (*check) {
    std::uint64_t good = 0;
    for (std::uint64_t i = 0; i < count; ++i) {
      const std::string k = fill_key(prefix, i);
      bool found = false;
      if (auto st = c.get(k, &value, &found); !st.ok()) return fail(st);
      if (found && value == fill_value(k, i, value_size)) {
        ++good;
      } else if (i - good < 3) {  // the first three bad keys
        std::cerr << kTool << ": " << k << ": " << (found ? "wrong value" : "not found") << "\n";
      }
    }
    std::cout << good << " of " << count << " keys read back correctly at the tail\n";
    if (good != count) return 1;
  } else if (*scan) {
    std::vector<std::pair<std::string, std::string>> items;
    if (auto st = c.scan(key, limit, &items); !st.ok()) return fail(st);
    for (const auto& [k, v] : items) std::cout << k << " " << v << "\n";
  } else {
    fastpath::rubble::wire::StatsReply r;
    if (auto st = fastpath::rubble::ChainClient::stats(addr, &r); !st.ok()) return fail(st);
    print_stats(r);
  }
  return 0;
}
