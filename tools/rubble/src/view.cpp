// SPDX-License-Identifier: GPL-2.0
#include "view.h"

namespace fastpath::rubble {

int find_member(const wire::View& view, const std::string& addr) {
  for (int i = 0; i < view.members_size(); ++i)
    if (view.members(i).addr() == addr) return i;
  return -1;
}

int full_members(const wire::View& view) {
  int n = 0;
  for (const auto& m : view.members()) n += !m.joining();
  return n;
}

std::string describe(const wire::View& view) {
  std::string s;
  for (const auto& m : view.members()) {
    if (!s.empty()) s += " -> ";
    s += m.addr();
    if (m.joining()) s += " (joining)";
  }
  return "epoch " + std::to_string(view.epoch()) + ": " + (s.empty() ? "no members" : s);
}

std::string head_of(const wire::View& view) {
  return view.members_size() && !view.members(0).joining() ? view.members(0).addr() : "";
}

std::string tail_of(const wire::View& view) {
  for (int i = view.members_size() - 1; i >= 0; --i)
    if (!view.members(i).joining()) return view.members(i).addr();
  return "";
}

Plan plan_for(const wire::View& view, const std::string& addr) {
  Plan p;
  const int i = find_member(view, addr);
  if (i < 0) {
    p.removed = true;
    return p;
  }
  p.joining = view.members(i).joining();
  p.head = i == 0 && !p.joining;
  if (i + 1 < view.members_size()) {
    p.successor = view.members(i + 1).addr();
    p.successor_joining = view.members(i + 1).joining();
  }
  p.tail = !p.joining && (p.successor.empty() || p.successor_joining);
  return p;
}

std::string remove_member(const wire::View& view, const std::string& addr, wire::View* out) {
  const int i = find_member(view, addr);
  if (i < 0) return addr + " is not a member of the chain (" + describe(view) + ")";
  wire::View v;
  v.set_epoch(view.epoch() + 1);
  for (int j = 0; j < view.members_size(); ++j) {
    if (j == i) continue;
    // A joining node right behind the removed one loses its predecessor.
    if (j == i + 1 && view.members(j).joining()) continue;
    *v.add_members() = view.members(j);
  }
  if (!view.members(i).joining() && full_members(v) < 2)
    return "removing " + addr + " would leave fewer than two nodes (a head and a tail), which is not supported: " +
           "add a node first (rubble-ctl add)";
  *out = std::move(v);
  return "";
}

std::string add_member(const wire::View& view, wire::Member m, wire::View* out) {
  if (m.addr().empty()) return "the new node has no address";
  if (find_member(view, m.addr()) >= 0) return m.addr() + " is already a member (" + describe(view) + ")";
  for (const auto& x : view.members())
    if (x.joining()) return x.addr() + " is still joining: add one node at a time";
  if (full_members(view) < 1) return "the chain has no members to add to";
  m.set_joining(true);
  wire::View v = view;
  v.set_epoch(view.epoch() + 1);
  *v.add_members() = std::move(m);
  *out = std::move(v);
  return "";
}

std::string finish_join(const wire::View& view, wire::View* out) {
  if (view.members_size() == 0 || !view.members(view.members_size() - 1).joining())
    return "no node is joining (" + describe(view) + ")";
  wire::View v = view;
  v.set_epoch(view.epoch() + 1);
  v.mutable_members(v.members_size() - 1)->set_joining(false);
  *out = std::move(v);
  return "";
}

}  // namespace fastpath::rubble
