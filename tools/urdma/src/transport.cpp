// SPDX-License-Identifier: GPL-2.0
// RC transport (IBA Vol 1 ch. 9.7), behaving on the wire as Linux rxe 6.1 does
// (see ../shared/reference/urdma-facts.md section 3 for what rxe checks).
#include "transport.h"

#include <poll.h>
#include <sys/eventfd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace urdma {
namespace {

constexpr std::uint32_t kWindow = 128;      // unacknowledged PSNs in flight (rxe: RXE_MAX_UNACKED_PSNS)
constexpr std::uint32_t kAckReqEvery = 32;  // AckReq at least this often inside long messages
constexpr int kBurst = 32;                  // packets per QP per engine pass

// IBA RNR timer encoding (rxe_comp.c rnrnak_usec), microseconds.
constexpr std::uint32_t kRnrUsec[32] = {
    655360, 10,   20,   30,   40,    60,    80,    120,   160,   240,   320,   480,    640,    960,    1280,   1920,
    2560,   3840, 5120, 7680, 10240, 15360, 20480, 30720, 40960, 61440, 81920, 122880, 163840, 245760, 327680, 491520};

const char* wr_name(ibv_wr_opcode op) {
  switch (op) {
    case IBV_WR_SEND:
      return "SEND";
    case IBV_WR_SEND_WITH_IMM:
      return "SEND_WITH_IMM";
    case IBV_WR_RDMA_WRITE:
      return "RDMA_WRITE";
    case IBV_WR_RDMA_WRITE_WITH_IMM:
      return "RDMA_WRITE_WITH_IMM";
    case IBV_WR_RDMA_READ:
      return "RDMA_READ";
    case IBV_WR_ATOMIC_CMP_AND_SWP:
      return "ATOMIC_CMP_AND_SWP";
    case IBV_WR_ATOMIC_FETCH_AND_ADD:
      return "ATOMIC_FETCH_AND_ADD";
    case IBV_WR_DRIVER1:
      return "NIC_OP";
    default:
      return "unsupported";
  }
}

ibv_wc_opcode wc_opcode_of(ibv_wr_opcode op) {
  switch (op) {
    case IBV_WR_RDMA_WRITE:
    case IBV_WR_RDMA_WRITE_WITH_IMM:
      return IBV_WC_RDMA_WRITE;
    case IBV_WR_RDMA_READ:
      return IBV_WC_RDMA_READ;
    case IBV_WR_ATOMIC_CMP_AND_SWP:
      return IBV_WC_COMP_SWAP;
    case IBV_WR_ATOMIC_FETCH_AND_ADD:
      return IBV_WC_FETCH_ADD;
    case IBV_WR_DRIVER1:
      return URDMA_WC_NIC_OP;
    default:
      return IBV_WC_SEND;
  }
}

const char* nak_name(std::uint8_t syn) {
  switch (syn) {
    case wire::kNakSeqErr:
      return "PSN sequence error";
    case wire::kNakInvalidReq:
      return "invalid request";
    case wire::kNakRemoteAccess:
      return "remote access error";
    case wire::kNakRemoteOp:
      return "remote operational error";
    default:
      return "NAK";
  }
}

ibv_wc_status status_of_nak(std::uint8_t syn) {
  switch (syn) {
    case wire::kNakInvalidReq:
      return IBV_WC_REM_INV_REQ_ERR;
    case wire::kNakRemoteAccess:
      return IBV_WC_REM_ACCESS_ERR;
    default:
      return IBV_WC_REM_OP_ERR;
  }
}

std::string hex(unsigned v) {
  char b[16];
  std::snprintf(b, sizeof b, "%#x", v);
  return b;
}

}  // namespace

// ---------------------------------------------------------------- CQ

CqImpl::CqImpl(int capacity) : capacity_(static_cast<std::size_t>(capacity)) {
  event_fd_ = fastpath::UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!event_fd_) throw std::runtime_error(std::string("urdma: eventfd: ") + std::strerror(errno));
}

bool CqImpl::push(const ibv_wc& wc) {
  bool notify = false;
  {
    std::lock_guard lk(mu_);
    if (q_.size() >= capacity_) return false;
    q_.push_back(wc);
    notify = armed_;
    armed_ = false;
  }
  if (notify) {
    const std::uint64_t one = 1;
    [[maybe_unused]] auto r = ::write(event_fd_.get(), &one, sizeof one);
  }
  return true;
}

int CqImpl::poll(int n, ibv_wc* wc) {
  std::lock_guard lk(mu_);
  int i = 0;
  for (; i < n && !q_.empty(); ++i) {
    wc[i] = q_.front();
    q_.pop_front();
  }
  return i;
}

void CqImpl::req_notify() {
  std::lock_guard lk(mu_);
  armed_ = true;
}

bool CqImpl::get_event(int timeout_ms) {
  pollfd pfd{event_fd_.get(), POLLIN, 0};
  if (::poll(&pfd, 1, timeout_ms) <= 0) return false;
  std::uint64_t v;
  return ::read(event_fd_.get(), &v, sizeof v) == sizeof v;
}

// ---------------------------------------------------------------- SG lists

void SgList::copy_out(std::uint64_t off, std::uint8_t* dst, std::size_t len) const {
  for (const Seg& s : segs) {
    if (len == 0) break;
    if (off >= s.len) {
      off -= s.len;
      continue;
    }
    const std::size_t n = std::min<std::uint64_t>(s.len - off, len);
    std::memcpy(dst, s.p + off, n);
    dst += n;
    len -= n;
    off = 0;
  }
}

void SgList::copy_in(std::uint64_t off, const std::uint8_t* src, std::size_t len) {
  for (const Seg& s : segs) {
    if (len == 0) break;
    if (off >= s.len) {
      off -= s.len;
      continue;
    }
    const std::size_t n = std::min<std::uint64_t>(s.len - off, len);
    std::memcpy(s.p + off, src, n);
    src += n;
    len -= n;
    off = 0;
  }
}

// ---------------------------------------------------------------- QP state

QpImpl::QpImpl(Engine& e, const QpInitAttr& init)
    : engine_(e),
      send_cq_(init.send_cq->impl()),
      recv_cq_(init.recv_cq->impl()),
      cap_(init.cap),
      sq_sig_all_(init.sq_sig_all) {
  qpn_ = engine_.add_qp(this);
}

QpImpl::~QpImpl() {
  engine_.remove_qp(qpn_);
  note_dead();
}

ibv_qp_state QpImpl::state() const {
  std::lock_guard lk(mu_);
  return state_;
}

std::string QpImpl::error_reason() const {
  std::lock_guard lk(mu_);
  return error_reason_;
}

std::string QpImpl::debug_state() const {
  std::lock_guard lk(mu_);
  const std::uint64_t now = now_ns();
  auto ms = [now](std::uint64_t t) {
    return t == 0 ? std::string("off") : std::to_string(static_cast<std::int64_t>(t - now) / 1000000) + "ms";
  };
  std::string s = "qpn " + hex(qpn_) + " state " + std::to_string(state_) + " next_psn " + hex(next_psn_) + " una " +
                  hex(una_psn_) + " send_idx " + std::to_string(send_idx_) + "/" + std::to_string(sq_.size()) +
                  " send_pkt " + std::to_string(send_pkt_) + " rd_atomic_out " + std::to_string(rd_atomic_out_) +
                  " timer " + ms(timer_deadline_) + " rnr " + ms(rnr_until_) + " retry_left " +
                  std::to_string(retry_left_) + (retry_pending_ ? " retry_pending" : "") + " | epsn " + hex(epsn_) +
                  " rq " + std::to_string(rq_.size()) + " resp " + std::to_string(resp_.size()) + " in_msg " +
                  std::to_string(static_cast<int>(in_msg_)) + (nak_sent_ ? " nak_sent" : "") + " | sq:";
  int n = 0;
  for (const SendWqe& w : sq_) {
    if (++n > 4) break;
    s += std::string(" [") + wr_name(w.opcode) + " id " + std::to_string(w.wr_id) +
         (w.started ? " psn " + hex(w.first_psn) + ".." + hex(w.last_psn) : std::string(" not started")) +
         (w.done ? " done" : "") + (w.parked ? " parked" : "") + " resp_pkts " + std::to_string(w.resp_pkts) + "]";
  }
  return s;
}

