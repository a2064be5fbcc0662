#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Description: urdma's UDP back-end (a plain socket, no DPDK) against
# rdma-core's ibv_rc_pingpong on rxe.  rxe gives each packet an IP ID of its
# own, which the ICRC covers and a socket cannot see: with ip_id=solve urdma
# recovers it from the ICRC, and the ping-pong runs in both roles, every
# buffer validated; without it, urdma drops rxe's packets as bad ICRC.
#
# rxe binds *:4791 in the initial network namespace, so urdma's socket lives
# in a namespace of its own (uudp), joined to rxe2's veth.
cd "$(dirname "$0")" || exit 1
# shellcheck source=lib.sh
. ./lib.sh
NAMES="rxe-server urdma-server without-ip-id-solve"
u_require_tools 3 "$NAMES" urdma-pingpong
u_require_root_tools ip rdma ss ibv_rc_pingpong
NS=uudp IF_R=vethU IF_U=vethV RXE=rxe2 R_IP=10.89.0.1 U_IP=10.89.0.2
down() {
	rdma link delete $RXE 2>/dev/null
	ip link del $IF_R 2>/dev/null
	ip netns del $NS 2>/dev/null
	true
}
trap 'down; rm -rf "$U_WORK"' EXIT
N=${URDMA_ITERS:-200}
UP=$URDMA_BIN/urdma-pingpong

up() {
	down
	ip netns add $NS &&
		ip link add $IF_R type veth peer name $IF_U netns $NS &&
		ip addr add $R_IP/24 dev $IF_R && ip link set $IF_R up &&
		ip -n $NS addr add $U_IP/24 dev $IF_U && ip -n $NS link set $IF_U up &&
		ip -n $NS link set lo up &&
		rdma link add $RXE type rxe netdev $IF_R || return 1
	local i
	for i in $(seq 50); do
		u_gid $RXE | grep -q "0a59:0001$" && return 0
		sleep 0.1
	done
	echo "# $RXE's IPv4 GID did not appear: $(u_gid $RXE)"
	return 1
}

u_plan 3
up || { u_fail "network set-up"; u_exit; }

pp() { # NAME ROLE ID_MODE TIMEOUT
	local name=$1 role=$2 id=$3 to=$4 p
	u_port; p=$U_PORT
	local rc="ibv_rc_pingpong -d $RXE -g 1 -p $p -s 4096 -n $N -c"
	local ur="ip netns exec $NS $UP --backend udp:ip=$U_IP,ip_id=$id --timeout 5 -p $p -s 4096 -n $N -c"
	case $role in
	rxe-server) u_pair "$name" "$to" $p "$rc" "$ur $R_IP" ;;
	urdma-server) U_LISTEN_NS=$NS u_pair "$name" "$to" $p "$ur" "$rc $U_IP" ;;
	esac
}

for role in rxe-server urdma-server; do
	if pp $role $role solve 120; then
		u_ok "$role: $N x 4096 B validated, urdma on udp:ip=$U_IP,ip_id=solve; client: $(grep usec/iter "$U_WORK/$role.client.log")"
	else
		u_pair_logs $role
		u_fail "$role: $N x 4096 B over the UDP back-end"
	fi
done

# The same with ip_id=zero (the default, right between urdma peers): rxe's
# packets fail their ICRC and nothing gets through.
if pp without-ip-id-solve rxe-server zero 15; then
	u_fail "without-ip-id-solve: the ping-pong passed although urdma checked rxe's ICRC with IP ID 0"
else
	u_ok "without-ip-id-solve: fails as it must (urdma: $(grep -o 'error:.*' "$U_WORK/without-ip-id-solve.client.log" | head -c 120))"
fi
u_exit
