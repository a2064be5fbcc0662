// SPDX-License-Identifier: GPL-2.0
// pread back-end: one pread() per block, one after the other.
#include "tree.h"

namespace fastpath::bpfkv {

namespace {

class PreadReader : public BlockReader {
 public:
  explicit PreadReader(const DbFile& db) : db_(db) {}

  void read(std::span<const ReadReq> reqs, BackendStats& stats) override {
    for (const ReadReq& r : reqs) {
      db_.read(r.buf, r.len, r.off);
      ++stats.reads;
      ++stats.syscalls;
    }
  }

 private:
  const DbFile& db_;
};

}  // namespace

std::unique_ptr<Backend> make_pread_backend(const DbFile& db) {
  return std::make_unique<TreeBackend>(db, std::make_unique<PreadReader>(db), "pread", BPFKV_GET_MAX);
}

}  // namespace fastpath::bpfkv
