// SPDX-License-Identifier: GPL-2.0
// Every answer checked against what the superblock defines: the key set
// (i * stride for i < nkeys) and each key's value.  An index that leads to a
// wrong answer while every node looks valid is caught here.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "backend.h"

namespace fastpath::bpfkv {

// Index of the first key >= key (nkeys when there is none).
std::uint64_t first_index_at_or_after(const Geometry& g, std::uint64_t key);

// The aggregation computed from the key set alone.
AggResult expected_aggregate(const Geometry& g, AggOp op, std::uint64_t lo, std::uint64_t hi);

// Each throws Error("<path>: wrong answer from <backend>: ...") on a mismatch.
void verify_get(const DbFile& db, const std::string& backend, std::span<const std::uint64_t> keys,
                std::span<const std::uint8_t> found, std::span<const std::byte> values);
// values: the n values range() returned for a call that started at `from`;
// after: the cursor it left.
void verify_range(const DbFile& db, const std::string& backend, std::uint64_t from, std::span<const std::byte> values,
                  const RangeCursor& after);
void verify_aggregate(const DbFile& db, const std::string& backend, AggOp op, std::uint64_t lo, std::uint64_t hi,
                      const AggResult& got);

}  // namespace fastpath::bpfkv
