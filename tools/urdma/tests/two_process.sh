#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Host integration: two urdma processes in two network namespaces joined by
# a veth pair, for each back-end (DPDK net_af_packet, UDP socket), with the
# engine's fault injection on at both ends: urdma-verify runs every verbs
# operation at every size from 1 B to 16 MiB and checks the data at both
# ends (see tools/verify.cpp).
#
#   two_process.sh URDMA_VERIFY [FAULTS]
#
# FAULTS: the fault keys given to both back-ends (default below; each end
# gets its own seed).  Exits 77 (skipped) without root or iproute2.
set -euo pipefail

verify=${1:?usage: two_process.sh URDMA_VERIFY [FAULTS]}
faults=${2:-drop=0.005,dup=0.005,reorder=0.005,corrupt=0.005}

if ((EUID != 0)); then
	echo "SKIP: needs root (network namespaces, AF_PACKET)"
	exit 77
fi
if ! ip -V >/dev/null 2>&1; then
	echo "SKIP: needs the ip command (iproute2)"
	exit 77
fi

tag=$$
nsa=urdma-2p-a-$tag nsb=urdma-2p-b-$tag
va=u2pa$tag vb=u2pb$tag
net=10.214.$((tag % 250)).
cleanup() {
	ip netns del "$nsa" 2>/dev/null || true
	ip netns del "$nsb" 2>/dev/null || true # takes the veth pair with it
}
trap cleanup EXIT

ip netns add "$nsa"
ip netns add "$nsb"
ip link add "$va" netns "$nsa" type veth peer name "$vb" netns "$nsb"
ip -n "$nsa" addr add "${net}1/24" dev "$va"
ip -n "$nsb" addr add "${net}2/24" dev "$vb"
for ns in "$nsa" "$nsb"; do ip -n "$ns" link set lo up; done
ip -n "$nsa" link set "$va" up
ip -n "$nsb" link set "$vb" up

failed=0
port=18620
# run NAME SERVER_BACKEND CLIENT_BACKEND
run() {
	local name=$1 sb=$2 cb=$3 log rc=0 start
	log=$(mktemp)
	start=$(date +%s%N)
	echo "# $name: server --backend $sb"
	echo "# $name: client --backend $cb"
	ip netns exec "$nsa" timeout 300 "$verify" --backend "$sb" -p "$port" >"$log" 2>&1 &
	local server=$!
	if ! ip netns exec "$nsb" timeout 300 "$verify" --backend "$cb" -p "$port" \
		--connect-retry 20 "${net}1"; then
		rc=1
	fi
	wait "$server" || rc=1
	sed 's/^/# server: /' "$log"
	rm -f "$log"
	local ms=$((($(date +%s%N) - start) / 1000000))
	printf '# %s: %s in %d.%d s\n' "$name" "$( ((rc == 0)) && echo passed || echo FAILED)" \
		$((ms / 1000)) $((ms % 1000 / 100))
	((rc == 0)) || failed=1
	port=$((port + 1))
}

run "dpdk af_packet" "dpdk:iface=$va,ip=${net}11,$faults,seed=11" \
	"dpdk:iface=$vb,ip=${net}12,$faults,seed=12"
run "udp" "udp:ip=${net}1,$faults,seed=21" "udp:ip=${net}2,$faults,seed=22"

exit "$failed"
