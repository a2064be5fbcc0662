// SPDX-License-Identifier: GPL-2.0
// The Conn adapter over libibverbs (rdma-core): ibv_qp and its CQs, e.g. rxe
// in the VM.  It only polls (no completion channel): wait_* are polls.
#pragma once

#include <infiniband/verbs.h>

#include <string>

namespace volt {

struct IbvVerbs {
  ibv_qp* qp = nullptr;
  ibv_cq* send_cq = nullptr;
  ibv_cq* recv_cq = nullptr;

  int post_send(ibv_send_wr* wr, ibv_send_wr** bad) { return ibv_post_send(qp, wr, bad); }
  int post_recv(ibv_recv_wr* wr, ibv_recv_wr** bad) { return ibv_post_recv(qp, wr, bad); }
  int poll_send(int n, ibv_wc* wc) { return ibv_poll_cq(send_cq, n, wc); }
  int poll_recv(int n, ibv_wc* wc) { return ibv_poll_cq(recv_cq, n, wc); }
  int wait_send(int n, ibv_wc* wc, int) { return ibv_poll_cq(send_cq, n, wc); }
  int wait_recv(int n, ibv_wc* wc, int) { return ibv_poll_cq(recv_cq, n, wc); }
  std::string error_reason() const { return {}; }
  static const char* status_str(ibv_wc_status s) { return ibv_wc_status_str(s); }
};

}  // namespace volt
