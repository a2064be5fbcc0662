// SPDX-License-Identifier: GPL-2.0
#include "overlay.h"

#include <rocksdb/iterator.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <charconv>
#include <mutex>

namespace fastpath::rubble {

namespace {

constexpr std::uint64_t kLogBlock = 32768;
constexpr std::size_t kHeader = 7;
enum RecordType : std::uint8_t { kZero = 0, kFull = 1, kFirst = 2, kMiddle = 3, kLast = 4 };

}  // namespace

std::string WalParser::truncate(std::uint64_t size) {
  if (size == 0) {
    *this = WalParser();
    return "";
  }
  if (size < end_) return "WAL truncated to " + std::to_string(size) + " bytes below what was written";
  return "";  // closing a log trims its preallocated tail: nothing we parsed
}

std::string WalParser::feed(std::uint64_t offset, std::string_view data, const RecordFn& on_record) {
  if (offset != end_) return "WAL append at " + std::to_string(offset) + " but the log ends at " + std::to_string(end_);
  end_ += data.size();
  pending_.append(data);
  return parse(on_record);
}

std::string WalParser::parse(const RecordFn& on_record) {
  std::size_t pos = 0;
  std::string err;
  while (err.empty()) {
    const std::uint64_t left_in_block = kLogBlock - (parsed_ + pos) % kLogBlock;
    if (left_in_block < kHeader) {  // zero trailer up to the next block
      if (pending_.size() - pos < left_in_block) break;
      pos += left_in_block;
      continue;
    }
    if (pending_.size() - pos < kHeader) break;
    const auto* h = reinterpret_cast<const unsigned char*>(pending_.data() + pos);
    const std::size_t len = h[4] | (std::size_t{h[5]} << 8);
    const std::uint8_t type = h[6];
    if (kHeader + len > left_in_block) return "malformed WAL record: longer than its block";
    if (pending_.size() - pos < kHeader + len) break;
    const std::string_view payload(pending_.data() + pos + kHeader, len);
    pos += kHeader + len;
    switch (type) {
      case kFull:
        err = on_record(payload);
        break;
      case kFirst:
        fragments_.assign(payload);
        in_record_ = true;
        break;
      case kMiddle:
      case kLast:
        if (!in_record_) return "malformed WAL: a record fragment without its first part";
        fragments_.append(payload);
        if (type == kLast) {
          in_record_ = false;
          err = on_record(fragments_);
        }
        break;
      case kZero:
        if (len == 0) break;
        [[fallthrough]];
      default:
        return "WAL record type " + std::to_string(type) +
               " is not supported (WAL recycling and compression must stay off)";
    }
  }
  pending_.erase(0, pos);
  parsed_ += pos;
  return err;
}

// Collects a WriteBatch's operations into the overlay.
class OverlayWriter : public rocksdb::WriteBatch::Handler {
 public:
  OverlayWriter(Overlay& o, std::uint64_t seq) : o_(o), seq_(seq) {}
  rocksdb::Status PutCF(std::uint32_t cf, const rocksdb::Slice& key, const rocksdb::Slice& value) override {
    if (cf != 0) return unsupported("column families");
    o_.set(key.ToString(), value.ToString(), seq_);
    return rocksdb::Status::OK();
  }
  rocksdb::Status DeleteCF(std::uint32_t cf, const rocksdb::Slice& key) override {
    if (cf != 0) return unsupported("column families");
    o_.set(key.ToString(), std::nullopt, seq_);
    return rocksdb::Status::OK();
  }
  rocksdb::Status SingleDeleteCF(std::uint32_t cf, const rocksdb::Slice& key) override { return DeleteCF(cf, key); }
  rocksdb::Status MergeCF(std::uint32_t, const rocksdb::Slice&, const rocksdb::Slice&) override {
    return unsupported("merge");
  }
  rocksdb::Status DeleteRangeCF(std::uint32_t, const rocksdb::Slice&, const rocksdb::Slice&) override {
    return unsupported("range deletion");
  }

