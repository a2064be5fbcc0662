// SPDX-License-Identifier: GPL-2.0
// The Conn adapter over urdma (tools/urdma): urdma::Qp and its CQs.
#pragma once

#include <infiniband/verbs.h>

#include <string>

#include "urdma/verbs.h"

namespace volt {

struct UrdmaVerbs {
  urdma::Qp* qp = nullptr;
  urdma::Cq* send_cq = nullptr;
  urdma::Cq* recv_cq = nullptr;

  int post_send(ibv_send_wr* wr, ibv_send_wr** bad) { return qp->post_send(wr, bad); }
  int post_recv(ibv_recv_wr* wr, ibv_recv_wr** bad) { return qp->post_recv(wr, bad); }
  int poll_send(int n, ibv_wc* wc) { return send_cq->poll(n, wc); }
  int poll_recv(int n, ibv_wc* wc) { return recv_cq->poll(n, wc); }
  int wait_send(int n, ibv_wc* wc, int ms) { return send_cq->wait(n, wc, ms); }
  int wait_recv(int n, ibv_wc* wc, int ms) { return recv_cq->wait(n, wc, ms); }
  std::string error_reason() const { return qp->error_reason(); }
  static const char* status_str(ibv_wc_status s) { return urdma::wc_status_str(s); }
};

}  // namespace volt
