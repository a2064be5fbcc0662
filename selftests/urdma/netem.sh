#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Description: urdma and rxe through a bad link.  netem (loss 5%, reorder
# 10%, delay 1 ms) on both ends of the veth for 1 s once each run's traffic
# flows, then a clean link for its end (u_netem_window: rc_pingpong and
# perftest destroy their QPs once their own last completion arrives, so an
# rxe peer whose last ACK was lost would retransmit for ever).  Neighbour
# entries are static, so a lost ARP packet cannot fail a QP's set-up.
# ibv_rc_pingpong and urdma-pingpong validate every buffer (-c); the perftest
# runs must complete; netem must have dropped packets during each run.
cd "$(dirname "$0")" || exit 1
# shellcheck source=lib.sh
. ./lib.sh
NAMES="pp-rxe-server pp-urdma-server pp-urdma-urdma write_bw-urdma-client read_lat-urdma-client read_lat-rxe-client"
u_require_tools 6 "$NAMES" urdma-pingpong urdma-perf
u_require_root_tools ip rdma ss tc ibv_rc_pingpong ib_write_bw ib_read_lat
trap 'u_netem_off $U_IF_A; u_netem_off $U_IF_B; u_net_down; rm -rf "$U_WORK"' EXIT
NETEM="loss 5% reorder 10% delay 1ms"
W=${URDMA_NETEM_SECONDS:-1} # the ping-pongs last >= 1 s under netem (1 ms each way)
UP=$URDMA_BIN/urdma-pingpong

u_plan 6
u_net_up || { u_fail "network set-up"; u_exit; }
u_static_neigh
U_QDISC=1 # urdma's af_packet ports send through the qdisc: netem applies

judge() { # NAME RC DESCRIPTION
	local name=$1 r=$2 what=$3 da db
	u_netem_window_end >"$U_WORK/netem.end"
	read -r da db <"$U_WORK/netem.end"
	u_hw_counters $RXE0 >"$U_WORK/$name.c.after"
	grep -E 'qdisc|Sent' "$U_WORK/netem.stats" | paste - - | tr -s ' \t' ' ' | sed 's/^/#   /'
	echo "# $name: netem dropped ${da:-?} on $U_IF_A, ${db:-?} on $U_IF_B; $RXE0:" \
		$(u_counter_delta "$U_WORK/$name.c.before" "$U_WORK/$name.c.after" | grep -vE '^(rcvd_pkts|sent_pkts|rdma_)')
	if ((r == 0)) && ((${da:-0} + ${db:-0} > 0)); then
		u_ok "$name: $what"
	else
		((r == 0)) || u_pair_logs "$name"
		u_fail "$name: $what (exit $r, dropped ${da:-0}+${db:-0})"
	fi
}

# The pingpongs: 4 KiB messages, enough of them to outlast the window, and
# to last well after the window's start even on a clean link (0.9 ms an
# iteration: 500 once ended in 0.44 s, before netem was on).
pp() { # NAME ROLE
	local name=$1 role=$2 p n=${URDMA_NETEM_PP_ITERS:-1500} r=0
	u_port; p=$U_PORT
	local rc="ibv_rc_pingpong -d $RXE0 -g 1 -p $p -n $n -c"
	local ur="$UP --backend $(u_backend a) -p $p -n $n -c"
	u_hw_counters $RXE0 >"$U_WORK/$name.c.before"
	u_netem_window $W $NETEM
	case $role in
	rxe-server) u_pair "$name" 180 $p "$rc" "$ur $RXE0_IP" || r=$? ;;
	urdma-server) u_pair "$name" 180 $p "$ur" "$rc $URDMA_TCP" || r=$? ;;
	urdma-urdma) u_pair "$name" 180 $p "$UP --backend $(u_backend b) -p $p -n $n -c" "$ur $URDMA_TCP" || r=$? ;;
	esac
	judge "$name" $r "$n x 4 KiB validated; $(grep -h usec/iter "$U_WORK/$name.client.log")"
}
pp pp-rxe-server rxe-server
pp pp-urdma-server urdma-server
pp pp-urdma-urdma urdma-urdma

pf() { # NAME TEST SIZE ITERS ROLE
	local name=$1 r=0
	u_hw_counters $RXE0 >"$U_WORK/$name.c.before"
	u_netem_window $W $NETEM
	u_interop "$name" "$2" "$3" "$4" "$5" || r=$?
	judge "$name" $r "$(u_client_row "$name" | tr -s ' ')"
}
pf write_bw-urdma-client write_bw 65536 300 urdma-client
pf read_lat-urdma-client read_lat 4096 3000 urdma-client
pf read_lat-rxe-client read_lat 4096 3000 rxe-client
u_exit
