#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Regenerates rxe-packets.txt: RoCEv2 packets sent by the kernel's rxe,
# captured on the wire in the VM, for wire_test (urdma's parser and ICRC
# against what rxe really sends).  Runs rdma-core's and perftest's tools
# between rxe1 (on vethA) and rxe0 (on vethB) while an AF_PACKET socket
# records vethB, then keeps up to 3 packets of each (opcode, length).
#
#   scripts/vng --run KERNEL -- tools/urdma/tests/data/capture-rxe.sh
set -u # not -e: lib.sh expects commands that may fail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../../../selftests/urdma/lib.sh
. "$here/../../../../selftests/urdma/lib.sh"
out=$here/rxe-packets.txt
trap 'u_net_down; rm -rf "$U_WORK"' EXIT
u_net_up || { echo "capture-rxe: network set-up failed" >&2; exit 1; }

python3 - "$U_IF_B" "$U_WORK/raw" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((sys.argv[1], 0))
s.settimeout(0.5)
end = time.time() + 60
with open(sys.argv[2], "w") as f:
    while time.time() < end:
        try:
            fr = s.recv(65536)
        except (socket.timeout, OSError):  # ENETDOWN while the link is set up
            time.sleep(0.05)
            continue
        ip = fr[14:]
        if fr[12:14] != b"\x08\x00" or ip[9] != 17 or ip[22:24] != b"\x12\xb7":
            continue
        f.write(ip[:int.from_bytes(ip[2:4], "big")].hex() + "\n")
        f.flush()
PY
cap=$!
sleep 1
run() { # SERVER CLIENT
	u_port
	u_pair cap 60 $U_PORT "$1 -p $U_PORT" "$2 -p $U_PORT $URDMA_TCP" || { u_pair_logs cap; exit 1; }
}
run "ibv_rc_pingpong -d $RXE0 -g 1 -s 64 -n 3" "ibv_rc_pingpong -d $RXE1 -g 1 -s 64 -n 3"
run "ib_send_lat -d $RXE0 -x 1 -F -s 64 -n 5" "ib_send_lat -d $RXE1 -x 1 -F -s 64 -n 5"
run "ib_write_lat -d $RXE0 -x 1 -F -s 2100 -n 5" "ib_write_lat -d $RXE1 -x 1 -F -s 2100 -n 5"
run "ib_read_lat -d $RXE0 -x 1 -F -s 2100 -n 5" "ib_read_lat -d $RXE1 -x 1 -F -s 2100 -n 5"
run "ib_atomic_lat -d $RXE0 -x 1 -F -A CMP_AND_SWAP -n 5" "ib_atomic_lat -d $RXE1 -x 1 -F -A CMP_AND_SWAP -n 5"
run "ib_atomic_lat -d $RXE0 -x 1 -F -A FETCH_AND_ADD -n 5" "ib_atomic_lat -d $RXE1 -x 1 -F -A FETCH_AND_ADD -n 5"
sleep 1
kill $cap 2>/dev/null || true
wait $cap 2>/dev/null || true

# up to 3 of each (opcode, length), in capture order
{
	echo "# RoCEv2 packets (IPv4 onwards, ICRC last) sent by Linux 6.1 rxe on the wire,"
	echo "# captured in the VM by capture-rxe.sh: ibv_rc_pingpong, ib_send_lat,"
	echo "# ib_write_lat and ib_read_lat (2100 B: first/middle/last at MTU 1024),"
	echo "# ib_atomic_lat (CMP_AND_SWAP, FETCH_AND_ADD). One packet per line, hex."
	awk '{ k = substr($0, 57, 2) "/" length($0); if (n[k]++ < 3) print }' "$U_WORK/raw"
} >"$out"
echo "capture-rxe: $(grep -vc '^#' "$out") packets ($(wc -l <"$U_WORK/raw") captured) in $out"
