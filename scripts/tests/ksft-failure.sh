#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# scripts/ksft must count failures and skips and exit non-zero when a
# kselftest fails (the 6.1 runner itself exits 0).  selftests/meta has one
# passing, one failing and one skipping test.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
plan 3
expect_rc 1 "scripts/ksft exits 1 when a kselftest fails" -- "$ROOT/scripts/ksft" --timeout 300 meta
expect_grep '^1 passed, 1 failed, 1 skipped$' "summary counts pass, fail and skip"
expect_grep '^# not ok 2 global.fails' "the failing case is in the TAP output"
finish
