#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Description: the platform urdma's tests stand on, with no urdma tool: the
# veth network of lib.sh, two rxe devices talking across it (rc_pingpong with
# data validation, each perftest latency and bandwidth tool), rxe's hw
# counters agreeing with the kernel's UDP counters, netem loss and reordering
# on the link with rc_pingpong still exact, and DPDK's EAL without hugepages
# driving net_af_packet on the urdma side of the link.
cd "$(dirname "$0")" || exit 1
# shellcheck source=lib.sh
. ./lib.sh
u_require_root_tools ip rdma tc ss ibv_devices ibv_rc_pingpong ib_write_lat ib_write_bw
trap 'u_netem_off $U_IF_A; u_net_down; rm -rf "$U_WORK"' EXIT

N=${URDMA_ITERS:-200}
u_plan 15
if u_net_up; then u_ok "network: $U_IF_A/$U_IF_B, $RXE0 $RXE0_IP, $RXE1 $RXE1_IP"; else
	u_fail "network set-up"
	u_exit
fi

devs=$(ibv_devices)
echo "$devs" | sed 's/^/# /'
u_check "ibv_devices lists $RXE0 and $RXE1" \
	bash -c "grep -qw $RXE0 <<<'$devs' && grep -qw $RXE1 <<<'$devs'"

u_hw_counters $RXE0 >"$U_WORK/c0.before"
u_hw_counters $RXE1 >"$U_WORK/c1.before"
u_snmp >"$U_WORK/snmp.before"
sn0=$(u_softnet_drops)

# rc_pingpong: SEND ping-pong, 4 KiB (4 packets each way at MTU 1024), --chk
u_port; p=$U_PORT
if u_pair rcpp 60 $p "ibv_rc_pingpong -d $RXE0 -g 1 -p $p -n $N -c" \
	"ibv_rc_pingpong -d $RXE1 -g 1 -p $p -n $N -c $URDMA_TCP"; then
	u_ok "ibv_rc_pingpong $RXE0 <- $RXE1, $N x 4096 B, validated: $(grep usec/iter "$U_WORK/rcpp.client.log")"
else
	u_pair_logs rcpp
	u_fail "ibv_rc_pingpong $RXE0 <- $RXE1"
fi

# Each perftest tool once, rxe0 serving rxe1.
for spec in "ib_write_lat -s 2" "ib_read_lat -s 2" "ib_send_lat -s 2" "ib_atomic_lat" \
	"ib_write_bw -s 65536" "ib_read_bw -s 65536" "ib_send_bw -s 65536" "ib_atomic_bw"; do
	read -r tool args <<<"$spec"
	u_port; p=$U_PORT
	if u_pair "$tool" 90 $p "$tool -d $RXE0 -x 1 -F -p $p -n $N $args" \
		"$tool -d $RXE1 -x 1 -F -p $p -n $N $args $URDMA_TCP" &&
		row=$(u_perftest_rows "$U_WORK/$tool.client.log") && [[ -n "$row" ]]; then
		echo "# $tool: $(grep '#bytes' "$U_WORK/$tool.client.log" | head -1 | tr -s ' ')"
		echo "# $tool: $row"
		u_ok "$tool $RXE0 <- $RXE1 $args"
	else
		u_pair_logs "$tool"
		u_fail "$tool $RXE0 <- $RXE1 $args"
	fi
done

# Every RoCE datagram the kernel took in went to rxe, and rxe accepted every
# one (rxe counts rcvd_pkts only after its header and ICRC checks; the UDP
# counter counts what reached its socket).  Nothing else uses UDP here.
u_hw_counters $RXE0 >"$U_WORK/c0.after"
u_hw_counters $RXE1 >"$U_WORK/c1.after"
u_snmp >"$U_WORK/snmp.after"
d0=$(u_counter_delta "$U_WORK/c0.before" "$U_WORK/c0.after")
d1=$(u_counter_delta "$U_WORK/c1.before" "$U_WORK/c1.after")
ds=$(u_counter_delta "$U_WORK/snmp.before" "$U_WORK/snmp.after")
echo "# $RXE0:" $d0
echo "# $RXE1:" $d1
echo "# snmp:" $ds
rcvd=$(($(awk '$1=="rcvd_pkts"{print $2}' <<<"$d0") + $(awk '$1=="rcvd_pkts"{print $2}' <<<"$d1")))
udp_in=$(awk '$1=="Udp:InDatagrams"{print $2}' <<<"$ds")
u_check "rxe rcvd_pkts ($rcvd) == UDP datagrams delivered (${udp_in:-0})" test "$rcvd" = "${udp_in:-0}"
bad=$(u_hard_errors "$(printf '%s\n%s\n' "$d0" "$d1")" $(($(u_softnet_drops) - sn0)))
soft=$(printf '%s\n%s\n' "$d0" "$d1" | grep -E "$U_SOFT_COUNTERS")
[[ -n "$soft" ]] && echo "# reordered/retransmitted (not errors, see lib.sh):" $soft "; softnet drops $(($(u_softnet_drops) - sn0))"
[[ -n "$bad" ]] && echo "# error counters on a clean link:" $bad
u_check "no exhausted retry or send error on a clean link" test -z "$bad"

