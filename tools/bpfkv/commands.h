// SPDX-License-Identifier: GPL-2.0
// bpfkv subcommands: each registers its CLI11 subcommand and runs it.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <vector>

#include "backend.h"
#include "dbfile.h"

namespace fastpath::bpfkv {

class Command {
 public:
  virtual ~Command() = default;
  // Adds the subcommand and its options to app; returns it.
  virtual CLI::App* add_to(CLI::App& app) = 0;
  // Runs after a successful parse; returns the exit status.  May throw Error
  // or std::invalid_argument (main prints them).
  virtual int run() = 0;
};

std::unique_ptr<Command> make_create_command();
std::unique_ptr<Command> make_info_command();
std::unique_ptr<Command> make_get_command();
std::unique_ptr<Command> make_range_command();
std::unique_ptr<Command> make_agg_command();
std::unique_ptr<Command> make_bench_command();
std::unique_ptr<Command> make_compare_command();

// Options every query command shares.
struct QueryOptions {
  std::string backend = "pread";
  bool buffered = false;
  BackendOptions backend_opts;

  void add_to(CLI::App& sub, bool one_backend);
};

// An open database and a back-end over it.  The back-end refers to the
// DbFile, so the two are made, live and die together, and neither moves.
struct QuerySession {
  QuerySession(const std::string& path, const QueryOptions& q)
      : db(DbFile::open(path, {.direct = !q.buffered})), backend(make_backend(q.backend, db, q.backend_opts)) {}
  QuerySession(const QuerySession&) = delete;
  QuerySession& operator=(const QuerySession&) = delete;

  DbFile db;
  std::unique_ptr<Backend> backend;
};

}  // namespace fastpath::bpfkv
