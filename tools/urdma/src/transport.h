// SPDX-License-Identifier: GPL-2.0
// The RC transport of one QP: requester (segmentation, PSNs, ACK processing,
// go-back-N retransmission, RNR waits) and responder (PSN checks, placement,
// READ/atomic responder resources, duplicate handling, NAKs).
//
// Application threads post work under mu_; the engine thread processes
// received packets and transmits under mu_ as well.
#pragma once

#include <infiniband/verbs.h>

#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "engine.h"
#include "wire.h"

namespace urdma {

class CqImpl {
 public:
  explicit CqImpl(int capacity);
  // Engine/QP side.  Returns false when the CQ is full (overrun).
  bool push(const ibv_wc& wc);
  int poll(int n, ibv_wc* wc);
  void req_notify();
  bool armed() {
    std::lock_guard lk(mu_);
    return armed_;
  }
  int fd() const { return event_fd_.get(); }
  bool get_event(int timeout_ms);

 private:
  std::mutex mu_;
  std::deque<ibv_wc> q_;
  std::size_t capacity_;
  bool armed_ = false;
  fastpath::UniqueFd event_fd_;
};

// A scatter/gather list resolved to host pointers.
struct SgList {
  struct Seg {
    std::uint8_t* p;
    std::uint32_t len;
  };
  std::vector<Seg> segs;
  std::uint64_t length = 0;
  void copy_out(std::uint64_t off, std::uint8_t* dst, std::size_t len) const;  // list -> dst
  void copy_in(std::uint64_t off, const std::uint8_t* src, std::size_t len);   // src -> list
};

struct SendWqe {
  std::uint64_t wr_id = 0;
  ibv_wr_opcode opcode = IBV_WR_SEND;
  unsigned flags = 0;
  bool signaled = false;
  SgList sg;
  std::vector<std::uint8_t> inline_data;  // IBV_SEND_INLINE: copied at post time
  std::uint64_t remote_addr = 0;
  std::uint32_t rkey = 0;
  std::uint32_t imm = 0;  // network order
  std::uint64_t compare_add = 0, swap = 0;
  // NIC operation (opcode IBV_WR_DRIVER1): object length, operation, arguments.
  std::uint32_t op_id = 0, obj_len = 0;
  std::uint64_t arg0 = 0, arg1 = 0;
  bool parked = false;    // the responder accepted it and will answer later
  bool internal = false;  // the transport's own (keep-alive): never completed to a CQ
  // Transmission state.
  bool started = false, done = false;
  std::uint32_t first_psn = 0, last_psn = 0, npkts = 0;
  std::uint32_t resp_pkts = 0;  // READ: response packets received in order
  ibv_wc_status status = IBV_WC_SUCCESS;
  bool is_read() const { return opcode == IBV_WR_RDMA_READ; }
  bool is_atomic() const { return opcode == IBV_WR_ATOMIC_CMP_AND_SWP || opcode == IBV_WR_ATOMIC_FETCH_AND_ADD; }
  bool is_nicop() const { return opcode == IBV_WR_DRIVER1; }
  // Answered by a response of its own (not by a plain ACK); one PSN per request
  // except READ; counted against max_rd_atomic.
  bool needs_response() const { return is_read() || is_atomic() || is_nicop(); }
  bool single_psn() const { return is_atomic() || is_nicop(); }
  std::uint64_t length() const { return inline_data.empty() ? sg.length : inline_data.size(); }
};

struct RecvWqe {
  std::uint64_t wr_id = 0;
  SgList sg;
};

// What the responder sends, in PSN order: ACKs, atomic ACKs and READ responses.
struct RespItem {
  enum Kind { kAck, kAtomicAck, kRead, kNicOpAck } kind = kAck;
  std::uint32_t psn = 0;
  std::uint8_t syndrome = 0;
  std::uint64_t orig = 0;    // atomic: original value; NIC op: result
  std::uint32_t status = 0;  // NIC op
  // kRead: next packet's PSN, bytes left and where they come from.
  const std::uint8_t* src = nullptr;
  std::uint64_t remaining = 0;
  std::uint32_t npkts = 0, sent = 0;
};

// A READ or atomic the responder executed, kept to answer duplicates.
struct Resource {
  bool atomic = false;
  bool nicop = false, parked = false;
  std::uint32_t status = 0;  // NIC op answer (result in orig)
  std::uint32_t first_psn = 0, last_psn = 0;
  std::uint64_t va = 0, len = 0;
  std::uint32_t rkey = 0;
  const std::uint8_t* base = nullptr;
  std::uint64_t orig = 0;
};

class QpImpl {
 public:
  QpImpl(Engine& e, const QpInitAttr& init);
  ~QpImpl();
  std::uint32_t qpn() const { return qpn_; }

  int modify(const ibv_qp_attr& attr, int mask);
  int query(ibv_qp_attr& attr) const;
  ibv_qp_state state() const;
  std::string error_reason() const;
  std::string debug_state() const;
  int post_send(ibv_send_wr* wr, ibv_send_wr** bad);
  int post_recv(ibv_recv_wr* wr, ibv_recv_wr** bad);
  int post_nic_op(const NicOpWr& wr);

