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

wire::FileOp make_op(wire::FileOp::Type type, const std::string& name) {
  wire::FileOp op;
  op.set_type(type);
  op.set_name(name);
  return op;
}

// Mirrored (non-SST) files of dir, in file-number order (shorter names
// first: RocksDB pads numbers to six digits at least), so that a tail's
// overlay sees older WALs before newer ones.
std::vector<std::string> mirrored_files(const std::string& dir, bool with_ssts) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename();
    const auto kind = classify(name);
    if (entry.is_regular_file() && kind != FileKind::kLocal && (with_ssts || kind != FileKind::kSst))
      names.push_back(name);
  }
  std::sort(names.begin(), names.end(), [](const std::string& a, const std::string& b) {
    return a.size() != b.size() ? a.size() < b.size() : a < b;
  });
  return names;
}

}  // namespace

RubbleHead::RubbleHead(const NodeOptions& options, const Identity& identity)
    : slot_size_(slot_size_for(options.sst_size)),
      slot_wait_(options.ack_timeout),
      chain_id_(identity.chain_id),
      find_pools_(options.find_pools) {
  std::uint32_t slots = 0;
  for (const auto& path : options.replica_pools) {
    auto pool = open_pool(path, identity.chain_id);
    const auto& h = pool->header();
    if (slots && h.slot_count != slots)
      throw std::runtime_error("pool " + path + " has " + std::to_string(h.slot_count) + " slots but " +
                               targets_.front().pool->path() + " has " + std::to_string(slots) +
                               ": give every replica the same --pool-slots");
    slots = h.slot_count;
    const std::string id = h.pool_id;
    targets_.push_back(Target{std::move(pool), id, static_cast<std::uint32_t>(targets_.size())});
  }
  slots_ = std::make_unique<SlotAllocator>(slots, static_cast<std::uint32_t>(targets_.size()));
}

RubbleHead::RubbleHead(const NodeOptions& options, const Identity& identity, const std::vector<ReplicaPool>& pools,
                       std::map<std::string, SlotFile> live)
    : slot_size_(slot_size_for(options.sst_size)),
      slot_wait_(options.ack_timeout),
      chain_id_(identity.chain_id),
      find_pools_(options.find_pools),
      live_(std::move(live)) {
  if (pools.empty()) throw std::runtime_error("a rubble head needs at least one replica to write SSTs into");
  std::uint32_t slots = 0;
  std::vector<std::vector<std::uint32_t>> held;
  for (const auto& p : pools) {
    auto pool = open_pool(p.path, identity.chain_id);
    const auto& h = pool->header();
    if (h.pool_id != p.pool_id)
      throw std::runtime_error("pool " + p.path + " has id " + h.pool_id + " but the chain's view says " + p.pool_id +
                               ": the view does not match the pools on this machine");
    if (slots && h.slot_count != slots)
      throw std::runtime_error("pool " + p.path + " has " + std::to_string(h.slot_count) + " slots, not " +
                               std::to_string(slots) + " like the others");
    slots = h.slot_count;
    targets_.push_back(Target{std::move(pool), p.pool_id, static_cast<std::uint32_t>(targets_.size())});
    held.push_back(p.held);
  }
  slots_ = std::make_unique<SlotAllocator>(slots, held);
}

RubbleHead::~RubbleHead() {
  if (slots_) slots_->close();
}

std::unique_ptr<Pool> RubbleHead::open_pool(const std::string& path, const std::string& chain_id) const {
  auto pool = Pool::open(path, slot_size_);
  const auto& h = pool->header();
  if (!h.chain_id.empty() && h.chain_id != chain_id)
    throw std::runtime_error("pool " + path + " holds slots of chain '" + h.chain_id + "', not of chain '" + chain_id +
                             "': use the pools of this chain's replicas");
  return pool;
}

void RubbleHead::check_hello_reply(const wire::ChainAck& reply) const {
  if (static_cast<std::size_t>(reply.members_size()) != targets_.size())
    throw std::runtime_error("the chain has " + std::to_string(reply.members_size()) + " replicas but the head has " +
                             std::to_string(targets_.size()) + " --replica-pool paths: give one per replica");
  for (std::size_t i = 0; i < targets_.size(); ++i)
    if (reply.members(static_cast<int>(i)).pool_id() != targets_[i].id)
      throw std::runtime_error("--replica-pool " + targets_[i].pool->path() + " is not the pool of replica " +
                               std::to_string(i + 1) + " in the chain: list the pools in chain order");
}

void RubbleHead::submit(wire::FileOp op) {
  wire::Entry e;
  *e.mutable_file() = std::move(op);
  sequencer_->submit(std::move(e));
}

