// SPDX-License-Identifier: GPL-2.0
// GET, RANGE and aggregations in user space, over any way of reading blocks:
// the C++ twin of the XRP programs, shared by the pread and io_uring
// back-ends.  Every node read is checked (Node::check) and every value must
// carry its key.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "backend.h"

namespace fastpath::bpfkv {

struct ReadReq {
  std::uint64_t off;
  std::uint32_t len;
  std::byte* buf;  // aligned for O_DIRECT
};

// Performs a set of independent reads; returns when all are done.
class BlockReader {
 public:
  virtual ~BlockReader() = default;
  // Throws Error naming the file, offset and cause.
  virtual void read(std::span<const ReadReq> reqs, BackendStats& stats) = 0;
};

class TreeBackend : public Backend {
 public:
  // max_batch: lookups walked together (their reads of one level go to the
  // reader as one set).
  TreeBackend(const DbFile& db, std::unique_ptr<BlockReader> reader, std::string name, std::size_t max_batch);

  std::string name() const override { return name_; }
  void get(std::span<const std::uint64_t> keys, std::span<std::uint8_t> found, std::span<std::byte> values) override;
  std::size_t range(RangeCursor& cursor, std::size_t max, std::vector<std::byte>& out) override;
  AggResult aggregate(AggOp op, std::uint64_t lo, std::uint64_t hi) override;

 private:
  struct Walk;
  struct ScanEnd;

  std::byte* slot(std::size_t i);
  void get_batch(std::span<const std::uint64_t> keys, std::span<std::uint8_t> found, std::span<std::byte> values);
  void step(Walk& w, const std::byte* block, std::uint64_t block_off, std::span<std::byte> value_out);
  Node read_node(std::uint64_t off, std::uint32_t level, Bounds bounds);
  void read_values(const Node& leaf, std::uint32_t first, std::uint32_t stop,
                   std::vector<std::span<const std::byte>>& out);
  template <class Visit>
  ScanEnd scan(std::uint64_t from, std::uint64_t end, bool with_values, Visit&& visit);

  const DbFile& db_;
  const Geometry& g_;
  std::unique_ptr<BlockReader> reader_;
  std::string name_;
  std::size_t max_batch_;
  AlignedBuffer buf_;  // 4096 bytes per read slot
};

}  // namespace fastpath::bpfkv
