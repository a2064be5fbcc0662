// SPDX-License-Identifier: GPL-2.0
// Command-line helpers shared by the fastpath tools (CLI11 based).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <string_view>

namespace fastpath::cli {

// Parses a byte size: "4096", "512B", "4K", "4KiB", "1M", "2G", "1T" (powers of
// 1024).  Throws std::invalid_argument naming the input and the accepted form.
std::uint64_t parse_size(std::string_view text);

// CLI11 validator that accepts what parse_size accepts.
CLI::Validator size_validator();

// Parses argv into app.  Returns -1 when the program should go on, else the
// exit code to return from main (0 for --help, non-zero for a usage error;
// CLI11 has already printed the message).
int parse(CLI::App& app, int argc, char** argv);

// Prints "tool: error: message" to stderr.
void error(std::string_view tool, std::string_view message);

// Writes ADDR and a newline to PATH atomically (a temporary file, then a
// rename), so a process waiting for a daemon's --ready-file never reads half
// an address. Throws std::runtime_error if it cannot.
void write_ready_file(const std::string& path, const std::string& addr);

}  // namespace fastpath::cli