std::uint64_t QpImpl::timeout_ns() const {
  if (timeout_ == 0) return 0;  // infinite: never retransmit on a timer
  const std::uint64_t ns = 4096ULL << std::min<unsigned>(timeout_, 31);
  return std::max<std::uint64_t>(ns, 1'000'000);  // at least 1 ms, as rxe's one jiffy
}

int QpImpl::modify(const ibv_qp_attr& a, int mask) {
  std::lock_guard lk(mu_);
  const ibv_qp_state cur = (mask & IBV_QP_CUR_STATE) ? a.cur_qp_state : state_;
  const ibv_qp_state next = (mask & IBV_QP_STATE) ? a.qp_state : cur;
  // Required and allowed attributes per transition (RC, ib_modify_qp_is_ok).
  int required = 0, allowed = 0;
  if (next == IBV_QPS_RESET || next == IBV_QPS_ERR) {
    allowed = 0;
  } else if (cur == IBV_QPS_RESET && next == IBV_QPS_INIT) {
    required = IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS;
  } else if (cur == IBV_QPS_INIT && next == IBV_QPS_INIT) {
    allowed = IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS;
  } else if (cur == IBV_QPS_INIT && next == IBV_QPS_RTR) {
    required = IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC |
               IBV_QP_MIN_RNR_TIMER;
    allowed = IBV_QP_PKEY_INDEX | IBV_QP_ACCESS_FLAGS | IBV_QP_ALT_PATH;
  } else if (cur == IBV_QPS_RTR && next == IBV_QPS_RTS) {
    required = IBV_QP_SQ_PSN | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_MAX_QP_RD_ATOMIC;
    allowed = IBV_QP_ACCESS_FLAGS | IBV_QP_MIN_RNR_TIMER | IBV_QP_CUR_STATE | IBV_QP_ALT_PATH | IBV_QP_PATH_MIG_STATE;
  } else if (cur == IBV_QPS_RTS && next == IBV_QPS_RTS) {
    allowed = IBV_QP_ACCESS_FLAGS | IBV_QP_MIN_RNR_TIMER | IBV_QP_CUR_STATE | IBV_QP_ALT_PATH | IBV_QP_PATH_MIG_STATE |
              IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY;
  } else {
    return EINVAL;
  }
  const int given = mask & ~(IBV_QP_STATE | IBV_QP_CUR_STATE);
  if ((given & required) != required) return EINVAL;
  if (given & ~(required | allowed)) return EINVAL;

  if (mask & IBV_QP_PORT && a.port_num != 1) return EINVAL;
  if (mask & IBV_QP_PATH_MTU && mtu_to_bytes(a.path_mtu) == 0) return EINVAL;
  if (mask & IBV_QP_AV) {
    const ibv_gid& g = a.ah_attr.grh.dgid;
    static constexpr std::uint8_t kV4Prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (!a.ah_attr.is_global || std::memcmp(g.raw, kV4Prefix, 12) != 0) return EINVAL;  // RoCEv2 over IPv4 only
  }
  if (mask & IBV_QP_MAX_QP_RD_ATOMIC && a.max_rd_atomic > engine_.attr().max_qp_init_rd_atom) return EINVAL;
  if (mask & IBV_QP_MAX_DEST_RD_ATOMIC && a.max_dest_rd_atomic > engine_.attr().max_qp_rd_atom) return EINVAL;

  if (mask & IBV_QP_ACCESS_FLAGS) access_ = a.qp_access_flags;
  if (mask & IBV_QP_PATH_MTU) path_mtu_ = a.path_mtu;
  if (mask & IBV_QP_AV) {
    ah_ = a.ah_attr;
    std::memcpy(&remote_ip_, a.ah_attr.grh.dgid.raw + 12, 4);
  }
  if (mask & IBV_QP_DEST_QPN) dest_qpn_ = a.dest_qp_num & wire::kPsnMask;
  if (mask & IBV_QP_RQ_PSN) rq_psn_ = epsn_ = a.rq_psn & wire::kPsnMask;
  if (mask & IBV_QP_MAX_DEST_RD_ATOMIC) max_dest_rd_atomic_ = a.max_dest_rd_atomic;
  if (mask & IBV_QP_MIN_RNR_TIMER) min_rnr_timer_ = a.min_rnr_timer & 31;
  if (mask & IBV_QP_SQ_PSN) sq_psn_ = next_psn_ = una_psn_ = last_ackreq_psn_ = a.sq_psn & wire::kPsnMask;
  if (mask & IBV_QP_TIMEOUT) timeout_ = a.timeout;
  if (mask & IBV_QP_RETRY_CNT) retry_cnt_ = retry_left_ = a.retry_cnt & 7;
  if (mask & IBV_QP_RNR_RETRY) rnr_retry_ = rnr_left_ = a.rnr_retry & 7;
  if (mask & IBV_QP_MAX_QP_RD_ATOMIC) max_rd_atomic_ = a.max_rd_atomic;

  if (next == IBV_QPS_RESET) {
    reset_queues();
    resolve_asked_ = false;
    error_reason_.clear();
    note_dead();
  }
  if (next == IBV_QPS_ERR && state_ != IBV_QPS_ERR) {
    state_ = IBV_QPS_ERR;
    if (error_reason_.empty()) error_reason_ = "moved to ERROR by the application";
    flush_all();
    note_dead();
  }
  state_ = next;
  if (next == IBV_QPS_RTS) engine_.wake();
  return 0;
}

int QpImpl::query(ibv_qp_attr& a) const {
  std::lock_guard lk(mu_);
  a = {};
  a.qp_state = a.cur_qp_state = state_;
  a.path_mtu = path_mtu_;
  a.qp_access_flags = access_;
  a.ah_attr = ah_;
  a.dest_qp_num = dest_qpn_;
  a.rq_psn = epsn_;
  a.sq_psn = next_psn_;
  a.max_dest_rd_atomic = max_dest_rd_atomic_;
  a.max_rd_atomic = max_rd_atomic_;
  a.min_rnr_timer = min_rnr_timer_;
  a.timeout = timeout_;
  a.retry_cnt = retry_cnt_;
  a.rnr_retry = rnr_retry_;
  a.port_num = 1;
  a.cap = cap_;
  return 0;
}

void QpImpl::reset_queues() {
  sq_.clear();
  rq_.clear();
  resp_.clear();
  resources_.clear();
  send_idx_ = 0;
  send_pkt_ = 0;
  rd_atomic_out_ = 0;
  timer_deadline_ = rnr_until_ = 0;
  retry_pending_ = nak_sent_ = false;
  probe_at_ = 0;
  probes_unanswered_ = nicop_tries_ = 0;
  keepalive_out_ = false;
  last_rx_ = keepalive_check_ = 0;
  in_msg_ = InMsg::kNone;
}

void QpImpl::push_cqe(CqImpl& cq, const ibv_wc& wc) {
  if (!cq.push(wc) && state_ != IBV_QPS_ERR) {
    // A CQ overrun is fatal to the QPs that feed it (IBA 11.4.2.1).
    state_ = IBV_QPS_ERR;
    error_reason_ = "completion queue overrun (poll it more often or create it larger)";
  }
}

// A completion that carries only an error (flushes, NAKs, exhausted retries).
void QpImpl::push_error(CqImpl& cq, std::uint64_t wr_id, ibv_wc_status status, ibv_wc_opcode opcode) {
  ibv_wc wc{};
  wc.wr_id = wr_id;
  wc.status = status;
  wc.opcode = opcode;
  wc.qp_num = qpn_;
  push_cqe(cq, wc);
}