# netem loss, reordering and delay on both ends of the link for 3 s of a
# long rc_pingpong run; the run ends on a clean link (see
# u_netem_window) with every buffer validated.
u_static_neigh
u_port; p=$U_PORT
if u_netem_window 3 loss 5% reorder 10% delay 1ms; then
	tc qdisc show dev $U_IF_A | sed 's/^/# /'
	u_hw_counters $RXE0 >"$U_WORK/n0.before"
	ok=0
	u_pair rcpp-netem 120 $p "ibv_rc_pingpong -d $RXE0 -g 1 -p $p -n 3000 -c" \
		"ibv_rc_pingpong -d $RXE1 -g 1 -p $p -n 3000 -c $URDMA_TCP" && ok=1
	u_netem_window_end >"$U_WORK/netem.end"
	read -r da db <"$U_WORK/netem.end"
	grep -E 'qdisc|Sent' "$U_WORK/netem.stats" | paste - - | tr -s ' \t' ' ' | sed 's/^/#   /'
	u_hw_counters $RXE0 >"$U_WORK/n0.after"
	echo "# netem dropped $da packets on $U_IF_A, $db on $U_IF_B; $RXE0:" \
		$(u_counter_delta "$U_WORK/n0.before" "$U_WORK/n0.after" | grep -vE '^(rcvd_pkts|sent_pkts|rdma_)')
	if ((ok)) && ((${da:-0} + ${db:-0} > 0)); then
		u_ok "netem loss 5% reorder 10% delay 1ms: rc_pingpong 3000 x 4 KiB validated: $(grep usec/iter "$U_WORK/rcpp-netem.client.log")"
	else
		((ok)) || u_pair_logs rcpp-netem
		u_fail "netem loss 5% reorder 10% delay 1ms: rc_pingpong (completed: $ok, packets dropped: ${da:-0}+${db:-0})"
	fi
else
	u_fail "tc netem on $U_IF_A/$U_IF_B"
fi
u_netem_off $U_IF_A
u_netem_off $U_IF_B

# DPDK EAL without hugepages, net_af_packet on vethA: the port comes up and
# its frames reach vethB.  (--in-memory is not usable with --no-huge in DPDK
# 22.11: --no-huge implies legacy memory, which --in-memory rejects.)
if command -v dpdk-testpmd >/dev/null; then
	rx0=$(u_if_stat $U_IF_B rx_packets)
	{ echo "start tx_first"; sleep 3; echo "stop"; sleep 1; echo "quit"; } |
		timeout 120 dpdk-testpmd -l 0-1 --no-huge -m 256 --no-shconf --no-pci --no-telemetry \
			--vdev=net_af_packet0,iface=$U_IF_A -- -i --total-num-mbufs=2048 >"$U_WORK/testpmd.log" 2>&1
	rc=$?
	rx1=$(u_if_stat $U_IF_B rx_packets)
	tx=$(awk '/TX-packets:/ { print $NF; exit }' "$U_WORK/testpmd.log")
	grep -E 'EAL: Error|Port 0: |TX-packets|Bye' "$U_WORK/testpmd.log" | head -6 | sed 's/^/# testpmd: /'
	if [[ $rc == 0 ]] && ((rx1 - rx0 >= 32)); then
		u_ok "DPDK EAL --no-huge, net_af_packet on $U_IF_A: $((rx1 - rx0)) frames reached $U_IF_B"
	else
		tail -20 "$U_WORK/testpmd.log" | sed 's/^/#   /'
		u_fail "DPDK EAL --no-huge, net_af_packet on $U_IF_A (exit $rc, $((rx1 - rx0)) frames at $U_IF_B)"
	fi
else
	u_skip "DPDK EAL on $U_IF_A" "dpdk-testpmd not installed"
fi
u_exit
