// SPDX-License-Identifier: GPL-2.0
#include "verify.h"

#include <algorithm>

namespace fastpath::bpfkv {

namespace {

[[noreturn]] void wrong(const DbFile& db, const std::string& backend, const std::string& what) {
  throw Error(db.path() + ": wrong answer from " + backend + ": " + what + " (the index is corrupt)");
}

}  // namespace

std::uint64_t first_index_at_or_after(const Geometry& g, std::uint64_t key) {
  const std::uint64_t i = key / g.stride + (key % g.stride != 0);
  return std::min(i, g.nkeys);
}

AggResult expected_aggregate(const Geometry& g, AggOp op, std::uint64_t lo, std::uint64_t hi) {
  AggResult r;
  if (lo >= hi) return r;
  const std::uint64_t first = first_index_at_or_after(g, lo), stop = first_index_at_or_after(g, hi);
  if (op == AggOp::Count) {
    r.count = stop > first ? stop - first : 0;
    return r;
  }
  for (std::uint64_t i = first; i < stop; ++i) r.add(agg_field(g.key(i)));
  return r;
}

void verify_get(const DbFile& db, const std::string& backend, std::span<const std::uint64_t> keys,
                std::span<const std::uint8_t> found, std::span<const std::byte> values) {
  const Geometry& g = db.geo();
  for (std::size_t i = 0; i < keys.size(); ++i) {
    const std::string k = std::to_string(keys[i]);
    if (found[i] != g.contains(keys[i]))
      wrong(db, backend,
            "key " + k + (found[i] ? " found but not in the database" : " is in the database but not found"));
    if (found[i] && !value_matches(keys[i], values.subspan(i * g.value_size, g.value_size)))
      wrong(db, backend, "the value of key " + k + " is not the one written");
  }
}

void verify_range(const DbFile& db, const std::string& backend, std::uint64_t from, std::span<const std::byte> values,
                  const RangeCursor& after) {
  const Geometry& g = db.geo();
  const std::uint64_t n = values.size() / g.value_size;
  const std::uint64_t first = first_index_at_or_after(g, from);
  for (std::uint64_t j = 0; j < n; ++j) {
    const auto v = values.subspan(j * g.value_size, g.value_size);
    if (first + j >= g.nkeys || value_key(v) != g.key(first + j) || value_key(v) >= after.end)
      wrong(db, backend,
            "range from " + std::to_string(from) + ": entry " + std::to_string(j) + " has key " +
                std::to_string(value_key(v)));
    if (!value_matches(value_key(v), v))
      wrong(db, backend, "the value of key " + std::to_string(value_key(v)) + " is not the one written");
  }
  const bool more = first + n < g.nkeys && g.key(first + n) < after.end;
  if (after.done && more) wrong(db, backend, "range ended before key " + std::to_string(g.key(first + n)));
  if (!after.done && n > 0 && after.next != value_key(values.subspan((n - 1) * g.value_size)) + 1)
    wrong(db, backend, "range cursor at " + std::to_string(after.next) + " after its last key");
}

void verify_aggregate(const DbFile& db, const std::string& backend, AggOp op, std::uint64_t lo, std::uint64_t hi,
                      const AggResult& got) {
  const AggResult want = expected_aggregate(db.geo(), op, lo, hi);
  const bool same =
      got.count == want.count && (op == AggOp::Count || want.count == 0 || got.value(op) == want.value(op));
  if (!same)
    wrong(db, backend,
          "aggregate over [" + std::to_string(lo) + ", " + std::to_string(hi) + ") gives " +
              std::to_string(got.value(op)) + " over " + std::to_string(got.count) + " keys, expected " +
              std::to_string(want.value(op)) + " over " + std::to_string(want.count));
}

}  // namespace fastpath::bpfkv
