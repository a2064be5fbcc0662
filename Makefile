# fastpath: one entry point.
#
#   make demo      set up everything (packages, kernel, tools) and run the demo in the VM
#   make test      deps + kernel + tools + host tests + tests in the VM (what CI runs)
#
#   make deps        install Debian packages (scripts/install-deps.sh)
#   make kernel      prepare linux/, export its uapi headers (linux/usr/include, used by
#                    bpf/ and tools/), build bzImage or reuse the cached build
#                    (DEBUG=1: BTF, KASAN, lockdep)
#   make tools       build tools/ and fuse-dfuse/ (CMake, build/)
#   make bpf         build bpf/*.bpf.c
#   make selftests   build and install the kselftests without running them
#   make host-test   unit tests (ctest) and pipeline tests on the host
#   make vm-test     VM runner checks and all kselftests in the VM
#   make bench       each system's benchmark, short (about 15 min on 2 cores; FULL=1: the
#                    long runs README quotes), then build/bench/report.md with figures
#   make shell       interactive shell in the VM
#   make clean       remove build outputs (not linux/ or the kernel cache)

SHELL := /bin/bash
.DELETE_ON_ERROR:
.PHONY: all deps kernel tools bpf selftests host-test pipeline-test vm-test test demo bench shell clean

BUILD ?= build
V ?= 0
Q := $(if $(filter 1,$(V)),,@)

all: tools bpf

deps:
	$(Q)scripts/install-deps.sh

kernel:
	$(Q)scripts/kernel build >/dev/null

$(BUILD)/build.ninja: CMakeLists.txt
	$(Q)cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

tools: $(BUILD)/build.ninja
	$(Q)cmake --build $(BUILD) $(if $(filter 1,$(V)),-v,)

bpf:
	$(Q)$(MAKE) -s -C bpf

selftests: kernel
	$(Q)scripts/ksft --build-only

host-test: tools bpf
	$(Q)ctest --test-dir $(BUILD) --output-on-failure -j2
	$(Q)scripts/tests/kernel-pipeline.sh

vm-test: kernel tools bpf
	$(Q)scripts/tests/vng.sh
	$(Q)scripts/tests/ksft-failure.sh
	$(Q)scripts/ksft

# The kernel comes first: bpf/ and tools/ build against its uapi headers.
test: deps kernel tools host-test vm-test
	@echo "make test: all passed"

demo: deps kernel tools bpf
	$(Q)scripts/demo

bench: deps kernel tools bpf
	$(Q)scripts/bench $(if $(filter 1,$(FULL)),--full,)

shell: kernel
	$(Q)mkdir -p $(BUILD)/vm
	$(Q)truncate -s 1G $(BUILD)/vm/nvme0.img
	$(Q)scripts/vng --run "$$(scripts/kernel image)" --memory 4G --nvme $(BUILD)/vm/nvme0.img

clean:
	$(Q)rm -rf $(BUILD)
	$(Q)$(MAKE) -s -C bpf clean
