// SPDX-License-Identifier: GPL-2.0
// The XRP emulator: the BPF programs' step functions (bpf/bpfkv_xrp_logic.h)
// driven over pread the way read_xrp() drives them (read the block at the
// current offset, run the step, follow next_addr until done, at most 256
// reads), checked against the pread back-end.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <random>

#include "bpfkv_xrp_logic.h"
#include "test_util.h"
#include "verify.h"
#include "xrp.h"

namespace fastpath::bpfkv {
namespace {

using test::TempDir;

class Emulator : public testing::Test {
 protected:
  void open(const Params& p) {
    path_ = dir_.file("db");
    g_ = test::make_db(path_, p);
    db_ = std::make_unique<DbFile>(DbFile::open(path_));
    io_size_ = std::max(g_.node_size, db_->io_align());
  }

  void fill_params(bpfkv_xrp_params& p, std::uint32_t max_reads = BPFKV_XRP_MAX_READS) const {
    p.node_size = g_.node_size;
    p.fanout = g_.fanout;
    p.layers = g_.layers;
    p.value_size = g_.value_size;
    p.io_size = io_size_;
    p.max_reads = max_reads;
    p.log_off = g_.log_off;
    p.log_end = g_.log_end();
    for (std::uint32_t d = 0; d <= g_.layers; ++d) p.level_off[d] = g_.level_off[d];
  }

  std::unique_ptr<Backend> emulated(std::uint32_t max_reads) const {
    return make_xrp_backend(*db_, make_emulated_xrp(*db_), "xrp-emu", {.max_reads = max_reads});
  }

