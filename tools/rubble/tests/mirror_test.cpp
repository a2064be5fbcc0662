// Description: the ordering of edits, in one process with real RocksDB.  A
// primary runs on the head's mirror file system; its file operations are
// replayed, one by one and in order, on a replica (mirror directory + slot
// pool) read by a secondary instance.  After every MANIFEST change the
// secondary catches up, and every table it lists must already be installed
// in a slot; at the end it serves the same data, having compacted nothing,
// and the slots of the files the head deleted have come back.
// SPDX-License-Identifier: GPL-2.0
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <mutex>
#include <random>

#include "filenames.h"
#include "mirror_fs.h"
#include "overlay.h"
#include "pool.h"
#include "slot_allocator.h"
#include "slot_fs.h"
#include "store.h"
#include "testutil.h"

using namespace fastpath::rubble;
using fastpath::rubble::test::TempDir;

namespace {

constexpr std::uint64_t kSstSize = 128 << 10;

// The head side: records operations and ships SSTs into one replica pool.
class Recorder : public FileOpSink, public SstShipper {
 public:
  Recorder(Pool& pool, SlotAllocator& slots) : pool_(pool), slots_(slots) {}

  void file_op(wire::FileOp op) override {
    std::lock_guard lock(mu_);
    ops_.push_back(std::move(op));
  }

  std::string ship(const std::string&, const std::string& path, std::uint32_t* slot, std::uint64_t* size) override {
    const std::string data = read(path);
    AlignedBuffer buf(round_up(data.size(), kBlock));
    std::memcpy(buf.data(), data.data(), data.size());
    const auto s = slots_.try_allocate();
    if (!s) return "pool full";
    *slot = *s;
    *size = data.size();
    return pool_.write_slot(*s, buf.data(), buf.size());
  }

  std::vector<wire::FileOp> take() {
    std::lock_guard lock(mu_);
    return std::exchange(ops_, {});
  }