void RubbleHead::file_op(wire::FileOp op) {
  if (!op.for_pool().empty() || (op.type() != wire::FileOp::INSTALL_SST && op.type() != wire::FileOp::DELETE)) {
    submit(std::move(op));
    return;
  }
  std::lock_guard lock(live_mu_);  // held across submit: reconcile sees the install with its sequence number
  if (op.type() == wire::FileOp::DELETE) {
    live_.erase(op.name());
    submit(std::move(op));
    return;
  }
  live_[op.name()] = SlotFile{op.slot(), op.size()};
  const std::uint32_t slot = op.slot();
  wire::Entry e;
  *e.mutable_file() = std::move(op);
  if (const auto seq = sequencer_->submit(std::move(e)); seq) recent_installs_[seq] = slot;
}

void RubbleHead::on_acked(std::uint64_t seq) {
  std::lock_guard lock(live_mu_);
  recent_installs_.erase(recent_installs_.begin(), recent_installs_.upper_bound(seq));
}

std::uint32_t RubbleHead::reconcile(const std::vector<ReplicaPool>& reports) {
  std::lock_guard ship(ship_mu_);  // no shipment in progress: every install so far has its sequence number
  std::lock_guard lock(live_mu_);
  std::uint32_t gave_back = 0;
  for (const auto& r : reports)
    for (const auto& t : targets_) {
      if (t.id != r.pool_id) continue;
      auto held = r.held;
      for (auto it = recent_installs_.upper_bound(r.applied); it != recent_installs_.end(); ++it)
        held.push_back(it->second);
      // A slot behind an SST this head still has is never given back: the
      // replica holds it or will install it.  recent_installs_ misses the
      // installs a previous head sent before this node took over, and a
      // report can be older than them.
      for (const auto& [name, file] : live_) held.push_back(file.slot);
      gave_back += slots_->keep_only(t.bit, held);
    }
  return gave_back;
}

std::string RubbleHead::write_all(std::uint32_t slot, const AlignedBuffer& data) {
  for (auto& t : targets_)
    if (auto e = t.pool->write_slot(slot, data.data(), data.size()); !e.empty()) return e;
  return "";
}

// ship_mu_ held (ship_and_install).
std::string RubbleHead::ship(const std::string& name, const std::string& path, std::uint32_t* slot,
                             std::uint64_t* size) {
  if (fenced_) return "this node is no longer the head: it writes into no replica's pool";
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
  bytes_shipped_ += data.size() * targets_.size();
  return "";
}

// One step for snapshots: a new replica either gets the file in its pool
// and in its snapshot, or through this INSTALL_SST, never neither.
std::string RubbleHead::ship_and_install(const std::string& name, const std::string& path, FileOpSink& sink) {
  std::lock_guard lock(ship_mu_);
  std::uint32_t slot = 0;
  std::uint64_t size = 0;
  if (auto e = ship(name, path, &slot, &size); !e.empty()) return e;
  auto op = make_op(wire::FileOp::INSTALL_SST, name);
  op.set_slot(slot);
  op.set_size(size);
  std::shared_lock ops(op_mu_);
  sink.file_op(std::move(op));
  return "";
}

void RubbleHead::mirror_file(const std::string& name, const std::string& path) {
  if (classify(name) == FileKind::kSst) {
    if (auto e = ship_and_install(name, path, *this); !e.empty()) throw std::runtime_error(e);
    return;
  }
  AlignedBuffer data;
  std::uint64_t size = 0;
  if (auto e = read_file(path, std::uint64_t{1} << 40, &data, &size); !e.empty()) throw std::runtime_error(e);
  auto op = make_op(wire::FileOp::TRUNCATE, name);
  file_op(op);
  for (std::uint64_t off = 0; off < size; off += kChunk) {
    op.set_type(wire::FileOp::APPEND);
    op.set_offset(off);
    op.set_data(data.data() + off, std::min<std::uint64_t>(kChunk, size - off));
    file_op(op);
  }
}

void RubbleHead::mirror_existing(const std::string& dir) {
  for (const auto& name : mirrored_files(dir, true)) mirror_file(name, dir + "/" + name);
}

std::unique_ptr<Store> RubbleHead::open_store(const std::string& dir, StoreOptions so, Sequencer& sequencer,
                                              bool takeover) {
  sequencer_ = &sequencer;
  dir_ = dir;
  if (!takeover) mirror_existing(dir);
  fs_ = std::make_shared<MirrorFileSystem>(rocksdb::FileSystem::Default(), dir, *this, *this);
  env_ = rocksdb::NewCompositeEnv(fs_);
  so.env = env_.get();
  so.with_meta = false;
  auto store = Store::open_primary(dir, so);
  if (!takeover) file_op(make_op(wire::FileOp::OPEN_DB, ""));
  return store;
}

