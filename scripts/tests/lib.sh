# SPDX-License-Identifier: GPL-2.0
# Helpers for the pipeline's own tests: TAP output, a failure count, and
# expect_rc/expect_grep assertions.  Source it, call plan N, finish at the end.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
_n=0
_fail=0

plan() { echo "TAP version 13"; echo "1..$1"; }

_result() {
	_n=$((_n + 1))
	if [[ "$1" == ok ]]; then
		echo "ok $_n $2"
	else
		echo "not ok $_n $2"
		_fail=$((_fail + 1))
	fi
}

# expect_rc WANT DESC -- CMD...: run CMD (output in $OUT_FILE), check its exit status.
OUT_FILE=$(mktemp)
trap 'rm -f "$OUT_FILE"' EXIT
expect_rc() {
	local want=$1 desc=$2 rc=0
	shift 3
	"$@" >"$OUT_FILE" 2>&1 || rc=$?
	if [[ "$rc" == "$want" ]]; then
		_result ok "$desc"
	else
		_result fail "$desc (exit $rc, wanted $want)"
		sed 's/^/#   /' "$OUT_FILE" | tail -n 30
	fi
}

# expect_grep PATTERN DESC: the last command's output matches PATTERN.
expect_grep() {
	if grep -qE -- "$1" "$OUT_FILE"; then
		_result ok "$2"
	else
		_result fail "$2 (output lacks /$1/)"
		sed 's/^/#   /' "$OUT_FILE" | tail -n 30
	fi
}

finish() {
	echo "# $((_n - _fail)) passed, $_fail failed"
	((_fail == 0))
}
