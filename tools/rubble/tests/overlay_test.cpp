// SPDX-License-Identifier: GPL-2.0
// Description: the rubble tail decodes the head's WAL from mirrored appends,
// however they are split and across 32 KiB blocks, into an overlay of the
// newest value per key; trimming keeps what later entries wrote.
#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <random>

#include "filenames.h"
#include "mirror_fs.h"
#include "overlay.h"
#include "store.h"
#include "testutil.h"

using namespace fastpath::rubble;
using fastpath::rubble::test::TempDir;

namespace {

class Appends : public FileOpSink, public SstShipper {
 public:
  void file_op(wire::FileOp op) override {
    std::lock_guard lock(mu_);
    if (op.name().size() > 4 && op.name().substr(op.name().size() - 4) == ".log") ops.push_back(std::move(op));
  }
  std::string ship(const std::string&, const std::string&, std::uint32_t*, std::uint64_t*) override {
    return "no SST expected in this test";
  }
  std::mutex mu_;
  std::vector<wire::FileOp> ops;
};

// Writes through a real RocksDB and returns its WAL operations and the
// final state of every key (nullopt = deleted).
std::map<std::string, std::optional<std::string>> write_wal(const std::string& dir, Appends& sink) {
  auto fs = std::make_shared<MirrorFileSystem>(rocksdb::FileSystem::Default(), dir, sink, sink);
  auto env = rocksdb::NewCompositeEnv(fs);
  StoreOptions so;
  so.sst_size = 64 << 20;  // no flush: everything stays in the WAL
  so.env = env.get();
  so.with_meta = false;
  auto store = Store::open_primary(dir, so);
  std::map<std::string, std::optional<std::string>> want;
  for (int i = 0; i < 400; ++i) {
    const std::string k = "k" + std::to_string(i % 150);
    if (i % 9 == 0) {
      EXPECT_TRUE(store->del(k).ok());
      want[k] = std::nullopt;
    } else {
      const std::string v(i % 50 == 0 ? 100000 : 100 + i, static_cast<char>('a' + i % 26));  // some span blocks
      EXPECT_TRUE(store->put(k, v).ok());
      want[k] = v;
    }
  }
  return want;
}

void replay(const std::vector<wire::FileOp>& ops, Overlay& overlay, std::size_t max_chunk) {
  std::map<std::string, WalParser> parsers;
  std::mt19937 rng(5);
  std::uint64_t seq = 0;
  for (const auto& op : ops) {
    auto& p = parsers[op.name()];
    ++seq;
    const auto on_record = [&](std::string_view rec) { return overlay.apply(rec, seq); };
    if (op.type() == wire::FileOp::TRUNCATE) {
      ASSERT_EQ(p.truncate(op.size()), "");
      continue;
    }
    ASSERT_EQ(op.type(), wire::FileOp::APPEND);
    for (std::size_t off = 0; off < op.data().size();) {
      const std::size_t n = std::min<std::size_t>(op.data().size() - off, 1 + rng() % max_chunk);
      ASSERT_EQ(p.feed(op.offset() + off, std::string_view(op.data()).substr(off, n), on_record), "");
      off += n;
    }
  }
}

void expect_state(const Overlay& overlay, const std::map<std::string, std::optional<std::string>>& want) {
  for (const auto& [k, v] : want) {
    const auto got = overlay.get(k);
    ASSERT_TRUE(got) << k;
    EXPECT_EQ(*got, v) << k;
  }
  EXPECT_EQ(overlay.size(), want.size());
}

}  // namespace

TEST(Overlay, DecodesTheHeadsWal) {
  TempDir d;
  Appends sink;
  const auto want = write_wal(d.path() + "/db", sink);
  Overlay whole;
  replay(sink.ops, whole, std::size_t{1} << 30);
  expect_state(whole, want);
}

TEST(Overlay, AppendsSplitAnywhere) {
  TempDir d;
  Appends sink;
  const auto want = write_wal(d.path() + "/db", sink);
  Overlay pieces;
  replay(sink.ops, pieces, 100);
  expect_state(pieces, want);
}

TEST(Overlay, TrimKeepsNewerWrites) {
  Overlay o;
  rocksdb::WriteBatch a, b;
  a.Put("x", "1");
  a.Put("y", "1");
  b.Put("x", "2");
  ASSERT_EQ(o.apply(a.Data(), 5), "");
  ASSERT_EQ(o.apply(b.Data(), 7), "");
  o.trim(5);
  EXPECT_FALSE(o.get("y")) << "written by entry 5 only: in the secondary now";
  ASSERT_TRUE(o.get("x"));
  EXPECT_EQ(**o.get("x"), "2") << "rewritten by entry 7";
  o.trim(7);
  EXPECT_EQ(o.size(), 0u);
}

TEST(Overlay, MalformedLogsAreRefused) {
  WalParser p;
  const auto none = [](std::string_view) { return std::string(); };
  EXPECT_NE(p.feed(10, "x", none).find("but the log ends at 0"), std::string::npos);
  std::string bad(7, '\0');
  bad[4] = 1;  // length 1
  bad[6] = 9;  // an unknown record type
  bad += 'z';
  EXPECT_NE(p.feed(0, bad, none).find("not supported"), std::string::npos);
  Overlay o;
  EXPECT_NE(o.apply("short", 1), "");
}

TEST(Overlay, ScanMergesNewerValuesOverTheSecondary) {
  TempDir d;
  StoreOptions so;
  so.with_meta = false;
  auto store = Store::open_primary(d.path() + "/db", so);
  for (const char* k : {"a", "c", "e", "g"}) ASSERT_TRUE(store->put(k, std::string("old-") + k).ok());
  Overlay o;
  rocksdb::WriteBatch b;
  b.Put("b", "new-b");  // only in the overlay
  b.Put("c", "new-c");  // newer than the secondary's
  b.Delete("e");        // deleted since
  ASSERT_EQ(o.apply(b.Data(), 1), "");
  Overlay::KeyValues got;
  ASSERT_EQ(o.scan(
                "b", 10, [&] { return store->iterator(); }, &got),
            "");
  const Overlay::KeyValues want{{"b", "new-b"}, {"c", "new-c"}, {"g", "old-g"}};
  EXPECT_EQ(got, want);
  got.clear();
  ASSERT_EQ(o.scan(
                "", 2, [&] { return store->iterator(); }, &got),
            "");
  EXPECT_EQ(got, (Overlay::KeyValues{{"a", "old-a"}, {"b", "new-b"}}));
}
