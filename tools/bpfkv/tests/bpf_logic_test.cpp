// SPDX-License-Identifier: GPL-2.0
// The XRP programs' step functions compiled as BPF (xrp_harness.bpf.c),
// checked by the host kernel's verifier, and run with BPF_PROG_TEST_RUN as
// the program of the read_xrp() emulator; their answers are compared with
// pread's.  The host has no XRP, so the harness hands the steps array map
// values where XRP hands them its data and scratch areas: both are
// fixed-size memory to the verifier.  Needs root (CAP_BPF); skipped without.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <iostream>
#include <random>

#include "bpfkv_xrp_logic.h"
#include "test_util.h"
#include "verify.h"
#include "xrp.h"
#include "xrp_harness.skel.h"

namespace fastpath::bpfkv {
namespace {

using test::TempDir;

// Verified instructions above which a program is at risk on the 6.1
// verifier (limit 1,000,000, older pruning): a regression guard.
constexpr std::uint64_t kMaxProcessed = 400000;

std::string g_libbpf_log;

int capture(enum libbpf_print_level, const char* fmt, va_list args) {
  char line[4096];
  std::vsnprintf(line, sizeof(line), fmt, args);
  g_libbpf_log += line;
  return 0;
}

struct HarnessIo {  // struct harness_io in xrp_harness.bpf.c
  std::uint64_t cur_addr, next_addr;
  std::uint32_t data_len, iteration, next_size, done;
};

class Harness {
 public:
  // Loads the three programs; err is 0 or the -errno of the load.
  explicit Harness(int& err) : skel_(xrp_harness::open(), &xrp_harness::destroy) {
    libbpf_set_print(capture);
    if (!skel_) {
      err = -errno;
      return;
    }
    for (bpf_program* p : programs()) bpf_program__set_log_level(p, 4);  // statistics
    std::size_t i = 0;
    for (bpf_program* p : programs()) bpf_program__set_log_buf(p, stats_[i++], sizeof(stats_[0]));
    err = xrp_harness::load(skel_.get());
  }

  std::array<bpf_program*, 3> programs() const {
    return {skel_->progs.harness_get, skel_->progs.harness_range, skel_->progs.harness_agg};
  }
  std::uint64_t processed(std::size_t i) const {
    const char* p = std::strstr(stats_[i], "processed ");
    return p ? std::strtoull(p + 10, nullptr, 10) : 0;
  }

  // One run of prog on the block: what read_xrp() does in the kernel.
  void step(XrpProgram prog, const __u8* data, __u32 len, __u64 cur, __u32 iteration, __u8* scratch,
            bpfkv_xrp_out* out) {
    const std::uint32_t zero = 0;
    HarnessIo io{cur, 0, len, iteration, 0, 0};
    update(skel_->maps.data_map, data, BPFKV_XRP_DATA_SIZE);
    update(skel_->maps.scratch_map, scratch, BPFKV_XRP_SCRATCH_SIZE);
    update(skel_->maps.io_map, &io, sizeof(io));
    LIBBPF_OPTS(bpf_test_run_opts, opts);
    if (bpf_prog_test_run_opts(bpf_program__fd(programs()[static_cast<int>(prog)]), &opts) != 0 || opts.retval != 0)
      throw std::runtime_error("BPF_PROG_TEST_RUN failed");
    if (bpf_map__lookup_elem(skel_->maps.scratch_map, &zero, 4, scratch, BPFKV_XRP_SCRATCH_SIZE, 0) != 0 ||
        bpf_map__lookup_elem(skel_->maps.io_map, &zero, 4, &io, sizeof(io), 0) != 0)
      throw std::runtime_error("map lookup failed");
    out->next_addr = io.next_addr;
    out->next_size = io.next_size;
    out->done = io.done;
  }

 private:
  static void update(bpf_map* map, const void* value, std::size_t size) {
    const std::uint32_t zero = 0;
    if (bpf_map__update_elem(map, &zero, 4, value, size, BPF_ANY) != 0) throw std::runtime_error("map update failed");
  }

  std::unique_ptr<xrp_harness, void (*)(xrp_harness*)> skel_;
  char stats_[3][1024] = {};
};

// read_xrp() emulated with the BPF-compiled programs.
class HarnessXrp : public XrpDriver {
 public:
  HarnessXrp(const DbFile& db, Harness& h) : db_(db), h_(h) {}
  long call(XrpProgram prog, std::uint64_t offset, std::uint32_t count, std::byte* scratch) override {
    auto step = [this, prog](const __u8* d, __u32 len, __u64 cur, __u32 it, __u8* s, bpfkv_xrp_out* out) {
      h_.step(prog, d, len, cur, it, s, out);
    };
    return emulate_read_xrp(db_, step, offset, count, scratch);
  }

