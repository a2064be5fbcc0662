// SPDX-License-Identifier: GPL-2.0-only
#include "daemon.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <system_error>

#include "lease_connect.h"
#include "log.h"

namespace dfuse::dfused {

namespace {

constexpr double kLeaseAttrTimeout = 1.0;  // the attribute timeout of lease and writeback modes
constexpr auto kInitTimeout = std::chrono::seconds(10);

fastpath::UniqueFd open_backend(const std::string& path) {
  fastpath::UniqueFd fd(::open(path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!fd) throw std::system_error(errno, std::generic_category(), "open backend directory " + path);
  return fd;
}

std::string default_node_id() {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) std::strcpy(host, "localhost");
  return std::string(host) + ":" + std::to_string(getpid());
}

// "a,b" -> "a\,b": libfuse's option parser splits on unescaped commas.
std::string escape_option(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == ',' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

ssize_t io_read(int fd, void* buf, size_t len, void* userdata) {
  return static_cast<SessionContext*>(userdata)->device->io_read(fd, buf, len);
}

ssize_t io_writev(int fd, iovec* iov, int count, void* userdata) {
  return static_cast<SessionContext*>(userdata)->device->io_writev(fd, iov, count);
}

}  // namespace

Daemon::Daemon(const Options& opts)
    : opts_(opts),
      inodes_(open_backend(opts.backend)),
      bridge_(opts.lease_service.empty()
                  ? nullptr
                  : std::make_unique<LeaseBridge>(
                        inodes_, [this](const iovec* iov, int count) { return device_.write(iov, count); },
                        kLeaseAttrTimeout)),
      fs_(inodes_, bridge_.get()),
      ended_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  if (!ended_fd_) throw std::system_error(errno, std::generic_category(), "eventfd");
  ctx_.fs = &fs_;
  ctx_.device = &device_;
}

Daemon::~Daemon() {
  stop(false);
}

void Daemon::connect_lease_service() {
  if (!bridge_) return;
  LeaseClientOptions o;
  o.address = opts_.lease_service;
  o.node_id = opts_.node_id.empty() ? default_node_id() : opts_.node_id;
  o.unreachable_timeout = opts_.lease_timeout;
  o.log = [](const std::string& line) { logf("%s", line.c_str()); };
  LeaseBridge* bridge = bridge_.get();
  client_ = connect_lease_client(o, [bridge](const Revoke& r) { bridge->handle_revoke(r); });
  bridge_->set_client(client_.get());
}

ModeDecision Daemon::start(int device_fd) {
  std::vector<std::string> args = {"dfused", "-o",
                                   "fsname=dfused:" + escape_option(opts_.backend) +
                                       ",subtype=dfused,default_permissions" + (geteuid() == 0 ? ",allow_other" : "")};
  for (const auto& o : opts_.fuse_options) {
    args.push_back("-o");
    args.push_back(o);
  }
  if (opts_.debug) args.push_back("-d");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  fuse_args fargs = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  se_.reset(fuse_session_new(&fargs, &Filesystem::ops(), sizeof(fuse_lowlevel_ops), &ctx_));
  fuse_opt_free_args(&fargs);
  if (!se_) return {false, Mode::kAuto, "libfuse refused the session options (its message is above); check -o"};

  if (device_fd < 0) {
    if (fuse_session_mount(se_.get(), opts_.mountpoint.c_str()) != 0)
      return {false, Mode::kAuto, "mounting on " + opts_.mountpoint + " failed (libfuse's message is above)"};
    mounted_ = true;
  }

  static const fuse_custom_io kIo = {
      .writev = io_writev,
      .read = io_read,
      .splice_receive = nullptr,
      .splice_send = nullptr,
  };
  const int fd = device_fd < 0 ? fuse_session_fd(se_.get()) : device_fd;
  if (const int r = fuse_session_custom_io(se_.get(), &kIo, fd); r != 0)
    return {false, Mode::kAuto, std::string("fuse_session_custom_io: ") + std::strerror(-r)};
  device_.attach(fd);

  for (unsigned i = 0; i < opts_.threads; ++i) {
    workers_.emplace_back([this] { worker(); });
    pthread_setname_np(workers_.back().native_handle(), ("dfused-w" + std::to_string(i)).c_str());
  }

  std::unique_lock lock(init_mu_);
  // Once a worker took FUSE_INIT, it sets the result whatever happens.
  if (!init_cv_.wait_for(lock, kInitTimeout,
                         [this] { return init_result_.has_value() || (worker_ended_ && !init_seen_.load()); }))
    return {false, Mode::kAuto, "the kernel sent no FUSE_INIT within 10 s"};
  if (!init_result_) return {false, Mode::kAuto, "the FUSE connection ended before FUSE_INIT was answered"};
  ModeDecision d = *init_result_;
  lock.unlock();

  if (d.ok && d.mode != Mode::kLease && client_) {
    // auto fell back: this mount never asks for leases.
    bridge_->stop();
    bridge_->set_client(nullptr);
    client_.reset();
  }
  return d;
}

void Daemon::set_init_result(ModeDecision d) {
  {
    std::lock_guard lock(init_mu_);
    if (!init_result_) init_result_ = std::move(d);
  }
  init_cv_.notify_all();
}

void Daemon::worker() {
  fuse_buf buf{};
  struct FreeMem {
    fuse_buf& b;
    ~FreeMem() { std::free(b.mem); }
  } free_mem{buf};
  fuse_session* se = se_.get();
  int error = 0;
  while (!fuse_session_exited(se)) {
    const int res = fuse_session_receive_buf(se, &buf);
    if (res == -EINTR || res == -EAGAIN) continue;
    if (res <= 0) {
      error = res;
      break;
    }
    if (buf.flags & FUSE_BUF_IS_FD) {  // splice is never negotiated; keep the invariant visible
      logf("request arrived in a pipe; dfused cannot read its opcode");
      error = -EIO;
      break;
    }
    const auto* in = static_cast<const fuse_in_header*>(buf.mem);
    if (in->opcode == abi::kOpLease) {
      on_lease_request(buf);
      continue;
    }
    if (in->opcode == FUSE_INIT && !init_seen_.exchange(true)) {
      if (!on_init(buf)) continue;
      fuse_session_process_buf(se, &buf);
      after_init();
      continue;
    }
    // libfuse calls the operation on this thread, before returning.
    Filesystem::note_request(buf.mem, buf.size);
    fuse_session_process_buf(se, &buf);
  }
  fuse_session_exit(se);
  device_.stop();  // wake the other workers
  {
    std::lock_guard lock(init_mu_);
    worker_ended_ = true;
    if (error < 0 && error_ == 0) error_ = error;
  }
  init_cv_.notify_all();
  const uint64_t one = 1;
  (void)!::write(ended_fd_.get(), &one, sizeof(one));
}

bool Daemon::on_init(const fuse_buf& buf) {
  const auto* in = static_cast<const fuse_in_header*>(buf.mem);
  const auto offer = parse_init_request(buf.mem, buf.size);
  if (!offer) return true;  // malformed: libfuse answers it
  ModeDecision d = decide_mode(opts_.mode, offer->leases(), client_ != nullptr);
  if (!d.ok) {
    reply_error(in->unique, EPROTO);
    set_init_result(std::move(d));  // before the workers end: start() reports this, not "connection ended"
    fuse_session_exit(se_.get());
    device_.stop();
    return false;
  }
  FsConfig config = config_for(d.mode);
  // Not in lease mode: the kernel's lease write path caches a write to a
  // set-ID file, and under v2 its privilege removal sends no new mode; there
  // the kernel clears the bits itself (fuse_setattr() without killpriv).
  config.kill_suidgid = d.mode != Mode::kLease && offer->handle_killpriv_v2();
  fs_.configure(config);
  InitAccept accept;
  accept.leases = d.mode == Mode::kLease;
  accept.handle_killpriv_v2 = config.kill_suidgid;
  accept.direct_io_allow_mmap = fs_.config().direct_io && offer->direct_io_allow_mmap();
  device_.expect_init(in->unique, accept);
  details_ = "FUSE " + std::to_string(offer->major) + "." + std::to_string(offer->minor);
  if (fs_.config().direct_io)
    details_ += accept.direct_io_allow_mmap
                    ? "; shared mmap: yes (FUSE_DIRECT_IO_ALLOW_MMAP)"
                    : "; shared mmap: no (the kernel lacks FUSE_DIRECT_IO_ALLOW_MMAP, Linux < 6.6: MAP_SHARED "
                      "mmap of files fails with ENODEV in writethrough mode)";
  pending_ = std::move(d);
  return true;
}

void Daemon::after_init() {
  if (fuse_session_exited(se_.get()) || !device_.init_replied())
    return set_init_result({false, pending_.mode, "libfuse refused FUSE_INIT (its message is above)"});
  set_init_result(pending_);
}

void Daemon::reply_error(uint64_t unique, int err) {
  fuse_out_header out{};
  out.len = sizeof(out);
  out.error = -err;
  out.unique = unique;
  const iovec iov{&out, sizeof(out)};
  (void)device_.write(&iov, 1);
}

void Daemon::on_lease_request(const fuse_buf& buf) {
  const auto* in = static_cast<const fuse_in_header*>(buf.mem);
  if (!bridge_ || fs_.config().mode != Mode::kLease) return reply_error(in->unique, ENOSYS);
  if (buf.size < sizeof(fuse_in_header) + sizeof(abi::LeaseIn)) return reply_error(in->unique, EINVAL);
  abi::LeaseIn arg;
  std::memcpy(&arg, static_cast<const char*>(buf.mem) + sizeof(fuse_in_header), sizeof(arg));
  bridge_->submit_request(in->unique, in->nodeid, arg);
}

int Daemon::serve(int signal_fd) {
  pollfd fds[2] = {{signal_fd, POLLIN, 0}, {ended_fd_.get(), POLLIN, 0}};
  for (;;) {
    if (poll(fds, 2, -1) == -1) {
      if (errno == EINTR) continue;
      logf("poll: %s", std::strerror(errno));
      break;
    }
    if (fds[0].revents & POLLIN) {
      signalfd_siginfo si{};
      if (::read(signal_fd, &si, sizeof(si)) == sizeof(si))
        logf("%s: flushing, unmounting %s", strsignal(static_cast<int>(si.ssi_signo)), opts_.mountpoint.c_str());
      stop(true);
      break;
    }
    if (fds[1].revents & POLLIN) {
      logf("%s was unmounted; exiting", opts_.mountpoint.c_str());
      stop(false);
      break;
    }
  }
  std::lock_guard lock(init_mu_);
  if (error_ < 0) {
    logf("reading /dev/fuse: %s", std::strerror(-error_));
    return 1;
  }
  return 0;
}

void Daemon::unmount() {
  if (!mounted_) return;
  mounted_ = false;
  if (geteuid() == 0) {
    if (umount2(opts_.mountpoint.c_str(), MNT_DETACH) == -1 && errno != EINVAL && errno != ENOENT)
      logf("unmounting %s: %s", opts_.mountpoint.c_str(), std::strerror(errno));
    return;
  }
  const char* argv[] = {"fusermount3", "-u", "-q", "-z", "--", opts_.mountpoint.c_str(), nullptr};
  pid_t pid = 0;
  if (posix_spawnp(&pid, "fusermount3", nullptr, nullptr, const_cast<char* const*>(argv), environ) != 0) {
    logf("cannot run fusermount3 to unmount %s", opts_.mountpoint.c_str());
    return;
  }
  int status = 0;
  (void)waitpid(pid, &status, 0);
}

void Daemon::stop(bool flush) {
  if (stopped_) return;
  stopped_ = true;
  if (flush && mounted_ && se_ && !fuse_session_exited(se_.get())) {
    // Dirty pages go to the backend while the workers still serve.
    fastpath::UniqueFd root(::open(opts_.mountpoint.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!root || syncfs(root.get()) == -1) logf("syncfs of %s: %s", opts_.mountpoint.c_str(), std::strerror(errno));
  }
  // Revokes in progress finish while the workers serve their write-back.
  if (bridge_) bridge_->close_device();
  unmount();
  if (se_) fuse_session_exit(se_.get());
  device_.stop();
  for (auto& t : workers_) t.join();
  workers_.clear();
  // Closes /dev/fuse: the kernel aborts the connection if still mounted
  // lazily, so nothing from this node reaches the backend from here on.
  se_.reset();
  if (bridge_) bridge_->stop();
  if (client_) {
    try {
      client_->release_all();
    } catch (const std::exception& e) {
      logf("releasing leases: %s", e.what());
    }
    bridge_->set_client(nullptr);
    client_.reset();
  }
}

}  // namespace dfuse::dfused
