#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Description: BPF-KV end to end through XRP.  On a database on the raw
# NVMe device (fastpath0), 10,000 random GETs (some for absent keys) and
# 50 RANGE and 50 SUM queries through the xrp back-end give exactly the
# pread back-end's answers; the same on a database in an ext4 file
# (fastpath2) with 20 RANGE and 20 SUM queries.  (Each query is a bpfkv
# process that loads and verifies its program: about a second under TCG.)
# Needs build/tools/bpfkv/bpfkv (make tools bpf); skips without it.

ksft_skip=4
root=$(cat fastpath-root 2>/dev/null)
B=$root/build/tools/bpfkv/bpfkv
if [ ! -x "$B" ]; then
	echo "# bpfkv not built ($B): run make tools bpf"
	exit $ksft_skip
fi
work=$(mktemp -d)
trap 'umount /tmp/bpfkv-e2e 2>/dev/null; rm -rf "$work"' EXIT

ns_by_serial() {
	for c in /sys/class/nvme/*; do
		[ "$(tr -d ' ' <"$c/serial")" = "$1" ] && echo "/dev/$(basename "$c")n1" && return
	done
}

n=0
fail=0
result() {
	n=$((n + 1))
	if [ "$1" = ok ]; then
		echo "ok $n $2"
	else
		echo "not ok $n $2"
		fail=$((fail + 1))
	fi
}

# same_answers NAME CMD...: CMD through pread and through xrp print the same
# thing once the back-end's name is blanked out.
same_answers() {
	local name=$1
	shift
	"$@" --backend pread >"$work/p" 2>&1 || { result fail "$name: pread failed: $(tail -1 "$work/p")"; return; }
	"$@" --backend xrp >"$work/x" 2>&1 || { result fail "$name: xrp failed: $(tail -1 "$work/x")"; return; }
	sed -i 's/\bpread\b/BACKEND/g' "$work/p"
	sed -i 's/\bxrp\b/BACKEND/g' "$work/x"
	if cmp -s "$work/p" "$work/x"; then
		result ok "$name"
	else
		result fail "$name: answers differ"
		diff "$work/p" "$work/x" | head -10 | sed 's/^/# /'
	fi
}

check_db() {
	local db=$1 where=$2 nq=$3 nkeys keys i lo hi
	nkeys=$("$B" info "$db" | awk '$1 == "keys" { print $2 }')
	# 10,000 keys, about one in five absent
	keys=$(awk -v n=10000 -v max=$((nkeys * 5 / 4)) 'BEGIN { srand(7); for (i = 0; i < n; i++) printf "%d ", int(rand() * max) }')
	# shellcheck disable=SC2086
	same_answers "$where: 10000 random GETs" "$B" get "$db" $keys
	local rfail=0 sfail=0
	for i in $(seq 1 "$nq"); do
		lo=$(( (i * 7919) % nkeys ))
		hi=$(( lo + 1 + (i * 104729) % 300 ))
		"$B" range "$db" $lo $hi --backend pread >"$work/rp" 2>&1 &&
			"$B" range "$db" $lo $hi --backend xrp >"$work/rx" 2>&1 &&
			sed -i 's/\bpread\b/B/g' "$work/rp" && sed -i 's/\bxrp\b/B/g' "$work/rx" &&
			cmp -s "$work/rp" "$work/rx" || { rfail=$((rfail + 1)); [ $rfail = 1 ] && tail -2 "$work/rx" | sed 's/^/# /'; }
		"$B" agg "$db" sum $lo $hi --backend pread >"$work/sp" 2>&1 &&
			"$B" agg "$db" sum $lo $hi --backend xrp >"$work/sx" 2>&1 &&
			sed -i 's/\bpread\b/B/g' "$work/sp" && sed -i 's/\bxrp\b/B/g' "$work/sx" &&
			cmp -s "$work/sp" "$work/sx" || { sfail=$((sfail + 1)); [ $sfail = 1 ] && tail -2 "$work/sx" | sed 's/^/# /'; }
	done
	[ $rfail = 0 ] && result ok "$where: $nq RANGE queries" || result fail "$where: $rfail of $nq RANGE queries differ or fail"
	[ $sfail = 0 ] && result ok "$where: $nq SUM queries" || result fail "$where: $sfail of $nq SUM queries differ or fail"
}

echo "TAP version 13"
echo "1..6"
raw=$(ns_by_serial fastpath0)
"$B" create "$raw" --layers 5 --fanout 8 --force >/dev/null 2>&1 || { echo "# cannot create a database on $raw"; exit 1; }
check_db "$raw" "raw $raw, 5 layers" 50

fsdev=$(ns_by_serial fastpath2)
mkfs.ext4 -q -F -b 4096 "$fsdev" && mkdir -p /tmp/bpfkv-e2e && mount -t ext4 "$fsdev" /tmp/bpfkv-e2e || { echo "# cannot make ext4 on $fsdev"; exit 1; }
"$B" create /tmp/bpfkv-e2e/kv.db --layers 3 --fanout 30 --node-size 512 >/dev/null 2>&1 || { echo "# cannot create /tmp/bpfkv-e2e/kv.db"; exit 1; }
check_db /tmp/bpfkv-e2e/kv.db "ext4 file, 3 layers" 20

echo "# $((n - fail)) passed, $fail failed"
[ $fail = 0 ]