 private:
  const DbFile& db_;
  Harness& h_;
};

class BpfLogic : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    int err = 0;
    g_libbpf_log.clear();
    harness_ = std::make_unique<Harness>(err);  // one load for the suite
    load_error_ = err;
  }
  static void TearDownTestSuite() { harness_.reset(); }
  void SetUp() override {
    if (load_error_ == -EPERM) GTEST_SKIP() << "loading BPF programs needs root (CAP_BPF)";
    ASSERT_EQ(load_error_, 0) << "the host verifier rejects the XRP step logic:\n" << g_libbpf_log;
  }

  std::unique_ptr<Backend> bpf_backend(const DbFile& db, std::uint32_t max_reads = BPFKV_XRP_MAX_READS) {
    return make_xrp_backend(db, std::make_unique<HarnessXrp>(db, *harness_), "xrp-bpf", {.max_reads = max_reads});
  }

  static inline std::unique_ptr<Harness> harness_;
  static inline int load_error_ = 0;
};

TEST_F(BpfLogic, ProgramsPassTheVerifierWithRoomToSpare) {
  const char* names[] = {"bpfkv_get", "bpfkv_range", "bpfkv_agg"};
  for (std::size_t i = 0; i < 3; ++i) {
    const std::uint64_t n = harness_->processed(i);
    RecordProperty(std::string(names[i]) + "_verified_insns", std::to_string(n));
    std::cout << names[i] << ": the host verifier walks " << n << " instructions\n";
    EXPECT_GT(n, 0u) << names[i];
    EXPECT_LT(n, kMaxProcessed) << names[i] << ": the verifier walks " << n << " instructions";
  }
}

TEST_F(BpfLogic, AnswersMatchPread) {
  struct Case {
    Params params;
    std::uint32_t max_reads;  // a small budget makes every request resume
  };
  for (const Case& c : {Case{{.layers = 3, .fanout = 6, .value_size = 72, .stride = 3}, 5},
                        Case{{.layers = 2, .fanout = 30, .node_size = 4096, .value_size = 512}, 256},
                        Case{{.layers = 6, .fanout = 2, .value_size = 16}, 256}}) {
    TempDir dir;
    const Geometry g = test::make_db(dir.file("db"), c.params);
    const DbFile db = DbFile::open(dir.file("db"));
    SCOPED_TRACE(test::shape_name(c.params));
    auto pread = make_pread_backend(db);
    auto bpf = bpf_backend(db, c.max_reads);
    std::vector<std::uint64_t> keys{0, 1, g.max_key(), g.max_key() + 1};
    std::mt19937_64 rng(11);
    for (int i = 0; i < 40; ++i) keys.push_back(rng() % (g.max_key() + 2));
    std::vector<std::uint8_t> want_found(keys.size()), found(keys.size());
    std::vector<std::byte> want(keys.size() * g.value_size), values(want.size());
    pread->get(keys, want_found, want);
    bpf->get(keys, found, values);
    EXPECT_EQ(found, want_found);
    EXPECT_EQ(values, want);
    EXPECT_EQ(test::range_keys(*bpf, g, 2, g.max_key() - 1, 1000),
              test::range_keys(*pread, g, 2, g.max_key() - 1, 1000));
    for (AggOp op : {AggOp::Count, AggOp::Sum, AggOp::Min, AggOp::Max})
      EXPECT_EQ(bpf->aggregate(op, 1, g.max_key()).value(op), pread->aggregate(op, 1, g.max_key()).value(op));
  }
}

TEST_F(BpfLogic, ReportsDamage) {
  TempDir dir;
  const Geometry g = test::make_db(dir.file("db"), {.layers = 2, .fanout = 4});
  test::patch_u64(dir.file("db"), g.level_off[1] + BPFKV_NODE_KEYS(512) + 8, 1000);  // leaf 0: keys out of order
  const DbFile db = DbFile::open(dir.file("db"));
  auto bpf = bpf_backend(db);
  try {
    bpf->aggregate(AggOp::Sum, 0, 100);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("keys out of order in a node"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace fastpath::bpfkv
