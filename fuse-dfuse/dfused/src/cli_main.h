// SPDX-License-Identifier: GPL-2.0-only
// dfused's main(): parse, check, detach, start, report the mode, serve.
#pragma once

namespace dfuse::dfused {

int cli_main(int argc, char** argv);

}  // namespace dfuse::dfused