void QpImpl::enter_error(const std::string& why) {
  if (state_ == IBV_QPS_ERR) return;
  state_ = IBV_QPS_ERR;
  error_reason_ = why;
  flush_all();
  note_dead();
}

// Locks this QP holds through NIC operations are released, and its parked
// requests forgotten, by the engine (outside this QP's lock).
void QpImpl::note_dead() {
  engine_.note_qp_dead(qpn_);
}

void QpImpl::flush_all() {
  // The WQE that failed (if any) was already completed with its own status.
  for (SendWqe& w : sq_) {
    if (!w.internal) push_error(send_cq_, w.wr_id, IBV_WC_WR_FLUSH_ERR, wc_opcode_of(w.opcode));
  }
  for (RecvWqe& r : rq_) {
    push_error(recv_cq_, r.wr_id, IBV_WC_WR_FLUSH_ERR, IBV_WC_RECV);
  }
  const ibv_qp_state keep = state_;
  reset_queues();
  state_ = keep;
}

// ---------------------------------------------------------------- posting

int QpImpl::check_send_wr(const ibv_send_wr& wr, SendWqe& w) {
  w.wr_id = wr.wr_id;
  w.opcode = wr.opcode;
  w.flags = wr.send_flags;
  w.signaled = sq_sig_all_ || (wr.send_flags & IBV_SEND_SIGNALED);
  switch (wr.opcode) {
    case IBV_WR_SEND:
    case IBV_WR_SEND_WITH_IMM:
    case IBV_WR_RDMA_WRITE:
    case IBV_WR_RDMA_WRITE_WITH_IMM:
    case IBV_WR_RDMA_READ:
    case IBV_WR_ATOMIC_CMP_AND_SWP:
    case IBV_WR_ATOMIC_FETCH_AND_ADD:
      break;
    default:
      return EINVAL;
  }
  if (wr.num_sge < 0 || static_cast<std::uint32_t>(wr.num_sge) > cap_.max_send_sge) return EINVAL;
  const bool inl =
      (wr.send_flags & IBV_SEND_INLINE) && (wr.opcode == IBV_WR_SEND || wr.opcode == IBV_WR_SEND_WITH_IMM ||
                                            wr.opcode == IBV_WR_RDMA_WRITE || wr.opcode == IBV_WR_RDMA_WRITE_WITH_IMM);
  const bool local_write = w.is_read() || w.is_atomic();
  for (int i = 0; i < wr.num_sge; ++i) {
    const ibv_sge& s = wr.sg_list[i];
    if (inl) {
      const auto* p = reinterpret_cast<const std::uint8_t*>(s.addr);
      w.inline_data.insert(w.inline_data.end(), p, p + s.length);
      continue;
    }
    std::uint8_t* p = engine_.check_local(s, local_write);
    if (p == nullptr && s.length) return EINVAL;
    w.sg.segs.push_back({p, s.length});
    w.sg.length += s.length;
  }
  if (inl && w.inline_data.size() > cap_.max_inline_data) return EINVAL;
  if (w.length() > (1ULL << 31)) return EINVAL;  // IBA message limit
  if (w.opcode == IBV_WR_SEND_WITH_IMM || w.opcode == IBV_WR_RDMA_WRITE_WITH_IMM) w.imm = wr.imm_data;
  if (w.opcode == IBV_WR_RDMA_WRITE || w.opcode == IBV_WR_RDMA_WRITE_WITH_IMM || w.is_read()) {
    w.remote_addr = wr.wr.rdma.remote_addr;
    w.rkey = wr.wr.rdma.rkey;
  }
  if (w.is_atomic()) {
    if (w.sg.length != 8) return EINVAL;
    w.remote_addr = wr.wr.atomic.remote_addr;
    w.rkey = wr.wr.atomic.rkey;
    w.compare_add = wr.wr.atomic.compare_add;
    w.swap = wr.wr.atomic.swap;
  }
  return 0;
}

int QpImpl::post_send(ibv_send_wr* wr, ibv_send_wr** bad) {
  {
    std::lock_guard lk(mu_);
    for (; wr; wr = wr->next) {
      if (state_ == IBV_QPS_RESET || state_ == IBV_QPS_INIT || state_ == IBV_QPS_RTR) {
        *bad = wr;
        return EINVAL;
      }
      if (sq_.size() >= cap_.max_send_wr) {
        *bad = wr;
        return ENOMEM;
      }
      SendWqe w;
      if (const int err = check_send_wr(*wr, w)) {
        *bad = wr;
        return err;
      }
      if (state_ == IBV_QPS_ERR) {
        push_error(send_cq_, w.wr_id, IBV_WC_WR_FLUSH_ERR, wc_opcode_of(w.opcode));
        continue;
      }
      sq_.push_back(std::move(w));
    }
  }
  engine_.kick();
  return 0;
}

int QpImpl::post_recv(ibv_recv_wr* wr, ibv_recv_wr** bad) {
  std::lock_guard lk(mu_);
  for (; wr; wr = wr->next) {
    if (state_ == IBV_QPS_RESET) {
      *bad = wr;
      return EINVAL;
    }
    if (rq_.size() >= cap_.max_recv_wr) {
      *bad = wr;
      return ENOMEM;
    }
    if (wr->num_sge < 0 || static_cast<std::uint32_t>(wr->num_sge) > cap_.max_recv_sge) {
      *bad = wr;
      return EINVAL;
    }
    RecvWqe r;
    r.wr_id = wr->wr_id;
    for (int i = 0; i < wr->num_sge; ++i) {
      std::uint8_t* p = engine_.check_local(wr->sg_list[i], true);
      if (p == nullptr && wr->sg_list[i].length) {
        *bad = wr;
        return EINVAL;
      }
      r.sg.segs.push_back({p, wr->sg_list[i].length});
      r.sg.length += wr->sg_list[i].length;
    }
    if (state_ == IBV_QPS_ERR) {
      push_error(recv_cq_, r.wr_id, IBV_WC_WR_FLUSH_ERR, IBV_WC_RECV);
      continue;
    }
    rq_.push_back(std::move(r));
  }
  return 0;
}

int QpImpl::post_nic_op(const NicOpWr& wr) {
  {
    std::lock_guard lk(mu_);
    if (state_ == IBV_QPS_RESET || state_ == IBV_QPS_INIT || state_ == IBV_QPS_RTR) return EINVAL;
    if (sq_.size() >= cap_.max_send_wr) return ENOMEM;
    if (wr.result.length != sizeof(nicop_result) || (wr.remote_addr & 7) || wr.length == 0 || (wr.length & 7))
      return EINVAL;
    std::uint8_t* res = engine_.check_local(wr.result, true);
    if (res == nullptr) return EINVAL;
    SendWqe w;
    w.wr_id = wr.wr_id;
    w.opcode = IBV_WR_DRIVER1;
    w.signaled = sq_sig_all_ || wr.signaled;
    w.sg.segs.push_back({res, wr.result.length});
    w.sg.length = wr.result.length;
    w.remote_addr = wr.remote_addr;
    w.rkey = wr.rkey;
    w.op_id = wr.op_id;
    w.obj_len = wr.length;
    w.arg0 = wr.arg0;
    w.arg1 = wr.arg1;
    if (state_ == IBV_QPS_ERR) {
      push_error(send_cq_, w.wr_id, IBV_WC_WR_FLUSH_ERR, URDMA_WC_NIC_OP);
      return 0;
    }
    sq_.push_back(std::move(w));
  }
  engine_.kick();
  return 0;
}

// ---------------------------------------------------------------- requester

void QpImpl::arm_timer(std::uint64_t now) {
  const std::uint64_t t = timeout_ns();
  timer_deadline_ = t ? now + t : 0;
}

