// SPDX-License-Identifier: GPL-2.0-only
#include "cli_main.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>

#include "daemon.h"
#include "fastpath/cli.h"
#include "fastpath/unique_fd.h"
#include "options.h"

namespace dfuse::dfused {

namespace {

constexpr const char* kTool = "dfused";

void fail(const std::string& message) {
  fastpath::cli::error(kTool, message);
}

// Each cached inode holds a descriptor: allow as many as the hard limit.
void raise_fd_limit() {
  rlimit r{};
  if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &r);
  }
}

// Without --foreground: the parent waits until the child has mounted (or
// failed) and exits with its status, so `dfused ... && use the mount` works.
// The child keeps the terminal for its startup messages, then lets go of it.
class Detacher {
 public:
  // Returns in the child (or at once with --foreground); the parent exits.
  explicit Detacher(bool foreground) {
    if (foreground) return;
    int p[2];
    if (pipe2(p, O_CLOEXEC) == -1) {
      fail(std::string("pipe: ") + std::strerror(errno));
      std::exit(1);
    }
    const pid_t pid = fork();
    if (pid == -1) {
      fail(std::string("fork: ") + std::strerror(errno));
      std::exit(1);
    }
    if (pid > 0) {
      ::close(p[1]);
      char status = 1;
      const bool got = ::read(p[0], &status, 1) == 1;
      std::_Exit(got && status == 0 ? 0 : 1);
    }
    ::close(p[0]);
    status_fd_ = fastpath::UniqueFd(p[1]);
    setsid();
  }

  // Started: the parent exits 0; our standard streams go to /dev/null.
  void ready() {
    if (!status_fd_) return;
    std::fflush(stdout);
    const char ok = 0;
    (void)!::write(status_fd_.get(), &ok, 1);
    status_fd_.reset();
    fastpath::UniqueFd null(::open("/dev/null", O_RDWR | O_CLOEXEC));
    if (null) {
      ::dup2(null.get(), STDIN_FILENO);
      ::dup2(null.get(), STDOUT_FILENO);
      ::dup2(null.get(), STDERR_FILENO);
    }
    (void)!chdir("/");
  }

 private:
  fastpath::UniqueFd status_fd_;  // child: write end of the status pipe
};

// SIGINT, SIGTERM and SIGHUP are read from a signalfd by the main thread;
// blocked before any thread starts, so every thread inherits the mask.
fastpath::UniqueFd take_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return fastpath::UniqueFd(signalfd(-1, &set, SFD_CLOEXEC));
}

}  // namespace

int cli_main(int argc, char** argv) {
  CLI::App app{
      "dfused: the DFUSE node daemon. Serves a backend directory that every node reaches through FUSE, one "
      "daemon per node and mount; in lease mode the kernel caches data under leases from dfuse-leased.",
      kTool};
  Options opts;
  add_options(app, opts);
  if (const int rc = fastpath::cli::parse(app, argc, argv); rc >= 0) return rc;
  if (const auto err = check_options(opts); !err.empty()) {
    fail(err);
    return 1;
  }
  umask(0);  // the kernel applied the caller's umask already
  raise_fd_limit();

  Detacher detacher(opts.foreground);
  const auto signal_fd = take_signals();
  if (!signal_fd) {
    fail(std::string("signalfd: ") + std::strerror(errno));
    return 1;
  }
  try {
    Daemon daemon(opts);
    try {
      daemon.connect_lease_service();
    } catch (const LeaseError& e) {
      fail(std::string("lease service: ") + e.what() + " (check --lease-service, or start dfuse-leased there)");
      return 1;
    }
    const ModeDecision d = daemon.start();
    if (!d.ok) {
      fail(d.why);
      daemon.stop(false);
      return 1;
    }
    std::cout << "dfused: serving " << opts.backend << " on " << opts.mountpoint << " in " << mode_name(d.mode)
              << " mode (" << d.why << "); " << daemon.details() << std::endl;
    detacher.ready();
    return daemon.serve(signal_fd.get());
  } catch (const std::exception& e) {
    fail(e.what());
    return 1;
  }
}

}  // namespace dfuse::dfused
