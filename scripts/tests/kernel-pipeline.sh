#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The kernel pipeline's failure paths and patch workflow, on a scratch copy
# of the project (scripts, configs, patches) with its own linux/:
#   - a patch that does not apply makes prepare fail, naming the patch;
#   - a config option that does not stick makes prepare fail, naming it;
#   - commits in linux/ exported by scripts/patch-export re-apply on a fresh tree;
#   - the cache key depends on patches and configs only, not on the checkout.
# Does not build a kernel.  Reuses the base repository in the kernel cache.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

S=$(mktemp -d "${TMPDIR:-/tmp}/fastpath-pipeline.XXXXXX")
trap 'rm -rf "$S" "$OUT_FILE"' EXIT
mkdir -p "$S/fp"
cp -a "$ROOT/scripts" "$ROOT/configs" "$ROOT/patches" "$S/fp/"
K=$S/fp/scripts/kernel

plan 14
expect_rc 0 "a copy of the project has the same cache key" -- \
	bash -c "[ \"\$('$K' key)\" = \"\$('$ROOT/scripts/kernel' key)\" ]"

# A patch whose context is not in the tree.
cat >"$S/fp/patches/linux/0001-broken.patch" <<'PATCH'
From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001
From: fastpath test <test@localhost>
Date: Thu, 1 Jan 2026 00:00:00 +0000
Subject: [PATCH] test: a patch that cannot apply

---
 init/version.c | 2 +-
 1 file changed, 1 insertion(+), 1 deletion(-)

diff --git a/init/version.c b/init/version.c
--- a/init/version.c
+++ b/init/version.c
@@ -1,3 +1,3 @@
-this line is not in init/version.c
+neither is this one
 at all
 anywhere
--
2.39.5
PATCH
echo "0001-broken.patch" >>"$S/fp/patches/linux/series"
expect_rc 0 "the cache key changes with the patches" -- \
	bash -c "[ \"\$('$K' key)\" != \"\$('$ROOT/scripts/kernel' key)\" ]"
expect_rc 1 "prepare fails on a patch that does not apply" -- "$K" prepare
expect_grep '0001-broken.patch does not apply' "the failing patch is named"
expect_rc 0 "the tree is left at fastpath-base, not half-patched" -- \
	bash -c "[ \"\$(git -C '$S/fp/linux' rev-parse HEAD)\" = \"\$(git -C '$S/fp/linux' rev-parse fastpath-base)\" ]"

# Back to the real series; then a commit exported and re-applied.
cp "$ROOT/patches/linux/series" "$S/fp/patches/linux/series"
rm "$S/fp/patches/linux/0001-broken.patch"
expect_rc 0 "prepare succeeds with the project's series" -- "$K" prepare
(
	cd "$S/fp/linux" &&
		sed -i 's|^#include <generated/compile.h>|/* fastpath pipeline test */\n&|' init/version.c &&
		git commit -q -a -s -m "init: mark the pipeline test build" \
			-m "Adds a comment so the export round trip has a change to carry."
) >/dev/null
expect_rc 0 "patch-export writes the commit to patches/" -- "$S/fp/scripts/patch-export"
n_before=$(grep -vc '^#' "$ROOT/patches/linux/series" || true)
expect_rc 0 "series lists the project's patches and then the exported one" -- \
	bash -c "[ \"\$(grep -v '^#' '$S/fp/patches/linux/series' | wc -l)\" = $((n_before + 1)) ] &&
	grep -v '^#' '$S/fp/patches/linux/series' | tail -1 | grep -qE '^[0-9]{4}-init-mark-the-pipeline-test-build.patch$'"
rm -rf "$S/fp/linux"
expect_rc 0 "a fresh linux/ gets the exported change" -- \
	bash -c "'$K' prepare && grep -q 'fastpath pipeline test' '$S/fp/linux/init/version.c'"

# DEBUG=1 merges debug.config last; its overrides of base.config are not failures.
expect_rc 0 "DEBUG=1 merges and verifies debug.config (BTF, KASAN, lockdep)" -- \
	bash -c "DEBUG=1 '$K' prepare && grep -qx CONFIG_DEBUG_INFO_BTF=y '$S/fp/linux/.config' && grep -qx CONFIG_KASAN=y '$S/fp/linux/.config' && grep -qx CONFIG_PROVE_LOCKING=y '$S/fp/linux/.config'"
expect_rc 0 "DEBUG=1 has its own cache key" -- \
	bash -c "[ \"\$(DEBUG=1 '$K' key)\" != \"\$('$K' key)\" ]"

# A requested option that cannot be set.
echo 'CONFIG_FASTPATH_NO_SUCH_OPTION=y' >"$S/fp/configs/zz-test.config"
expect_rc 1 "prepare fails when a config option does not stick" -- "$K" prepare
expect_grep 'zz-test.config: CONFIG_FASTPATH_NO_SUCH_OPTION=y \(got not set\)' "the missing option and its fragment are named"
expect_rc 0 "the cache key changes with the configs" -- \
	bash -c "[ \"\$('$K' key)\" != \"\$('$ROOT/scripts/kernel' key)\" ]"
finish
