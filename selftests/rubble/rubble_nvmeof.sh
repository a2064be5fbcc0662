#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Description: RubbleDB over real NVMe/TCP. Two replica "machines", each a
# network namespace with its rubble-node, export their NVMe namespaces
# (fastpath0, fastpath1) with the Linux NVMe target over TCP
# (scripts/rubble-nvmeof); the head, in this namespace, writes its SSTs
# through the nvme-tcp devices into the replicas' pools, and chain traffic
# crosses the veth links too. A small load, then every value
# is read back at the tail, the replicas report no flush or compaction of
# their own, and the nvme-tcp devices carried the head's writes. Then the
# head is killed and removed: the middle takes over as head, finds the
# tail's pool through its nvme-tcp device (--find-pools, by pool id) rather
# than the tail's local path, writes its SSTs over NVMe/TCP, and every value
# from before and after the takeover reads back at the tail.
# Needs build/tools/rubble (make tools); skips without it.

ksft_skip=4
root=$(cat fastpath-root 2>/dev/null || (cd ../../../../../.. && pwd))
B=$root/build/tools/rubble
N=${RUBBLE_NVMEOF_KEYS:-1000}
if [ ! -x "$B/rubble-node" ] || [ ! -x "$B/rubble-client" ]; then
	echo "# rubble-node/rubble-client not built ($B): run make tools"
	exit $ksft_skip
fi
set -euo pipefail
W=$(mktemp -d /tmp/rubble-nvmeof.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	"$root/scripts/rubble-nvmeof" down || true
	rm -rf "$W"
}
trap cleanup EXIT

ns_by_serial() {
	for c in /sys/class/nvme/*; do
		[ "$(tr -d ' ' <"$c/serial" 2>/dev/null)" = "$1" ] && echo "/dev/$(basename "$c")n1" && return
	done
}
d1=$(ns_by_serial fastpath0)
d2=$(ns_by_serial fastpath1)
[ -b "$d1" ] && [ -b "$d2" ] || { echo "# no NVMe devices fastpath0/fastpath1"; exit 1; }
for d in "$d1" "$d2"; do dd if=/dev/zero of="$d" bs=1M count=4 oflag=direct status=none; done

"$root/scripts/rubble-nvmeof" up "$d1" "$d2" >"$W/map"
cat "$W/map" | sed 's/^/# replica /'
read -r _ l1 r1 < <(sed -n 1p "$W/map")
read -r _ l2 r2 < <(sed -n 2p "$W/map")

start() { # name netns|- args...
	local name=$1 ns=$2; shift 2
	local run=()
	[ "$ns" = - ] || run=(ip netns exec "$ns")
	"${run[@]}" "$B/rubble-node" "$@" --ready-file "$W/$name.addr" >"$W/$name.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 200); do
		[ -s "$W/$name.addr" ] && return
		kill -0 "${pids[-1]}" 2>/dev/null || { cat "$W/$name.log"; return 1; }
		sleep 0.1
	done
	echo "# $name did not start"; cat "$W/$name.log"; return 1
}
common=(--mode rubble --sst-size 256K --catch-up-interval 200 --chain-id nvmeof-test)
start tail rbns2 --role tail --listen 10.77.2.2:0 --db "$W/tail" --pool "$l2" "${common[@]}"
start middle rbns1 --role middle --listen 10.77.1.2:0 --db "$W/middle" --pool "$l1" \
	--next "$(cat "$W/tail.addr")" --find-pools "$r2" "${common[@]}"
start head - --role head --listen 10.77.1.1:0 --db "$W/head" \
	--next "$(cat "$W/middle.addr")" --replica-pool "$r1" --replica-pool "$r2" "${common[@]}"
H=$(cat "$W/head.addr"); T=$(cat "$W/tail.addr"); M=$(cat "$W/middle.addr")
echo "# chain: head $H -> middle $M (rbns1) -> tail $T (rbns2)"

w0=$(awk '{print $7}' /sys/block/"$(basename "$r1")"/stat)
echo "# loading $N keys of 1 KiB through the chain"
"$B/rubble-client" --head "$H" --tail "$T" fill --count "$N" --value-size 1024 | sed 's/^/# /'
echo "# verifying at the tail"
bad=0
"$B/rubble-client" --head "$H" --tail "$T" check --count "$N" --value-size 1024 | sed 's/^/# /' || bad=1
w1=$(awk '{print $7}' /sys/block/"$(basename "$r1")"/stat)
echo "# sectors written through nvme-tcp to replica 1: $((w1 - w0))"
"$B/rubble-client" stats "$M" | sed 's/^/# middle: /'
"$B/rubble-client" stats "$H" | sed 's/^/# head: /'
rc=0
for r in "$M" "$T"; do
	"$B/rubble-client" stats "$r" | grep -q '^flushes 0, compactions 0,' ||
		{ echo "# replica $r flushed or compacted by itself"; rc=1; }
done
[ "$bad" -eq 0 ] || { echo "# values missing or wrong at the tail"; rc=1; }
[ $((w1 - w0)) -gt 0 ] || { echo "# nothing was written through nvme-tcp"; rc=1; }
[ "$rc" -eq 0 ] || exit $rc

echo "# killing the head; the middle takes over"
kill -9 "${pids[-1]}"
wait "${pids[-1]}" 2>/dev/null || true
"$B/rubble-ctl" --chain "$M" remove "$H" | sed 's/^/# /'
role=
for _ in $(seq 300); do
	role=$("$B/rubble-client" stats "$M" 2>/dev/null | sed -n 's/^role \([a-z]*\),.*/\1/p')
	[ "$role" = head ] && break
	sleep 0.1
done
[ "$role" = head ] || { echo "# the middle did not take over (role '$role')"; tail -5 "$W/middle.log"; exit 1; }
s0=$(awk '{print $7}' /sys/block/"$(basename "$r2")"/stat)
echo "# loading $N more keys through the new head $M"
"$B/rubble-client" --head "$M" --tail "$T" fill --prefix n --count "$N" --value-size 1024 --batch 50 | sed 's/^/# /'
for p in k n; do
	"$B/rubble-client" --head "$M" --tail "$T" check --prefix "$p" --count "$N" --value-size 1024 |
		sed 's/^/# /' || { echo "# values with prefix $p missing or wrong after the takeover"; rc=1; }
done
s1=$(awk '{print $7}' /sys/block/"$(basename "$r2")"/stat)
echo "# sectors the new head wrote through nvme-tcp ($r2) to the tail: $((s1 - s0))"
[ $((s1 - s0)) -gt 0 ] || { echo "# the new head did not write through nvme-tcp"; rc=1; }
"$B/rubble-client" stats "$M" | grep -q 'SSTs shipped [1-9]' ||
	{ echo "# the new head shipped no SST"; rc=1; }
"$B/rubble-client" stats "$T" | grep -q '^flushes 0, compactions 0,' ||
	{ echo "# the tail flushed or compacted by itself"; rc=1; }
exit $rc
