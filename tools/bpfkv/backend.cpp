// SPDX-License-Identifier: GPL-2.0
#include "backend.h"

#include <algorithm>

#include "xrp.h"

namespace fastpath::bpfkv {

std::uint64_t AggResult::value(AggOp op) const {
  switch (op) {
    case AggOp::Count:
      return count;
    case AggOp::Sum:
      return sum;
    case AggOp::Min:
      return min;
    case AggOp::Max:
      return max;
  }
  return 0;
}

void AggResult::add(std::uint64_t v) {
  ++count;
  sum += v;
  min = std::min(min, v);
  max = std::max(max, v);
}

const std::vector<std::string>& backend_names() {
  static const std::vector<std::string> names{"pread", "io_uring", "xrp", "xrp-emu"};
  return names;
}

std::unique_ptr<Backend> make_backend(std::string_view name, const DbFile& db, const BackendOptions& opts) {
  if (name == "pread") return make_pread_backend(db);
  if (name == "io_uring") return make_uring_backend(db, opts);
  if (name == "xrp") return make_xrp_backend(db, make_kernel_xrp(db), "xrp", opts);
  if (name == "xrp-emu") return make_xrp_backend(db, make_emulated_xrp(db), "xrp-emu", opts);
  throw std::invalid_argument("unknown back-end '" + std::string(name) + "' (pread, io_uring, xrp or xrp-emu)");
}

}  // namespace fastpath::bpfkv
