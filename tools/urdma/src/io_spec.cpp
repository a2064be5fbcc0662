// SPDX-License-Identifier: GPL-2.0
// Packet I/O specs ("backend:key=value,...") and the back-end dispatcher.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <stdexcept>
#include <string>

#include "urdma/packet_io.h"

namespace urdma {
namespace {

constexpr const char* kForm = "expected BACKEND:key=value,... (e.g. udp:ip=10.0.0.1 or dpdk:iface=veth1,ip=10.0.0.2)";

[[noreturn]] void bad_spec(const std::string& spec, const std::string& what) {
  throw std::invalid_argument("urdma: packet I/O spec '" + spec + "': " + what + "; " + kForm);
}

// Reads one value starting at pos (after '='), honouring quotes so that DPDK
// device arguments and EAL options, which contain commas and spaces, fit in.
std::string read_value(const std::string& spec, std::size_t& pos, const std::string& key) {
  if (pos < spec.size() && (spec[pos] == '"' || spec[pos] == '\'')) {
    const char quote = spec[pos];
    const std::size_t end = spec.find(quote, pos + 1);
    if (end == std::string::npos) bad_spec(spec, "the value of '" + key + "' has no closing " + quote);
    std::string value = spec.substr(pos + 1, end - pos - 1);
    pos = end + 1;
    if (pos < spec.size() && spec[pos] != ',') bad_spec(spec, "a ',' must follow the quoted value of '" + key + "'");
    return value;
  }
  const std::size_t end = std::min(spec.find(',', pos), spec.size());
  std::string value = spec.substr(pos, end - pos);
  pos = end;
  return value;
}

void parse_keys(const std::string& spec, std::size_t pos, IoSpec& out) {
  while (pos < spec.size()) {
    const std::size_t eq = spec.find('=', pos);
    const std::size_t comma = spec.find(',', pos);
    if (eq == std::string::npos || (comma != std::string::npos && comma < eq))
      bad_spec(spec, "'" + spec.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos) +
                         "' is not key=value");
    const std::string key = spec.substr(pos, eq - pos);
    if (key.empty()) bad_spec(spec, "a key is empty");
    pos = eq + 1;
    std::string value = read_value(spec, pos, key);
    if (value.empty()) bad_spec(spec, "key '" + key + "' has an empty value");
    if (!out.keys.emplace(key, std::move(value)).second) bad_spec(spec, "key '" + key + "' is given twice");
    if (pos < spec.size()) {
      ++pos;  // the ','
      if (pos == spec.size()) bad_spec(spec, "it ends with ','");
    }
  }
}

// Keys each back-end understands; a typo (mut=9000) must not pass silently.
void check_keys(const IoSpec& s) {
  static const std::set<std::string> common = {"mtu",     "drop", "dup",     "reorder",
                                               "corrupt", "seed", "spin_us", "keepalive_ms"};
  static const std::set<std::string> udp = {"ip", "ip_id"};
  static const std::set<std::string> dpdk = {"ip", "iface", "dev", "eal"};
  const auto& own = s.backend == "udp" ? udp : dpdk;
  for (const auto& [key, value] : s.keys) {
    if (common.count(key) || own.count(key)) continue;
    std::string valid;
    for (const auto* set : {&own, &common})
      for (const auto& k : *set) valid += (valid.empty() ? "" : ", ") + k;
    throw std::runtime_error("urdma: " + s.backend + " back-end: unknown key '" + key + "'; valid keys: " + valid);
  }
}

std::string shortest(double d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", d);
  return buf;
}

bool wants_faults(const IoSpec& s) {
  for (const char* k : {"drop", "dup", "reorder", "corrupt"})
    if (s.get_real(k, 0, 0, 1) > 0) return true;
  return false;
}

}  // namespace

IoSpec IoSpec::parse(const std::string& spec) {
  IoSpec out;
  const std::size_t colon = spec.find(':');
  out.backend = spec.substr(0, colon);
  if (out.backend.empty()) bad_spec(spec, "the back-end name is missing");
  if (out.backend.find_first_of("=,") != std::string::npos) bad_spec(spec, "the back-end name is missing");
  if (colon != std::string::npos) {
    if (colon + 1 == spec.size()) bad_spec(spec, "nothing follows ':'");
    parse_keys(spec, colon + 1, out);
  }
  return out;
}

std::string IoSpec::get(const std::string& key, const std::string& def) const {
  const auto it = keys.find(key);
  return it == keys.end() ? def : it->second;
}

std::int64_t IoSpec::get_int(const std::string& key, std::int64_t def, std::int64_t lo, std::int64_t hi) const {
  const auto it = keys.find(key);
  if (it == keys.end()) return def;
  const std::string& v = it->second;
  char* end = nullptr;
  errno = 0;
  const long long n = std::strtoll(v.c_str(), &end, 0);
  if (errno != 0 || end == v.c_str() || *end != '\0' || n < lo || n > hi)
    throw std::runtime_error("urdma: " + backend + " back-end: " + key + "=" + v + " is not an integer in [" +
                             std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return n;
}

double IoSpec::get_real(const std::string& key, double def, double lo, double hi) const {
  const auto it = keys.find(key);
  if (it == keys.end()) return def;
  const std::string& v = it->second;
  char* end = nullptr;
  errno = 0;
  const double d = std::strtod(v.c_str(), &end);
  // !(d >= lo && d <= hi) also rejects NaN.
  if (errno != 0 || end == v.c_str() || *end != '\0' || !(d >= lo && d <= hi))
    throw std::runtime_error("urdma: " + backend + " back-end: " + key + "=" + v + " is not a number in [" +
                             shortest(lo) + ", " + shortest(hi) + "]");
  return d;
}

std::unique_ptr<PacketIo> open_packet_io(const std::string& spec_text) {
  IoSpec spec;
  try {
    spec = IoSpec::parse(spec_text);
  } catch (const std::invalid_argument& e) {
    // Device::open promises std::runtime_error for every reason it can fail.
    throw std::runtime_error(e.what());
  }
  if (spec.backend != "udp" && spec.backend != "dpdk")
    throw std::runtime_error("urdma: unknown packet I/O back-end '" + spec.backend + "' in '" + spec_text +
                             "'; use udp:ip=A.B.C.D or dpdk:iface=IF,ip=A.B.C.D");
  check_keys(spec);
  const bool faults = wants_faults(spec);  // validates the fault keys before opening anything
  auto io = spec.backend == "udp" ? open_udp_io(spec) : open_dpdk_io(spec);
  return faults ? wrap_fault_io(std::move(io), spec) : std::move(io);
}

}  // namespace urdma