void QpImpl::send_request_packet(SendWqe& w, std::uint32_t idx) {
  const std::uint32_t m = mtu();
  wire::Packet p;
  p.dest_qp = dest_qpn_;
  p.psn = wire::psn_add(w.first_psn, idx);
  p.solicited = false;
  std::vector<std::uint8_t> chunk;
  const bool first = idx == 0, last = idx + 1 == w.npkts;
  const std::uint64_t len = w.length();
  auto payload = [&] {
    const std::uint64_t off = std::uint64_t{idx} * m;
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(m, len - off));
    if (!w.inline_data.empty()) {
      p.payload = std::span<const std::uint8_t>(w.inline_data.data() + off, n);
    } else if (w.sg.segs.size() == 1) {
      p.payload = std::span<const std::uint8_t>(w.sg.segs[0].p + off, n);
    } else {
      chunk.resize(n);
      w.sg.copy_out(off, chunk.data(), n);
      p.payload = chunk;
    }
  };
  switch (w.opcode) {
    case IBV_WR_SEND:
    case IBV_WR_SEND_WITH_IMM: {
      const bool imm = w.opcode == IBV_WR_SEND_WITH_IMM;
      p.opcode = first && last ? (imm ? wire::kSendOnlyImm : wire::kSendOnly)
                 : first       ? wire::kSendFirst
                 : last        ? (imm ? wire::kSendLastImm : wire::kSendLast)
                               : wire::kSendMiddle;
      p.solicited = last && (w.flags & IBV_SEND_SOLICITED);
      p.imm = w.imm;
      payload();
      break;
    }
    case IBV_WR_RDMA_WRITE:
    case IBV_WR_RDMA_WRITE_WITH_IMM: {
      const bool imm = w.opcode == IBV_WR_RDMA_WRITE_WITH_IMM;
      p.opcode = first && last ? (imm ? wire::kWriteOnlyImm : wire::kWriteOnly)
                 : first       ? wire::kWriteFirst
                 : last        ? (imm ? wire::kWriteLastImm : wire::kWriteLast)
                               : wire::kWriteMiddle;
      p.va = w.remote_addr;
      p.rkey = w.rkey;
      p.dma_len = static_cast<std::uint32_t>(len);
      p.imm = w.imm;
      payload();
      break;
    }
    case IBV_WR_RDMA_READ: {
      // A (re)started READ asks for what is still missing, from its packet idx.
      const std::uint64_t off = std::uint64_t{idx} * m;
      p.opcode = wire::kReadRequest;
      p.va = w.remote_addr + off;
      p.rkey = w.rkey;
      p.dma_len = static_cast<std::uint32_t>(len - off);
      p.ack_req = true;
      break;
    }
    case IBV_WR_DRIVER1: {
      p.opcode = wire::kNicOpRequest;
      p.va = w.remote_addr;
      p.rkey = w.rkey;
      p.dma_len = w.obj_len;
      p.op_id = w.op_id;
      p.arg0 = w.arg0;
      p.arg1 = w.arg1;
      p.ack_req = true;
      break;
    }
    default: {
      p.opcode = w.opcode == IBV_WR_ATOMIC_CMP_AND_SWP ? wire::kCompareSwap : wire::kFetchAdd;
      p.va = w.remote_addr;
      p.rkey = w.rkey;
      p.swap_add = w.opcode == IBV_WR_ATOMIC_CMP_AND_SWP ? w.swap : w.compare_add;
      p.compare = w.opcode == IBV_WR_ATOMIC_CMP_AND_SWP ? w.compare_add : 0;
      p.ack_req = true;
      break;
    }
  }
  if (last || wire::psn_diff(p.psn, last_ackreq_psn_) >= static_cast<std::int32_t>(kAckReqEvery)) p.ack_req = true;
  if (p.ack_req) last_ackreq_psn_ = p.psn;
  engine_.transmit(p, remote_ip_, qpn_);
}

// Sends the next packet of the send queue if the window, the READ/atomic
// limit, a fence and any RNR wait allow it.
bool QpImpl::transmit_next(std::uint64_t now) {
  if (state_ != IBV_QPS_RTS || send_idx_ >= sq_.size() || now < rnr_until_) return false;
  SendWqe& w = sq_[send_idx_];
  if (!w.started) {
    if (w.needs_response() && rd_atomic_out_ >= max_rd_atomic_) return false;
    if ((w.flags & IBV_SEND_FENCE) && rd_atomic_out_ > 0) return false;
    if (wire::psn_diff(next_psn_, una_psn_) >= static_cast<std::int32_t>(kWindow)) return false;
    const std::uint32_t m = mtu();
    const std::uint64_t len = w.length();
    w.npkts = w.single_psn() ? 1 : static_cast<std::uint32_t>(std::max<std::uint64_t>(1, (len + m - 1) / m));
    w.started = true;
    w.first_psn = next_psn_;
    w.last_psn = wire::psn_add(next_psn_, w.npkts - 1);
    if (w.needs_response()) ++rd_atomic_out_;
    send_pkt_ = 0;
  } else if (wire::psn_diff(wire::psn_add(w.first_psn, send_pkt_), una_psn_) >= static_cast<std::int32_t>(kWindow)) {
    return false;
  }
  if (timer_deadline_ == 0) arm_timer(now);
  send_request_packet(w, send_pkt_);
  const bool whole = w.needs_response();  // one request stands for every PSN of the READ
  send_pkt_ = whole ? w.npkts : send_pkt_ + 1;
  const std::uint32_t after = wire::psn_add(w.first_psn, send_pkt_);
  if (wire::psn_lt(next_psn_, after)) next_psn_ = after;
  if (send_pkt_ >= w.npkts) {
    ++send_idx_;
    send_pkt_ = 0;
  }
  return true;
}

SendWqe* QpImpl::find_wqe(std::uint32_t psn) {
  for (SendWqe& w : sq_) {
    if (!w.started) break;
    if (!w.done && wire::psn_le(w.first_psn, psn) && wire::psn_le(psn, w.last_psn)) return &w;
  }
  return nullptr;
}

// Restarts transmission at psn (go-back-N).
void QpImpl::go_back(std::uint32_t psn, bool count_retry, bool rnr, std::uint64_t now) {
  std::uint8_t& left = rnr ? rnr_left_ : retry_left_;
  if (count_retry) {
    if (left == 0) {
      const ibv_wc_status st = rnr ? IBV_WC_RNR_RETRY_EXC_ERR : IBV_WC_RETRY_EXC_ERR;
      if (!sq_.empty()) {
        SendWqe& w = sq_.front();
        if (!w.internal) push_error(send_cq_, w.wr_id, st, wc_opcode_of(w.opcode));
        const std::string what = std::string(wr_name(w.opcode)) + " wr_id " + std::to_string(w.wr_id);
        sq_.pop_front();
        enter_error(rnr ? "RNR retry count exceeded for " + what + " (the peer posted no receive)"
                        : "transport retry count exceeded for " + what +
                              " (the peer did not answer: unreachable, gone, or it dropped the packets)");
      }
      return;
    }
    if (left != 7) --left;
  }
  engine_.counters().retransmits.fetch_add(1, std::memory_order_relaxed);
  for (std::size_t i = 0; i < sq_.size(); ++i) {
    SendWqe& w = sq_[i];
    if (!w.started) break;
    if (w.done || w.parked) continue;
    if (wire::psn_le(psn, w.last_psn)) {
      // A peer that does not know NIC operations (rxe) drops them silently:
      // do not retry one forever even with retry_cnt 7.
      if (w.is_nicop() && count_retry && !rnr && ++nicop_tries_ > 7) {
        if (!w.internal) push_error(send_cq_, w.wr_id, IBV_WC_RETRY_EXC_ERR, URDMA_WC_NIC_OP);
        const std::string why =
            w.internal ? "the peer is gone: silent for " + std::to_string(engine_.keepalive_ns() / 1'000'000) +
                             " ms and no answer to 8 keep-alive probes (process killed, link down); what this QP "
                             "held through NIC operations is released"
                       : "no answer to NIC operation " + std::to_string(w.op_id) +
                             " after 7 retransmissions: the peer does not support NIC operations "
                             "(rxe drops opcode 0xc0) or is gone";
        sq_.erase(sq_.begin() + static_cast<std::ptrdiff_t>(i));
        enter_error(why);
        return;
      }
      send_idx_ = i;
      send_pkt_ = wire::psn_lt(psn, w.first_psn) ? 0 : static_cast<std::uint32_t>(wire::psn_diff(psn, w.first_psn));
      if (w.is_read()) send_pkt_ = w.resp_pkts;  // resume what is missing
      if (w.single_psn()) send_pkt_ = 0;
      break;
    }
  }
  arm_timer(now);
}

