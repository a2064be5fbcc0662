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

#include "filenames.h"
#include "mirror_fs.h"
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
