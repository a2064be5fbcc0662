#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Description: BPF-KV end to end through XRP.  On a database on the raw
# NVMe device (fastpath0) and on one in an ext4 file (fastpath2), 10,000
# random GETs (a fifth of them for absent keys), 100 RANGE scans and 100
# SUM/MIN/MAX/COUNT aggregations through the xrp back-end give exactly the
# pread back-end's answers (`bpfkv compare`, one process per database, so
# each XRP program is loaded and verified once).
# Needs build/tools/bpfkv/bpfkv (make tools); skips without it.

ksft_skip=4
root=$(cat fastpath-root 2>/dev/null)
B=$root/build/tools/bpfkv/bpfkv
if [ ! -x "$B" ]; then
	echo "# bpfkv not built ($B): run make tools"
	exit $ksft_skip
fi
trap 'umount /tmp/bpfkv-e2e 2>/dev/null' EXIT

ns_by_serial() {
	for c in /sys/class/nvme/*; do
		[ "$(tr -d ' ' <"$c/serial")" = "$1" ] && echo "/dev/$(basename "$c")n1" && return
	done
}

rc=0
raw=$(ns_by_serial fastpath0)
echo "# raw $raw: 5 layers, fanout 8, 512-byte nodes"
"$B" create "$raw" --layers 5 --fanout 8 --force >/dev/null || exit 1
"$B" compare "$raw" --backend xrp --gets 10000 --ranges 100 || rc=1

fsdev=$(ns_by_serial fastpath2)
echo "# ext4 file on $fsdev: 3 layers, fanout 30, 4096-byte nodes"
mkfs.ext4 -q -F -b 4096 "$fsdev" >/dev/null 2>&1 && mkdir -p /tmp/bpfkv-e2e &&
	mount -t ext4 "$fsdev" /tmp/bpfkv-e2e || exit 1
"$B" create /tmp/bpfkv-e2e/kv.db --layers 3 --fanout 30 --node-size 4096 >/dev/null || exit 1
"$B" compare /tmp/bpfkv-e2e/kv.db --backend xrp --gets 10000 --ranges 100 --seed 11 || rc=1
exit $rc
