// SPDX-License-Identifier: GPL-2.0
// Chain membership: the view (an epoch and the members, head first) and the
// rules that change it.  Pure functions, no network.
//
// rubble-ctl makes every change (remove a node, add one as tail, finish a
// join) by pushing a view with a higher epoch to the nodes; a node compares
// the new view with its state (plan_for) and re-forms: it connects its new
// successor, becomes the tail, or takes over as head.
//
//   epoch 4: head A -> B -> C (tail)       remove B      epoch 5: A -> C
//   epoch 5: A -> C                        add D         epoch 6: A -> C -> D (joining)
//   epoch 6: A -> C -> D (joining)         finish join   epoch 7: A -> C -> D (tail)
#pragma once

#include <string>

#include "rubble.pb.h"

namespace fastpath::rubble {

// Index of addr among the members, or -1.
int find_member(const wire::View& view, const std::string& addr);
// Members that are not joining.
int full_members(const wire::View& view);
// "A -> B -> C (joining)", for messages.
std::string describe(const wire::View& view);
// The address of the head / of the tail that serves reads ("" if none).
std::string head_of(const wire::View& view);
std::string tail_of(const wire::View& view);

// What the node at addr is in view, and whom it streams to.
struct Plan {
  bool removed = false;   // not a member: stop serving, drop the streams
  bool head = false;      // first member: accepts writes
  bool joining = false;   // being added: receives the stream, serves nothing
  bool tail = false;      // the last full member: acknowledges and serves reads
  std::string successor;  // "" for the tail of a chain without a joining node
  bool successor_joining = false;
};
Plan plan_for(const wire::View& view, const std::string& addr);

// The view without addr (epoch + 1).  A joining node behind the removed tail
// goes too (its join cannot finish without its predecessor).  "" or why not:
// unknown node, or fewer than two full members left.
std::string remove_member(const wire::View& view, const std::string& addr, wire::View* out);
// The view with m appended as a joining tail (epoch + 1).  "" or why not.
std::string add_member(const wire::View& view, wire::Member m, wire::View* out);
// The view whose joining last member is now the tail (epoch + 1).
std::string finish_join(const wire::View& view, wire::View* out);

}  // namespace fastpath::rubble
