// SPDX-License-Identifier: GPL-2.0
// The CHAIN file of a node's --db directory: which chain the data belongs to
// and in which mode it was written, so that a node never mixes two chains.
//
//   $ cat /var/lib/rubble/tail/CHAIN
//   chain 3f2a9c0d51e84b7f9a6c2e1d0b4f8a73
//   mode rubble
#pragma once

#include <optional>
#include <string>

#include "chain.h"

namespace fastpath::rubble {

struct Identity {
  std::string chain_id;
  Mode mode = Mode::kBaseline;
};

// 32 random hexadecimal digits.
std::string random_id();
// "" when id is 1 to 64 characters of [A-Za-z0-9._-].
std::string check_chain_id(const std::string& id);

// DIR/CHAIN, or nullopt when there is none.  Throws std::runtime_error when
// the file is malformed.
std::optional<Identity> read_identity(const std::string& dir);
// Writes DIR/CHAIN atomically (temporary file + rename).  Throws on failure.
void write_identity(const std::string& dir, const Identity& id);

// Prepares a --db directory: creates it when missing; refuses (throws
// std::runtime_error naming the cause and the fix) a non-empty directory
// without a CHAIN file, or a CHAIN that disagrees with mode or with
// chain_id_option (when not empty).  Returns the identity found, if any.
std::optional<Identity> check_db_dir(const std::string& dir, Mode mode, const std::string& chain_id_option);

}  // namespace fastpath::rubble