 private:
  static rocksdb::Status unsupported(const char* what) {
    return rocksdb::Status::NotSupported(std::string("the rubble tail's overlay does not support ") + what);
  }
  Overlay& o_;
  std::uint64_t seq_;
};

std::string Overlay::apply(std::string_view batch_rep, std::uint64_t tag) {
  if (batch_rep.size() < 12) return "malformed WAL record: " + std::to_string(batch_rep.size()) + " bytes";
  rocksdb::WriteBatch batch{std::string(batch_rep)};
  OverlayWriter w(*this, tag);
  const auto st = batch.Iterate(&w);
  return st.ok() ? "" : "cannot decode a WAL record: " + st.ToString();
}

void Overlay::set(std::string key, std::optional<std::string> value, std::uint64_t tag) {
  std::unique_lock lock(mu_);
  order_.emplace_back(tag, key);
  map_[std::move(key)] = Value{std::move(value), tag};
}

std::optional<std::optional<std::string>> Overlay::get(const std::string& key) const {
  std::shared_lock lock(mu_);
  const auto it = map_.find(key);
  if (it == map_.end()) return std::nullopt;
  return it->second.value;
}

std::string Overlay::scan(const std::string& start, std::size_t limit,
                          const std::function<std::unique_ptr<rocksdb::Iterator>()>& make_iterator,
                          KeyValues* out) const {
  std::shared_lock lock(mu_);
  auto it = make_iterator();
  if (it) it->Seek(start);
  auto ov = map_.lower_bound(start);
  while (out->size() < limit) {
    const bool has_db = it && it->Valid();
    const bool has_ov = ov != map_.end();
    if (!has_db && !has_ov) break;
    const int cmp = !has_db ? 1 : !has_ov ? -1 : it->key().compare(rocksdb::Slice(ov->first));
    if (cmp < 0) {  // only in the secondary
      out->emplace_back(it->key().ToString(), it->value().ToString());
      it->Next();
      continue;
    }
    if (ov->second.value) out->emplace_back(ov->first, *ov->second.value);  // the overlay is newer
    if (cmp == 0) it->Next();
    ++ov;
  }
  if (it && !it->status().ok()) return "RocksDB: " + it->status().ToString();
  return "";
}

void Overlay::trim(std::uint64_t tag) {
  std::unique_lock lock(mu_);
  while (!order_.empty() && order_.front().first <= tag) {
    const auto it = map_.find(order_.front().second);
    if (it != map_.end() && it->second.tag <= tag) map_.erase(it);
    order_.pop_front();
  }
}

void Overlay::clear() {
  std::unique_lock lock(mu_);
  map_.clear();
  order_.clear();
}

std::size_t Overlay::size() const {
  std::shared_lock lock(mu_);
  return map_.size();
}

std::optional<std::uint64_t> wal_number(const std::string& name) {
  constexpr std::string_view kSuffix = ".log";
  if (name.size() <= kSuffix.size() || name.compare(name.size() - kSuffix.size(), kSuffix.size(), kSuffix) != 0)
    return std::nullopt;
  std::uint64_t n = 0;
  const char* end = name.data() + name.size() - kSuffix.size();
  const auto [ptr, ec] = std::from_chars(name.data(), end, n);
  if (ec != std::errc{} || ptr != end) return std::nullopt;
  return n;
}

std::string WalOverlay::apply(const wire::FileOp& op, std::uint64_t seq) {
  const auto number = wal_number(op.name());
  if (!number) return "";
  switch (op.type()) {
    case wire::FileOp::DELETE: {
      parsers_.erase(op.name());
      std::lock_guard lock(mu_);
      deleted_.emplace_back(seq, *number);
      return "";
    }
    case wire::FileOp::TRUNCATE:
      return parsers_[op.name()].truncate(op.size());
    case wire::FileOp::APPEND:
      return parsers_[op.name()].feed(op.offset(), op.data(),
                                      [&](std::string_view record) { return overlay_.apply(record, *number); });
    default:
      return "";
  }
}

std::string WalOverlay::load(const std::string& name, std::string_view data) {
  const auto number = wal_number(name);
  if (!number) return name + " is not a WAL file name";
  auto& parser = parsers_[name];
  return parser.feed(0, data, [&](std::string_view record) { return overlay_.apply(record, *number); });
}

void WalOverlay::caught_up(std::uint64_t seq) {
  std::uint64_t upto = 0;
  {
    std::lock_guard lock(mu_);
    while (!deleted_.empty() && deleted_.front().first <= seq) {
      upto = std::max(upto, deleted_.front().second);
      deleted_.pop_front();
    }
  }
  if (upto) overlay_.trim(upto);
}

bool WalOverlay::trim_pending() const {
  std::lock_guard lock(mu_);
  return !deleted_.empty();
}

void WalOverlay::clear() {
  overlay_.clear();
  parsers_.clear();
  std::lock_guard lock(mu_);
  deleted_.clear();
}

}  // namespace fastpath::rubble
