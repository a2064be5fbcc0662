#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# The urdma part of `make demo`, run inside the VM by scripts/demo:
#
#   1. rdma-core's own ibv_rc_pingpong on the kernel's soft-RoCE device rxe0
#      serves urdma-pingpong (user space, DPDK af_packet on the other end of
#      the veth): RoCEv2 on the wire, every buffer checked (-c);
#   2. a short latency comparison, 2-byte messages: perftest on rxe against
#      perftest on rxe, urdma against urdma, urdma against rxe (the runs of
#      scripts/bench-urdma, fewer of them).
#
#   urdma_demo.sh OUTDIR     (raw logs go to OUTDIR/urdma-raw)
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT=$1
raw=$OUT/urdma-raw
rm -rf "$raw"
mkdir -p "$raw"
# shellcheck source=../../selftests/urdma/lib.sh
U_ROOT=$ROOT . "$ROOT/selftests/urdma/lib.sh"
U_WORK=$raw

if ! u_net_up; then
	echo "urdma demo: network set-up failed (rxe and veth in the VM); see $raw" >&2
	exit 1
fi
u_port
p=$U_PORT
echo "ibv_rc_pingpong -d $RXE0 -g 1 (rdma-core, kernel rxe)  <->  urdma-pingpong --backend $(u_backend a) (user space)"
if u_pair pingpong 120 "$p" "ibv_rc_pingpong -d $RXE0 -g 1 -p $p -s 4096 -n 200 -c" \
	"$URDMA_BIN/urdma-pingpong --backend $(u_backend a) -p $p -s 4096 -n 200 -c $RXE0_IP"; then
	sed 's/^/  rxe (server):   /' "$raw/pingpong.server.log" | grep -E 'bytes in|usec/iter'
	sed 's/^/  urdma (client): /' "$raw/pingpong.client.log" | grep -E 'bytes in|usec/iter'
	echo "  200 round trips of 4 KiB (4 packets each at MTU 1024), every buffer checked on both sides"
else
	u_pair_logs pingpong
	echo "urdma demo: ibv_rc_pingpong against urdma-pingpong FAILED" >&2
fi
u_net_down

echo
echo "2-byte latency, 300 iterations per run (t_typical is perftest's median):"
mkdir -p "$raw/lat"
bash "$ROOT/scripts/bench-urdma" --in-vm "$raw/lat" --pairs "rxe-rxe urdma-urdma urdma-rxe" \
	--tests "send_lat write_lat" --sizes 2 --lat-iters 300 --bw-iters 100 2>&1 |
	sed -e 's/^bench-urdma: //' -e 's/^/  /'
