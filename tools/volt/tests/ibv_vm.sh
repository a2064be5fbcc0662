#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# tools/volt/tests/ibv_vm.sh: the baselines' mutual-exclusion test over
# libibverbs, rxe1 (clients) against rxe0 (target) across a veth, in the VM:
#
#   tools/volt/tests/ibv_vm.sh          # on the host: boots the VM, runs it there
#
# The network is selftests/urdma/lib.sh's (u_net_up).  Needs make kernel and
# build/tools/volt/volt_ibv_test.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
TEST=$ROOT/build/tools/volt/volt_ibv_test
[[ -x $TEST ]] || { echo "ibv_vm.sh: $TEST is not built (ninja -C build volt_ibv_test)" >&2; exit 1; }

if [[ ${1:-} != --in-vm ]]; then
	K=$("$ROOT/scripts/kernel" image)
	exec "$ROOT/scripts/vng" --run "$K" --memory 2G --cpus 2 --timeout 600 -- bash "$ROOT/tools/volt/tests/ibv_vm.sh" --in-vm
fi

# lib.sh is not written for set -e
set +e
# shellcheck source=../../../selftests/urdma/lib.sh
source "$ROOT/selftests/urdma/lib.sh"
u_net_up || { echo "ibv_vm.sh: cannot build the veth + rxe network" >&2; exit 1; }
trap u_net_down EXIT
VOLT_IBV_TARGET=$RXE0 VOLT_IBV_CLIENT=$RXE1 VOLT_IBV_GID=$URDMA_GID_IDX "$TEST"