void QpImpl::complete_front() {
  while (!sq_.empty() && sq_.front().done) {
    SendWqe& w = sq_.front();
    if (w.internal) {
      keepalive_out_ = false;
    } else if (w.signaled || w.status != IBV_WC_SUCCESS) {
      ibv_wc wc{};
      wc.wr_id = w.wr_id;
      wc.status = w.status;
      wc.opcode = wc_opcode_of(w.opcode);
      wc.qp_num = qpn_;
      wc.byte_len = static_cast<std::uint32_t>(w.is_atomic()  ? 8
                                               : w.is_nicop() ? sizeof(nicop_result)
                                               : w.is_read()  ? w.length()
                                                              : 0);
      push_cqe(send_cq_, wc);
    }
    if (w.needs_response()) --rd_atomic_out_;
    sq_.pop_front();
    if (send_idx_ > 0) {
      --send_idx_;
    } else {
      // A resend (go-back-N) was still under way inside the WQE just
      // completed: the next one restarts at its first packet, never at this
      // one's packet index (that PSN belongs to another WQE).
      send_pkt_ = 0;
    }
  }
}

// Everything up to and including psn was received by the responder.
void QpImpl::on_ack(std::uint32_t psn, std::uint64_t now) {
  bool progress = false;
  // The oldest PSN still unacknowledged after this ACK: psn + 1, unless a
  // READ/atomic before it still lacks its response (then una stays there, so
  // the retransmission timer keeps covering it).
  std::uint32_t limit = wire::psn_add(psn, 1);
  for (SendWqe& w : sq_) {
    if (!w.started) break;
    if (w.done || w.parked) continue;
    if (w.needs_response()) {
      // An ACK beyond a READ/atomic whose response is missing: the response
      // was lost; resend it now (rxe does the same).
      if (wire::psn_le(w.first_psn, psn)) {
        const std::uint32_t from = wire::psn_add(w.first_psn, w.resp_pkts);
        if (wire::psn_lt(from, limit)) limit = from;
        go_back(from, false, false, now);
      }
      break;
    }
    if (!wire::psn_le(w.last_psn, psn)) break;
    w.done = true;
    progress = true;
  }
  if (advance_una(limit)) progress = true;
  if (progress) {
    retry_left_ = retry_cnt_;
    retry_pending_ = false;
    complete_front();
    timer_deadline_ = 0;
    if (wire::psn_lt(una_psn_, next_psn_)) arm_timer(now);
  }
}

// Moves una (the oldest PSN not acknowledged) up to `to`, but never past a
// READ/atomic/NIC operation still waiting for its response: responses can
// arrive out of order (a later atomic's ACK before an earlier READ's last
// response), and una past a missing response would leave nothing for the
// retransmission timer to cover.
bool QpImpl::advance_una(std::uint32_t to) {
  for (const SendWqe& w : sq_) {
    if (!w.started || !wire::psn_lt(w.first_psn, to)) break;
    if (w.done || w.parked || !w.needs_response()) continue;
    const std::uint32_t from = wire::psn_add(w.first_psn, w.resp_pkts);
    if (wire::psn_lt(from, to)) to = from;
    break;
  }
  if (!wire::psn_lt(una_psn_, to) || !wire::psn_le(to, next_psn_)) return false;
  una_psn_ = to;
  return true;
}

void QpImpl::on_read_response(const wire::Packet& p, SendWqe& w, std::uint64_t now) {
  const std::uint32_t expect = wire::psn_add(w.first_psn, w.resp_pkts);
  if (p.psn != expect) {
    // A response is missing: ask again from the first one we lack.
    if (wire::psn_lt(expect, p.psn) && !retry_pending_) {
      retry_pending_ = true;
      go_back(expect, true, false, now);
    }
    return;
  }
  const std::uint32_t m = mtu();
  const std::uint64_t off = std::uint64_t{w.resp_pkts} * m;
  const std::uint64_t left = w.length() - off;
  const bool last = w.resp_pkts + 1 == w.npkts;
  const std::uint64_t want = last ? left : m;
  const bool op_ok = last ? (p.opcode == wire::kReadRespLast || p.opcode == wire::kReadRespOnly)
                          : (p.opcode == wire::kReadRespFirst || p.opcode == wire::kReadRespMiddle);
  if (!op_ok || p.payload.size() != want) {
    w.status = IBV_WC_BAD_RESP_ERR;
    w.done = true;
    push_error(send_cq_, w.wr_id, IBV_WC_BAD_RESP_ERR, IBV_WC_RDMA_READ);
    w.signaled = false;
    w.status = IBV_WC_SUCCESS;  // completed above; complete_front() must not repeat it
    enter_error("bad READ response (opcode " + hex(p.opcode) + ", " + std::to_string(p.payload.size()) +
                " bytes where " + std::to_string(want) + " were due)");
    return;
  }
  w.sg.copy_in(off, p.payload.data(), p.payload.size());
  ++w.resp_pkts;
  // A response acknowledges every earlier request (implicit ACK).
  on_ack(wire::psn_add(w.first_psn, -1), now);
  advance_una(wire::psn_add(p.psn, 1));
  if (last) {
    w.done = true;
    retry_left_ = retry_cnt_;
    retry_pending_ = false;
    complete_front();
  }
  timer_deadline_ = 0;
  if (wire::psn_lt(una_psn_, next_psn_)) arm_timer(now);
}

void QpImpl::on_response(const wire::Packet& p, std::uint64_t now) {
  if (state_ != IBV_QPS_RTS && state_ != IBV_QPS_SQD && state_ != IBV_QPS_SQE) return;
  // Responses for PSNs never sent (stale or forged) are ignored.
  if (!wire::psn_lt(p.psn, next_psn_)) return;
  if (p.opcode == wire::kAck) {
    const std::uint8_t syn = p.syndrome;
    if ((syn & 0xe0) == wire::kAethAck) {
      on_ack(p.psn, now);
    } else if ((syn & 0xe0) == wire::kAethRnrNak) {
      on_ack(wire::psn_add(p.psn, -1), now);
      rnr_until_ = now + std::uint64_t{kRnrUsec[syn & 31]} * 1000;
      go_back(p.psn, true, true, now);
    } else if (syn == wire::kNakSeqErr) {
      on_ack(wire::psn_add(p.psn, -1), now);
      if (!retry_pending_) {
        retry_pending_ = true;
        go_back(p.psn, true, false, now);
      }
    } else {
      on_ack(wire::psn_add(p.psn, -1), now);
      SendWqe* w = find_wqe(p.psn);
      if (w == nullptr) return;
      if (!w->internal) push_error(send_cq_, w->wr_id, status_of_nak(syn), wc_opcode_of(w->opcode));
      const std::string what = std::string(nak_name(syn)) + " (NAK " + hex(syn) + ") from the peer for " +
                               wr_name(w->opcode) + " wr_id " + std::to_string(w->wr_id);
      // Drop it from the queue so the flush does not report it twice.
      for (auto it = sq_.begin(); it != sq_.end(); ++it)
        if (&*it == w) {
          sq_.erase(it);
          break;
        }
      enter_error(what);
    }
    return;
  }
  SendWqe* w = find_wqe(p.psn);
  if (w == nullptr) return;  // duplicate response
  if (p.opcode == wire::kAtomicAck) {
    if (!w->is_atomic() || w->first_psn != p.psn) return;
    const std::uint64_t orig = p.orig;
    w->sg.copy_in(0, reinterpret_cast<const std::uint8_t*>(&orig), 8);
    w->done = true;
    on_ack(wire::psn_add(p.psn, -1), now);
    advance_una(wire::psn_add(p.psn, 1));
    retry_left_ = retry_cnt_;
    retry_pending_ = false;
    complete_front();
    timer_deadline_ = 0;
    if (wire::psn_lt(una_psn_, next_psn_)) arm_timer(now);
    return;
  }
  if (p.opcode == wire::kNicOpResponse) {
    on_nicop_response(p, *w, now);
    return;
  }
  if (w->is_read()) on_read_response(p, *w, now);
}

