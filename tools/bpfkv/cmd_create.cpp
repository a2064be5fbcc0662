// SPDX-License-Identifier: GPL-2.0
// bpfkv create and bpfkv info.
#include <unistd.h>

#include <iostream>

#include "commands.h"
#include "create.h"
#include "dbfile.h"
#include "fastpath/report.h"

namespace fastpath::bpfkv {

namespace {

std::string mib(std::uint64_t bytes) {
  return fixed(static_cast<double>(bytes) / (1 << 20), 1) + " MiB";
}

std::string describe(const Geometry& g) {
  return std::to_string(g.layers) + " layers, fanout " + std::to_string(g.fanout) + ", " + std::to_string(g.nkeys) +
         " keys (0.." + std::to_string(g.max_key()) + (g.stride > 1 ? " step " + std::to_string(g.stride) : "") +
         "), " + std::to_string(g.node_size) + "-byte nodes, " + std::to_string(g.value_size) + "-byte values";
}

class CreateCommand : public Command {
 public:
  CLI::App* add_to(CLI::App& app) override {
    CLI::App* sub = app.add_subcommand("create", "write a new database (index, value log, superblock)");
    sub->add_option("FILE", path_, "file or block device")->required();
    sub->add_option("--layers", opts_.params.layers, "index levels, each one node read per lookup (1..8)")->required();
    sub->add_option("--fanout", opts_.params.fanout, "keys per node (default: as many as a node holds, 31 or 255)");
    sub->add_option("--node-size", opts_.params.node_size, "node size in bytes")
        ->check(CLI::IsMember({512, 4096}))
        ->capture_default_str();
    sub->add_option("--value-size", opts_.params.value_size, "value size in bytes (multiple of 8, 16..512)")
        ->capture_default_str();
    sub->add_option("--stride", opts_.params.stride, "distance between keys (key i is i * stride)")
        ->capture_default_str();
    sub->add_flag("--force", opts_.force, "overwrite a file that is not a bpfkv database");
    return sub;
  }

  int run() override {
    opts_.progress = &std::cerr;
    opts_.progress_terminal = ::isatty(STDERR_FILENO) == 1;
    const CreateResult r = create_db(path_, opts_);
    std::cout << "created " << path_ << ": " << describe(r.geo) << ", " << mib(r.file_size) << '\n';
    return 0;
  }

 private:
  std::string path_;
  CreateOptions opts_;
};

class InfoCommand : public Command {
 public:
  CLI::App* add_to(CLI::App& app) override {
    CLI::App* sub = app.add_subcommand("info", "check a database's superblock and print its geometry");
    sub->add_option("FILE", path_, "file or block device")->required();
    sub->add_option("--json", json_, "also write it as JSON to this file ('-' for stdout)");
    return sub;
  }

  int run() override {
    const DbFile db = DbFile::open(path_, {.direct = false});
    const Geometry& g = db.geo();
    Table t({"field", "value"});
    t.add_row({"file", path_});
    t.add_row({"format", "bpfkv version " + std::to_string(BPFKV_VERSION)});
    t.add_row({"layers", std::to_string(g.layers)});
    t.add_row({"fanout", std::to_string(g.fanout)});
    t.add_row({"node_size", std::to_string(g.node_size)});
    t.add_row({"value_size", std::to_string(g.value_size)});
    t.add_row({"keys", std::to_string(g.nkeys)});
    t.add_row({"key_stride", std::to_string(g.stride)});
    t.add_row({"index_bytes", std::to_string(g.index_size)});
    t.add_row({"log_offset", std::to_string(g.log_off)});
    t.add_row({"log_bytes", std::to_string(g.log_size)});
    t.add_row({"file_bytes", std::to_string(db.size())});
    t.print(std::cout);
    if (!json_.empty()) write_json(t.to_json(), json_);
    return 0;
  }

 private:
  std::string path_;
  std::string json_;
};

}  // namespace

std::unique_ptr<Command> make_create_command() {
  return std::make_unique<CreateCommand>();
}

std::unique_ptr<Command> make_info_command() {
  return std::make_unique<InfoCommand>();
}

}  // namespace fastpath::bpfkv
