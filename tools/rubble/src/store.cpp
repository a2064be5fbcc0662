// SPDX-License-Identifier: GPL-2.0
#include "store.h"

#include <rocksdb/cache.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <stdexcept>

namespace fastpath::rubble {

namespace {

constexpr char kMetaFamily[] = "rubble";
constexpr char kAppliedKey[] = "applied_seq";

rocksdb::Slice slice(std::string_view s) {
  return {s.data(), s.size()};
}

std::string encode_seq(std::uint64_t seq) {
  return std::to_string(seq);
}

}  // namespace

rocksdb::Options Store::make_options(const StoreOptions& so, std::shared_ptr<CountingListener> listener) {
  rocksdb::Options o;
  o.create_if_missing = true;
  o.create_missing_column_families = true;
  o.write_buffer_size = so.sst_size;
  o.target_file_size_base = so.sst_size;
  o.max_bytes_for_level_base = 4 * so.sst_size;
  // Cut compaction outputs at the target size: a rubble slot holds at most
  // target + 1 MiB, and RocksDB 7.8 otherwise makes files of up to 2x target.
  o.level_compaction_dynamic_file_size = false;
  o.max_background_jobs = 2;
  o.recycle_log_file_num = 0;  // the rubble mirror relies on plain WAL files
  o.keep_log_file_num = 4;
  o.statistics = rocksdb::CreateDBStatistics();
  o.listeners.push_back(std::move(listener));
  if (so.env) o.env = so.env;
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(so.block_cache);
  // A Get then reads one data block instead of one per level: a rubble tail
  // reads SSTs it did not write, cold from its pool (the same in both modes).
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  return o;
}

std::unique_ptr<Store> Store::open_primary(const std::string& dir, const StoreOptions& so) {
  auto s = std::make_unique<Store>(Private{});
  s->listener_ = std::make_shared<CountingListener>();
  rocksdb::Options o = make_options(so, s->listener_);
  s->statistics_ = o.statistics;
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs{{rocksdb::kDefaultColumnFamilyName, o}};
  if (so.with_meta) cfs.emplace_back(kMetaFamily, o);
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  const auto st = rocksdb::DB::Open(o, dir, cfs, &handles, &db);
  if (!st.ok()) throw std::runtime_error("cannot open RocksDB in " + dir + ": " + st.ToString());
  s->db_.reset(db);
  s->memtable_bytes_ = so.sst_size;
  s->open_handles(std::move(handles));
  s->load_applied_seq();
  return s;
}

std::unique_ptr<Store> Store::open_secondary(const std::string& primary_dir, const std::string& secondary_dir,
                                             const StoreOptions& so) {
  auto s = std::make_unique<Store>(Private{});
  s->listener_ = std::make_shared<CountingListener>();
  rocksdb::Options o = make_options(so, s->listener_);
  s->statistics_ = o.statistics;
  // A secondary never flushes or compacts; keep every table open so that a
  // file stays readable while a version still uses it.
  o.max_open_files = -1;
  o.disable_auto_compactions = true;
  o.verify_sst_unique_id_in_manifest = false;  // only stat files when tailing the MANIFEST
  o.info_log_level = rocksdb::WARN_LEVEL;      // no LOG line per catch-up
  // RocksDB starts max_file_opening_threads - 1 threads each time it loads
  // the tables of a new version, i.e. on many catch-ups: open them inline.
  o.max_file_opening_threads = 1;
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs{{rocksdb::kDefaultColumnFamilyName, o}};
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  const auto st = rocksdb::DB::OpenAsSecondary(o, primary_dir, secondary_dir, cfs, &handles, &db);
  if (!st.ok()) throw std::runtime_error("cannot open the secondary RocksDB on " + primary_dir + ": " + st.ToString());
  s->db_.reset(db);
  s->open_handles(std::move(handles));
  return s;
}

void Store::open_handles(std::vector<rocksdb::ColumnFamilyHandle*> handles) {
  data_cf_ = Handle(handles.at(0), {db_.get()});
  if (handles.size() > 1) meta_cf_ = Handle(handles[1], {db_.get()});
}

void Store::load_applied_seq() {
  if (!meta_cf_) return;
  std::string v;
  if (db_->Get(rocksdb::ReadOptions(), meta_cf_.get(), kAppliedKey, &v).ok()) applied_seq_ = std::stoull(v);
}

Store::~Store() {
  data_cf_.reset();
  meta_cf_.reset();
  if (db_) db_->Close().PermitUncheckedError();
}

rocksdb::Status Store::get(std::string_view key, std::string* value) {
  return db_->Get(rocksdb::ReadOptions(), data_cf_.get(), slice(key), value);
}

std::unique_ptr<rocksdb::Iterator> Store::iterator() {
  return std::unique_ptr<rocksdb::Iterator>(db_->NewIterator(rocksdb::ReadOptions(), data_cf_.get()));
}

rocksdb::Status Store::scan(std::string_view start, std::size_t limit,
                            std::vector<std::pair<std::string, std::string>>* out) {
  auto it = iterator();
  for (it->Seek(slice(start)); it->Valid() && limit > 0; it->Next(), --limit)
    out->emplace_back(it->key().ToString(), it->value().ToString());
  return it->status();
}

std::string Store::snapshot(const std::function<bool(std::vector<std::pair<std::string, std::string>>&)>& emit,
                            std::size_t chunk_bytes, std::uint64_t* seq) {
  const rocksdb::Snapshot* snap = db_->GetSnapshot();
  struct Release {
    rocksdb::DB* db;
    const rocksdb::Snapshot* s;
    ~Release() { db->ReleaseSnapshot(s); }
  } release{db_.get(), snap};
  rocksdb::ReadOptions ro;
  ro.snapshot = snap;
  *seq = 0;
  if (meta_cf_) {
    std::string v;
    const auto st = db_->Get(ro, meta_cf_.get(), kAppliedKey, &v);
    if (st.ok())
      *seq = std::stoull(v);
    else if (!st.IsNotFound())
      return "RocksDB: " + st.ToString();
  }
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, data_cf_.get()));
  std::vector<std::pair<std::string, std::string>> chunk;
  std::size_t bytes = 0;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    chunk.emplace_back(it->key().ToString(), it->value().ToString());
    bytes += it->key().size() + it->value().size();
    if (bytes < chunk_bytes) continue;
    if (!emit(chunk)) return "the successor went away during the snapshot";
    chunk.clear();
    bytes = 0;
  }
  if (!it->status().ok()) return "RocksDB: " + it->status().ToString();
  if (!chunk.empty() && !emit(chunk)) return "the successor went away during the snapshot";
  return "";
}