  TempDir dir_;
  std::string path_;
  Geometry g_;
  std::unique_ptr<DbFile> db_;
  std::uint32_t io_size_ = 0;
};

// The get step by hand: one emulated read_xrp() answers a batch.
TEST_F(Emulator, GetStepAnswersABatchInOneCall) {
  open({.layers = 3, .fanout = 5, .stride = 2});
  AlignedBuffer scratch(BPFKV_XRP_SCRATCH_SIZE);
  auto* s = reinterpret_cast<bpfkv_get_scratch*>(scratch.data());
  fill_params(s->p);
  s->w.hi = ~0ULL;
  const std::vector<std::uint64_t> keys{0, 2, 3, 248, 250, 100, 1ULL << 40};
  s->nkeys = static_cast<std::uint32_t>(keys.size());
  std::copy(keys.begin(), keys.end(), s->keys);
  std::uint64_t reads = 0;
  ASSERT_EQ(emulate_read_xrp(*db_, xrp_step(XrpProgram::Get), 0, io_size_, scratch.data(), &reads), io_size_);
  EXPECT_EQ(s->w.status, BPFKV_OK);
  EXPECT_EQ(s->next, s->nkeys);
  // Present keys: 3 index levels + the value; absent ones stop in the leaf.
  EXPECT_EQ(reads, 4u * 4 + 3u * 3);
  EXPECT_EQ(s->w.reads, reads);

  std::vector<std::uint8_t> found(keys.size());
  std::vector<std::byte> want(keys.size() * g_.value_size);
  make_pread_backend(*db_)->get(keys, found, want);
  for (std::size_t i = 0; i < keys.size(); ++i) {
    EXPECT_EQ(s->found[i], found[i]) << keys[i];
    if (found[i]) {
      EXPECT_EQ(std::memcmp(scratch.data() + BPFKV_GET_VALUES + i * g_.value_size, want.data() + i * g_.value_size,
                            g_.value_size),
                0)
          << keys[i];
    }
  }
}

TEST_F(Emulator, BadParametersStopTheProgram) {
  open({.layers = 2, .fanout = 4});
  AlignedBuffer scratch(BPFKV_XRP_SCRATCH_SIZE);
  auto* s = reinterpret_cast<bpfkv_get_scratch*>(scratch.data());
  fill_params(s->p);
  s->p.node_size = 1000;
  s->nkeys = 1;
  std::uint64_t reads = 0;
  ASSERT_EQ(emulate_read_xrp(*db_, xrp_step(XrpProgram::Get), 0, io_size_, scratch.data(), &reads), io_size_);
  EXPECT_EQ(s->w.status, BPFKV_E_PARAMS);
  EXPECT_EQ(reads, 1u);
}

// Whatever the reads per call, the answers are pread's: the programs stop
// with their cursor in the scratch and go on in the next call.
TEST_F(Emulator, AgreesWithPreadAtAnyReadBudget) {
  open({.layers = 3, .fanout = 6, .value_size = 72, .stride = 3});
  std::vector<std::uint64_t> keys;
  std::mt19937_64 rng(3);
  for (int i = 0; i < 80; ++i) keys.push_back(rng() % (g_.max_key() + 10));
  std::vector<std::uint8_t> want_found(keys.size());
  std::vector<std::byte> want(keys.size() * g_.value_size);
  auto pread = make_pread_backend(*db_);
  pread->get(keys, want_found, want);
  const auto want_range = test::range_keys(*pread, g_, 5, g_.max_key(), 1000);
  for (std::uint32_t max_reads : {1u, 2u, 3u, 7u, 256u}) {
    SCOPED_TRACE("max_reads " + std::to_string(max_reads));
    auto xrp = emulated(max_reads);
    std::vector<std::uint8_t> found(keys.size());
    std::vector<std::byte> values(keys.size() * g_.value_size);
    xrp->get(keys, found, values);
    EXPECT_EQ(found, want_found);
    EXPECT_EQ(values, want);
    EXPECT_EQ(test::range_keys(*xrp, g_, 5, g_.max_key(), 1000), want_range);
    for (AggOp op : {AggOp::Count, AggOp::Sum, AggOp::Min, AggOp::Max})
      EXPECT_EQ(xrp->aggregate(op, 4, g_.max_key()).value(op), pread->aggregate(op, 4, g_.max_key()).value(op));
  }
}

// 32 keys x 9 reads = 288 > 256: one batch needs two calls.
TEST_F(Emulator, DeepTreeBatchGoesOnInASecondCall) {
  open({.layers = 8, .fanout = 2});
  std::vector<std::uint64_t> keys;
  for (std::uint64_t k = 0; k < 32; ++k) keys.push_back(k * 7);
  auto xrp = emulated(BPFKV_XRP_MAX_READS);
  std::vector<std::uint8_t> found(keys.size());
  std::vector<std::byte> values(keys.size() * g_.value_size);
  xrp->get(keys, found, values);
  EXPECT_NO_THROW(verify_get(*db_, "xrp-emu", keys, found, values));
  EXPECT_EQ(xrp->stats().syscalls, 2u);
  EXPECT_EQ(xrp->stats().reads, 32u * 9);
}

// A long scan: many calls, each within the read cap.
TEST_F(Emulator, LongScansResume) {
  open({.layers = 2, .fanout = 60, .node_size = 4096, .value_size = 512});
  auto xrp = emulated(BPFKV_XRP_MAX_READS);
  const AggResult r = xrp->aggregate(AggOp::Sum, 0, ~0ULL);
  EXPECT_NO_THROW(verify_aggregate(*db_, "xrp-emu", AggOp::Sum, 0, ~0ULL, r));
  // 3600 values of 512 bytes in 4096-byte reads (8 values a read), and a
  // leaf read per 32 values: over 500 reads, 256 a call at most.
  EXPECT_GT(xrp->stats().reads, 512u);
  EXPECT_GE(xrp->stats().syscalls, 3u);
  EXPECT_EQ(xrp->aggregate(AggOp::Count, 0, ~0ULL).count, g_.nkeys);
}

// read_xrp()'s rules, enforced by the emulator.
TEST_F(Emulator, CapsReadsAt256) {
  open({.layers = 1, .fanout = 4});
  AlignedBuffer scratch(BPFKV_XRP_SCRATCH_SIZE);
  std::memset(scratch.data(), 0x5a, 16);
  std::uint64_t reads = 0;
  auto forever = [](const __u8*, __u32, __u64, __u32, __u8* s, bpfkv_xrp_out* out) {
    s[0] = 1;  // must not reach the caller: nothing is copied back on error
    out->next_addr = 0;
  };
  EXPECT_EQ(emulate_read_xrp(*db_, forever, 0, io_size_, scratch.data(), &reads), -ELOOP);
  EXPECT_EQ(reads, 256u);
  EXPECT_EQ(scratch.data()[0], std::byte{0x5a});
}

TEST_F(Emulator, ChecksAlignmentAndBounds) {
  open({.layers = 1, .fanout = 4});
  AlignedBuffer scratch(BPFKV_XRP_SCRATCH_SIZE);
  auto misaligned = [](const __u8*, __u32, __u64, __u32, __u8*, bpfkv_xrp_out* out) { out->next_addr = 100; };
  auto past_end = [](const __u8*, __u32, __u64, __u32, __u8*, bpfkv_xrp_out* out) { out->next_addr = 1ULL << 40; };
  auto too_big = [](const __u8*, __u32, __u64, __u32, __u8*, bpfkv_xrp_out* out) { out->next_size = 8192; };
  EXPECT_EQ(emulate_read_xrp(*db_, misaligned, 0, io_size_, scratch.data()), -EINVAL);
  EXPECT_EQ(emulate_read_xrp(*db_, past_end, 0, io_size_, scratch.data()), -ENXIO);
  EXPECT_EQ(emulate_read_xrp(*db_, too_big, 0, io_size_, scratch.data()), -EINVAL);
  EXPECT_EQ(emulate_read_xrp(*db_, xrp_step(XrpProgram::Get), 0, 0, scratch.data()), -EINVAL);
  EXPECT_EQ(emulate_read_xrp(*db_, xrp_step(XrpProgram::Get), 0, 8192, scratch.data()), -EINVAL);
  EXPECT_EQ(emulate_read_xrp(*db_, xrp_step(XrpProgram::Get), db_->size(), io_size_, scratch.data()), -ENXIO);
}

}  // namespace
}  // namespace fastpath::bpfkv
