// SPDX-License-Identifier: GPL-2.0
// Replication entries for the sequencer and batching tests.
#pragma once

#include <string>

#include "rubble.pb.h"

namespace fastpath::rubble::test {

// A put of key with a 100-byte value.
inline wire::Entry put(const std::string& key) {
  wire::Entry e;
  e.mutable_kv()->set_key(key);
  e.mutable_kv()->set_value(std::string(100, 'v'));
  return e;
}

}  // namespace fastpath::rubble::test
