// SPDX-License-Identifier: GPL-2.0
#include "rubble_replica.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace fastpath::rubble {

namespace {

// A catch-up waits at least this many times as long as the last one took.
constexpr int kCatchUpSpacing = 20;

std::string sub_dir(const std::string& db, const char* name) {
  return (std::filesystem::absolute(db) / name).string();
}

// Operations after which the secondary has something to install (a version
// edit), or a catch-up frees something (a deleted SST's slot, a deleted
// WAL's overlay entries).  WAL appends are not among them.
bool needs_catch_up(const wire::FileOp& op) {
  switch (op.type()) {
    case wire::FileOp::DELETE:
    case wire::FileOp::RENAME:
      return true;
    case wire::FileOp::APPEND:
    case wire::FileOp::TRUNCATE:
      return op.name().rfind("MANIFEST-", 0) == 0;
    default:
      return false;
  }
}

}  // namespace

RubbleReplica::RubbleReplica(const NodeOptions& options)
    : options_(options), mirror_dir_(sub_dir(options.db, "mirror")), secondary_dir_(sub_dir(options.db, "secondary")) {
  pool_ = Pool::format(options.pool, slot_size_for(options.sst_size), options.pool_slots);
  applier_ = std::make_unique<MirrorApplier>(mirror_dir_, table_, pool_->header());
  applier_->reset();
  tail_ = options.role == Role::kTail;  // a tail from the start decodes the WAL from the first entry
  if (options.warm_cache) warmer_ = std::make_unique<SlotWarmer>(*pool_, table_);
  fs_ = std::make_shared<SlotFileSystem>(rocksdb::FileSystem::Default(), mirror_dir_, *pool_, table_,
                                         /*hide_wal=*/true, [this](const std::string& name) {
                                           if (warmer_) warmer_->opened(name);
                                         });
  env_ = rocksdb::NewCompositeEnv(fs_);
}

RubbleReplica::~RubbleReplica() {
  close_secondary();
}

void RubbleReplica::close_secondary() {
  std::unique_lock lock(db_mu_);
  store_.reset();
  secondary_open_ = false;
  if (warmer_) warmer_->cancel();  // nothing opens SSTs now; the slot table may be reset next
}

// Without a secondary nothing reads the slots: a deleted SST's slot goes
// back at once (the rule of slot_fs.h with no catch-up to wait for).
void RubbleReplica::settle_slots() {
  table_.end_catch_up(table_.begin_catch_up());
}

std::string RubbleReplica::reset(const std::string& chain_id) {
  std::lock_guard lock(apply_mu_);
  return reset_locked(chain_id);
}

std::string RubbleReplica::begin_join(const std::string& chain_id) {
  std::lock_guard lock(apply_mu_);
  if (auto e = reset_locked(chain_id); !e.empty()) return e;
  awaiting_snapshot_ = true;
  return "";
}

