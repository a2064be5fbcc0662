// SPDX-License-Identifier: GPL-2.0
// urdma: a user-space RoCEv2 reliable-connection engine with verbs-shaped objects.
//
// The objects mirror libibverbs: Device (ibv_context), Pd, Mr, Cq and an RC Qp
// with the ibverbs state machine.  Work requests, completions, attributes and
// every enum are rdma-core's own (<infiniband/verbs.h>), so porting verbs code
// is a rename:
//
//   ibv_open_device        -> urdma::Device::open("urdma0", "dpdk:iface=veth1,ip=10.0.0.2")
//   ibv_alloc_pd           -> dev->alloc_pd()
//   ibv_reg_mr             -> pd->reg_mr(buf, len, IBV_ACCESS_LOCAL_WRITE | ...)
//   ibv_create_cq          -> dev->create_cq(depth)
//   ibv_create_qp          -> pd->create_qp({.send_cq = cq, .recv_cq = cq, .cap = {...}})
//   ibv_modify_qp          -> qp->modify(attr, IBV_QP_STATE | ...)
//   ibv_post_send/recv     -> qp->post_send(&wr, &bad) / qp->post_recv(&wr, &bad)
//   ibv_poll_cq            -> cq->poll(n, wc)
//   ibv_req_notify_cq, ibv_get_cq_event, the comp channel fd
//                          -> cq->req_notify(), cq->get_event(), cq->fd()
//
// Threading (as libibverbs): every method may be called from any thread; one
// Qp's post_send calls are serialised internally, as are post_recv and poll.
// Lifetimes: destroy Qps before the Cqs they use and Mrs before their Pd;
// the Device outlives every object made from it.
//
// Each Device runs one engine thread: it plays the NIC (packet I/O, the RC
// transport, retransmission timers, the responder).  It busy-polls while there
// is work and sleeps when idle.
#pragma once

#include <infiniband/verbs.h>
#include <netinet/in.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

namespace urdma {

class Engine;
class PacketIo;
class Pd;
class Cq;
class Qp;
class Mr;

// NIC operations (see bpf/nicop.h): a memory region opts in with this access
// flag; a request is posted with Qp::post_nic_op and completes with
// URDMA_WC_NIC_OP, its status and result in the 16-byte local buffer
// (struct nicop_result).
constexpr int URDMA_ACCESS_NIC_OP = 1 << 28;
constexpr ibv_wc_opcode URDMA_WC_NIC_OP = IBV_WC_DRIVER1;

struct NicOpWr {
  std::uint64_t wr_id = 0;
  std::uint32_t op_id = 0;
  std::uint64_t remote_addr = 0;  // target object: 8-aligned, inside a region with URDMA_ACCESS_NIC_OP
  std::uint32_t rkey = 0;
  std::uint32_t length = 8;  // object length, multiple of 8
  std::uint64_t arg0 = 0, arg1 = 0;
  ibv_sge result{};  // 16 bytes, local write: struct nicop_result
  bool signaled = true;
};

// Counters of one device (monotonic, read without stopping the engine).
struct DeviceStats {
  std::uint64_t rx_packets = 0;         // RoCE packets that passed every check
  std::uint64_t tx_packets = 0;         // RoCE packets handed to the packet I/O
  std::uint64_t rx_bad_icrc = 0;        // dropped: ICRC mismatch
  std::uint64_t rx_malformed = 0;       // dropped: truncated or inconsistent headers
  std::uint64_t rx_unknown_opcode = 0;  // dropped: opcode not supported (as rxe does)
  std::uint64_t rx_no_qp = 0;           // dropped: destination QP missing or not ready
  std::uint64_t retransmits = 0;        // go-back-N restarts (timeout or NAK)
  std::uint64_t naks_sent = 0;
  std::uint64_t rnr_naks_sent = 0;
  std::uint64_t duplicates = 0;      // duplicate requests answered or re-ACKed
  std::uint64_t engine_busy_ns = 0;  // engine thread CPU time so far, sleeps and wake-ups included
  std::uint64_t engine_wakeups = 0;  // times the engine left its idle sleep
};

// What create_qp needs (the urdma twin of ibv_qp_init_attr, RC only).
struct QpInitAttr {
  Cq* send_cq = nullptr;
  Cq* recv_cq = nullptr;
  ibv_qp_cap cap{.max_send_wr = 128, .max_recv_wr = 128, .max_send_sge = 4, .max_recv_sge = 4, .max_inline_data = 256};
  bool sq_sig_all = false;
};

class Device {
 public:
  // Opens a device.  spec is "BACKEND:key=value,...":
  //   udp:ip=A.B.C.D             kernel UDP socket on port 4791 bound to that address
  //   dpdk:iface=IF,ip=A.B.C.D   DPDK 22.11, net_af_packet on Linux interface IF (no hugepages)
  //   dpdk:dev=DEVARGS,ip=...    any DPDK port by its device arguments (e.g. net_tap0,iface=t0)
  // common keys: mtu=BYTES (link MTU, default 1500 -> active_mtu 1024),
  //   drop=P, dup=P, reorder=P, corrupt=P, seed=N   (fault injection on receive, P in [0,1])
  //   spin_us=N   how long the engine polls after its last work before it sleeps (default 0)
  //   keepalive_ms=N  see set_nic_op_keepalive (default 500)
  // Throws std::runtime_error whose message names the cause and the fix
  // (interface missing, no permission for a raw socket, address in use, ...).
  static std::unique_ptr<Device> open(const std::string& name, const std::string& spec);
  // Same, over a packet I/O the caller built (tests: a simulated link).
  static std::unique_ptr<Device> open(const std::string& name, std::unique_ptr<PacketIo> io, std::uint32_t spin_us = 0);
  ~Device();
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  const std::string& name() const;
  // One-line description of the packet I/O back-end ("dpdk net_af_packet iface=veth1 ...").
  std::string backend() const;
  in_addr ip() const;
  // The RoCEv2 GID: ::ffff:A.B.C.D (what rxe lists at GID index 1).
  ibv_gid gid() const;
  ibv_mtu active_mtu() const;
  // max_qp, max_qp_wr, max_sge, max_qp_rd_atom, max_qp_init_rd_atom, max_mr_size,
  // max_cqe, atomic_cap (IBV_ATOMIC_HCA), vendor_id, fw_ver filled in.
  const ibv_device_attr& attr() const;
  DeviceStats stats() const;
  // stats().rx_packets alone, without the system call stats() makes for the
  // engine thread's CPU time (for loops that look often).
  std::uint64_t rx_packets() const;
  // The packet I/O back-end's own counters (ARP, frames the link layer
  // dropped, e.g. the af_packet ring's port_rx_missed), by name.
  std::map<std::string, std::uint64_t> io_counters() const;