void QpImpl::on_nicop_response(const wire::Packet& p, SendWqe& w, std::uint64_t now) {
  if (!w.is_nicop() || w.first_psn != p.psn) return;
  probes_unanswered_ = 0;
  nicop_tries_ = 0;
  on_ack(wire::psn_add(p.psn, -1), now);
  advance_una(wire::psn_add(p.psn, 1));
  retry_left_ = retry_cnt_;
  retry_pending_ = false;
  if (p.nicop_status == wire::kNicOpParked) {
    // Accepted: the answer comes when the responder decides (a lock hand-over).
    if (!w.parked) {
      w.parked = true;
      if (probe_at_ == 0) probe_at_ = now + std::max<std::uint64_t>(4 * timeout_ns(), 100'000'000);
    }
  } else {
    const nicop_result r{p.orig, p.nicop_status, 0};
    w.sg.copy_in(0, reinterpret_cast<const std::uint8_t*>(&r), sizeof r);
    w.parked = false;
    w.done = true;
    complete_front();
  }
  timer_deadline_ = 0;
  if (wire::psn_lt(una_psn_, next_psn_)) arm_timer(now);
}

// A parked request whose answer was lost would wait forever: ask again now and
// then.  The responder answers a duplicate from its resources (still parked,
// or the saved answer), never running it twice.
void QpImpl::probe_parked(std::uint64_t now) {
  SendWqe* oldest = nullptr;
  for (SendWqe& w : sq_)
    if (w.parked && !w.done) {
      oldest = &w;
      break;
    }
  if (oldest == nullptr) {
    probe_at_ = 0;
    return;
  }
  if (++probes_unanswered_ > 7) {
    enter_error("peer stopped answering while NIC operation " + std::to_string(oldest->op_id) + " wr_id " +
                std::to_string(oldest->wr_id) + " was parked there");
    return;
  }
  send_request_packet(*oldest, 0);
  probe_at_ = now + std::max<std::uint64_t>(4 * timeout_ns(), 100'000'000);
}

// A QP holding NIC-operation state (at the responder: a lock granted to the
// peer, a request of the peer parked) must learn when the peer dies, or the
// lock is never released: a killed process sends nothing more.  After
// keepalive_ns of silence it sends a keep-alive NIC operation, which the
// peer's transport answers at once; unanswered through the retries, the QP
// enters ERROR (go_back), and the engine releases what it held.
void QpImpl::keep_alive(std::uint64_t now) {
  const std::uint64_t every = engine_.keepalive_ns();
  if (every == 0 || keepalive_out_ || max_rd_atomic_ == 0 || now < keepalive_check_) return;
  keepalive_check_ = now + every / 4;
  if (last_rx_ == 0) last_rx_ = now;  // silence counts from the first look
  if (now - last_rx_ < every || !engine_.nicop_has_state(qpn_)) return;
  SendWqe w;
  w.opcode = IBV_WR_DRIVER1;
  w.internal = true;
  w.op_id = kNicOpKeepAliveId;
  sq_.push_back(std::move(w));
  keepalive_out_ = true;
}

// ---------------------------------------------------------------- responder

void QpImpl::queue_ack(std::uint32_t psn) {
  // ACK coalescing: a later ACK replaces one still waiting at the tail.
  if (!resp_.empty() && resp_.back().kind == RespItem::kAck && resp_.back().syndrome == wire::kAethCreditsUnlimited) {
    resp_.back().psn = psn;
    return;
  }
  RespItem it;
  it.kind = RespItem::kAck;
  it.psn = psn;
  it.syndrome = wire::kAethCreditsUnlimited;
  resp_.push_back(it);
}

void QpImpl::send_nak(std::uint8_t syndrome, std::uint32_t psn) {
  drain_responses(1 << 30);  // what was answered before goes out first
  wire::Packet p;
  p.opcode = wire::kAck;
  p.dest_qp = dest_qpn_;
  p.psn = psn;
  p.syndrome = syndrome;
  p.msn = msn_;
  engine_.transmit(p, remote_ip_, qpn_);
  auto& c = engine_.counters();
  ((syndrome & 0xe0) == wire::kAethRnrNak ? c.rnr_naks_sent : c.naks_sent).fetch_add(1, std::memory_order_relaxed);
}

void QpImpl::fatal_nak(std::uint8_t syndrome, std::uint32_t psn, const std::string& why) {
  send_nak(syndrome, psn);
  enter_error("responder: " + why + " (sent NAK " + hex(syndrome) + ")");
}

void QpImpl::add_resource(const Resource& r) {
  const std::size_t cap = std::max<std::size_t>(1, max_dest_rd_atomic_);
  while (resources_.size() >= cap) {
    // Evict the oldest that is answered: a parked NIC operation must stay to
    // answer its duplicates (the requester never has more outstanding than
    // max_rd_atomic <= our max_dest_rd_atomic).
    auto it = std::find_if(resources_.begin(), resources_.end(), [](const Resource& x) { return !x.parked; });
    if (it == resources_.end()) break;
    resources_.erase(it);
  }
  resources_.push_back(r);
}

bool QpImpl::complete_recv(ibv_wc_opcode op, std::uint64_t byte_len, bool imm, std::uint32_t imm_data) {
  RecvWqe r = std::move(rq_.front());
  rq_.pop_front();
  ibv_wc wc{};
  wc.wr_id = r.wr_id;
  wc.status = IBV_WC_SUCCESS;
  wc.opcode = op;
  wc.byte_len = static_cast<std::uint32_t>(byte_len);
  wc.qp_num = qpn_;
  wc.src_qp = dest_qpn_;
  if (imm) {
    wc.wc_flags = IBV_WC_WITH_IMM;
    wc.imm_data = imm_data;
  }
  push_cqe(recv_cq_, wc);
  return true;
}

bool QpImpl::on_send(const wire::Packet& p) {
  const wire::OpInfo& info = wire::op_info(p.opcode);
  if (info.first) {
    if (rq_.empty()) {
      send_nak(static_cast<std::uint8_t>(wire::kAethRnrNak | min_rnr_timer_), p.psn);
      return false;
    }
    in_off_ = 0;
  }
  RecvWqe& r = rq_.front();
  if (in_off_ + p.payload.size() > r.sg.length) {
    push_error(recv_cq_, r.wr_id, IBV_WC_LOC_LEN_ERR, IBV_WC_RECV);
    rq_.pop_front();
    fatal_nak(wire::kNakInvalidReq, p.psn,
              "SEND of more than the posted receive's " + std::to_string(r.sg.length) + " bytes");
    return false;
  }
  r.sg.copy_in(in_off_, p.payload.data(), p.payload.size());
  in_off_ += p.payload.size();
  in_msg_ = info.last ? InMsg::kNone : InMsg::kSend;
  if (info.last) complete_recv(IBV_WC_RECV, in_off_, info.imm, p.imm);
  return true;
}