std::string RubbleReplica::reset_locked(const std::string& chain_id) {
  const auto& h = pool_->header();
  if (!h.chain_id.empty() && h.chain_id != chain_id)
    return "pool " + pool_->path() + " holds slots of chain '" + h.chain_id + "', not of chain '" + chain_id +
           "': give this replica a pool of its own chain (or delete the pool file to have it re-created)";
  close_secondary();
  applier_->reset();
  table_.reset();
  wal_.clear();
  db_open_ = false;
  applied_ = 0;
  std::error_code ec;
  std::filesystem::remove_all(secondary_dir_, ec);
  dirty_ = false;
  awaiting_snapshot_ = false;
  try {
    if (h.chain_id.empty()) pool_->set_chain_id(chain_id);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

std::string RubbleReplica::open_secondary() {
  StoreOptions so;
  so.sst_size = options_.sst_size;
  so.env = env_.get();
  so.with_meta = false;
  std::unique_lock lock(db_mu_);
  try {
    store_ = Store::open_secondary(mirror_dir_, secondary_dir_, so);
  } catch (const std::exception& e) {
    return e.what();
  }
  secondary_open_ = true;
  if (warmer_) warmer_->enable();
  return "";
}

std::string RubbleReplica::apply(const wire::ChainBatch& batch) {
  std::lock_guard lock(apply_mu_);
  const bool tail = tail_.load();
  for (const auto& e : batch.entries()) {
    if (!e.has_file()) return "protocol error: entry " + std::to_string(e.seq()) + " is not a file operation";
    const auto& op = e.file();
    // A snapshot addressed to another replica, or the stream a joining
    // replica's snapshot already covers: passed over.
    const bool mine = op.for_pool().empty() ? !awaiting_snapshot_.load() : op.for_pool() == pool_id();
    if (!mine) {
      applied_ = e.seq();
      continue;
    }
    if (auto err = applier_->apply(op); !err.empty()) return err;
    if (tail)
      if (auto err = wal_.apply(op, e.seq()); !err.empty()) return "the head's WAL: " + err;
    applied_ = e.seq();
    if (needs_catch_up(op)) dirty_ = true;
    if (op.type() == wire::FileOp::DELETE && !secondary_open_) settle_slots();
    if (op.type() == wire::FileOp::OPEN_DB) {
      db_open_ = true;
      if (tail)
        if (auto err = open_secondary(); !err.empty()) return err;
      awaiting_snapshot_ = false;
    }
  }
  return "";
}

std::string RubbleReplica::become_tail() {
  {
    std::lock_guard lock(apply_mu_);
    if (awaiting_snapshot_) return "this replica has not received the head's snapshot yet";
    if (auto e = applier_->flush(); !e.empty()) return e;  // the WALs below are read from the mirror
    wal_.clear();
    std::vector<std::filesystem::path> wals;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(mirror_dir_, ec))
      if (entry.path().extension() == ".log") wals.push_back(entry.path());
    std::sort(wals.begin(), wals.end(), [](const auto& a, const auto& b) {
      const auto x = a.filename().string(), y = b.filename().string();
      return x.size() != y.size() ? x.size() < y.size() : x < y;
    });
    for (const auto& path : wals) {
      std::ifstream in(path, std::ios::binary);
      const std::string data((std::istreambuf_iterator<char>(in)), {});
      if (auto e = wal_.load(path.filename().string(), data); !e.empty())
        return "the head's WAL " + path.string() + ": " + e;
    }
    tail_ = true;
    if (db_open_ && !secondary_open_)
      if (auto e = open_secondary(); !e.empty()) return e;
  }
  // The overlay holds what the secondary may lack; one catch-up installs the
  // head's latest version (reads are correct either way).
  return catch_up();
}

void RubbleReplica::become_middle() {
  std::lock_guard lock(apply_mu_);
  tail_ = false;
  wal_.clear();
  close_secondary();
  settle_slots();
}

std::map<std::string, SlotFile> RubbleReplica::materialize(const std::string& dir) {
  std::lock_guard lock(apply_mu_);
  close_secondary();
  if (auto e = applier_->flush(); !e.empty()) throw std::runtime_error(e);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  std::filesystem::create_directories(dir);
  for (const auto& entry : std::filesystem::directory_iterator(mirror_dir_))
    if (entry.is_regular_file()) std::filesystem::copy_file(entry.path(), dir + "/" + entry.path().filename().string());
  std::map<std::string, SlotFile> live;
  std::vector<char> buf;
  for (const auto& [name, f] : table_.files()) {
    buf.resize(f.size);
    const long got = pool_->read_slot(f.slot, 0, f.size, buf.data());
    if (got != static_cast<long>(f.size))
      throw std::runtime_error("cannot read " + name + " from slot " + std::to_string(f.slot) + " of " + pool_->path() +
                               ": " + (got < 0 ? std::strerror(static_cast<int>(-got)) : "short read"));
    std::ofstream out(dir + "/" + name, std::ios::binary | std::ios::trunc);
    out.write(buf.data(), static_cast<std::streamsize>(buf.size()));
    out.close();
    if (!out) throw std::runtime_error("cannot write " + dir + "/" + name);
    live[name] = f;
  }
  return live;
}

bool RubbleReplica::catch_up_due() const {
  if (!dirty_.load() || !secondary_open_.load()) return false;
  const auto since = std::chrono::steady_clock::now().time_since_epoch().count() - last_catch_up_.load();
  return since >= std::max<std::chrono::steady_clock::rep>(
                      std::chrono::steady_clock::duration(options_.catch_up_interval).count(), catch_up_gap_.load());
}

std::string RubbleReplica::catch_up() {
  std::shared_lock db(db_mu_);
  if (!store_) return "";
  std::lock_guard lock(catch_up_mu_);
  dirty_ = false;
  last_catch_up_ = std::chrono::steady_clock::now().time_since_epoch().count();
  const std::uint64_t covered = applied_.load();  // applied before the catch-up begins
  const std::uint64_t ticket = table_.begin_catch_up();
  const auto start = std::chrono::steady_clock::now();
  const auto st = store_->catch_up();
  const auto took = std::chrono::steady_clock::now() - start;
  catchup_ns_ += static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(took).count());
  catch_up_gap_ = kCatchUpSpacing * took.count();
  catchups_++;
  if (!st.ok()) return "the secondary RocksDB could not install the head's changes: " + st.ToString();
  table_.end_catch_up(ticket);
  wal_.caught_up(covered);
  return "";
}

