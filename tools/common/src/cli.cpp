// SPDX-License-Identifier: GPL-2.0
#include "fastpath/cli.h"

#include <charconv>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <stdexcept>

namespace fastpath::cli {

std::uint64_t parse_size(std::string_view text) {
  const std::string shown{text};
  auto bad = [&shown](const char* why) {
    return std::invalid_argument("invalid size '" + shown + "': " + why +
                                 " (expected a number with an optional K, M, G or T suffix, e.g. 4K)");
  };
  if (text.empty()) throw bad("empty");
  std::uint64_t value = 0;
  const char* begin = text.data();
  const char* end = begin + text.size();
  auto [ptr, ec] = std::from_chars(begin, end, value);
  if (ec == std::errc::result_out_of_range) throw bad("too large");
  if (ec != std::errc{} || ptr == begin) throw bad("does not start with a number");
  std::string_view suffix(ptr, static_cast<std::size_t>(end - ptr));
  unsigned shift = 0;
  if (!suffix.empty()) {
    switch (suffix.front()) {
      case 'b':
      case 'B':
        shift = 0;
        break;
      case 'k':
      case 'K':
        shift = 10;
        break;
      case 'm':
      case 'M':
        shift = 20;
        break;
      case 'g':
      case 'G':
        shift = 30;
        break;
      case 't':
      case 'T':
        shift = 40;
        break;
      default:
        throw bad("unknown suffix");
    }
    suffix.remove_prefix(1);
    if (shift != 0 && (suffix == "iB" || suffix == "B" || suffix == "ib")) suffix = {};
    if (!suffix.empty()) throw bad("unknown suffix");
  }
  if (shift != 0 && value > (std::numeric_limits<std::uint64_t>::max() >> shift)) throw bad("too large");
  return value << shift;
}

CLI::Validator size_validator() {
  return CLI::Validator(
      [](std::string& input) -> std::string {
        try {
          (void)parse_size(input);
        } catch (const std::invalid_argument& e) {
          return e.what();
        }
        return {};
      },
      "SIZE", "size");
}

int parse(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return -1;
}

void error(std::string_view tool, std::string_view message) {
  std::cerr << tool << ": error: " << message << '\n';
}

void write_ready_file(const std::string& path, const std::string& addr) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << addr << "\n";
    if (!out) throw std::runtime_error("cannot write --ready-file " + tmp);
  }
  std::filesystem::rename(tmp, path);
}

}  // namespace fastpath::cli
