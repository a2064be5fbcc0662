// SPDX-License-Identifier: GPL-2.0
// BPF-KV on-disk layout in C++ terms: geometry of a database, the superblock,
// the deterministic values, and a checked view of one index node.  The format
// itself is defined in bpf/bpfkv.h, shared with the BPF programs.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>

#include "bpfkv.h"

namespace fastpath::bpfkv {

// Every failure of a database operation: the message names the file and the cause.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What `bpfkv create` asks for.  fanout 0 means the node's capacity.
struct Params {
  std::uint32_t layers = 3;
  std::uint32_t fanout = 0;
  std::uint32_t node_size = 512;
  std::uint32_t value_size = 64;
  std::uint64_t stride = 1;
};

// Where everything is in a database; derived from Params alone.
struct Geometry {
  std::uint32_t node_size = 0;
  std::uint32_t fanout = 0;
  std::uint32_t layers = 0;
  std::uint32_t value_size = 0;
  std::uint32_t values_per_block = 0;
  std::uint64_t nkeys = 0;
  std::uint64_t stride = 0;
  std::array<std::uint64_t, BPFKV_MAX_LAYERS + 1> level_off{};  // level_off[layers] = index_size
  std::uint64_t index_size = 0;
  std::uint64_t log_off = 0;
  std::uint64_t log_size = 0;

  // Throws std::invalid_argument saying which parameter is out of range.
  static Geometry make(const Params& p);

  std::uint32_t cap() const { return BPFKV_NODE_CAP(node_size); }
  std::uint64_t log_end() const { return log_off + log_size; }
  // Smallest file that holds the database, superblock included.
  std::uint64_t min_file_size() const { return log_end() + BPFKV_SUPER_SIZE; }
  std::uint64_t level_nodes(std::uint32_t level) const;
  std::uint64_t key(std::uint64_t i) const { return i * stride; }
  std::uint64_t max_key() const { return key(nkeys - 1); }
  bool contains(std::uint64_t key) const { return key % stride == 0 && key / stride < nkeys; }
  std::uint64_t value_off(std::uint64_t i) const;
  // Whether ptr may point at a value (inside the log, on the value grid).
  bool value_ptr_ok(std::uint64_t ptr) const;
};

bpfkv_super make_super(const Geometry& g, std::uint64_t file_size);
// Checks a superblock read from the last 4096 bytes of a file of file_size
// bytes and returns its geometry.  Throws Error("<path>: <cause>").
Geometry check_super(const bpfkv_super& s, std::uint64_t file_size, const std::string& path);
std::uint64_t super_checksum(const bpfkv_super& s);

// The deterministic value of a key: word 0 the key, word 1 agg_field(key),
// the rest a pattern of the key.
std::uint64_t agg_field(std::uint64_t key);
void fill_value(std::uint64_t key, std::span<std::byte> out);
bool value_matches(std::uint64_t key, std::span<const std::byte> value);
std::uint64_t value_key(std::span<const std::byte> value);
std::uint64_t value_agg(std::span<const std::byte> value);

// Text of an enum bpfkv_status.
const char* status_text(std::uint32_t status);
// "<path>: corrupt database: <status text> (<what> at offset <off>)<detail>"
[[noreturn]] void throw_corrupt(const std::string& path, std::uint32_t status, const char* what, std::uint64_t off,
                                const std::string& detail = {});

// Key bounds a parent gives a child: every key of the child lies in [lo, hi].
struct Bounds {
  std::uint64_t lo = 0;
  std::uint64_t hi = ~0ULL;
};

// A node read from the index, checked against everything its position
// implies: magic, type for its level, nkeys, key order, the parent's bounds,
// and every pointer (children in the next level, values in the log, next
// leaf further on in the leaf level).  Views the bytes; does not copy them.
class Node {
 public:
  // Throws Error naming path and offset when the node is not what belongs there.
  static Node check(const Geometry& g, std::span<const std::byte> bytes, std::uint64_t off, std::uint32_t level,
                    Bounds bounds, const std::string& path);

  bool leaf() const { return leaf_; }
  std::uint32_t nkeys() const { return nkeys_; }
  std::uint64_t next() const { return next_; }
  std::uint64_t key(std::uint32_t i) const;
  std::uint64_t ptr(std::uint32_t i) const;
  // Number of keys <= key / < key.
  std::uint32_t count_le(std::uint64_t key) const;
  std::uint32_t count_lt(std::uint64_t key) const { return key ? count_le(key - 1) : 0; }
  // Bounds of the child at slot, inside this node's bounds.
  Bounds child_bounds(std::uint32_t slot, Bounds mine) const;

 private:
  Node(std::span<const std::byte> bytes, std::uint32_t node_size) : bytes_(bytes), node_size_(node_size) {}
  std::uint64_t word(std::size_t off) const;

  std::span<const std::byte> bytes_;
  std::uint32_t node_size_;
  bool leaf_ = false;
  std::uint32_t nkeys_ = 0;
  std::uint64_t next_ = 0;
};

// Writes a node into out (node_size bytes, zeroed first).
void encode_node(std::span<std::byte> out, std::uint32_t node_size, bool leaf, std::uint64_t next,
                 std::span<const std::uint64_t> keys, std::span<const std::uint64_t> ptrs);

}  // namespace fastpath::bpfkv
