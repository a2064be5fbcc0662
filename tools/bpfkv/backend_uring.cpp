// SPDX-License-Identifier: GPL-2.0
// io_uring back-end: the reads of one step of every lookup in a batch (or
// the value blocks of a leaf) are in flight together, up to queue_depth.
#include <liburing.h>

#include <cerrno>
#include <cstring>

#include "tree.h"

namespace fastpath::bpfkv {

namespace {

class Ring {
 public:
  Ring(unsigned depth, const std::string& path) {
    const int rc = io_uring_queue_init(depth, &ring_, 0);
    if (rc < 0)
      throw Error(path + ": io_uring_queue_init: " + std::strerror(-rc) +
                  (rc == -EPERM ? " (io_uring disabled? see /proc/sys/kernel/io_uring_disabled)" : ""));
  }
  ~Ring() { io_uring_queue_exit(&ring_); }
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;
  io_uring* get() { return &ring_; }

 private:
  io_uring ring_{};
};

class UringReader : public BlockReader {
 public:
  UringReader(const DbFile& db, unsigned depth) : db_(db), depth_(depth), ring_(depth, db.path()) {}

  void read(std::span<const ReadReq> reqs, BackendStats& stats) override {
    std::size_t next = 0, inflight = 0, done = 0;
    std::string error;  // the first failure; reported once nothing is in flight
    while (done < reqs.size()) {
      while (error.empty() && next < reqs.size() && inflight < depth_) {
        io_uring_sqe* sqe = io_uring_get_sqe(ring_.get());
        io_uring_prep_read(sqe, db_.fd(), reqs[next].buf, reqs[next].len, reqs[next].off);
        sqe->user_data = next++;
        ++inflight;
      }
      if (inflight == 0) break;
      const int rc = io_uring_submit_and_wait(ring_.get(), 1);
      ++stats.syscalls;
      if (rc < 0 && rc != -EINTR) throw Error(db_.path() + ": io_uring_submit: " + std::strerror(-rc));
      const unsigned seen = reap(reqs, error);
      inflight -= seen;
      done += seen;
      stats.reads += seen;
    }
    if (!error.empty()) throw Error(error);
  }

 private:
  unsigned reap(std::span<const ReadReq> reqs, std::string& error) {
    unsigned head, seen = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(ring_.get(), head, cqe) {
      const ReadReq& r = reqs[cqe->user_data];
      if (error.empty() && cqe->res < 0)
        error = db_.path() + ": read of " + std::to_string(r.len) + " bytes at offset " + std::to_string(r.off) + ": " +
                std::strerror(-cqe->res);
      else if (error.empty() && static_cast<std::uint32_t>(cqe->res) != r.len)
        error = db_.path() + ": truncated: read of " + std::to_string(r.len) + " bytes at offset " +
                std::to_string(r.off) + " returned " + std::to_string(cqe->res);
      ++seen;
    }
    io_uring_cq_advance(ring_.get(), seen);
    return seen;
  }

  const DbFile& db_;
  unsigned depth_;
  Ring ring_;
};

}  // namespace

std::unique_ptr<Backend> make_uring_backend(const DbFile& db, const BackendOptions& opts) {
  const unsigned depth = std::max(1u, opts.queue_depth);
  return std::make_unique<TreeBackend>(db, std::make_unique<UringReader>(db, depth), "io_uring", depth);
}

}  // namespace fastpath::bpfkv
