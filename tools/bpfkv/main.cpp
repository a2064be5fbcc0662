// SPDX-License-Identifier: GPL-2.0
//
// bpfkv: the BPF-KV key-value store.  A B+-tree in one file (or block
// device) whose lookups run through pread, io_uring or XRP, where BPF
// programs in the NVMe completion path walk the tree inside the kernel.
//
//   $ bpfkv create /tmp/kv --layers 3
//   $ bpfkv get /tmp/kv 42 --backend io_uring
//   key  found  agg         value
//   ---  -----  ----------  ----------------------------------
//   42   yes    2753811645  2a00000000000000 bd4b25a4000000...
//   $ bpfkv bench /tmp/kv --backends pread,io_uring,xrp --threads 1,2
//
// See bpf/bpfkv.h for the on-disk format and docs/xrp.md for read_xrp().
#include <iostream>
#include <utility>

#include "commands.h"
#include "fastpath/cli.h"

int main(int argc, char** argv) {
  using namespace fastpath::bpfkv;
  CLI::App app{"bpfkv: B+-tree key-value store with pread, io_uring and XRP back-ends"};
  app.require_subcommand(1);
  std::vector<std::pair<CLI::App*, std::unique_ptr<Command>>> commands;
  for (auto make : {make_create_command, make_info_command, make_get_command, make_range_command, make_agg_command,
                    make_bench_command, make_compare_command}) {
    auto cmd = make();
    CLI::App* sub = cmd->add_to(app);
    commands.emplace_back(sub, std::move(cmd));
  }
  if (const int rc = fastpath::cli::parse(app, argc, argv); rc >= 0) return rc;
  for (auto& [sub, cmd] : commands) {
    if (!sub->parsed()) continue;
    try {
      return cmd->run();
    } catch (const std::invalid_argument& e) {
      fastpath::cli::error("bpfkv", e.what());
      return 2;
    } catch (const std::exception& e) {
      fastpath::cli::error("bpfkv", e.what());
      return 1;
    }
  }
  return 2;
}