  // Lends the calling thread to the device for one pass (receive, timers,
  // transmit), as a CQ poll that finds nothing does.  For a loop that spins
  // on memory the peer writes (ib_write_lat) instead of on a CQ: call it in
  // the loop and packets move without waking the engine thread.
  void progress() const;
  // A QP that holds NIC-operation state (a lock held, a request parked) and
  // has heard nothing from its peer for `ms` probes the peer (a NIC
  // operation its transport answers); a peer that stays silent through the
  // QP's retries (at most 7, whatever retry_cnt says) is dead: the QP enters
  // ERROR and what it held is released (VOLT: the next waiter is granted,
  // told LOCK_INTERRUPTED).  A killed process never says goodbye; this is
  // how the NIC finds out.  0 turns it off.
  void set_nic_op_keepalive(std::uint32_t ms);
  std::unique_ptr<Pd> alloc_pd();
  // cqe: capacity.  A CQ overrun puts the QPs using it into ERROR.
  std::unique_ptr<Cq> create_cq(int cqe);

  // NIC operations run by this device's responder.  load_nic_op loads ELF
  // section `section` of `path` (an eBPF object built from bpf/*.bpf.c) as
  // operation op_id; parked requests older than timeout_ms (0 = never) are
  // answered NICOP_ST_TIMEOUT.  Throws std::runtime_error with the reason
  // (file, section, or librte_bpf's validator's verdict).
  void load_nic_op(std::uint32_t op_id, const std::string& path, const std::string& section = "nicop",
                   std::uint32_t timeout_ms = 0);
  // Parked requests of the operation are answered NICOP_ST_UNLOADED.
  void unload_nic_op(std::uint32_t op_id);

  Engine& engine() { return *engine_; }

 private:
  Device() = default;
  std::unique_ptr<Engine> engine_;
};

class Pd {
 public:
  ~Pd();
  // access: IBV_ACCESS_LOCAL_WRITE | REMOTE_WRITE | REMOTE_READ | REMOTE_ATOMIC.
  // Throws std::invalid_argument for a null/empty range or unknown flags
  // (remote write or atomic without local write, as ibv_reg_mr refuses).
  std::unique_ptr<Mr> reg_mr(void* addr, std::size_t length, int access);
  // Throws std::invalid_argument when a CQ is missing or a cap exceeds the device's.
  std::unique_ptr<Qp> create_qp(const QpInitAttr& init);
  Engine& engine() { return engine_; }

 private:
  friend class Device;
  explicit Pd(Engine& e) : engine_(e) {}
  Engine& engine_;
};

class Mr {
 public:
  ~Mr();
  std::uint32_t lkey() const { return key_; }
  std::uint32_t rkey() const { return key_; }
  void* addr() const { return addr_; }
  std::size_t length() const { return length_; }
  int access() const { return access_; }

