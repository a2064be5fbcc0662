// SPDX-License-Identifier: GPL-2.0
#include "identity.h"

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

namespace fs = std::filesystem;

namespace fastpath::rubble {

std::string random_id() {
  std::random_device rd;
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < 4; ++i) {
    const std::uint32_t v = rd();
    for (int b = 0; b < 8; ++b) out += hex[(v >> (4 * b)) & 0xf];
  }
  return out;
}

std::string check_chain_id(const std::string& id) {
  if (id.empty() || id.size() > 64) return "chain id '" + id + "' must have 1 to 64 characters";
  for (char c : id) {
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) return "chain id '" + id + "' may only contain letters, digits, '.', '_' and '-'";
  }
  return "";
}

std::optional<Identity> read_identity(const std::string& dir) {
  const fs::path path = fs::path(dir) / "CHAIN";
  std::ifstream in(path);
  if (!in) return std::nullopt;
  Identity id;
  std::string key, value, mode;
  while (in >> key >> value) {
    if (key == "chain") id.chain_id = value;
    if (key == "mode") mode = value;
  }
  const auto parsed = parse_mode(mode);
  if (id.chain_id.empty() || !check_chain_id(id.chain_id).empty() || !parsed)
    throw std::runtime_error(path.string() + " is malformed (expected lines 'chain ID' and 'mode baseline|rubble'): " +
                             "restore it or use an empty --db directory");
  id.mode = *parsed;
  return id;
}

void write_identity(const std::string& dir, const Identity& id) {
  const fs::path path = fs::path(dir) / "CHAIN";
  const fs::path tmp = fs::path(dir) / "CHAIN.tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << "chain " << id.chain_id << "\nmode " << to_string(id.mode) << "\n";
    out.flush();
    if (!out) throw std::runtime_error("cannot write " + tmp.string() + ": check that --db is writable");
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) throw std::runtime_error("cannot rename " + tmp.string() + " to CHAIN: " + ec.message());
}

std::optional<Identity> check_db_dir(const std::string& dir, Mode mode, const std::string& chain_id_option) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw std::runtime_error("cannot create --db directory " + dir + ": " + ec.message());
  auto id = read_identity(dir);
  if (!id) {
    if (!fs::is_empty(dir, ec))
      throw std::runtime_error("--db " + dir +
                               " is not empty and has no CHAIN file, so it is not a rubble-node directory: use an "
                               "empty or new directory");
    return std::nullopt;
  }
  if (!chain_id_option.empty() && id->chain_id != chain_id_option)
    throw std::runtime_error("--db " + dir + " holds data of chain '" + id->chain_id + "', not of --chain-id '" +
                             chain_id_option + "': use an empty directory for chain '" + chain_id_option + "'");
  if (id->mode != mode)
    throw std::runtime_error("--db " + dir + " holds " + to_string(id->mode) + "-mode data but --mode is " +
                             to_string(mode) + ": use the same --mode or an empty directory");
  return id;
}

}  // namespace fastpath::rubble
