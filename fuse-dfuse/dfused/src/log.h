// SPDX-License-Identifier: GPL-2.0-only
// One line per message on stderr, prefixed "dfused: ", written with a single
// write(2) so that lines from different threads do not mix.
#pragma once

namespace dfuse::dfused {

void logf(const char* format, ...) __attribute__((format(printf, 1, 2)));

}  // namespace dfuse::dfused