 private:
  friend class Pd;
  Mr(Engine& e, void* a, std::size_t l, int acc, std::uint32_t key)
      : engine_(e), addr_(a), length_(l), access_(acc), key_(key) {}
  Engine& engine_;
  void* addr_;
  std::size_t length_;
  int access_;
  std::uint32_t key_;
};

class CqImpl;
class Cq {
 public:
  ~Cq();
  // Up to n completions, oldest first; returns how many (0 when empty).  A
  // poll that finds the CQ empty lends the calling thread to the device for
  // one pass (see Engine::progress): a thread that spins on poll() moves its
  // own packets, as the kernel does for rxe inside the system call.
  int poll(int n, ibv_wc* wc);
  // Arms the CQ: the next completion added makes fd() readable (once).
  void req_notify();
  // A file descriptor (an eventfd) for poll/epoll: readable after an armed CQ
  // received a completion.  Owned by the Cq.
  int fd() const;
  // Consumes the event behind fd() (blocks until one arrives when block=true).
  // Returns false if none was pending (block=false) or on timeout.
  bool get_event(int timeout_ms = -1);
  // Convenience: poll, and if empty arm + wait + poll again, until n>0 or the
  // timeout (ms, -1 = forever) expires.  Returns the count (0 on timeout).
  int wait(int n, ibv_wc* wc, int timeout_ms);
  CqImpl& impl() { return *impl_; }

 private:
  friend class Device;
  Cq(std::unique_ptr<CqImpl> impl, Engine& engine);
  std::unique_ptr<CqImpl> impl_;
  Engine& engine_;
};

class QpImpl;
class Qp {
 public:
  ~Qp();
  std::uint32_t qp_num() const;
  // ibv_modify_qp: IBV_QP_STATE, IBV_QP_ACCESS_FLAGS, IBV_QP_PKEY_INDEX, IBV_QP_PORT,
  // IBV_QP_AV (ah_attr.is_global with grh.dgid = ::ffff:peer-IPv4), IBV_QP_PATH_MTU,
  // IBV_QP_DEST_QPN, IBV_QP_RQ_PSN, IBV_QP_MAX_DEST_RD_ATOMIC, IBV_QP_MIN_RNR_TIMER,
  // IBV_QP_SQ_PSN, IBV_QP_TIMEOUT, IBV_QP_RETRY_CNT, IBV_QP_RNR_RETRY,
  // IBV_QP_MAX_QP_RD_ATOMIC.  Returns 0 or an errno (EINVAL for an illegal
  // transition or a missing required attribute, as the kernel's ib_modify_qp_is_ok).
  int modify(const ibv_qp_attr& attr, int mask);
  int query(ibv_qp_attr& attr) const;
  ibv_qp_state state() const;
  // Why the QP entered ERROR ("" if it did not): e.g. "remote access error (NAK 0x62) for RDMA READ wr_id 7".
  std::string error_reason() const;
  // Transport state in one line (PSNs, queues, timers), for diagnosing a stall.
  std::string debug_state() const;
  // ibv_post_send: IBV_WR_SEND, SEND_WITH_IMM, RDMA_WRITE, RDMA_WRITE_WITH_IMM,
  // RDMA_READ, ATOMIC_CMP_AND_SWP, ATOMIC_FETCH_AND_ADD; IBV_SEND_SIGNALED,
  // IBV_SEND_INLINE, IBV_SEND_FENCE, IBV_SEND_SOLICITED.  Returns 0 or an errno
  // (ENOMEM queue full, EINVAL bad WR or QP state) with *bad set.
  int post_send(ibv_send_wr* wr, ibv_send_wr** bad);
  int post_recv(ibv_recv_wr* wr, ibv_recv_wr** bad);
  // A NIC operation (rides the send queue like an atomic: one PSN, counted
  // against max_rd_atomic).  A peer that does not know NIC operations (rxe)
  // drops it: the WR fails with IBV_WC_RETRY_EXC_ERR after 7 retransmissions
  // whatever retry_cnt says, and error_reason() says so.
  int post_nic_op(const NicOpWr& wr);
  QpImpl& impl() { return *impl_; }

 private:
  friend class Pd;
  explicit Qp(std::unique_ptr<QpImpl> impl);
  std::unique_ptr<QpImpl> impl_;
};

// "IBV_WC_RETRY_EXC_ERR" style names, for messages.
const char* wc_status_str(ibv_wc_status s);
const char* wc_opcode_str(ibv_wc_opcode o);
const char* qp_state_str(ibv_qp_state s);
const char* nicop_status_str(std::uint32_t status);
// Path MTU enum <-> bytes (256..4096); mtu_from_bytes returns 0 for other values.
int mtu_to_bytes(ibv_mtu m);
ibv_mtu mtu_from_bytes(int bytes);

}  // namespace urdma
