// SPDX-License-Identifier: GPL-2.0-only
#include "etcd_store.h"

#include <algorithm>
#include <charconv>
#include <limits>

#include "lease.pb.h"

namespace dfuse::leased {

namespace {

using fastpath::etcd::Condition;

constexpr std::size_t kWritesPerTxn = 100;  // etcd's --max-txn-ops is 128

std::string files_dir(const std::string& prefix) {
  return prefix + "/files/";
}

}  // namespace

EtcdStore::EtcdStore(StoreOptions options)
    : options_(std::move(options)),
      // A call that takes half the lease TTL is of no use to a leader.
      client_(options_.endpoint, std::clamp<std::chrono::milliseconds>(options_.ttl / 2, std::chrono::milliseconds(500),
                                                                       std::chrono::milliseconds(2000))),
      election_(client_, key("leader"), options_.name, options_.ttl) {}

std::string EtcdStore::check() {
  // A start-up probe may wait longer than the leader's calls do (a slow or
  // starting etcd); an etcd that refuses connections fails at once anyway.
  fastpath::etcd::Client probe(options_.endpoint, std::chrono::seconds(5));
  return probe.check();
}

std::string EtcdStore::campaign(bool* leading, std::string* leader) {
  if (auto e = election_.campaign(leading, leader); !e.empty()) return e;
  std::lock_guard lock(mu_);
  if (*leading && election_.created_revision() != leader_revision_) {
    leader_revision_ = election_.created_revision();
    epoch_revision_ = -1;  // a new lead: nothing commits before take_over()
  }
  return "";
}

std::vector<Condition> EtcdStore::guard() const {
  std::lock_guard lock(mu_);
  return {Condition{key("leader"), Condition::Target::kCreateRevision, leader_revision_},
          Condition{key("epoch"), Condition::Target::kModRevision, epoch_revision_}};
}

std::string EtcdStore::next_epoch(uint32_t* epoch) {
  fastpath::etcd::KeyValue kv;
  bool found = false;
  if (auto e = client_.get(key("epoch"), &kv, &found); !e.empty()) return e;
  uint64_t current = 0;
  if (found) {
    auto [ptr, ec] = std::from_chars(kv.value.data(), kv.value.data() + kv.value.size(), current);
    if (ec != std::errc{} || ptr != kv.value.data() + kv.value.size() ||
        current >= std::numeric_limits<uint32_t>::max())
      return "etcd key " + key("epoch") + " at " + client_.endpoint() + " holds '" + kv.value.substr(0, 40) +
             "', not an epoch; restore it, or delete " + options_.prefix + "/ if no node holds a lease";
  }
  std::int64_t lead = 0;
  {
    std::lock_guard lock(mu_);
    lead = leader_revision_;
  }
  // Guarded by our lead and by the epoch we read (another leader's bump in
  // between fails this one).
  const std::vector<Condition> conditions{
      Condition{key("leader"), Condition::Target::kCreateRevision, lead},
      Condition{key("epoch"), Condition::Target::kModRevision, found ? kv.mod_revision : 0}};
  const uint32_t next = static_cast<uint32_t>(current + 1);
  bool done = false;
  std::int64_t revision = 0;
  fastpath::etcd::Write w;
  w.key = key("epoch");
  w.value = std::to_string(next);
  if (auto e = client_.txn(conditions, {w}, &done, &revision); !e.empty()) return e;
  if (!done) return "lost the lead while taking epoch " + std::to_string(next) + " (another service leads now)";
  std::lock_guard lock(mu_);
  epoch_revision_ = revision;
  epoch_ = next;
  *epoch = next;
  return "";
}

std::string EtcdStore::take_over(uint32_t* epoch, std::vector<std::pair<NodeId, Lease>>* leases) {
  if (auto e = next_epoch(epoch); !e.empty()) return e;
  std::vector<std::pair<std::string, fastpath::etcd::KeyValue>> kvs;
  if (auto e = client_.get_prefix(files_dir(options_.prefix), &kvs); !e.empty()) return e;
  leases->clear();
  const uint64_t limit = uint64_t{*epoch} << 32;
  for (const auto& [k, kv] : kvs) {
    const FileId file = k.substr(files_dir(options_.prefix).size());
    wire::FileRecord record;
    if (!record.ParseFromString(kv.value))
      return "etcd key " + k + " does not hold a lease record; delete it if no node holds a lease on that file";
    for (const auto& h : record.holders()) {
      if (h.generation() >= limit)
        return "etcd key " + k + " records generation " + std::to_string(h.generation()) + " beyond epoch " +
               std::to_string(*epoch) + " (was " + key("epoch") + " reset?)";
      leases->emplace_back(h.node(), Lease{file, static_cast<LeaseMode>(h.mode()), h.generation()});
    }
  }
  return "";
}

EtcdStore::Commit EtcdStore::commit(const std::map<FileId, FileHolders>& files, std::string* why) {
  std::vector<fastpath::etcd::Write> writes;
  auto flush = [&]() -> Commit {
    if (writes.empty()) return Commit::kDone;
    bool done = false;
    std::int64_t revision = 0;
    if (auto e = client_.txn(guard(), writes, &done, &revision); !e.empty()) {
      *why = e;
      return Commit::kUnreachable;
    }
    writes.clear();
    if (done) return Commit::kDone;
    std::lock_guard lock(mu_);
    *why = "etcd refused the write: " + key("leader") + " no longer has this service's create revision " +
           std::to_string(leader_revision_) + " or " + key("epoch") + " changed since epoch " + std::to_string(epoch_) +
           " (its etcd lease expired, or another service took over)";
    return Commit::kDeposed;
  };
  for (const auto& [file, holders] : files) {
    fastpath::etcd::Write w;
    w.key = files_dir(options_.prefix) + file;
    if (holders.empty()) {
      w.erase = true;
    } else {
      wire::FileRecord record;
      for (const auto& [node, l] : holders) {
        auto* h = record.add_holders();
        h->set_node(node);
        h->set_mode(static_cast<wire::Mode>(l.mode));
        h->set_generation(l.generation);
      }
      w.value = record.SerializeAsString();
    }
    writes.push_back(std::move(w));
    if (writes.size() == kWritesPerTxn)
      if (const Commit c = flush(); c != Commit::kDone) return c;
  }
  return flush();
}

}  // namespace dfuse::leased
