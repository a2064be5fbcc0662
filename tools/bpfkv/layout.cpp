// SPDX-License-Identifier: GPL-2.0
#include "layout.h"

#include <cstring>
#include <limits>

namespace fastpath::bpfkv {

namespace {

constexpr std::uint64_t kMaxU64 = std::numeric_limits<std::uint64_t>::max();

std::uint64_t round_up(std::uint64_t v, std::uint64_t a) {
  return (v + a - 1) / a * a;
}

// a * b, or throws when it does not fit the format's 64-bit offsets.
std::uint64_t checked_mul(std::uint64_t a, std::uint64_t b, const char* what) {
  if (a != 0 && b > kMaxU64 / a) throw std::invalid_argument(std::string(what) + " does not fit in 64 bits");
  return a * b;
}

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

std::uint64_t load64(const std::byte* p) {
  std::uint64_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

void store64(std::byte* p, std::uint64_t v) {
  std::memcpy(p, &v, sizeof(v));
}

void check_params(const Params& p) {
  if (p.node_size != 512 && p.node_size != 4096)
    throw std::invalid_argument("node size must be 512 or 4096, not " + std::to_string(p.node_size));
  const std::uint32_t cap = BPFKV_NODE_CAP(p.node_size);
  if (p.fanout != 0 && (p.fanout < BPFKV_MIN_FANOUT || p.fanout > cap))
    throw std::invalid_argument("fanout must be " + std::to_string(BPFKV_MIN_FANOUT) + ".." + std::to_string(cap) +
                                " for " + std::to_string(p.node_size) + "-byte nodes, not " + std::to_string(p.fanout) +
                                (p.node_size == 512 ? " (--node-size 4096 allows up to 255)" : ""));
  if (p.layers < 1 || p.layers > BPFKV_MAX_LAYERS)
    throw std::invalid_argument("layers must be 1.." + std::to_string(BPFKV_MAX_LAYERS) + ", not " +
                                std::to_string(p.layers));
  if (p.value_size < BPFKV_MIN_VALUE_SIZE || p.value_size > BPFKV_MAX_VALUE_SIZE || p.value_size % 8 != 0)
    throw std::invalid_argument("value size must be a multiple of 8 in " + std::to_string(BPFKV_MIN_VALUE_SIZE) + ".." +
                                std::to_string(BPFKV_MAX_VALUE_SIZE) + ", not " + std::to_string(p.value_size));
  if (p.stride == 0) throw std::invalid_argument("key stride must be at least 1");
}

}  // namespace

Geometry Geometry::make(const Params& p) {
  check_params(p);
  Geometry g;
  g.node_size = p.node_size;
  g.fanout = p.fanout ? p.fanout : BPFKV_NODE_CAP(p.node_size);
  g.layers = p.layers;
  g.value_size = p.value_size;
  g.values_per_block = BPFKV_VALUE_BLOCK / p.value_size;
  g.stride = p.stride;
  std::uint64_t nodes = 1;  // nodes in the current level
  for (std::uint32_t d = 0; d < g.layers; ++d) {
    const std::uint64_t bytes = checked_mul(nodes, g.node_size, "index size");
    if (g.level_off[d] > kMaxU64 - bytes) throw std::invalid_argument("index size does not fit in 64 bits");
    g.level_off[d + 1] = g.level_off[d] + bytes;
    nodes = checked_mul(nodes, g.fanout, "number of keys");
  }
  g.nkeys = nodes;
  (void)checked_mul(g.nkeys - 1, g.stride, "largest key");
  g.index_size = g.level_off[g.layers];
  g.log_off = round_up(g.index_size, BPFKV_ALIGN);
  const std::uint64_t blocks = (g.nkeys + g.values_per_block - 1) / g.values_per_block;
  g.log_size = round_up(checked_mul(blocks, BPFKV_VALUE_BLOCK, "value log size"), BPFKV_ALIGN);
  if (g.log_off + g.log_size > (1ULL << 56)) throw std::invalid_argument("database would exceed 64 PiB");
  return g;
}

std::uint64_t Geometry::level_nodes(std::uint32_t level) const {
  return (level_off[level + 1] - level_off[level]) / node_size;
}

std::uint64_t Geometry::value_off(std::uint64_t i) const {
  return log_off + i / values_per_block * BPFKV_VALUE_BLOCK + i % values_per_block * value_size;
}

bool Geometry::value_ptr_ok(std::uint64_t ptr) const {
  if (ptr < log_off || ptr >= log_end()) return false;
  const std::uint64_t rel = ptr - log_off;
  const std::uint64_t in_block = rel % BPFKV_VALUE_BLOCK;
  if (in_block % value_size != 0 || in_block / value_size >= values_per_block) return false;
  return rel / BPFKV_VALUE_BLOCK * values_per_block + in_block / value_size < nkeys;
}

std::uint64_t super_checksum(const bpfkv_super& s) {
  bpfkv_super copy = s;
  copy.checksum = 0;
  const auto* p = reinterpret_cast<const unsigned char*>(&copy);
  std::uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a 64
  for (std::size_t i = 0; i < sizeof(copy); ++i) h = (h ^ p[i]) * 0x100000001b3ULL;
  return h;
}

bpfkv_super make_super(const Geometry& g, std::uint64_t file_size) {
  bpfkv_super s{};
  s.magic = BPFKV_SUPER_MAGIC;
  s.version = BPFKV_VERSION;
  s.node_size = g.node_size;
  s.fanout = g.fanout;
  s.layers = g.layers;
  s.value_size = g.value_size;
  s.values_per_block = g.values_per_block;
  s.nkeys = g.nkeys;
  s.key_stride = g.stride;
  s.index_off = 0;
  s.index_size = g.index_size;
  s.log_off = g.log_off;
  s.log_size = g.log_size;
  s.file_size = file_size;
  s.checksum = super_checksum(s);
  return s;
}

namespace {

void expect_field(const std::string& path, const char* name, std::uint64_t stored, std::uint64_t derived) {
  if (stored != derived)
    throw Error(path + ": corrupt superblock: " + name + " is " + std::to_string(stored) + ", the geometry gives " +
                std::to_string(derived));
}

}  // namespace

Geometry check_super(const bpfkv_super& s, std::uint64_t file_size, const std::string& path) {
  if (s.magic != BPFKV_SUPER_MAGIC)
    throw Error(path + ": not a bpfkv database: no superblock in its last " + std::to_string(BPFKV_SUPER_SIZE) +
                " bytes (another kind of file, or a truncated database)");
  if (s.version != BPFKV_VERSION)
    throw Error(path + ": bpfkv format version " + std::to_string(s.version) + "; this bpfkv reads version " +
                std::to_string(BPFKV_VERSION) + " (recreate it with bpfkv create)");
  if (s.checksum != super_checksum(s)) throw Error(path + ": corrupt superblock: checksum mismatch");
  Geometry g;
  try {
    g = Geometry::make({s.layers, s.fanout, s.node_size, s.value_size, s.key_stride});
  } catch (const std::invalid_argument& e) {
    throw Error(path + ": corrupt superblock: " + e.what());
  }
  expect_field(path, "fanout", s.fanout, g.fanout);
  expect_field(path, "key count", s.nkeys, g.nkeys);
  expect_field(path, "values per block", s.values_per_block, g.values_per_block);
  expect_field(path, "index offset", s.index_off, 0);
  expect_field(path, "index size", s.index_size, g.index_size);
  expect_field(path, "log offset", s.log_off, g.log_off);
  expect_field(path, "log size", s.log_size, g.log_size);
  if (s.file_size != file_size)
    throw Error(path + ": size is " + std::to_string(file_size) + " bytes but the superblock says " +
                std::to_string(s.file_size) + " (truncated or extended)");
  if (g.min_file_size() > file_size)
    throw Error(path + ": corrupt superblock: the database needs " + std::to_string(g.min_file_size()) +
                " bytes, the file has " + std::to_string(file_size));
  return g;
}

std::uint64_t agg_field(std::uint64_t key) {
  return splitmix64(key ^ 0x6270666b76616767ULL) >> 32;
}

void fill_value(std::uint64_t key, std::span<std::byte> out) {
  const std::size_t words = out.size() / 8;
  for (std::size_t w = 0; w < words; ++w) {
    std::uint64_t v = splitmix64(key * 0x100000001b3ULL + w);
    if (w == BPFKV_VALUE_KEY_WORD) v = key;
    if (w == BPFKV_VALUE_AGG_WORD) v = agg_field(key);
    store64(out.data() + 8 * w, v);
  }
}

bool value_matches(std::uint64_t key, std::span<const std::byte> value) {
  std::array<std::byte, BPFKV_MAX_VALUE_SIZE> want;
  if (value.size() > want.size() || value.size() % 8 != 0) return false;
  fill_value(key, std::span(want).first(value.size()));
  return std::memcmp(want.data(), value.data(), value.size()) == 0;
}

std::uint64_t value_key(std::span<const std::byte> value) {
  return load64(value.data() + 8 * BPFKV_VALUE_KEY_WORD);
}

std::uint64_t value_agg(std::span<const std::byte> value) {
  return load64(value.data() + 8 * BPFKV_VALUE_AGG_WORD);
}

const char* status_text(std::uint32_t status) {
  switch (status) {
    case BPFKV_OK:
      return "no error";
    case BPFKV_E_PARAMS:
      return "invalid request parameters";
    case BPFKV_E_BLOCK:
      return "the block read does not hold the wanted offset";
    case BPFKV_E_MAGIC:
      return "bad node magic";
    case BPFKV_E_TYPE:
      return "wrong node type for its level";
    case BPFKV_E_NKEYS:
      return "key count out of range";
    case BPFKV_E_ORDER:
      return "keys out of order in a node";
    case BPFKV_E_BOUNDS:
      return "keys outside the range of the parent node";
    case BPFKV_E_CHILD:
      return "child pointer out of range";
    case BPFKV_E_NEXT:
      return "next-leaf pointer out of range";
    case BPFKV_E_VPTR:
      return "value pointer out of range";
    case BPFKV_E_VALUE:
      return "value does not hold the key that points to it";
    default:
      return "unknown error";
  }
}

void throw_corrupt(const std::string& path, std::uint32_t status, const char* what, std::uint64_t off,
                   const std::string& detail) {
  throw Error(path + ": corrupt database: " + status_text(status) + " (" + what + " at offset " + std::to_string(off) +
              ")" + (detail.empty() ? "" : ": " + detail));
}

std::uint64_t Node::word(std::size_t off) const {
  return load64(bytes_.data() + off);
}

std::uint64_t Node::key(std::uint32_t i) const {
  return word(BPFKV_NODE_KEYS(node_size_) + 8 * std::size_t{i});
}

std::uint64_t Node::ptr(std::uint32_t i) const {
  return word(BPFKV_NODE_PTRS(node_size_) + 8 * std::size_t{i});
}

std::uint32_t Node::count_le(std::uint64_t k) const {
  std::uint32_t lo = 0, hi = nkeys_;
  while (lo < hi) {
    const std::uint32_t mid = (lo + hi) / 2;
    if (key(mid) <= k)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

Bounds Node::child_bounds(std::uint32_t slot, Bounds mine) const {
  Bounds b{key(slot), mine.hi};
  if (slot + 1 < nkeys_) b.hi = key(slot + 1) - 1;
  return b;
}

namespace {

void check_keys(const Node& n, std::uint64_t off, Bounds bounds, const std::string& path) {
  for (std::uint32_t i = 1; i < n.nkeys(); ++i)
    if (n.key(i) <= n.key(i - 1))
      throw_corrupt(
          path, BPFKV_E_ORDER, "node", off,
          "key " + std::to_string(i) + " is " + std::to_string(n.key(i)) + ", after " + std::to_string(n.key(i - 1)));
  if (n.key(0) < bounds.lo || n.key(n.nkeys() - 1) > bounds.hi)
    throw_corrupt(path, BPFKV_E_BOUNDS, "node", off,
                  "keys " + std::to_string(n.key(0)) + ".." + std::to_string(n.key(n.nkeys() - 1)) + " not in " +
                      std::to_string(bounds.lo) + ".." + std::to_string(bounds.hi));
}

void check_ptrs(const Geometry& g, const Node& n, std::uint64_t off, std::uint32_t level, const std::string& path) {
  for (std::uint32_t i = 0; i < n.nkeys(); ++i) {
    const std::uint64_t p = n.ptr(i);
    if (n.leaf()) {
      if (!g.value_ptr_ok(p))
        throw_corrupt(path, BPFKV_E_VPTR, "leaf", off,
                      "entry " + std::to_string(i) + " points at " + std::to_string(p));
    } else if (p < g.level_off[level + 1] || p >= g.level_off[level + 2] || p % g.node_size != 0) {
      throw_corrupt(path, BPFKV_E_CHILD, "node", off, "child " + std::to_string(i) + " points at " + std::to_string(p));
    }
  }
  if (!n.leaf() || n.next() == BPFKV_NO_NEXT) return;
  const std::uint64_t next = n.next();
  if (next <= off || next >= g.level_off[g.layers] || next % g.node_size != 0)
    throw_corrupt(path, BPFKV_E_NEXT, "leaf", off, "points at " + std::to_string(next));
}

}  // namespace

Node Node::check(const Geometry& g, std::span<const std::byte> bytes, std::uint64_t off, std::uint32_t level,
                 Bounds bounds, const std::string& path) {
  if (bytes.size() < g.node_size) throw_corrupt(path, BPFKV_E_BLOCK, "node", off, "short read");
  Node n(bytes.first(g.node_size), g.node_size);
  const std::uint64_t hdr = n.word(0);
  if (static_cast<std::uint32_t>(hdr) != BPFKV_NODE_MAGIC) throw_corrupt(path, BPFKV_E_MAGIC, "node", off);
  const std::uint32_t type = (hdr >> 32) & 0xffff;
  n.leaf_ = level + 1 == g.layers;
  if (type != (n.leaf_ ? BPFKV_NODE_LEAF : BPFKV_NODE_INNER))
    throw_corrupt(path, BPFKV_E_TYPE, "node", off,
                  "type " + std::to_string(type) + " at level " + std::to_string(level));
  n.nkeys_ = static_cast<std::uint32_t>(hdr >> 48);
  if (n.nkeys_ == 0 || n.nkeys_ > g.fanout)
    throw_corrupt(path, BPFKV_E_NKEYS, "node", off,
                  std::to_string(n.nkeys_) + " keys, fanout " + std::to_string(g.fanout));
  n.next_ = n.word(8);
  check_keys(n, off, bounds, path);
  check_ptrs(g, n, off, level, path);
  return n;
}

void encode_node(std::span<std::byte> out, std::uint32_t node_size, bool leaf, std::uint64_t next,
                 std::span<const std::uint64_t> keys, std::span<const std::uint64_t> ptrs) {
  std::memset(out.data(), 0, node_size);
  const std::uint64_t type = leaf ? BPFKV_NODE_LEAF : BPFKV_NODE_INNER;
  const std::uint64_t hdr = BPFKV_NODE_MAGIC | type << 32 | std::uint64_t{keys.size()} << 48;
  store64(out.data(), hdr);
  store64(out.data() + 8, next);
  for (std::size_t i = 0; i < keys.size(); ++i) {
    store64(out.data() + BPFKV_NODE_KEYS(node_size) + 8 * i, keys[i]);
    store64(out.data() + BPFKV_NODE_PTRS(node_size) + 8 * i, ptrs[i]);
  }
}

}  // namespace fastpath::bpfkv