void RubbleHead::on_releases(const wire::ChainAck& ack) {
  std::lock_guard lock(ship_mu_);
  for (const auto& r : ack.releases()) {
    const Target* t = nullptr;
    for (const auto& x : targets_)
      if (x.id == r.pool_id()) t = &x;
    if (!t) continue;  // a replica that left the chain
    for (auto slot : r.slots())
      if (auto e = slots_->release(t->bit, slot); !e.empty())
        std::cerr << "rubble-node: head: ignoring a bad slot release: " << e << std::endl;
  }
}

void RubbleHead::fence() {
  std::lock_guard lock(ship_mu_);
  fenced_ = true;
  targets_.clear();
  slots_->close();
}

void RubbleHead::on_view(const wire::View& view) {
  std::lock_guard lock(ship_mu_);
  std::erase_if(targets_, [&](const Target& t) {
    for (const auto& m : view.members())
      if (m.pool_id() == t.id) return false;
    slots_->remove_replica(t.bit);
    return true;
  });
}

std::string RubbleHead::add_replica(const wire::Member& member, wire::AddReplicaReply* reply) {
  std::lock_guard lock(ship_mu_);
  if (fenced_) return "this node is no longer the head";
  if (!sequencer_) return "the head's database is not open yet";
  for (const auto& t : targets_)
    if (t.id == member.pool_id()) return "the pool of " + member.addr() + " already receives SSTs";
  // This machine's path to the new replica's pool (over NVMe-oF across machines).
  std::string why;
  const std::string path = locate_pool(member.pool_id(), find_pools_, member.pool(), &why);
  if (path.empty()) return why;
  std::unique_ptr<Pool> pool;
  try {
    pool = open_pool(path, chain_id_);
  } catch (const std::exception& e) {
    return e.what();
  }
  if (pool->header().slot_count != slots_->slots())
    return "pool " + path + " has " + std::to_string(pool->header().slot_count) + " slots but the chain's " +
           "pools have " + std::to_string(slots_->slots()) + ": start the new node with the same --pool-slots";
  const auto bit = slots_->add_replica();
  if (!bit) return "the chain already has 64 replicas";
  std::unique_lock ops(op_mu_);  // no file changes from here to the end of the snapshot
  std::map<std::string, SlotFile> live;
  {
    std::lock_guard l(live_mu_);
    live = live_;
  }
  for (const auto& [name, f] : live) {
    AlignedBuffer data;
    std::uint64_t size = 0;
    std::string e = read_file(dir_ + "/" + name, slot_size_, &data, &size);
    if (e.empty()) e = pool->write_slot(f.slot, data.data(), data.size());
    if (e.empty()) e = slots_->hold(*bit, f.slot);
    if (!e.empty()) {
      slots_->remove_replica(*bit);
      return "copying " + name + " into the new replica's pool: " + e;
    }
    reply->set_ssts(reply->ssts() + 1);
    reply->set_bytes(reply->bytes() + data.size());
    bytes_shipped_ += data.size();
  }
  emit_snapshot(member.pool_id());
  for (const auto& [name, f] : live) {
    auto op = make_op(wire::FileOp::INSTALL_SST, name);
    op.set_slot(f.slot);
    op.set_size(f.size);
    op.set_for_pool(member.pool_id());
    submit(std::move(op));
  }
  auto open = make_op(wire::FileOp::OPEN_DB, "");
  open.set_for_pool(member.pool_id());
  submit(std::move(open));
  targets_.push_back(Target{std::move(pool), member.pool_id(), *bit});
  return "";
}

// The head's mirrored files as they are now, addressed to one replica.
// op_mu_ held exclusively.
void RubbleHead::emit_snapshot(const std::string& pool_id) {
  for (const auto& name : mirrored_files(dir_, false)) {
    AlignedBuffer data;
    std::uint64_t size = 0;
    if (auto e = read_file(dir_ + "/" + name, std::uint64_t{1} << 40, &data, &size); !e.empty()) {
      std::cerr << "rubble-node: head: snapshot: " << e << std::endl;  // deleted meanwhile: the replica skips it
      continue;
    }
    auto op = make_op(wire::FileOp::TRUNCATE, name);
    op.set_for_pool(pool_id);
    submit(op);
    for (std::uint64_t off = 0; off < size; off += kChunk) {
      op.set_type(wire::FileOp::APPEND);
      op.set_offset(off);
      op.set_data(data.data() + off, std::min<std::uint64_t>(kChunk, size - off));
      submit(op);
    }
  }
}

void RubbleHead::fill_stats(wire::StatsReply* r) const {
  r->set_slots_total(slots_->slots());
  r->set_slots_in_use(slots_->in_use());
  r->set_ssts_shipped(ssts_shipped_.load());
  r->set_bytes_shipped(bytes_shipped_.load());
}

}  // namespace fastpath::rubble
