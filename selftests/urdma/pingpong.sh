#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Description: urdma-pingpong against rdma-core's ibv_rc_pingpong on rxe0,
# both roles, every buffer validated (-c), at 4 KiB (4 packets a message at
# MTU 1024) and 64 KiB; then urdma against urdma.  The rxe side's neighbour
# entry for urdma's address must carry vethA's MAC: urdma answered ARP.
cd "$(dirname "$0")" || exit 1
# shellcheck source=lib.sh
. ./lib.sh
NAMES="rxe-server-4k rxe-server-64k urdma-server-4k urdma-server-64k arp urdma-urdma-4k"
u_require_tools 6 "$NAMES" urdma-pingpong
u_require_root_tools ip rdma ss ibv_rc_pingpong
trap 'u_net_down; rm -rf "$U_WORK"' EXIT
N=${URDMA_ITERS:-200}
UP=$URDMA_BIN/urdma-pingpong

u_plan 6
u_net_up || { u_fail "network set-up"; u_exit; }

pp() { # NAME SIZE ITERS ROLE
	local name=$1 s=$2 n=$3 role=$4 p
	u_port; p=$U_PORT
	local rc="ibv_rc_pingpong -d $RXE0 -g 1 -p $p -s $s -n $n -c"
	local ur="$UP --backend $(u_backend a) -p $p -s $s -n $n -c"
	case $role in
	rxe-server) u_pair "$name" 120 $p "$rc" "$ur $RXE0_IP" ;;
	urdma-server) u_pair "$name" 120 $p "$ur" "$rc $URDMA_TCP" ;;
	urdma-urdma) u_pair "$name" 120 $p "$UP --backend $(u_backend b) -p $p -s $s -n $n -c" "$ur $URDMA_TCP" ;;
	esac
	local r=$?
	if ((r == 0)); then
		u_ok "$name: $n x $s B validated; client: $(grep usec/iter "$U_WORK/$name.client.log")"
	else
		u_pair_logs "$name"
		u_fail "$name: $n x $s B"
	fi
}

pp rxe-server-4k 4096 $N rxe-server
pp rxe-server-64k 65536 $((N / 4)) rxe-server
pp urdma-server-4k 4096 $N urdma-server
pp urdma-server-64k 65536 $((N / 4)) urdma-server
neigh=$(ip neigh show $URDMA_A_IP dev $U_IF_B)
echo "# $U_IF_B neighbour: $neigh"
u_check "arp: $RXE0's host resolved urdma's $URDMA_A_IP to $U_IF_A's MAC" \
	grep -qi "lladdr $(cat /sys/class/net/$U_IF_A/address)" <<<"$neigh"
pp urdma-urdma-4k 4096 $N urdma-urdma
u_exit
