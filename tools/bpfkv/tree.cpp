// SPDX-License-Identifier: GPL-2.0
#include "tree.h"

#include <algorithm>
#include <cstring>

namespace fastpath::bpfkv {

namespace {

constexpr std::size_t kSlot = BPFKV_XRP_DATA_SIZE;  // bytes per read buffer
constexpr std::size_t kScanSlots = BPFKV_MAX_FANOUT + 1;

}  // namespace

struct TreeBackend::Walk {
  std::uint64_t key = 0;
  std::uint32_t level = 0;  // == layers: want is the value
  std::uint64_t want = 0;
  Bounds bounds;
  bool done = false;
  bool found = false;
};

struct TreeBackend::ScanEnd {
  std::uint64_t next;
  bool done;
};

TreeBackend::TreeBackend(const DbFile& db, std::unique_ptr<BlockReader> reader, std::string name, std::size_t max_batch)
    : db_(db),
      g_(db.geo()),
      reader_(std::move(reader)),
      name_(std::move(name)),
      max_batch_(std::max<std::size_t>(1, max_batch)),
      buf_(std::max(max_batch_, kScanSlots) * kSlot) {}

std::byte* TreeBackend::slot(std::size_t i) {
  return buf_.data() + i * kSlot;
}

void TreeBackend::get(std::span<const std::uint64_t> keys, std::span<std::uint8_t> found, std::span<std::byte> values) {
  for (std::size_t i = 0; i < keys.size(); i += max_batch_) {
    const std::size_t n = std::min(max_batch_, keys.size() - i);
    get_batch(keys.subspan(i, n), found.subspan(i, n), values.subspan(i * g_.value_size, n * g_.value_size));
  }
}

// Walks the lookups of a batch level by level: one set of reads per level.
void TreeBackend::get_batch(std::span<const std::uint64_t> keys, std::span<std::uint8_t> found,
                            std::span<std::byte> values) {
  std::vector<Walk> walks(keys.size());
  for (std::size_t i = 0; i < keys.size(); ++i) walks[i].key = keys[i];
  std::vector<ReadReq> reqs;
  std::vector<std::size_t> who;
  for (;;) {
    reqs.clear();
    who.clear();
    for (std::size_t i = 0; i < walks.size(); ++i) {
      if (walks[i].done) continue;
      const std::uint32_t len = walks[i].level < g_.layers ? g_.node_size : g_.value_size;
      const Extent e = covering(walks[i].want, len, db_.io_align());
      reqs.push_back({e.off, e.len, slot(i)});
      who.push_back(i);
    }
    if (reqs.empty()) break;
    reader_->read(reqs, stats_);
    for (std::size_t k = 0; k < reqs.size(); ++k)
      step(walks[who[k]], reqs[k].buf, reqs[k].off, values.subspan(who[k] * g_.value_size, g_.value_size));
  }
  for (std::size_t i = 0; i < walks.size(); ++i) found[i] = walks[i].found;
}

// One block of one lookup: follow the key down a level, or take the value.
void TreeBackend::step(Walk& w, const std::byte* block, std::uint64_t block_off, std::span<std::byte> value_out) {
  const std::byte* p = block + (w.want - block_off);
  if (w.level == g_.layers) {
    const std::span<const std::byte> value(p, g_.value_size);
    if (value_key(value) != w.key)
      throw_corrupt(db_.path(), BPFKV_E_VALUE, "value", w.want,
                    "holds key " + std::to_string(value_key(value)) + ", expected " + std::to_string(w.key));
    std::memcpy(value_out.data(), p, g_.value_size);
    w.found = w.done = true;
    return;
  }
  const Node n = Node::check(g_, {p, g_.node_size}, w.want, w.level, w.bounds, db_.path());
  std::uint32_t slot = n.count_le(w.key);
  if (slot == 0 || (n.leaf() && n.key(slot - 1) != w.key)) {
    w.done = true;  // not in the tree
    return;
  }
  --slot;
  if (!n.leaf()) w.bounds = n.child_bounds(slot, w.bounds);
  w.want = n.ptr(slot);
  w.level = n.leaf() ? g_.layers : w.level + 1;
}

Node TreeBackend::read_node(std::uint64_t off, std::uint32_t level, Bounds bounds) {
  const Extent e = covering(off, g_.node_size, db_.io_align());
  const ReadReq req{e.off, e.len, slot(0)};
  reader_->read({&req, 1}, stats_);
  return Node::check(g_, {slot(0) + (off - e.off), g_.node_size}, off, level, bounds, db_.path());
}

// Descends to the leaf that holds `from` (or where it would be), then walks
// the leaves through their next pointers.  visit(key, value) is called for
// every key in [from, end) in order (value empty unless with_values) and
// returns false to stop after that key.
template <class Visit>
TreeBackend::ScanEnd TreeBackend::scan(std::uint64_t from, std::uint64_t end, bool with_values, Visit&& visit) {
  if (from >= end) return {from, true};
  std::uint64_t off = 0;
  Bounds b;
  for (std::uint32_t level = 0; level + 1 < g_.layers; ++level) {
    const Node n = read_node(off, level, b);
    const std::uint32_t slot = std::max<std::uint32_t>(n.count_le(from), 1) - 1;
    b = n.child_bounds(slot, b);
    off = n.ptr(slot);
  }
  for (;;) {
    const Node leaf = read_node(off, g_.layers - 1, b);
    const std::uint32_t first = leaf.count_lt(from), stop = leaf.count_lt(end);
    std::vector<std::span<const std::byte>> values(stop > first ? stop - first : 0);
    if (with_values) read_values(leaf, first, stop, values);
    // The scan is over when this leaf holds a key >= end, or is the last.
    const bool final_leaf = stop < leaf.nkeys() || leaf.next() == BPFKV_NO_NEXT;
    for (std::uint32_t i = first; i < stop; ++i) {
      from = leaf.key(i) + 1;
      if (!visit(leaf.key(i), values[i - first])) return {from, final_leaf && i + 1 == stop};
    }
    if (final_leaf) return {from, true};
    const std::uint64_t last = leaf.key(leaf.nkeys() - 1);
    if (last == ~0ULL) throw_corrupt(db_.path(), BPFKV_E_NEXT, "leaf", off, "a leaf after the largest key");
    b = {last + 1, ~0ULL};
    off = leaf.next();
  }
}

// Reads the values of leaf entries [first, stop), each block once, all at once.
void TreeBackend::read_values(const Node& leaf, std::uint32_t first, std::uint32_t stop,
                              std::vector<std::span<const std::byte>>& out) {
  std::vector<ReadReq> reqs;
  std::vector<std::size_t> req_of(stop - first);
  for (std::uint32_t i = first; i < stop; ++i) {
    const Extent e = covering(leaf.ptr(i), g_.value_size, db_.io_align());
    if (reqs.empty() || reqs.back().off != e.off) reqs.push_back({e.off, e.len, slot(1 + reqs.size())});
    req_of[i - first] = reqs.size() - 1;
  }
  reader_->read(reqs, stats_);
  for (std::uint32_t i = first; i < stop; ++i) {
    const ReadReq& r = reqs[req_of[i - first]];
    const std::span<const std::byte> value(r.buf + (leaf.ptr(i) - r.off), g_.value_size);
    if (value_key(value) != leaf.key(i))
      throw_corrupt(db_.path(), BPFKV_E_VALUE, "value", leaf.ptr(i),
                    "holds key " + std::to_string(value_key(value)) + ", expected " + std::to_string(leaf.key(i)));
    out[i - first] = value;
  }
}

std::size_t TreeBackend::range(RangeCursor& cursor, std::size_t max, std::vector<std::byte>& out) {
  if (cursor.done || max == 0) return 0;
  std::size_t n = 0;
  const ScanEnd e = scan(cursor.next, cursor.end, true, [&](std::uint64_t, std::span<const std::byte> v) {
    out.insert(out.end(), v.begin(), v.end());
    return ++n < max;
  });
  cursor.next = e.next;
  cursor.done = e.done;
  return n;
}

AggResult TreeBackend::aggregate(AggOp op, std::uint64_t lo, std::uint64_t hi) {
  AggResult r;
  scan(lo, hi, op != AggOp::Count, [&](std::uint64_t, std::span<const std::byte> v) {
    if (op == AggOp::Count)
      ++r.count;
    else
      r.add(value_agg(v));
    return true;
  });
  return r;
}

}  // namespace fastpath::bpfkv
