// SPDX-License-Identifier: GPL-2.0-only
// One dfused mount: the libfuse session, its worker threads, the lease
// service connection, and the order in which they start and stop.
//
// Start: open the backend -> (connect to dfuse-leased) -> fuse_session_new
// -> fuse_session_mount -> fuse_session_custom_io (our read/writev) ->
// workers -> wait for FUSE_INIT, where the mode is decided.
//
// Each worker: fuse_session_receive_buf -> opcode kOpLease: the lease bridge
// answers it (from its own threads); FUSE_INIT: decide the mode, tell the
// device which bits to add to the reply (or refuse it); anything else:
// fuse_session_process_buf.
//
// Stop (SIGTERM/SIGINT): syncfs of the mount while the workers still serve
// the write-back -> no more lease writes to the device -> lazy unmount ->
// stop and join the workers -> close /dev/fuse (the kernel aborts the
// connection: nothing from this node reaches the backend any more) ->
// LeaseClient::release_all. An external unmount (ENODEV) takes the same
// path without the syncfs.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "device.h"
#include "fastpath/unique_fd.h"
#include "inode_table.h"
#include "lease_bridge.h"
#include "mode.h"
#include "options.h"
#include "passthrough.h"

namespace dfuse::dfused {

class Daemon {
 public:
  // Opens the backend. Throws std::system_error.
  explicit Daemon(const Options& opts);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // With --lease-service: connects and registers. Throws LeaseError.
  void connect_lease_service();

  // Mounts and serves; returns once FUSE_INIT has been answered, with the
  // mode (ok) or why the mount cannot run (then call stop()). Tests pass
  // `device_fd` (one end of a socketpair that plays the kernel) instead of
  // mounting; the session closes it.
  ModeDecision start(int device_fd = -1);
  // Extra facts about the running mount for the startup message.
  const std::string& details() const { return details_; }

  // Serves until a signal arrives on `signal_fd` (a signalfd) or the file
  // system is unmounted from outside; then stops. Returns the exit status.
  int serve(int signal_fd);

  // Stops everything (idempotent); `flush` writes dirty pages back first.
  void stop(bool flush);

 private:
  struct SessionDeleter {
    void operator()(fuse_session* se) const { fuse_session_destroy(se); }
  };

  void worker();
  // A FUSE_INIT request: false when dfused answered (refused) it itself.
  bool on_init(const fuse_buf& buf);
  void after_init();
  void on_lease_request(const fuse_buf& buf);
  void reply_error(uint64_t unique, int err);
  void set_init_result(ModeDecision d);
  void unmount();

  const Options opts_;
  InodeTable inodes_;
  Device device_;
  std::unique_ptr<LeaseBridge> bridge_;  // with --lease-service
  std::unique_ptr<LeaseClient> client_;  // destroyed before bridge_ (its threads call the bridge)
  Filesystem fs_;
  SessionContext ctx_;
  std::unique_ptr<fuse_session, SessionDeleter> se_;
  bool mounted_ = false;
  bool stopped_ = false;
  std::vector<std::thread> workers_;
  fastpath::UniqueFd ended_fd_;  // eventfd: a worker left its loop

  std::mutex init_mu_;
  std::condition_variable init_cv_;
  std::optional<ModeDecision> init_result_;  // protected by init_mu_
  bool worker_ended_ = false;                // protected by init_mu_
  std::atomic<bool> init_seen_{false};       // one worker handles FUSE_INIT
  ModeDecision pending_;                     // the INIT being answered (that worker)
  std::string details_;                      // written before init_result_ is set
  int error_ = 0;                            // a worker's read error, protected by init_mu_
};

}  // namespace dfuse::dfused
