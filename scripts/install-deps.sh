#!/usr/bin/env bash
# Install every Debian package fastpath needs. Idempotent: when everything is
# present it only runs dpkg-query and exits in a second or two.
set -euo pipefail

PKGS=(
	# kernel build
	build-essential bc flex bison libelf-dev libssl-dev dwarves ccache cpio kmod
	linux-source-6.1 xz-utils git rsync python3 pkg-config
	# VM
	qemu-system-x86 e2fsprogs util-linux fdisk mount iproute2
	# BPF
	clang llvm lld libbpf-dev bpftool
	# user space build and tests
	cmake ninja-build clang-format libgtest-dev libgmock-dev libbenchmark-dev
	libcli11-dev nlohmann-json3-dev liburing-dev libfuse3-dev fuse3
	librocksdb-dev libgrpc++-dev libprotobuf-dev protobuf-compiler
	protobuf-compiler-grpc
	# RDMA, NVMe-oF, storage tools
	rdma-core libibverbs-dev librdmacm-dev ibverbs-utils perftest nvme-cli fio
	# benchmark figures
	gnuplot-nox
	dpdk-dev libdpdk-dev
	# services
	etcd-server
)

missing=()
for p in "${PKGS[@]}"; do
	st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	[[ "$st" == installed ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
	echo "install-deps: all ${#PKGS[@]} packages present"
	exit 0
fi

echo "install-deps: installing ${#missing[@]} missing packages: ${missing[*]}"
SUDO=
if ((EUID != 0)); then
	command -v sudo >/dev/null || {
		echo "install-deps: not root and no sudo; run as root: sudo $0" >&2
		exit 1
	}
	SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
# Refresh the package lists only when they are missing or older than a day, or
# when a first install attempt fails because a list is stale.
lists=/var/lib/apt/lists
if [[ -z "$(find "$lists" -maxdepth 1 -name '*_Packages*' -mtime -1 2>/dev/null | head -1)" ]]; then
	$SUDO apt-get update -qq
fi
if ! $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"; then
	echo "install-deps: install failed; refreshing package lists and retrying" >&2
	$SUDO apt-get update -qq
	$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" || {
		echo "install-deps: apt-get could not install: ${missing[*]}" >&2
		echo "install-deps: check /etc/apt/sources.list has Debian 12 (bookworm) main" >&2
		exit 1
	}
fi
echo "install-deps: done"
