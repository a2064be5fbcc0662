// SPDX-License-Identifier: GPL-2.0
// Helpers for the bpfkv tests: a temporary directory and small databases.
#pragma once

#include <cstdint>
#include <filesystem>
#include <ostream>
#include <string>
#include <vector>

#include "backend.h"
#include "create.h"

namespace fastpath::bpfkv {
// How GoogleTest shows Params.
void PrintTo(const Params& p, std::ostream* os);
}  // namespace fastpath::bpfkv

namespace fastpath::bpfkv::test {

// A fresh directory under $TMPDIR, removed with everything in it.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// Creates a database at path and returns its geometry.
Geometry make_db(const std::string& path, const Params& p);

// Bytes of a file / writes bytes into it at off.
std::vector<std::byte> read_file(const std::string& path);
void patch_file(const std::string& path, std::uint64_t off, const void* data, std::size_t len);
void patch_u64(const std::string& path, std::uint64_t off, std::uint64_t v);

// "L3_F6_N512_V64_S3": a test name for database parameters.
std::string shape_name(const Params& p);

// Back-ends that run on any host.
inline const std::vector<std::string>& host_backends() {
  static const std::vector<std::string> names{"pread", "io_uring", "xrp-emu"};
  return names;
}

// All values of [lo, hi) through range() pages of `page` keys.
std::vector<std::uint64_t> range_keys(Backend& b, const Geometry& g, std::uint64_t lo, std::uint64_t hi,
                                      std::size_t page);

}  // namespace fastpath::bpfkv::test
