// SPDX-License-Identifier: GPL-2.0
#include "test_util.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>

namespace fastpath::bpfkv {
void PrintTo(const Params& p, std::ostream* os) {
  *os << test::shape_name(p);
}
}  // namespace fastpath::bpfkv

namespace fastpath::bpfkv::test {

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "bpfkv-test-XXXXXX").string();
  if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

Geometry make_db(const std::string& path, const Params& p) {
  CreateOptions opts;
  opts.params = p;
  return create_db(path, opts).geo;
}

std::string shape_name(const Params& p) {
  return "L" + std::to_string(p.layers) + "_F" + std::to_string(p.fanout) + "_N" + std::to_string(p.node_size) + "_V" +
         std::to_string(p.value_size) + "_S" + std::to_string(p.stride);
}

std::vector<std::byte> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::vector<std::byte> out(bytes.size());
  std::memcpy(out.data(), bytes.data(), bytes.size());
  return out;
}

void patch_file(const std::string& path, std::uint64_t off, const void* data, std::size_t len) {
  const int fd = ::open(path.c_str(), O_WRONLY);
  if (fd < 0) throw std::runtime_error("open " + path);
  const bool ok = ::pwrite(fd, data, len, static_cast<off_t>(off)) == static_cast<ssize_t>(len);
  ::fsync(fd);
  ::close(fd);
  if (!ok) throw std::runtime_error("pwrite " + path);
}

void patch_u64(const std::string& path, std::uint64_t off, std::uint64_t v) {
  patch_file(path, off, &v, sizeof(v));
}

std::vector<std::uint64_t> range_keys(Backend& b, const Geometry& g, std::uint64_t lo, std::uint64_t hi,
                                      std::size_t page) {
  std::vector<std::uint64_t> keys;
  RangeCursor c{lo, hi, lo >= hi};
  std::vector<std::byte> values;
  for (int calls = 0; !c.done; ++calls) {
    if (calls > 1000000) throw std::runtime_error("range does not finish");
    values.clear();
    const std::size_t n = b.range(c, page, values);
    if (values.size() != n * g.value_size) throw std::runtime_error("range returned a partial value");
    for (std::size_t i = 0; i < n; ++i)
      keys.push_back(value_key(std::span(values).subspan(i * g.value_size, g.value_size)));
  }
  return keys;
}

}  // namespace fastpath::bpfkv::test
