// SPDX-License-Identifier: GPL-2.0
#include "runner.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>


namespace fastpath::rubble {

namespace {

std::string read_first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

}  // namespace

NodeProcess spawn_node(const std::string& binary, const std::vector<std::string>& args, const std::string& log,
                       const std::string& ready_file, double timeout_s) {
  std::filesystem::remove(ready_file);
  NodeProcess p;
  p.log = log;
  p.pid = spawn_process(binary, args, log);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(p.pid, &status, WNOHANG) == p.pid)
      throw std::runtime_error("rubble-node exited during start-up; its log:\n" + log_tail(log));
    p.addr = read_first_line(ready_file);
    if (!p.addr.empty()) return p;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  stop_node(p.pid, 1);
  throw std::runtime_error("rubble-node did not become ready in time; its log:\n" + log_tail(log));
}

int stop_node(pid_t pid, double grace_s) {
  int status = 0;
  if (pid <= 0) return 0;
  ::kill(pid, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(grace_s);
  while (std::chrono::steady_clock::now() < deadline) {
    if (::waitpid(pid, &status, WNOHANG) == pid) return status;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  return status;
}

int run_command(const std::string& binary, const std::vector<std::string>& args, const std::string& log,
                double timeout_s) {
  const pid_t pid = spawn_process(binary, args, log);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  int status = 0;
  while (::waitpid(pid, &status, WNOHANG) != pid) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill_node(pid);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void kill_node(pid_t pid) {
  if (pid <= 0) return;
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
}

std::vector<std::string> Chain::node_args(Role role, const std::string& name, const std::string& next) const {
  std::vector<std::string> a{"--role",       to_string(role),
                             "--listen",     "127.0.0.1:0",
                             "--db",         spec_.dir + "/" + name,
                             "--mode",       to_string(spec_.mode),
                             "--sst-size",   std::to_string(spec_.sst_size),
                             "--ready-file", spec_.dir + "/" + name + ".addr"};
  if (!next.empty()) a.insert(a.end(), {"--next", next});
  if (!spec_.chain_id.empty()) a.insert(a.end(), {"--chain-id", spec_.chain_id});
  if (spec_.mode == Mode::kRubble && role != Role::kHead)
    a.insert(a.end(), {"--pool", pool_path(name), "--pool-slots", std::to_string(spec_.pool_slots)});
  a.insert(a.end(), spec_.extra_args.begin(), spec_.extra_args.end());
  return a;
}

Chain::Chain(ChainSpec spec) : spec_(std::move(spec)) {
  std::filesystem::create_directories(spec_.dir);
  std::vector<std::string> names{"head"};
  for (int i = 1; i < spec_.replicas; ++i)
    names.push_back(spec_.replicas == 2 ? "middle" : "middle" + std::to_string(i));
  names.push_back("tail");
  std::string next;
  std::vector<NodeProcess> started;  // tail first
  try {
    for (std::size_t i = names.size(); i-- > 0;) {
      const Role role = i == 0 ? Role::kHead : i + 1 == names.size() ? Role::kTail : Role::kMiddle;
      auto args = node_args(role, names[i], next);
      if (role == Role::kHead)
        for (std::size_t r = 1; r < names.size(); ++r)
          if (spec_.mode == Mode::kRubble) args.insert(args.end(), {"--replica-pool", pool_path(names[r])});
      if (role == Role::kHead) head_args_ = args;
      auto p = spawn_node(spec_.node_binary, args, spec_.dir + "/" + names[i] + ".log",
                          spec_.dir + "/" + names[i] + ".addr");
      p.role = role;
      p.name = names[i];
      next = p.addr;
      started.push_back(p);
    }
  } catch (...) {
    for (auto& p : started) stop_node(p.pid);
    throw;
  }
  nodes_.assign(started.rbegin(), started.rend());
}

Chain::~Chain() {
  stop();
}

void Chain::stop_node_at(std::size_t i) {
  stop_node(nodes_.at(i).pid);
  nodes_[i].pid = -1;
}

void Chain::restart_head() {
  if (nodes_.at(0).pid > 0) stop_node_at(0);
  auto p = spawn_node(spec_.node_binary, head_args_, spec_.dir + "/head.log", spec_.dir + "/head.addr");
  p.role = Role::kHead;
  p.name = "head";
  nodes_[0] = p;
}

void Chain::kill_node_at(std::size_t i) {
  kill_node(nodes_.at(i).pid);
  nodes_[i].pid = -1;
}

NodeProcess Chain::start_spare(const std::string& name) {
  auto p = spawn_node(spec_.node_binary, node_args(Role::kTail, name, ""), spec_.dir + "/" + name + ".log",
                      spec_.dir + "/" + name + ".addr");
  p.role = Role::kTail;
  p.name = name;
  spares_.push_back(p);
  return p;
}

std::vector<std::string> Chain::addresses() const {
  std::vector<std::string> out;
  for (const auto& p : nodes_) out.push_back(p.addr);
  for (const auto& p : spares_) out.push_back(p.addr);
  return out;
}

void Chain::stop() {
  // Head first, so that replicas do not see a broken chain as a failure.
  for (auto& p : nodes_) {
    stop_node(p.pid);
    p.pid = -1;
  }
  for (auto& p : spares_) {
    stop_node(p.pid);
    p.pid = -1;
  }
}

}  // namespace fastpath::rubble
