// SPDX-License-Identifier: GPL-2.0
// Description: chain membership rules: what each node does in a view
// (head, middle, tail, joining, removed; whom it streams to), and the view
// changes rubble-ctl makes: remove a head, middle or tail, add a node as the
// joining tail, finish the join.
#include <gtest/gtest.h>

#include "view.h"

using namespace fastpath::rubble;

namespace {

wire::View chain(std::initializer_list<const char*> addrs, std::uint64_t epoch = 1) {
  wire::View v;
  v.set_epoch(epoch);
  for (const char* a : addrs) v.add_members()->set_addr(a);
  return v;
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

}  // namespace

TEST(View, EachNodeKnowsItsRoleAndSuccessor) {
  const auto v = chain({"A", "B", "C"});
  auto a = plan_for(v, "A"), b = plan_for(v, "B"), c = plan_for(v, "C"), x = plan_for(v, "X");
  EXPECT_TRUE(a.head);
  EXPECT_EQ(a.successor, "B");
  EXPECT_FALSE(b.head || b.tail);
  EXPECT_EQ(b.successor, "C");
  EXPECT_TRUE(c.tail);
  EXPECT_EQ(c.successor, "");
  EXPECT_TRUE(x.removed);
  EXPECT_EQ(head_of(v), "A");
  EXPECT_EQ(tail_of(v), "C");
}

TEST(View, RemovingEachRoleReformsTheChain) {
  const auto v = chain({"A", "B", "C"}, 4);
  wire::View w;
  ASSERT_EQ(remove_member(v, "A", &w), "");  // the head: B takes over
  EXPECT_EQ(w.epoch(), 5u);
  EXPECT_TRUE(plan_for(w, "B").head);
  EXPECT_TRUE(plan_for(w, "A").removed);
  ASSERT_EQ(remove_member(v, "B", &w), "");  // a middle: A streams to C
  EXPECT_EQ(plan_for(w, "A").successor, "C");
  ASSERT_EQ(remove_member(v, "C", &w), "");  // the tail: B is the tail
  EXPECT_TRUE(plan_for(w, "B").tail);
  EXPECT_EQ(plan_for(w, "B").successor, "");
  EXPECT_TRUE(contains(remove_member(v, "Z", &w), "not a member"));
  wire::View two = chain({"A", "B"});
  EXPECT_TRUE(contains(remove_member(two, "B", &w), "fewer than two"));
}

TEST(View, ANewNodeJoinsAsTailThenTakesOver) {
  const auto v = chain({"A", "B"}, 2);
  wire::Member d;
  d.set_addr("D");
  wire::View j;
  ASSERT_EQ(add_member(v, d, &j), "");
  EXPECT_EQ(j.epoch(), 3u);
  const auto b = plan_for(j, "B");
  EXPECT_TRUE(b.tail) << "the old tail still acknowledges and serves reads";
  EXPECT_EQ(b.successor, "D");
  EXPECT_TRUE(b.successor_joining);
  EXPECT_TRUE(plan_for(j, "D").joining);
  EXPECT_FALSE(plan_for(j, "D").tail);
  EXPECT_EQ(tail_of(j), "B");
  EXPECT_TRUE(contains(add_member(j, d, &j), "already a member"));
  wire::Member e;
  e.set_addr("E");
  wire::View k;
  EXPECT_TRUE(contains(add_member(j, e, &k), "one node at a time"));

  wire::View f;
  ASSERT_EQ(finish_join(j, &f), "");
  EXPECT_EQ(f.epoch(), 4u);
  EXPECT_FALSE(plan_for(f, "B").tail);
  EXPECT_TRUE(plan_for(f, "D").tail);
  EXPECT_EQ(tail_of(f), "D");
  EXPECT_TRUE(contains(finish_join(f, &k), "no node is joining"));
}

TEST(View, RemovingTheTailAbortsAJoinBehindIt) {
  wire::View v = chain({"A", "B", "C", "D"});
  v.mutable_members(3)->set_joining(true);
  wire::View w;
  ASSERT_EQ(remove_member(v, "C", &w), "");
  EXPECT_EQ(describe(w), "epoch 2: A -> B") << "D cannot finish joining without C";
  ASSERT_EQ(remove_member(v, "D", &w), "");
  EXPECT_EQ(describe(w), "epoch 2: A -> B -> C") << "removing the newcomer just aborts the join";
}