bool QpImpl::on_write(const wire::Packet& p) {
  const wire::OpInfo& info = wire::op_info(p.opcode);
  const std::uint32_t m = mtu();
  if (!(access_ & IBV_ACCESS_REMOTE_WRITE)) {
    fatal_nak(wire::kNakInvalidReq, p.psn, "RDMA WRITE to a QP without IBV_ACCESS_REMOTE_WRITE");
    return false;
  }
  if (info.imm && rq_.empty()) {
    send_nak(static_cast<std::uint8_t>(wire::kAethRnrNak | min_rnr_timer_), p.psn);
    return false;
  }
  if (info.first) {
    const RemoteCheck rc = engine_.check_remote(p.rkey, p.va, p.dma_len, IBV_ACCESS_REMOTE_WRITE);
    if (rc.nak) {
      fatal_nak(rc.nak, p.psn, "RDMA WRITE with rkey " + hex(p.rkey) + " outside its region or without remote write");
      return false;
    }
    write_ptr_ = rc.ptr;
    write_left_ = write_len_ = p.dma_len;
  }
  // rxe's segmentation rule: full MTU packets until the last, which carries
  // exactly the rest.
  const std::uint64_t size = p.payload.size();
  const bool ok = info.last ? size == write_left_ : (size == m && write_left_ > m);
  if (!ok) {
    fatal_nak(wire::kNakInvalidReq, p.psn,
              "RDMA WRITE segment of " + std::to_string(size) + " bytes with " + std::to_string(write_left_) +
                  " left at MTU " + std::to_string(m));
    return false;
  }
  if (size) std::memcpy(write_ptr_, p.payload.data(), size);
  write_ptr_ += size;
  write_left_ -= size;
  in_msg_ = info.last ? InMsg::kNone : InMsg::kWrite;
  if (info.last && info.imm) complete_recv(IBV_WC_RECV_RDMA_WITH_IMM, write_len_, true, p.imm);
  return true;
}

bool QpImpl::on_read(const wire::Packet& p) {
  if (!(access_ & IBV_ACCESS_REMOTE_READ) || max_dest_rd_atomic_ == 0) {
    fatal_nak(wire::kNakInvalidReq, p.psn, "RDMA READ to a QP without IBV_ACCESS_REMOTE_READ or max_dest_rd_atomic");
    return false;
  }
  const RemoteCheck rc = engine_.check_remote(p.rkey, p.va, p.dma_len, IBV_ACCESS_REMOTE_READ);
  if (rc.nak) {
    fatal_nak(rc.nak, p.psn, "RDMA READ with rkey " + hex(p.rkey) + " outside its region or without remote read");
    return false;
  }
  const std::uint32_t m = mtu();
  const std::uint32_t n =
      std::max<std::uint32_t>(1, static_cast<std::uint32_t>((std::uint64_t{p.dma_len} + m - 1) / m));
  Resource res;
  res.first_psn = p.psn;
  res.last_psn = wire::psn_add(p.psn, n - 1);
  res.va = p.va;
  res.len = p.dma_len;
  res.rkey = p.rkey;
  res.base = rc.ptr;
  add_resource(res);
  RespItem it;
  it.kind = RespItem::kRead;
  it.psn = p.psn;
  it.src = rc.ptr;
  it.remaining = p.dma_len;
  it.npkts = n;
  resp_.push_back(it);
  epsn_ = wire::psn_add(p.psn, n);
  return true;
}

bool QpImpl::on_atomic(const wire::Packet& p) {
  if (!(access_ & IBV_ACCESS_REMOTE_ATOMIC) || max_dest_rd_atomic_ == 0) {
    fatal_nak(wire::kNakInvalidReq, p.psn, "atomic to a QP without IBV_ACCESS_REMOTE_ATOMIC or max_dest_rd_atomic");
    return false;
  }
  if (p.va & 7) {
    fatal_nak(wire::kNakInvalidReq, p.psn, "atomic at a misaligned address");
    return false;
  }
  const RemoteCheck rc = engine_.check_remote(p.rkey, p.va, 8, IBV_ACCESS_REMOTE_ATOMIC);
  if (rc.nak) {
    fatal_nak(rc.nak, p.psn, "atomic with rkey " + hex(p.rkey) + " outside its region or without remote atomic");
    return false;
  }
  // Atomic with respect to the host's own atomics on the same word.
  std::atomic_ref<std::uint64_t> word(*reinterpret_cast<std::uint64_t*>(rc.ptr));
  std::uint64_t orig;
  if (p.opcode == wire::kCompareSwap) {
    orig = p.compare;
    word.compare_exchange_strong(orig, p.swap_add);
  } else {
    orig = word.fetch_add(p.swap_add);
  }
  Resource res;
  res.atomic = true;
  res.first_psn = res.last_psn = p.psn;
  res.va = p.va;
  res.len = 8;
  res.rkey = p.rkey;
  res.base = rc.ptr;
  res.orig = orig;
  add_resource(res);
  RespItem it;
  it.kind = RespItem::kAtomicAck;
  it.psn = p.psn;
  it.orig = orig;
  resp_.push_back(it);
  epsn_ = wire::psn_add(p.psn, 1);
  return true;
}

bool QpImpl::on_nicop(const wire::Packet& p) {
  if (p.op_id == kNicOpKeepAliveId) {  // the peer asks whether we are alive: yes
    RespItem ri;
    ri.kind = RespItem::kNicOpAck;
    ri.psn = p.psn;
    resp_.push_back(ri);
    epsn_ = wire::psn_add(p.psn, 1);
    return true;
  }
  if (max_dest_rd_atomic_ == 0) {
    fatal_nak(wire::kNakInvalidReq, p.psn, "NIC operation to a QP with max_dest_rd_atomic 0");
    return false;
  }
  if (!engine_.nicop_loaded(p.op_id)) {
    fatal_nak(wire::kNakInvalidReq, p.psn, "NIC operation " + std::to_string(p.op_id) + " is not loaded");
    return false;
  }
  if ((p.va & 7) || p.dma_len == 0 || (p.dma_len & 7)) {
    fatal_nak(wire::kNakInvalidReq, p.psn, "NIC operation on a misaligned object");
    return false;
  }
  const RemoteCheck rc = engine_.check_remote(p.rkey, p.va, p.dma_len, URDMA_ACCESS_NIC_OP);
  if (rc.nak) {
    fatal_nak(rc.nak, p.psn,
              "NIC operation with rkey " + hex(p.rkey) + " outside its region or on a region without NIC operations");
    return false;
  }
  NicOpRequest r;
  r.token = std::uint64_t{qpn_} << 24 | p.psn;
  r.qpn = qpn_;
  r.op_id = p.op_id;
  r.va = p.va;
  r.len = p.dma_len;
  r.arg0 = p.arg0;
  r.arg1 = p.arg1;
  r.obj = rc.ptr;
  engine_.region_of(p.rkey, r.region, r.region_va, r.region_len);
  std::vector<NicOpAnswer> out;
  const bool parked = engine_.run_nicop(r, std::max<std::uint32_t>(1, max_dest_rd_atomic_), out);
  Resource res;
  res.nicop = true;
  res.parked = parked;
  res.first_psn = res.last_psn = p.psn;
  res.va = p.va;
  res.len = p.dma_len;
  res.rkey = p.rkey;
  for (auto it = out.begin(); it != out.end(); ++it)
    if (it->token == r.token) {
      res.status = it->status;
      res.orig = it->result;
      out.erase(it);
      break;
    }
  add_resource(res);
  RespItem ri;
  ri.kind = RespItem::kNicOpAck;
  ri.psn = p.psn;
  ri.status = parked ? wire::kNicOpParked : res.status;
  ri.orig = res.orig;
  resp_.push_back(ri);
  if (!out.empty()) engine_.defer_answers(std::move(out));
  epsn_ = wire::psn_add(p.psn, 1);
  return true;
}

void QpImpl::deliver_nicop_answer(std::uint32_t psn, std::uint32_t status, std::uint64_t result) {
  std::lock_guard lk(mu_);
  if (state_ != IBV_QPS_RTR && state_ != IBV_QPS_RTS) return;
  for (Resource& r : resources_) {
    if (r.nicop && r.parked && r.first_psn == psn) {
      r.parked = false;
      r.status = status;
      r.orig = result;
      RespItem ri;
      ri.kind = RespItem::kNicOpAck;
      ri.psn = psn;
      ri.status = status;
      ri.orig = result;
      resp_.push_back(ri);
      return;
    }
  }
}

