// SPDX-License-Identifier: GPL-2.0
#include "rubble_head.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <stdexcept>

#include "filenames.h"

namespace fastpath::rubble {

namespace {

constexpr std::size_t kChunk = 1 << 20;

// Reads the whole file at path into buf (sized up to a block multiple).
std::string read_file(const std::string& path, std::uint64_t max_size, AlignedBuffer* buf, std::uint64_t* size) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return "cannot open " + path + ": " + std::strerror(errno);
  const off_t end = ::lseek(fd.get(), 0, SEEK_END);
  if (end < 0) return "cannot size " + path + ": " + std::strerror(errno);
  *size = static_cast<std::uint64_t>(end);
  if (*size > max_size)
    return path + " has " + std::to_string(*size) + " bytes, more than a slot (" + std::to_string(max_size) +
           "): SSTs must stay below --sst-size + 1 MiB";
  *buf = AlignedBuffer(round_up(std::max<std::uint64_t>(*size, 1), kBlock));
  std::uint64_t done = 0;
  while (done < *size) {
    const ssize_t n = ::pread(fd.get(), buf->data() + done, *size - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return "cannot read " + path + ": " + std::strerror(n < 0 ? errno : EIO);
    done += static_cast<std::uint64_t>(n);
  }
  return "";
}

}  // namespace

RubbleHead::RubbleHead(const NodeOptions& options, const Identity& identity, AckTracker&)
    : slot_size_(slot_size_for(options.sst_size)), slot_wait_(options.ack_timeout) {
  open_pools(options, identity);
}

RubbleHead::~RubbleHead() {
  if (slots_) slots_->close();
}

void RubbleHead::open_pools(const NodeOptions& options, const Identity& identity) {
  std::uint32_t slots = 0;
  for (const auto& path : options.replica_pools) {
    auto pool = Pool::open(path, slot_size_);
    const auto& h = pool->header();
    if (!h.chain_id.empty() && h.chain_id != identity.chain_id)
      throw std::runtime_error("pool " + path + " holds slots of chain '" + h.chain_id + "', not of chain '" +
                               identity.chain_id + "': use the pools of this chain's replicas");
    if (slots && h.slot_count != slots)
      throw std::runtime_error("pool " + path + " has " + std::to_string(h.slot_count) + " slots but " +
                               pools_.front()->path() + " has " + std::to_string(slots) +
                               ": give every replica the same --pool-slots");
    slots = h.slot_count;
    pools_.push_back(std::move(pool));
  }
  slots_ = std::make_unique<SlotAllocator>(slots, static_cast<std::uint32_t>(pools_.size()));
}

void RubbleHead::check_hello_reply(const wire::ChainAck& reply) const {
  if (static_cast<std::size_t>(reply.pool_ids_size()) != pools_.size())
    throw std::runtime_error("the chain has " + std::to_string(reply.pool_ids_size()) + " replicas but the head has " +
                             std::to_string(pools_.size()) + " --replica-pool paths: give one per replica");
  for (std::size_t i = 0; i < pools_.size(); ++i)
    if (reply.pool_ids(static_cast<int>(i)) != pools_[i]->header().pool_id)
      throw std::runtime_error("--replica-pool " + pools_[i]->path() + " is not the pool of replica " +
                               std::to_string(i + 1) + " in the chain: list the pools in chain order");
}

void RubbleHead::file_op(wire::FileOp op) {
  wire::Entry e;
  *e.mutable_file() = std::move(op);
  sequencer_->submit(std::move(e));
}

std::string RubbleHead::write_all(std::uint32_t slot, const AlignedBuffer& data) {
  for (auto& pool : pools_)
    if (auto e = pool->write_slot(slot, data.data(), data.size()); !e.empty()) return e;
  return "";
}

std::string RubbleHead::ship(const std::string& name, const std::string& path, std::uint32_t* slot,
                             std::uint64_t* size) {
  AlignedBuffer data;
  if (auto e = read_file(path, slot_size_, &data, size); !e.empty()) return e;
  const auto s = slots_->allocate(std::chrono::steady_clock::now() + slot_wait_);
  if (!s)
    return "the slot pool is full: all " + std::to_string(slots_->slots()) +
           " slots hold SSTs a replica still uses (for " + name +
           "); give the replicas larger pools (--pool-slots) than the live SSTs plus one compaction";
  if (auto e = write_all(*s, data); !e.empty()) {
    slots_->abandon(*s);
    return e;
  }
  *slot = *s;
  ssts_shipped_++;
  bytes_shipped_ += data.size() * pools_.size();
  return "";
}

void RubbleHead::mirror_file(const std::string& name, const std::string& path) {
  if (classify(name) == FileKind::kSst) {
    std::uint32_t slot = 0;
    std::uint64_t size = 0;
    if (auto e = ship(name, path, &slot, &size); !e.empty()) throw std::runtime_error(e);
    wire::FileOp op;
    op.set_type(wire::FileOp::INSTALL_SST);
    op.set_name(name);
    op.set_slot(slot);
    op.set_size(size);
    file_op(std::move(op));
    return;
  }
  AlignedBuffer data;
  std::uint64_t size = 0;
  if (auto e = read_file(path, std::uint64_t{1} << 40, &data, &size); !e.empty()) throw std::runtime_error(e);
  wire::FileOp op;
  op.set_type(wire::FileOp::TRUNCATE);
  op.set_name(name);
  file_op(op);
  for (std::uint64_t off = 0; off < size; off += kChunk) {
    op.set_type(wire::FileOp::APPEND);
    op.set_offset(off);
    op.set_data(data.data() + off, std::min<std::uint64_t>(kChunk, size - off));
    file_op(op);
  }
}

// Sends every file dir already holds.  In file-number order (shorter names
// first: RocksDB pads numbers to six digits at least), so that the tail's
// overlay sees older WALs before newer ones.
void RubbleHead::mirror_existing(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename();
    if (entry.is_regular_file() && classify(name) != FileKind::kLocal) names.push_back(name);
  }
  std::sort(names.begin(), names.end(), [](const std::string& a, const std::string& b) {
    return a.size() != b.size() ? a.size() < b.size() : a < b;
  });
  for (const auto& name : names) mirror_file(name, dir + "/" + name);
}

std::unique_ptr<Store> RubbleHead::open_store(const std::string& dir, StoreOptions so, Sequencer& sequencer) {
  sequencer_ = &sequencer;
  mirror_existing(dir);
  fs_ = std::make_shared<MirrorFileSystem>(rocksdb::FileSystem::Default(), dir, *this, *this);
  env_ = rocksdb::NewCompositeEnv(fs_);
  so.env = env_.get();
  so.with_meta = false;
  auto store = Store::open_primary(dir, so);
  wire::FileOp open;
  open.set_type(wire::FileOp::OPEN_DB);
  file_op(std::move(open));
  return store;
}

void RubbleHead::on_releases(const wire::ChainAck& ack) {
  for (const auto& r : ack.releases())
    for (auto slot : r.slots())
      if (auto e = slots_->release(r.position() - 1, slot); !e.empty())
        std::cerr << "rubble-node: head: ignoring a bad slot release: " << e << std::endl;
}

void RubbleHead::fill_stats(wire::StatsReply* r) const {
  r->set_slots_total(slots_->slots());
  r->set_slots_in_use(slots_->in_use());
  r->set_ssts_shipped(ssts_shipped_.load());
  r->set_bytes_shipped(bytes_shipped_.load());
}

}  // namespace fastpath::rubble
