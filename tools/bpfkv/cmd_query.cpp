// SPDX-License-Identifier: GPL-2.0
// bpfkv get, range and agg: one back-end, every answer verified.
#include <cstdio>
#include <iostream>

#include "commands.h"
#include "fastpath/report.h"
#include "verify.h"

namespace fastpath::bpfkv {

void QueryOptions::add_to(CLI::App& sub, bool one_backend) {
  if (one_backend)
    sub.add_option("--backend", backend, "pread, io_uring, xrp (fastpath VM only) or xrp-emu (XRP logic in user space)")
        ->check(CLI::IsMember(backend_names()))
        ->capture_default_str();
  sub.add_flag("--buffered", buffered, "no O_DIRECT (for file systems without it; not with xrp)");
  sub.add_option("--queue-depth", backend_opts.queue_depth, "io_uring: reads in flight")->capture_default_str();
  sub.add_option("--max-reads", backend_opts.max_reads, "xrp: reads per read_xrp() call (1..256)")
      ->check(CLI::Range(1, BPFKV_XRP_MAX_READS))
      ->capture_default_str();
}

namespace {

std::string hex(std::span<const std::byte> bytes, std::size_t max) {
  std::string s;
  char b[3];
  for (std::size_t i = 0; i < std::min(bytes.size(), max); ++i) {
    if (i && i % 8 == 0) s += ' ';
    std::snprintf(b, sizeof(b), "%02x", static_cast<unsigned>(bytes[i]));
    s += b;
  }
  return bytes.size() > max ? s + "..." : s;
}

class GetCommand : public Command {
 public:
  CLI::App* add_to(CLI::App& app) override {
    CLI::App* sub = app.add_subcommand("get", "look up keys (one batch) and print their values");
    sub->add_option("FILE", path_, "database")->required();
    sub->add_option("KEY", keys_, "keys to look up")->required();
    q_.add_to(*sub, true);
    return sub;
  }

  int run() override {
    const QuerySession session(path_, q_);
    const DbFile& db = session.db;
    const auto& backend = session.backend;
    const std::uint32_t vs = db.geo().value_size;
    std::vector<std::uint8_t> found(keys_.size());
    std::vector<std::byte> values(keys_.size() * vs);
    backend->get(keys_, found, values);
    verify_get(db, backend->name(), keys_, found, values);
    Table t({"key", "found", "agg", "value"});
    for (std::size_t i = 0; i < keys_.size(); ++i) {
      const auto v = std::span(values).subspan(i * vs, vs);
      t.add_row({std::to_string(keys_[i]), found[i] ? "yes" : "no", found[i] ? std::to_string(value_agg(v)) : "",
                 found[i] ? hex(v, 24) : ""});
    }
    t.print(std::cout);
    return 0;
  }

 private:
  std::string path_;
  std::vector<std::uint64_t> keys_;
  QueryOptions q_;
};

class RangeCommand : public Command {
 public:
  CLI::App* add_to(CLI::App& app) override {
    CLI::App* sub = app.add_subcommand("range", "print the keys in [LO, HI) and their aggregation field");
    sub->add_option("FILE", path_, "database")->required();
    sub->add_option("LO", lo_, "first key")->required();
    sub->add_option("HI", hi_, "end key (not included)")->required();
    sub->add_option("--page", page_, "keys per range call (the cursor resumes between calls)")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    sub->add_option("--limit", limit_, "stop after this many keys (0: no limit)")->capture_default_str();
    q_.add_to(*sub, true);
    return sub;
  }

  int run() override {
    const QuerySession session(path_, q_);
    const DbFile& db = session.db;
    const auto& backend = session.backend;
    const std::uint32_t vs = db.geo().value_size;
    RangeCursor cursor{lo_, hi_, lo_ >= hi_};
    std::uint64_t total = 0, calls = 0;
    std::vector<std::byte> values;
    std::cout << "key\tagg\n";
    while (!cursor.done && (limit_ == 0 || total < limit_)) {
      const std::uint64_t from = cursor.next;
      const std::size_t want = limit_ ? std::min<std::uint64_t>(page_, limit_ - total) : page_;
      values.clear();
      const std::size_t n = backend->range(cursor, want, values);
      ++calls;
      verify_range(db, backend->name(), from, values, cursor);
      for (std::size_t i = 0; i < n; ++i) {
        const auto v = std::span(values).subspan(i * vs, vs);
        std::cout << value_key(v) << '\t' << value_agg(v) << '\n';
      }
      total += n;
    }
    std::cerr << total << " keys in [" << lo_ << ", " << hi_ << ") from " << backend->name() << " in " << calls
              << " range calls, verified" << (cursor.done ? "" : " (stopped at --limit)") << '\n';
    return 0;
  }

 private:
  std::string path_;
  std::uint64_t lo_ = 0, hi_ = 0;
  std::uint64_t page_ = 256;
  std::uint64_t limit_ = 0;
  QueryOptions q_;
};

class AggCommand : public Command {
 public:
  CLI::App* add_to(CLI::App& app) override {
    CLI::App* sub = app.add_subcommand("agg", "sum, min, max or count of the aggregation field over [LO, HI)");
    sub->add_option("FILE", path_, "database")->required();
    sub->add_option("OP", op_name_, "sum, min, max or count")
        ->required()
        ->check(CLI::IsMember({"sum", "min", "max", "count"}));
    sub->add_option("LO", lo_, "first key")->required();
    sub->add_option("HI", hi_, "end key (not included)")->required();
    q_.add_to(*sub, true);
    return sub;
  }

  int run() override {
    op_ = op_name_ == "sum"   ? AggOp::Sum
          : op_name_ == "min" ? AggOp::Min
          : op_name_ == "max" ? AggOp::Max
                              : AggOp::Count;
    const QuerySession session(path_, q_);
    const DbFile& db = session.db;
    const auto& backend = session.backend;
    const AggResult r = backend->aggregate(op_, lo_, hi_);
    verify_aggregate(db, backend->name(), op_, lo_, hi_, r);
    std::cout << op_name_ << " [" << lo_ << ", " << hi_ << ") = ";
    if (r.count == 0 && (op_ == AggOp::Min || op_ == AggOp::Max))
      std::cout << "none (no keys)";
    else
      std::cout << r.value(op_) << " (" << r.count << " keys)";
    std::cout << ", " << backend->name() << ", verified\n";
    return 0;
  }

 private:
  std::string path_;
  std::string op_name_;
  AggOp op_ = AggOp::Sum;
  std::uint64_t lo_ = 0, hi_ = 0;
  QueryOptions q_;
};

}  // namespace

std::unique_ptr<Command> make_get_command() {
  return std::make_unique<GetCommand>();
}

std::unique_ptr<Command> make_range_command() {
  return std::make_unique<RangeCommand>();
}

std::unique_ptr<Command> make_agg_command() {
  return std::make_unique<AggCommand>();
}

}  // namespace fastpath::bpfkv
