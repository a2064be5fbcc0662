#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Description: fetch-and-add from two machines on one counter held by a
# third.  faa_target keeps a 64-bit counter on rxe0 (host B) and serves
# perftest atomic clients, each on its own QP, releasing them together; the
# clients run on host A: ib_atomic_lat on rxe1 and urdma-perf atomic_lat on
# urdma (vethA, 10.88.0.2), N fetch-and-add of 1 each (perftest's
# ATOMIC_ADD_VALUE).  The counter must end at exactly the sum.  The first case
# (two rxe clients) checks the helper itself and needs no urdma tool.
cd "$(dirname "$0")" || exit 1
# shellcheck source=lib.sh
. ./lib.sh
u_require_root_tools ip rdma ss ib_atomic_lat
trap 'u_net_down; rm -rf "$U_WORK"' EXIT
N=${URDMA_ATOMIC_ITERS:-500}
T=./faa_target
[[ -x $T ]] || { echo "# $T not built"; exit 1; }

u_plan 3
u_net_up || { u_fail "network set-up"; u_exit; }

# faa_target with K clients, each a command line.  The clients connect one
# after the other (each once the previous one's QP is up: the faa_target
# log says "client N:"), and faa_target releases them together.
three_party() { # NAME CLIENT_CMD...
	local name=$1 p i pids=() rc=0 c
	shift
	u_port; p=$U_PORT
	u_hw_counters $RXE0 >"$U_WORK/$name.c0.before"
	timeout 120 $T -d $RXE0 -g 1 -p $p -c $# -e $(($# * N)) >"$U_WORK/$name.target.log" 2>&1 &
	local tpid=$!
	u_wait_listen $p 300 $tpid || { echo "# faa_target did not listen"; cat "$U_WORK/$name.target.log"; return 1; }
	i=0
	for c in "$@"; do
		timeout 100 bash -c "${c//@PORT@/$p}" >"$U_WORK/$name.client$((i + 1)).log" 2>&1 &
		pids+=($!)
		for _ in $(seq 300); do
			grep -q "^faa_target: client $i:" "$U_WORK/$name.target.log" && break
			kill -0 $tpid 2>/dev/null || break
			sleep 0.1
		done
		i=$((i + 1))
	done
	i=0
	for pid in "${pids[@]}"; do
		i=$((i + 1))
		wait "$pid" || { rc=1; echo "# client $i failed:"; tail -5 "$U_WORK/$name.client$i.log" | sed 's/^/#   /'; }
	done
	wait $tpid || rc=1
	sed 's/^/# /' "$U_WORK/$name.target.log"
	u_hw_counters $RXE0 >"$U_WORK/$name.c0.after"
	echo "# $RXE0:" $(u_counter_delta "$U_WORK/$name.c0.before" "$U_WORK/$name.c0.after")
	for ((i = 1; i <= $#; i++)); do
		u_perftest_rows "$U_WORK/$name.client$i.log" | sed "s/^/# client $i: /"
	done
	dmesg | grep -i 'rdma_rxe' | tail -3 | sed 's/^/# dmesg: /'
	return $rc
}

rxe_client="ib_atomic_lat -d $RXE1 -x 1 -F -n $N -p @PORT@ $URDMA_TCP"
if three_party rxe2 "$rxe_client" "$rxe_client"; then
	u_ok "2 rxe clients x $N fetch-and-add on one rxe counter: exact"
else
	u_fail "2 rxe clients x $N fetch-and-add on one rxe counter"
fi

miss=$(u_missing_tools urdma-perf)
if [[ -n "$miss" ]]; then
	echo "# ################################################################"
	echo "# SKIP: urdma tool(s) not built: $miss (looked in $URDMA_BIN; make tools)"
	echo "# ################################################################"
	u_skip "rxe client + urdma client on one rxe counter" "urdma tool(s) missing: $miss"
	u_skip "rxe client + 2 QPs of urdma clients on one rxe counter" "urdma tool(s) missing: $miss"
	u_exit
fi
ucli="$URDMA_BIN/urdma-perf atomic_lat --backend $(u_backend a) -n $N -p @PORT@ $URDMA_TCP"
if three_party mixed "$ucli" "$rxe_client"; then
	u_ok "rxe client + urdma client x $N fetch-and-add on one rxe counter: exact"
else
	u_fail "rxe client + urdma client x $N fetch-and-add on one rxe counter"
fi
# two urdma processes cannot share vethA's address; one urdma client and two
# rxe clients instead: three QPs, two requesters, one counter.  (urdma's
# client connects first: when it connected second, rxe1's first atomic failed
# with "rdma_rxe: qp#N Failed allocating skb", see the report.)
if three_party mixed3 "$ucli" "$rxe_client" "$rxe_client"; then
	u_ok "2 rxe clients + urdma client x $N fetch-and-add on one rxe counter: exact"
else
	u_fail "2 rxe clients + urdma client x $N fetch-and-add on one rxe counter"
fi
u_exit