grpc::Status RubbleReplica::get(const std::string& key, wire::GetReply* reply) {
  if (warmer_) warmer_->read_served();
  if (const auto recent = wal_.overlay().get(key)) {
    if (*recent) {
      reply->set_found(true);
      reply->set_value(**recent);
    }
    return grpc::Status::OK;
  }
  // Get runs on gRPC's callback thread: it does not wait while the
  // secondary opens or closes (the client retries elsewhere or later).
  std::shared_lock lock(db_mu_, std::try_to_lock);
  if (!lock.owns_lock())
    return {grpc::StatusCode::UNAVAILABLE, "this replica is opening or closing its database: retry"};
  if (!store_)
    return {grpc::StatusCode::UNAVAILABLE, "this replica has not received the head's database yet: wait for the head"};
  std::string value;
  const auto st = store_->get(key, &value);
  if (st.IsNotFound()) return grpc::Status::OK;
  if (!st.ok()) return {grpc::StatusCode::INTERNAL, "RocksDB: " + st.ToString()};
  reply->set_found(true);
  reply->set_value(std::move(value));
  return grpc::Status::OK;
}

grpc::Status RubbleReplica::scan(const std::string& start, std::size_t limit, wire::ScanReply* reply) {
  if (warmer_) warmer_->read_served();
  std::shared_lock lock(db_mu_);
  if (!store_)
    return {grpc::StatusCode::UNAVAILABLE, "this replica has not received the head's database yet: wait for the head"};
  Overlay::KeyValues items;
  const auto err = wal_.overlay().scan(
      start, limit, [this] { return store_->iterator(); }, &items);
  if (!err.empty()) return {grpc::StatusCode::INTERNAL, err};
  for (auto& [k, v] : items) {
    auto* item = reply->add_items();
    item->set_key(std::move(k));
    item->set_value(std::move(v));
  }
  return grpc::Status::OK;
}

void RubbleReplica::fill_stats(wire::StatsReply* r) {
  r->set_slots_total(pool_->header().slot_count);
  r->set_slots_in_use(table_.in_use());
  r->set_catchups(catchups_.load());
  r->set_catchup_seconds(static_cast<double>(catchup_ns_.load()) / 1e9);
  if (warmer_) r->set_sst_bytes_warmed(warmer_->bytes_warmed());
  r->set_overlay_keys(wal_.overlay().size());
  std::shared_lock lock(db_mu_);
  if (!store_) {  // a middle: the head's live SSTs as its slots hold them
    const auto files = table_.files();
    r->set_live_sst_files(files.size());
    for (const auto& [name, f] : files) r->set_live_sst_bytes(r->live_sst_bytes() + f.size);
    return;
  }
  const auto s = store_->stats();
  r->set_flushes(s.flushes);
  r->set_compactions(s.compactions);
  r->set_flush_bytes(s.flush_bytes);
  r->set_compact_bytes(s.compact_bytes);
  r->set_wal_bytes(s.wal_bytes);
  r->set_live_sst_files(s.live_sst_files);
  r->set_live_sst_bytes(s.live_sst_bytes);
}

}  // namespace fastpath::rubble