rocksdb::Status Store::load(const std::vector<std::pair<std::string, std::string>>& kvs) {
  rocksdb::WriteBatch batch;
  for (const auto& [k, v] : kvs) batch.Put(data_cf_.get(), k, v);
  return db_->Write(rocksdb::WriteOptions(), &batch);
}

rocksdb::Status Store::set_applied(std::uint64_t seq) {
  if (!meta_cf_) return rocksdb::Status::NotSupported("no chain metadata in this database");
  auto st = db_->Put(rocksdb::WriteOptions(), meta_cf_.get(), kAppliedKey, encode_seq(seq));
  if (st.ok()) applied_seq_ = seq;
  return st;
}

rocksdb::Status Store::apply(const wire::ChainBatch& b) {
  const auto& entries = b.entries();
  if (entries.empty()) return rocksdb::Status::OK();
  rocksdb::WriteBatch batch;
  for (const auto& e : entries) {
    if (!e.has_kv()) return rocksdb::Status::InvalidArgument("entry " + std::to_string(e.seq()) + " is not a key op");
    const auto& kv = e.kv();
    if (kv.type() == wire::KvOp::DELETE)
      batch.Delete(data_cf_.get(), kv.key());
    else
      batch.Put(data_cf_.get(), kv.key(), kv.value());
  }
  const std::uint64_t last = entries.rbegin()->seq();
  if (meta_cf_) batch.Put(meta_cf_.get(), kAppliedKey, encode_seq(last));
  auto st = db_->Write(rocksdb::WriteOptions(), &batch);
  if (st.ok()) applied_seq_ = last;
  return st;
}

