#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# scripts/vng behaviour: exit status, live output, writable project dir,
# read-only root, NVMe devices, timeout, panic, bad arguments.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
K=$("$ROOT/scripts/kernel" image) || exit 1
VNG=$ROOT/scripts/vng
T=$ROOT/build/tests/vng
rm -rf "$T"
mkdir -p "$T"
truncate -s 64M "$T/a.img" "$T/b.img"

plan 15
expect_rc 0 "command succeeds" -- "$VNG" --run "$K" -- uname -r
expect_grep '^6\.1\.[0-9]+-fastpath' "uname -r shows the fastpath kernel"
expect_rc 7 "command's exit status is returned" -- "$VNG" --run "$K" -- sh -c 'echo to-stdout; echo to-stderr >&2; exit 7'
expect_grep 'to-stderr' "command's output is streamed"
expect_rc 0 "project dir is writable and runs in the caller's cwd" -- \
	bash -c "cd '$T' && '$VNG' --run '$K' -- sh -c 'pwd > cwd.txt' && grep -qx '$T' '$T/cwd.txt'"
expect_rc 0 "a project under /tmp is mounted writable (CI may clone there)" -- \
	bash -c "rm -rf /tmp/fp-proj-test && mkdir -p /tmp/fp-proj-test && cp -a '$ROOT/scripts' /tmp/fp-proj-test/ &&
	/tmp/fp-proj-test/scripts/vng --run '$K' -- sh -c 'echo ok > /tmp/fp-proj-test/w' && grep -qx ok /tmp/fp-proj-test/w; rc=\$?; rm -rf /tmp/fp-proj-test; exit \$rc"
expect_rc 1 "host root is read-only" -- "$VNG" --run "$K" -- sh -c 'touch /usr/fastpath-ro-test 2>/dev/null || exit 1'
expect_rc 0 "/etc, /tmp, /root are writable" -- "$VNG" --run "$K" -- sh -c 'echo x > /etc/fp && echo x > /tmp/fp && echo x > /root/fp'
expect_rc 0 "--nvme gives 512 and 4096-byte namespaces, --cpus and --memory apply" -- \
	"$VNG" --run "$K" --cpus 1 --memory 1G --nvme "$T/a.img" --nvme "$T/b.img:4096" -- sh -c \
	'cat /sys/block/nvme*n1/queue/logical_block_size | sort -n | tr "\n" " " | grep -qx "512 4096 " &&
	 [ "$(nproc)" = 1 ] && [ "$(awk "/MemTotal/ {print int(\$2/1024/1024+0.5)}" /proc/meminfo)" = 1 ]'
expect_rc 0 "--rwdir is writable" -- bash -c "mkdir -p /tmp/fp-rw-test && '$VNG' --run '$K' --rwdir /tmp/fp-rw-test -- touch /tmp/fp-rw-test/x && test -f /tmp/fp-rw-test/x && rm -rf /tmp/fp-rw-test"
start=$SECONDS
expect_rc 124 "--timeout kills a hung guest with 124" -- "$VNG" --run "$K" --timeout 15 -- sleep 600
if ((SECONDS - start < 60)); then _result ok "timeout returned promptly ($((SECONDS - start)) s)"; else _result fail "timeout took $((SECONDS - start)) s"; fi
expect_rc 255 "a kernel panic gives 255" -- "$VNG" --run "$K" --timeout 120 -- sh -c 'echo c > /proc/sysrq-trigger'
expect_grep 'panicked' "the panic is reported"
expect_rc 2 "a missing kernel is a usage error" -- "$VNG" --run /nonexistent/bzImage -- true
finish
