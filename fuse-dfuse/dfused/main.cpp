// SPDX-License-Identifier: GPL-2.0-only
// dfused: the DFUSE node daemon. See README.md in fuse-dfuse/.
//
//   $ dfused --backend /shared/data --mountpoint /mnt/dfuse
//   dfused: serving /shared/data on /mnt/dfuse in writethrough mode (auto: the
//   kernel does not offer lease mode (stock FUSE); ...); FUSE 7.38; shared mmap: yes
#include "cli_main.h"

int main(int argc, char** argv) {
  return dfuse::dfused::cli_main(argc, argv);
}