rocksdb::Status Store::put(std::string_view key, std::string_view value) {
  return db_->Put(rocksdb::WriteOptions(), data_cf_.get(), slice(key), slice(value));
}

rocksdb::Status Store::del(std::string_view key) {
  return db_->Delete(rocksdb::WriteOptions(), data_cf_.get(), slice(key));
}

rocksdb::Status Store::write(const std::vector<const wire::KvOp*>& ops) {
  rocksdb::WriteBatch batch;
  for (const auto* op : ops) {
    const auto st = op->type() == wire::KvOp::DELETE ? batch.Delete(data_cf_.get(), op->key())
                                                     : batch.Put(data_cf_.get(), op->key(), op->value());
    if (!st.ok()) return st;
  }
  return db_->Write(rocksdb::WriteOptions(), &batch);
}

rocksdb::Status Store::flush_and_compact() {
  auto st = db_->Flush(rocksdb::FlushOptions(), data_cf_.get());
  if (!st.ok()) return st;
  return db_->CompactRange(rocksdb::CompactRangeOptions(), data_cf_.get(), nullptr, nullptr);
}

rocksdb::Status Store::catch_up() {
  return db_->TryCatchUpWithPrimary();
}

std::vector<std::string> Store::live_files() const {
  std::vector<rocksdb::LiveFileMetaData> files;
  db_->GetLiveFilesMetaData(&files);
  std::vector<std::string> names;
  for (const auto& f : files) names.push_back(f.name.substr(f.name.rfind('/') + 1));
  return names;
}

void Store::wait_for_memtable_room(std::size_t bytes, std::chrono::milliseconds max) {
  const auto deadline = std::chrono::steady_clock::now() + max;
  for (;;) {
    std::uint64_t immutable = 0, active = 0;
    db_->GetIntProperty(data_cf_.get(), rocksdb::DB::Properties::kNumImmutableMemTable, &immutable);
    db_->GetIntProperty(data_cf_.get(), rocksdb::DB::Properties::kCurSizeActiveMemTable, &active);
    if (immutable == 0 || active + bytes < memtable_bytes_ / 2 || std::chrono::steady_clock::now() >= deadline) return;
    std::unique_lock lock(listener_->flush_mu);
    listener_->flushed.wait_for(lock, std::chrono::milliseconds(5));
  }
}

StoreStats Store::stats() const {
  StoreStats s;
  s.flushes = listener_->flushes.load();
  s.compactions = listener_->compactions.load();
  s.flush_bytes = statistics_->getTickerCount(rocksdb::FLUSH_WRITE_BYTES);
  s.compact_bytes = statistics_->getTickerCount(rocksdb::COMPACT_WRITE_BYTES);
  s.wal_bytes = statistics_->getTickerCount(rocksdb::WAL_FILE_BYTES);
  std::vector<rocksdb::LiveFileMetaData> files;
  db_->GetLiveFilesMetaData(&files);
  s.live_sst_files = files.size();
  for (const auto& f : files) s.live_sst_bytes += f.size;
  // Pending or running background work (a primary's; a secondary has none).
  using P = rocksdb::DB::Properties;
  for (const std::string& property :
       {P::kCompactionPending, P::kMemTableFlushPending, P::kNumRunningCompactions, P::kNumRunningFlushes}) {
    std::uint64_t v = 0;
    if (db_->GetIntProperty(data_cf_.get(), property, &v) && v > 0) s.background_work = true;
  }
  return s;
}

}  // namespace fastpath::rubble
