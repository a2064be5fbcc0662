// SPDX-License-Identifier: GPL-2.0
// Benchmark and tool reports: an aligned text table for people and a JSON
// document for machines, built from the same rows.
#pragma once

#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

namespace fastpath {

// Formats v with `digits` digits after the point.
std::string fixed(double v, int digits);

class Table {
 public:
  explicit Table(std::vector<std::string> headers);
  // Throws std::invalid_argument when the row's width differs from the headers'.
  void add_row(std::vector<std::string> row);
  std::size_t rows() const { return rows_.size(); }
  // Text columns are left-aligned, numeric ones right-aligned.
  void print(std::ostream& out) const;
  // An array of objects keyed by header; cells that parse as numbers become numbers.
  nlohmann::json to_json() const;

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

// Writes doc as indented JSON to path ("-" = stdout).  Writes a temporary file
// and renames it, so a reader never sees half a report.  Throws
// std::runtime_error naming the path and the cause on failure.
void write_json(const nlohmann::json& doc, const std::string& path);

}  // namespace fastpath
