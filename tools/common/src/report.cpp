// SPDX-License-Identifier: GPL-2.0
#include "fastpath/report.h"

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <stdexcept>

namespace fastpath {

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

namespace {

bool as_number(const std::string& s, double& out) {
  if (s.empty()) return false;
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, out);
  return ec == std::errc{} && ptr == end;
}

}  // namespace

Table::Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}

void Table::add_row(std::vector<std::string> row) {
  if (row.size() != headers_.size())
    throw std::invalid_argument("table row has " + std::to_string(row.size()) + " cells, expected " +
                                std::to_string(headers_.size()));
  rows_.push_back(std::move(row));
}

void Table::print(std::ostream& out) const {
  std::vector<std::size_t> width(headers_.size());
  std::vector<bool> numeric(headers_.size(), !rows_.empty());
  for (std::size_t c = 0; c < headers_.size(); ++c) {
    width[c] = headers_[c].size();
    for (const auto& r : rows_) {
      width[c] = std::max(width[c], r[c].size());
      double d;
      if (!as_number(r[c], d)) numeric[c] = false;
    }
  }
  auto cell = [&](const std::string& s, std::size_t c) {
    const std::string pad(width[c] - s.size(), ' ');
    const bool last = c + 1 == headers_.size();
    out << (numeric[c] ? pad + s : last ? s : s + pad);
  };
  for (std::size_t c = 0; c < headers_.size(); ++c) {
    if (c) out << "  ";
    cell(headers_[c], c);
  }
  out << '\n';
  for (std::size_t c = 0; c < headers_.size(); ++c) {
    if (c) out << "  ";
    out << std::string(width[c], '-');
  }
  out << '\n';
  for (const auto& r : rows_) {
    for (std::size_t c = 0; c < headers_.size(); ++c) {
      if (c) out << "  ";
      cell(r[c], c);
    }
    out << '\n';
  }
}

nlohmann::json Table::to_json() const {
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& r : rows_) {
    nlohmann::json obj = nlohmann::json::object();
    for (std::size_t c = 0; c < headers_.size(); ++c) {
      double d;
      if (as_number(r[c], d))
        obj[headers_[c]] = d;
      else
        obj[headers_[c]] = r[c];
    }
    arr.push_back(std::move(obj));
  }
  return arr;
}

void write_json(const nlohmann::json& doc, const std::string& path) {
  if (path == "-") {
    std::cout << doc.dump(2) << '\n';
    return;
  }
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    if (!f) throw std::runtime_error("cannot write " + tmp + ": " + std::strerror(errno));
    f << doc.dump(2) << '\n';
    f.flush();
    if (!f) throw std::runtime_error("writing " + tmp + " failed: " + std::strerror(errno));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) throw std::runtime_error("cannot rename " + tmp + " to " + path + ": " + ec.message());
}

}  // namespace fastpath
