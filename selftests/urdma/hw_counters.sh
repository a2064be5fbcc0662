#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Description: rxe's view of urdma's packets.  urdma-perf (vethA) runs WRITE
# bandwidth at 64 KiB, READ, SEND and atomic latency against ib_* on rxe0
# while nothing else uses UDP.  Then: rxe0 counted packets (rcvd_pkts); it
# counted every UDP datagram that reached its socket (rxe counts a packet
# only after its header checks and ICRC, and drops a bad one silently, so a
# difference is a malformed urdma packet); no IP or UDP header/checksum
# error; no retry exhaustion or send error on rxe0 (sequence gaps, RNR
# NAKs and duplicates are reported: veth reorders a sender that changes CPU).
# When urdma-perf's --json carries "device_stats" (tx_packets, rx_packets,
# rx_bad_icrc, rx_malformed), the packet counts must match both ways too.
cd "$(dirname "$0")" || exit 1
# shellcheck source=lib.sh
. ./lib.sh
NAMES="workload rcvd_pkts udp_equals_rcvd ip_udp_errors rxe_errors urdma_counts"
u_require_tools 6 "$NAMES" urdma-perf
u_require_root_tools ip rdma ss ib_write_bw
trap 'u_net_down; rm -rf "$U_WORK"' EXIT

u_plan 6
u_net_up || { u_fail "network set-up"; u_exit; }
u_hw_counters $RXE0 >"$U_WORK/c.before"
u_snmp >"$U_WORK/s.before"
sn0=$(u_softnet_drops)
ok=1
runs=()
for spec in "write_bw 65536 100" "read_lat 4096 100" "send_lat 4096 100" "atomic_lat - 100"; do
	read -r t s n <<<"$spec"
	name=hw-$t
	runs+=("$name")
	if ! u_interop "$name" "$t" "$s" "$n" urdma-client; then
		u_pair_logs "$name" 6
		ok=0
	fi
done
u_hw_counters $RXE0 >"$U_WORK/c.after"
u_snmp >"$U_WORK/s.after"
dc=$(u_counter_delta "$U_WORK/c.before" "$U_WORK/c.after")
ds=$(u_counter_delta "$U_WORK/s.before" "$U_WORK/s.after")
echo "# $RXE0:" $dc
echo "# snmp:" $ds
get() { awk -v k="$1" '$1 == k { print $2; f = 1 } END { if (!f) print 0 }' <<<"$2"; }
rcvd=$(get rcvd_pkts "$dc")
sent=$(get sent_pkts "$dc")
udp=$(get Udp:InDatagrams "$ds")
((ok)) && u_ok "workload: write_bw 64 KiB, read_lat/send_lat 4 KiB, atomic_lat" || u_fail "workload"
u_check "$RXE0 received urdma's packets: rcvd_pkts +$rcvd" test "$rcvd" -gt 0
u_check "every RoCE datagram passed rxe's checks: rcvd_pkts $rcvd == Udp:InDatagrams $udp" test "$rcvd" = "$udp"
bad=$(grep -E '^(Ip:InHdrErrors|Ip:InDiscards|Udp:InErrors|Udp:InCsumErrors|Udp:NoPorts|Udp:RcvbufErrors) ' <<<"$ds")
u_check "no IP/UDP header, checksum or port error${bad:+: $bad}" test -z "$bad"
bad=$(u_hard_errors "$dc" $(($(u_softnet_drops) - sn0)))
soft=$(grep -E "$U_SOFT_COUNTERS" <<<"$dc")
[[ -n "$soft" ]] && echo "# reordered/retransmitted (not errors, see lib.sh):" $soft "; softnet drops $(($(u_softnet_drops) - sn0))"
u_check "no retry exhaustion or send error on $RXE0${bad:+: $bad}" test -z "$bad"

# urdma's own counts, if urdma-perf reports them
if command -v python3 >/dev/null; then
	sums=$(python3 - "$U_WORK" "${runs[@]}" <<'PY'
import json, sys, os
d, names = sys.argv[1], sys.argv[2:]
tot, have = {}, True
for n in names:
    try:
        recs = json.load(open(os.path.join(d, n + ".json")))
    except Exception:
        have = False; break
    recs = recs if isinstance(recs, list) else [recs]
    st = [r["device_stats"] for r in recs if isinstance(r, dict) and "device_stats" in r]
    if not st:
        have = False; break
    for k, v in st[-1].items():
        if isinstance(v, int): tot[k] = tot.get(k, 0) + v
if have:
    print(" ".join(f"{k}={tot.get(k, 0)}" for k in ("tx_packets", "rx_packets", "rx_bad_icrc", "rx_malformed", "rx_no_qp")))
PY
	)
fi
if [[ -z "${sums:-}" ]]; then
	u_skip "urdma_counts" "urdma-perf --json has no device_stats"
else
	echo "# urdma: $sums"
	eval "$sums"
	u_check "urdma tx_packets $tx_packets == $RXE0 rcvd_pkts $rcvd, rx_packets $rx_packets == sent_pkts $sent, no bad ICRC/malformed ($rx_bad_icrc/$rx_malformed)" \
		test "$tx_packets" = "$rcvd" -a "$rx_packets" = "$sent" -a "$rx_bad_icrc" = 0 -a "$rx_malformed" = 0
fi
u_exit