 private:
  static std::string read(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  Pool& pool_;
  SlotAllocator& slots_;
  std::mutex mu_;
  std::vector<wire::FileOp> ops_;
};

std::string key(int i) {
  return "key" + std::to_string(i);
}
std::string value(int i, int round) {
  return std::string(1000, static_cast<char>('a' + (i + round) % 26));
}

}  // namespace

TEST(Mirror, EditsArriveAfterTheirFilesAndTheSecondaryFollows) {
  TempDir d;
  const std::string head_dir = d.path() + "/head", mirror = d.path() + "/mirror";
  auto replica_pool = Pool::format(d.path() + "/pool", slot_size_for(kSstSize), 64);
  auto head_pool = Pool::open(d.path() + "/pool", slot_size_for(kSstSize));
  SlotAllocator slots(64, 1);
  Recorder rec(*head_pool, slots);

  // Head: a primary on the mirror file system; writes, overwrites, compaction.
  auto head_fs = std::make_shared<MirrorFileSystem>(rocksdb::FileSystem::Default(), head_dir, rec, rec);
  auto head_env = rocksdb::NewCompositeEnv(head_fs);
  StoreOptions hso;
  hso.sst_size = kSstSize;
  hso.env = head_env.get();
  hso.with_meta = false;
  auto head = Store::open_primary(head_dir, hso);
  wire::FileOp open;  // as RubbleHead does once DB::Open returned
  open.set_type(wire::FileOp::OPEN_DB);
  rec.file_op(open);
  for (int round = 0; round < 2; ++round)
    for (int i = 0; i < 1500; ++i) ASSERT_TRUE(head->put(key(i), value(i, round)).ok());
  ASSERT_TRUE(head->del(key(7)).ok());
  ASSERT_TRUE(head->flush_and_compact().ok());
  ASSERT_TRUE(head->put("after", "compaction").ok());
  ASSERT_GT(head->stats().compactions, 0u);

  // Replica: apply in order; catch up after each MANIFEST or CURRENT change.
  SlotTable table;
  MirrorApplier applier(mirror, table, replica_pool->header());
  applier.reset();
  auto fs = std::make_shared<SlotFileSystem>(rocksdb::FileSystem::Default(), mirror, *replica_pool, table);
  auto env = rocksdb::NewCompositeEnv(fs);
  StoreOptions rso;
  rso.sst_size = kSstSize;
  rso.env = env.get();
  rso.with_meta = false;
  const auto ops = rec.take();
  std::unique_ptr<Store> secondary;
  int checks = 0;
  for (const auto& op : ops) {
    ASSERT_EQ(applier.apply(op), "") << op.ShortDebugString().substr(0, 200);
    if (op.type() == wire::FileOp::OPEN_DB) secondary = Store::open_secondary(mirror, d.path() + "/sec", rso);
    const bool edit = op.name().rfind("MANIFEST-", 0) == 0 || op.type() == wire::FileOp::RENAME;
    if (!secondary || !edit) continue;
    const auto ticket = table.begin_catch_up();
    ASSERT_TRUE(secondary->catch_up().ok());
    table.end_catch_up(ticket);
    ++checks;
    for (const auto& name : secondary->live_files())
      ASSERT_TRUE(table.find(name)) << name << " is in a version but not in a slot";
  }
  ASSERT_TRUE(secondary);
  EXPECT_GT(checks, 0);
  ASSERT_EQ(applier.flush(), "");              // WAL appends are gathered until another operation
  const auto ticket = table.begin_catch_up();  // the WAL written after the last edit
  ASSERT_TRUE(secondary->catch_up().ok());
  table.end_catch_up(ticket);

  for (int i = 0; i < 1500; ++i) {
    std::string got;
    const auto st = secondary->get(key(i), &got);
    if (i == 7) {
      EXPECT_TRUE(st.IsNotFound());
      continue;
    }
    ASSERT_TRUE(st.ok()) << key(i) << ": " << st.ToString();
    ASSERT_EQ(got, value(i, 1)) << key(i);
  }
  std::string got;
  ASSERT_TRUE(secondary->get("after", &got).ok()) << "the WAL tail is replayed too";
  const auto s = secondary->stats();
  EXPECT_EQ(s.compactions + s.flushes + s.compact_bytes + s.flush_bytes, 0u) << "the secondary never writes SSTs";
  EXPECT_EQ(s.live_sst_files, head->stats().live_sst_files);

  // Slots of the SSTs the compaction replaced come back.
  for (auto slot : table.take_released()) ASSERT_EQ(slots.release(0, slot), "");
  EXPECT_EQ(slots.in_use(), s.live_sst_files);
  EXPECT_EQ(table.in_use(), s.live_sst_files);
}

// The rubble tail: its secondary sees the head's MANIFEST and SSTs but no
// WAL, and its overlay drops a WAL's writes only once the WAL was deleted
// and a later catch-up completed.  At every point (catch-ups lag behind at
// random) overlay-then-secondary must answer exactly what the head holds,
// i.e. the newest write of each key in the WAL stream so far.
TEST(Mirror, TheTailReadsRecentWritesFromItsOverlayAndTheRestFromSlots) {
  TempDir d;
  const std::string head_dir = d.path() + "/head", mirror = d.path() + "/mirror";
  auto replica_pool = Pool::format(d.path() + "/pool", slot_size_for(kSstSize), 64);
  auto head_pool = Pool::open(d.path() + "/pool", slot_size_for(kSstSize));
  SlotAllocator slots(64, 1);
  Recorder rec(*head_pool, slots);

  auto head_fs = std::make_shared<MirrorFileSystem>(rocksdb::FileSystem::Default(), head_dir, rec, rec);
  auto head_env = rocksdb::NewCompositeEnv(head_fs);
  StoreOptions hso;
  hso.sst_size = kSstSize;
  hso.env = head_env.get();
  auto head = Store::open_primary(head_dir, hso);  // with the chain metadata family, as a rubble head
  wire::FileOp open;
  open.set_type(wire::FileOp::OPEN_DB);
  rec.file_op(open);
  constexpr int kKeys = 1200;
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < kKeys; ++i) {
      if ((i + round) % 11 == 0) {
        ASSERT_TRUE(head->del(key(i)).ok());
      } else {
        ASSERT_TRUE(head->put(key(i), value(i, round)).ok());
      }
    }
    if (round == 1) {
      ASSERT_TRUE(head->flush_and_compact().ok());
    }
  }
  ASSERT_TRUE(head->put("after", "only in the WAL").ok());

  SlotTable table;
  MirrorApplier applier(mirror, table, replica_pool->header());
  applier.reset();
  auto fs = std::make_shared<SlotFileSystem>(rocksdb::FileSystem::Default(), mirror, *replica_pool, table,
                                             /*hide_wal=*/true);
  auto env = rocksdb::NewCompositeEnv(fs);
  StoreOptions rso;
  rso.sst_size = kSstSize;
  rso.env = env.get();
  rso.with_meta = false;
  WalOverlay tail, truth;  // truth: every write, never trimmed
  std::unique_ptr<Store> secondary;
  std::mt19937 rng(7);
  bool due = false;
  int catchups = 0, wal_deletions = 0, checks = 0;
  std::uint64_t seq = 0;
  const auto check_reads = [&] {
    ++checks;
    for (int i = 0; i <= kKeys; ++i) {
      const std::string k = i == kKeys ? "after" : key(i);
      const auto want = truth.overlay().get(k);
      std::optional<std::string> got;
      if (const auto recent = tail.overlay().get(k)) {
        got = *recent;
      } else {
        std::string v;
        const auto st = secondary->get(k, &v);
        ASSERT_TRUE(st.ok() || st.IsNotFound()) << st.ToString();
        if (st.ok()) got = v;
      }
      ASSERT_EQ(got, want ? *want : std::nullopt) << k << " after entry " << seq;
    }
  };
  for (const auto& op : rec.take()) {
    ++seq;
    ASSERT_EQ(applier.apply(op), "") << op.ShortDebugString().substr(0, 200);
    ASSERT_EQ(tail.apply(op, seq), "");
    ASSERT_EQ(truth.apply(op, seq), "");
    if (op.type() == wire::FileOp::OPEN_DB) secondary = Store::open_secondary(mirror, d.path() + "/sec", rso);
    wal_deletions += op.type() == wire::FileOp::DELETE && wal_number(op.name()).has_value();
    due = due || op.type() == wire::FileOp::DELETE || op.type() == wire::FileOp::RENAME ||
          op.name().rfind("MANIFEST-", 0) == 0;
    if (!secondary || !due || rng() % 3 != 0) continue;  // catch-ups lag behind
    const auto ticket = table.begin_catch_up();
    ASSERT_TRUE(secondary->catch_up().ok());
    table.end_catch_up(ticket);
    tail.caught_up(seq);
    due = false;
    ++catchups;
    check_reads();
  }
  ASSERT_TRUE(secondary);
  const auto ticket = table.begin_catch_up();
  ASSERT_TRUE(secondary->catch_up().ok());
  table.end_catch_up(ticket);
  tail.caught_up(seq);
  check_reads();
  EXPECT_GT(wal_deletions, 2);
  EXPECT_GT(catchups, 2);
  EXPECT_LT(tail.overlay().size(), truth.overlay().size() / 2) << "the overlay keeps only the unflushed writes";
  std::string v;
  EXPECT_TRUE(secondary->get("after", &v).IsNotFound()) << "the secondary must not replay the WAL";
  ASSERT_TRUE(tail.overlay().get("after"));
  EXPECT_EQ(secondary->stats().flushes + secondary->stats().compactions, 0u);
}