void QpImpl::on_duplicate(const wire::Packet& p) {
  engine_.counters().duplicates.fetch_add(1, std::memory_order_relaxed);
  if (p.opcode == wire::kReadRequest) {
    for (auto it = resources_.rbegin(); it != resources_.rend(); ++it) {
      const Resource& r = *it;
      if (r.atomic || wire::psn_lt(p.psn, r.first_psn) || wire::psn_lt(r.last_psn, p.psn)) continue;
      // Replay from the asked PSN: the range must lie inside the original.
      if (p.rkey != r.rkey || p.va < r.va || p.va + p.dma_len > r.va + r.len) return;
      // The requester has every packet before p.psn and drops any other as
      // out of sequence: what is still queued of an earlier answer to this
      // READ would only crowd the link (and, when a large READ is asked
      // again several times, make answers pile up behind each other).
      std::erase_if(resp_, [&r](const RespItem& q) {
        return q.kind == RespItem::kRead && wire::psn_le(r.first_psn, q.psn) && wire::psn_le(q.psn, r.last_psn);
      });
      RespItem ri;
      ri.kind = RespItem::kRead;
      ri.psn = p.psn;
      ri.src = r.base + (p.va - r.va);
      ri.remaining = p.dma_len;
      ri.npkts = static_cast<std::uint32_t>(wire::psn_diff(r.last_psn, p.psn)) + 1;
      resp_.push_back(ri);
      return;
    }
    return;  // not found: dropped, as rxe
  }
  if (p.opcode == wire::kNicOpRequest) {
    if (p.op_id == kNicOpKeepAliveId) {  // nothing was run: answer again
      RespItem ri;
      ri.kind = RespItem::kNicOpAck;
      ri.psn = p.psn;
      resp_.push_back(ri);
      return;
    }
    for (const Resource& r : resources_) {
      if (r.nicop && r.first_psn == p.psn) {
        RespItem ri;
        ri.kind = RespItem::kNicOpAck;
        ri.psn = p.psn;
        ri.status = r.parked ? wire::kNicOpParked : r.status;
        ri.orig = r.orig;
        resp_.push_back(ri);
        return;
      }
    }
    return;
  }
  if (p.opcode == wire::kCompareSwap || p.opcode == wire::kFetchAdd) {
    for (const Resource& r : resources_) {
      if (r.atomic && r.first_psn == p.psn) {
        RespItem ri;
        ri.kind = RespItem::kAtomicAck;
        ri.psn = p.psn;
        ri.orig = r.orig;  // never executed twice
        resp_.push_back(ri);
        return;
      }
    }
    return;
  }
  queue_ack(wire::psn_add(epsn_, -1));  // SEND/WRITE: re-ACK the last one processed
}

void QpImpl::on_request(const wire::Packet& p) {
  if (state_ != IBV_QPS_RTR && state_ != IBV_QPS_RTS && state_ != IBV_QPS_SQD && state_ != IBV_QPS_SQE) return;
  const std::int32_t d = wire::psn_diff(p.psn, epsn_);
  if (d > 0) {
    // A packet was lost: ask for a resend from the expected PSN, once.
    if (!nak_sent_) {
      nak_sent_ = true;
      send_nak(wire::kNakSeqErr, epsn_);
    }
    return;
  }
  if (d < 0) {
    on_duplicate(p);
    return;
  }
  const wire::OpInfo& info = wire::op_info(p.opcode);
  // Opcode sequence: a multi-packet message continues with its MIDDLE/LAST.
  const bool is_send = p.opcode <= wire::kSendOnlyImm;
  const bool is_write = p.opcode >= wire::kWriteFirst && p.opcode <= wire::kWriteOnlyImm;
  const bool cont_ok = (in_msg_ == InMsg::kSend && is_send && !info.first) ||
                       (in_msg_ == InMsg::kWrite && is_write && !info.first) || (in_msg_ == InMsg::kNone && info.first);
  if (!cont_ok) {
    fatal_nak(wire::kNakInvalidReq, p.psn, std::string("out-of-sequence opcode ") + info.name);
    return;
  }
  bool ok;
  if (is_send)
    ok = on_send(p);
  else if (is_write)
    ok = on_write(p);
  else if (p.opcode == wire::kReadRequest)
    ok = on_read(p);
  else if (p.opcode == wire::kNicOpRequest)
    ok = on_nicop(p);
  else
    ok = on_atomic(p);
  if (!ok) return;
  nak_sent_ = false;
  if (is_send || is_write) {
    epsn_ = wire::psn_add(p.psn, 1);
    if (p.ack_req) queue_ack(p.psn);
  }
  if (info.last) msn_ = (msn_ + 1) & wire::kPsnMask;
}

bool QpImpl::drain_responses(int budget) {
  bool did = false;
  const std::uint32_t m = mtu();
  while (!resp_.empty() && budget > 0) {
    RespItem& it = resp_.front();
    wire::Packet p;
    p.dest_qp = dest_qpn_;
    p.msn = msn_;
    p.syndrome = wire::kAethCreditsUnlimited;
    if (it.kind != RespItem::kRead) {  // one packet: ACK/NAK, atomic ACK, NIC-operation answer
      p.psn = it.psn;
      p.orig = it.orig;
      if (it.kind == RespItem::kAck) {
        p.opcode = wire::kAck;
        p.syndrome = it.syndrome;
      } else if (it.kind == RespItem::kNicOpAck) {
        p.opcode = wire::kNicOpResponse;
        p.nicop_status = it.status;
      } else {
        p.opcode = wire::kAtomicAck;
      }
      engine_.transmit(p, remote_ip_, qpn_);
      resp_.pop_front();
    } else {
      const bool first = it.sent == 0, last = it.sent + 1 == it.npkts;
      p.opcode = first && last ? wire::kReadRespOnly
                 : first       ? wire::kReadRespFirst
                 : last        ? wire::kReadRespLast
                               : wire::kReadRespMiddle;
      p.psn = wire::psn_add(it.psn, it.sent);
      const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(m, it.remaining));
      p.payload = std::span<const std::uint8_t>(it.src, n);
      engine_.transmit(p, remote_ip_, qpn_);
      it.src += n;
      it.remaining -= n;
      if (++it.sent == it.npkts) resp_.pop_front();
    }
    --budget;
    did = true;
  }
  return did;
}

// ---------------------------------------------------------------- engine entry points

void QpImpl::on_packet(const wire::Packet& p, std::uint64_t now) {
  std::lock_guard lk(mu_);
  if (p.src_ip != remote_ip_) return;  // RC: only from the connected peer (rxe checks the same)
  last_rx_ = now;
  if (wire::op_info(p.opcode).request)
    on_request(p);
  else
    on_response(p, now);
}

bool QpImpl::service(std::uint64_t now, std::uint64_t& next_deadline) {
  std::lock_guard lk(mu_);
  if (state_ == IBV_QPS_RESET || state_ == IBV_QPS_INIT || state_ == IBV_QPS_ERR) return false;
  if (!resolve_asked_) {  // RTR: the peer's address is known; its link address may take an ARP round trip
    resolve_asked_ = true;
    engine_.io().resolve(remote_ip_);
  }
  bool did = drain_responses(kBurst);
  if (state_ == IBV_QPS_RTS) {
    if (timer_deadline_ && now >= timer_deadline_ && wire::psn_lt(una_psn_, next_psn_)) {
      retry_pending_ = false;
      go_back(una_psn_, true, false, now);
      did = true;
    }
    keep_alive(now);
    for (int i = 0; i < kBurst && transmit_next(now); ++i) did = true;
    if (probe_at_ && now >= probe_at_) probe_parked(now);
    if (probe_at_) next_deadline = std::min(next_deadline, probe_at_);
    if (timer_deadline_) next_deadline = std::min(next_deadline, timer_deadline_);
    if (rnr_until_ > now && send_idx_ < sq_.size()) next_deadline = std::min(next_deadline, rnr_until_);
    // More to send right now: keep the engine spinning.
    if (send_idx_ < sq_.size() && now >= rnr_until_ && did) next_deadline = now;
  }
  if (!resp_.empty()) next_deadline = now;
  return did;
}

}  // namespace urdma