  // Engine thread.
  // A parked NIC-operation request (PSN psn) got its answer.
  void deliver_nicop_answer(std::uint32_t psn, std::uint32_t status, std::uint64_t result);
  void on_packet(const wire::Packet& p, std::uint64_t now);
  // Transmits what is due (bounded burst); returns true if it did any work and
  // lowers next_deadline to this QP's next timer.
  bool service(std::uint64_t now, std::uint64_t& next_deadline);

 private:
  // Requester.
  int check_send_wr(const ibv_send_wr& wr, SendWqe& out);
  bool transmit_next(std::uint64_t now);
  void send_request_packet(SendWqe& w, std::uint32_t idx);
  void on_ack(std::uint32_t psn, std::uint64_t now);
  bool advance_una(std::uint32_t to);
  void on_response(const wire::Packet& p, std::uint64_t now);
  void on_read_response(const wire::Packet& p, SendWqe& w, std::uint64_t now);
  void go_back(std::uint32_t psn, bool count_retry, bool rnr, std::uint64_t now);
  void complete_front();
  SendWqe* find_wqe(std::uint32_t psn);
  void arm_timer(std::uint64_t now);

  // Responder.
  void on_request(const wire::Packet& p);
  void on_duplicate(const wire::Packet& p);
  bool on_send(const wire::Packet& p);
  bool on_write(const wire::Packet& p);
  bool on_read(const wire::Packet& p);
  bool on_atomic(const wire::Packet& p);
  bool on_nicop(const wire::Packet& p);
  void on_nicop_response(const wire::Packet& p, SendWqe& w, std::uint64_t now);
  void probe_parked(std::uint64_t now);
  void keep_alive(std::uint64_t now);
  void queue_ack(std::uint32_t psn);
  void send_nak(std::uint8_t syndrome, std::uint32_t psn);
  void fatal_nak(std::uint8_t syndrome, std::uint32_t psn, const std::string& why);
  bool drain_responses(int budget);
  void add_resource(const Resource& r);
  bool complete_recv(ibv_wc_opcode op, std::uint64_t byte_len, bool imm, std::uint32_t imm_data);

  // State.
  void enter_error(const std::string& why);
  void note_dead();
  void flush_all();
  void push_cqe(CqImpl& cq, const ibv_wc& wc);
  void push_error(CqImpl& cq, std::uint64_t wr_id, ibv_wc_status status, ibv_wc_opcode opcode);
  void reset_queues();
  std::uint32_t mtu() const { return static_cast<std::uint32_t>(mtu_to_bytes(path_mtu_)); }
  std::uint64_t timeout_ns() const;

  Engine& engine_;
  CqImpl& send_cq_;
  CqImpl& recv_cq_;
  const ibv_qp_cap cap_;
  const bool sq_sig_all_;
  std::uint32_t qpn_ = 0;

  mutable std::mutex mu_;
  ibv_qp_state state_ = IBV_QPS_RESET;
  std::string error_reason_;
  // Attributes.
  int access_ = 0;
  ibv_mtu path_mtu_ = IBV_MTU_1024;
  std::uint32_t dest_qpn_ = 0;
  std::uint32_t remote_ip_ = 0;  // network order
  bool resolve_asked_ = false;   // the packet I/O was told remote_ip_ (first pass in RTR)
  ibv_ah_attr ah_{};
  std::uint8_t timeout_ = 14, retry_cnt_ = 7, rnr_retry_ = 7, min_rnr_timer_ = 12;
  std::uint8_t max_rd_atomic_ = 1, max_dest_rd_atomic_ = 1;
  std::uint32_t sq_psn_ = 0, rq_psn_ = 0;

  // Requester state.
  std::deque<SendWqe> sq_;
  std::size_t send_idx_ = 0;    // sq_ index of the WQE being transmitted
  std::uint32_t send_pkt_ = 0;  // its next packet
  std::uint32_t next_psn_ = 0;  // PSN of the next new packet
  std::uint32_t una_psn_ = 0;   // oldest PSN not acknowledged
  std::uint32_t last_ackreq_psn_ = 0;
  unsigned rd_atomic_out_ = 0;
  std::uint8_t retry_left_ = 7, rnr_left_ = 7;
  std::uint64_t timer_deadline_ = 0;  // 0: disarmed
  std::uint64_t rnr_until_ = 0;
  bool retry_pending_ = false;  // a retransmission was asked for by a NAK: once per ACK
  std::uint64_t probe_at_ = 0;  // next probe of a parked NIC op (0: none parked)
  unsigned probes_unanswered_ = 0;
  unsigned nicop_tries_ = 0;           // retransmissions of a NIC op never acknowledged
  std::uint64_t last_rx_ = 0;          // when the peer was last heard from
  std::uint64_t keepalive_check_ = 0;  // next look at whether to probe it
  bool keepalive_out_ = false;         // a keep-alive probe is in the send queue

  // Responder state.
  std::uint32_t epsn_ = 0, msn_ = 0;
  std::deque<RecvWqe> rq_;
  enum class InMsg { kNone, kSend, kWrite } in_msg_ = InMsg::kNone;
  std::uint64_t in_off_ = 0;  // bytes placed so far in the current message
  std::uint8_t* write_ptr_ = nullptr;
  std::uint64_t write_left_ = 0, write_len_ = 0;
  bool nak_sent_ = false;
  std::deque<RespItem> resp_;
  std::deque<Resource> resources_;
};

}  // namespace urdma
