#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Description: every perftest latency and bandwidth test between urdma-perf
# (vethA) and perftest's ib_* on rxe0, both roles (urdma as client, urdma as
# server), latency at 2 B and 64 KiB, bandwidth at 64 KiB (one and 64
# packets at MTU 1024; atomics 8 B; more sizes by the variables below).  A case passes when both sides exit 0 and the client printed
# its figures.
cd "$(dirname "$0")" || exit 1
# shellcheck source=lib.sh
. ./lib.sh
TESTS=${URDMA_INTEROP_TESTS:-"write_lat read_lat send_lat atomic_lat write_bw read_bw send_bw atomic_bw"}
# Each run costs seconds of set-up under TCG (DPDK's EAL, two processes), so
# the default is small: latency at 4 KiB (four packets at MTU 1024), bandwidth
# at 64 KiB, each tool once per role.  All three sizes:
# URDMA_INTEROP_LAT_SIZES="2 4096 65536" URDMA_INTEROP_BW_SIZES="2 4096 65536".
LAT_SIZES=${URDMA_INTEROP_LAT_SIZES:-"4096"}
BW_SIZES=${URDMA_INTEROP_BW_SIZES:-"65536"}
sizes_of() {
	case $1 in
	atomic_*) echo - ;;
	*_lat) echo $LAT_SIZES ;;
	*) echo $BW_SIZES ;;
	esac
}
names=()
for t in $TESTS; do
	for s in $(sizes_of $t); do
		for role in urdma-client rxe-client; do names+=("$t-${s/-/8}-$role"); done
	done
done
u_require_tools ${#names[@]} "${names[*]}" urdma-perf
u_require_root_tools ip rdma ss ib_write_lat ib_write_bw
trap 'u_net_down; rm -rf "$U_WORK"' EXIT

u_plan ${#names[@]}
u_net_up || { u_fail "network set-up"; u_exit; }
for t in $TESTS; do
	for s in $(sizes_of $t); do
		n=${URDMA_INTEROP_ITERS:-50}
		[[ $s != - ]] && ((s > 4096)) && n=$(((n + 4) / 5))
		for role in urdma-client rxe-client; do
			name=$t-${s/-/8}-$role
			t0=$SECONDS
			if u_interop "$name" "$t" "$s" $n $role && row=$(u_client_row "$name") && [[ -n "$row" ]]; then
				u_ok "$name: $(tr -s ' \t' '  ' <<<"$row") ($((SECONDS - t0)) s)"
			else
				u_pair_logs "$name" 6
				u_fail "$name"
			fi
		done
	done
done
u_exit
