// SPDX-License-Identifier: GPL-2.0
// Device, Pd, Mr, Cq, Qp (the public API) and the engine thread behind them.
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <random>
#include <stdexcept>

#include "engine.h"
#include "transport.h"
#include "urdma/packet_io.h"
#include "urdma/verbs.h"

namespace urdma {
namespace {

constexpr std::uint64_t kMaxSleepNs = 100'000'000;
constexpr std::size_t kRxBurst = 64;
// An application thread that called progress() this recently is taken to be
// polling still: the engine thread does not wake for every packet meanwhile.
// The engine thread looks again after kAppPollGraceNs, and, each time it finds
// the thread still polling, waits twice as long, up to kAppPollGraceMaxNs: in
// the VM under TCG one look (timer, two context switches) cost ~200 us of a
// vCPU, so looking every millisecond took a fifth of the CPU the polling
// threads needed.  The cost: a thread that stops polling without a word
// (not through Cq::req_notify) leaves its packets waiting up to that long.
constexpr std::uint64_t kAppPollGraceNs = 1'000'000;
constexpr std::uint64_t kAppPollGraceMaxNs = 16'000'000;
// A pass that received at least kStreamBurst packets is taken as part of a
// stream (a large message, a window of WRITEs): the engine thread keeps
// polling kStreamSpinNs after it instead of sleeping at once.  In the VM a
// sleep and wake-up costs ~100-200 us of vCPU, and a 64 KiB WRITE stream
// woke the receiving engine about once per 4 packets.  Request-response
// traffic (one or two packets per pass) still sleeps at once, leaving the
// core to the peer.
constexpr std::size_t kStreamBurst = 4;
constexpr std::uint64_t kStreamSpinNs = 200'000;

[[maybe_unused]] std::uint64_t thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return std::uint64_t(ts.tv_sec) * 1'000'000'000 + std::uint64_t(ts.tv_nsec);
}

ibv_mtu mtu_for_link(int link_mtu) {
  // rxe: the largest IB MTU that fits the link MTU less RoCE's headers.
  const int room = link_mtu - 80;
  for (int b = 4096; b >= 256; b /= 2)
    if (b <= room) return mtu_from_bytes(b);
  return IBV_MTU_256;
}

}  // namespace

std::uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::uint64_t(ts.tv_sec) * 1'000'000'000 + std::uint64_t(ts.tv_nsec);
}

// CLOCK_MONOTONIC_COARSE: read from the vDSO page on every clock source, up
// to one tick behind CLOCK_MONOTONIC.
std::uint64_t coarse_now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return std::uint64_t(ts.tv_sec) * 1'000'000'000 + std::uint64_t(ts.tv_nsec);
}

std::uint64_t coarse_tick_ns() {
  static const std::uint64_t tick = [] {
    timespec ts{};
    clock_getres(CLOCK_MONOTONIC_COARSE, &ts);
    return std::uint64_t(ts.tv_sec) * 1'000'000'000 + std::uint64_t(ts.tv_nsec);
  }();
  return tick;
}

// ---------------------------------------------------------------- engine

Engine::Engine(std::string name, std::unique_ptr<PacketIo> io, std::uint64_t spin_ns)
    : name_(std::move(name)), io_(std::move(io)), spin_ns_(spin_ns) {
  ip_ = io_->local_ip();
  active_mtu_ = mtu_for_link(io_->link_mtu());
  fixed_sport_ = static_cast<std::uint16_t>(io_->fixed_udp_sport());
  attr_.max_qp = 4096;
  attr_.max_qp_wr = 16384;
  attr_.max_sge = 32;
  attr_.max_cq = 4096;
  attr_.max_cqe = 1 << 20;
  attr_.max_mr = 1 << 16;
  attr_.max_pd = 1 << 16;
  attr_.max_mr_size = 1ULL << 40;
  attr_.max_qp_rd_atom = 128;
  attr_.max_qp_init_rd_atom = 128;
  attr_.max_res_rd_atom = 128 * 4096;
  attr_.atomic_cap = IBV_ATOMIC_HCA;
  attr_.phys_port_cnt = 1;
  std::snprintf(attr_.fw_ver, sizeof attr_.fw_ver, "urdma 0.1");
  wake_fd_ = fastpath::UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  epoll_fd_ = fastpath::UniqueFd(::epoll_create1(EPOLL_CLOEXEC));
  if (!wake_fd_ || !epoll_fd_) throw std::runtime_error(std::string("urdma: eventfd/epoll: ") + std::strerror(errno));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = wake_fd_.get();
  epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, wake_fd_.get(), &ev);
  wake_epoll_fd_ = fastpath::UniqueFd(::epoll_create1(EPOLL_CLOEXEC));
  if (!wake_epoll_fd_) throw std::runtime_error(std::string("urdma: epoll: ") + std::strerror(errno));
  epoll_ctl(wake_epoll_fd_.get(), EPOLL_CTL_ADD, wake_fd_.get(), &ev);
  if (io_->poll_fd() >= 0) {
    ev.data.fd = io_->poll_fd();
    epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, io_->poll_fd(), &ev);
  }
  std::random_device rd;
  next_mr_index_ = 1 + rd() % 1000;
  thread_ = std::thread([this] { run(); });
  thread_handle_ = thread_.native_handle();
  engine_running_ = true;
  std::string tname = ("urdma-" + name_).substr(0, 15);
  pthread_setname_np(thread_.native_handle(), tname.c_str());
}

Engine::~Engine() {
  engine_running_ = false;
  stop_ = true;
  const std::uint64_t one = 1;
  [[maybe_unused]] auto r = ::write(wake_fd_.get(), &one, sizeof one);
  if (thread_.joinable()) thread_.join();
}

DeviceStats Engine::stats() const {
  DeviceStats s;
  auto ld = [](const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  s.rx_packets = ld(counters_.rx_packets);
  s.tx_packets = ld(counters_.tx_packets);
  s.rx_bad_icrc = ld(counters_.rx_bad_icrc);
  s.rx_malformed = ld(counters_.rx_malformed);
  s.rx_unknown_opcode = ld(counters_.rx_unknown_opcode);
  s.rx_no_qp = ld(counters_.rx_no_qp);
  s.retransmits = ld(counters_.retransmits);
  s.naks_sent = ld(counters_.naks_sent);
  s.rnr_naks_sent = ld(counters_.rnr_naks_sent);
  s.duplicates = ld(counters_.duplicates);
  // The engine thread's whole CPU time so far, sleeps and wake-ups included.
  clockid_t cid;
  timespec ts{};
  if (engine_running_ && pthread_getcpuclockid(thread_handle_, &cid) == 0 && clock_gettime(cid, &ts) == 0)
    s.engine_busy_ns = std::uint64_t(ts.tv_sec) * 1'000'000'000 + std::uint64_t(ts.tv_nsec);
  s.engine_wakeups = ld(counters_.engine_wakeups);
  return s;
}

std::uint32_t Engine::add_mr(void* addr, std::size_t len, int access) {
  std::unique_lock lk(mr_mu_);
  // key = index << 8 | a byte that changes on every registration, so a stale
  // rkey of a deregistered region is not silently accepted for a new one.
  const std::uint32_t key = (next_mr_index_++ & 0xffffff) << 8 | (std::random_device{}() & 0xff);
  mrs_[key] = MrInfo{static_cast<std::uint8_t*>(addr), len, access};
  return key;
}

void Engine::remove_mr(std::uint32_t key) {
  std::uint8_t* base = nullptr;
  {
    std::unique_lock lk(mr_mu_);
    const auto it = mrs_.find(key);
    if (it == mrs_.end()) return;
    base = it->second.addr;
    mrs_.erase(it);
  }
  // NIC operations keep pointers into the region (holds, parked requests):
  // drop them before the memory can go.  That state is keyed by the region's
  // base address, so another registration of the same memory loses it too.
  std::vector<NicOpAnswer> out;
  {
    std::lock_guard lk(nicop_mu_);
    nicops_.forget_region(base, out);
  }
  defer_answers(std::move(out));
}

RemoteCheck Engine::check_remote(std::uint32_t rkey, std::uint64_t va, std::uint64_t len, int access) const {
  std::shared_lock lk(mr_mu_);
  const auto it = mrs_.find(rkey);
  if (it == mrs_.end() || !(it->second.access & access)) return {nullptr, wire::kNakRemoteAccess};
  const auto base = reinterpret_cast<std::uint64_t>(it->second.addr);
  if (va < base || len > it->second.length || va - base > it->second.length - len)
    return {nullptr, wire::kNakRemoteAccess};
  return {it->second.addr + (va - base), 0};
}

std::uint8_t* Engine::check_local(const ibv_sge& sge, bool write) const {
  std::shared_lock lk(mr_mu_);
  const auto it = mrs_.find(sge.lkey);
  if (it == mrs_.end()) return nullptr;
  if (write && !(it->second.access & IBV_ACCESS_LOCAL_WRITE)) return nullptr;
  const auto base = reinterpret_cast<std::uint64_t>(it->second.addr);
  if (sge.addr < base || sge.length > it->second.length || sge.addr - base > it->second.length - sge.length)
    return nullptr;
  return it->second.addr + (sge.addr - base);
}

std::uint32_t Engine::add_qp(QpImpl* qp) {
  std::unique_lock lk(qp_mu_);
  while (qps_.count(next_qpn_) || next_qpn_ < 0x11) next_qpn_ = (next_qpn_ + 1) & wire::kPsnMask;
  const std::uint32_t qpn = next_qpn_;
  next_qpn_ = (next_qpn_ + 1) & wire::kPsnMask;
  qps_[qpn] = qp;
  return qpn;
}

void Engine::remove_qp(std::uint32_t qpn) {
  std::unique_lock lk(qp_mu_);
  qps_.erase(qpn);
}

void Engine::load_nicop(std::uint32_t op_id, const std::string& path, const std::string& section,
                        std::uint32_t timeout_ms) {
  std::lock_guard lk(nicop_mu_);
  nicops_.load(op_id, path, section, std::uint64_t{timeout_ms} * 1'000'000);
}

void Engine::unload_nicop(std::uint32_t op_id) {
  std::vector<NicOpAnswer> out;
  {
    std::lock_guard lk(nicop_mu_);
    nicops_.unload(op_id, out);
  }
  defer_answers(std::move(out));
}

bool Engine::nicop_loaded(std::uint32_t op_id) {
  std::lock_guard lk(nicop_mu_);
  return nicops_.loaded(op_id);
}

bool Engine::nicop_has_state(std::uint32_t qpn) {
  std::lock_guard lk(nicop_mu_);
  return nicops_.has_state(qpn);
}

bool Engine::run_nicop(const NicOpRequest& r, std::uint32_t park_limit, std::vector<NicOpAnswer>& out) {
  std::lock_guard lk(nicop_mu_);
  nicops_.set_park_limit(r.qpn, park_limit);
  return nicops_.run(r, out);
}

void Engine::region_of(std::uint32_t rkey, std::uint8_t*& base, std::uint64_t& va, std::uint64_t& len) const {
  std::shared_lock lk(mr_mu_);
  const auto it = mrs_.find(rkey);
  if (it == mrs_.end()) {
    base = nullptr;
    va = len = 0;
    return;
  }
  base = it->second.addr;
  va = reinterpret_cast<std::uint64_t>(it->second.addr);
  len = it->second.length;
}

void Engine::defer_answers(std::vector<NicOpAnswer>&& answers) {
  if (answers.empty()) return;
  {
    std::lock_guard lk(inbox_mu_);
    pending_answers_.insert(pending_answers_.end(), answers.begin(), answers.end());
  }
  inbox_nonempty_ = true;
  wake();
}

void Engine::note_qp_dead(std::uint32_t qpn) {
  {
    std::lock_guard lk(inbox_mu_);
    dead_qps_.push_back(qpn);
  }
  inbox_nonempty_ = true;
  wake();
}

// Engine thread, with qp_mu_ shared and no QP lock held: releases what dead
// QPs held, times out parked requests, and delivers answers to their QPs.
void Engine::nicop_housekeeping(std::uint64_t now, std::uint64_t& next_deadline) {
  std::vector<NicOpAnswer> answers;
  std::vector<std::uint32_t> dead;
  if (inbox_nonempty_.exchange(false)) {
    std::lock_guard lk(inbox_mu_);
    answers.swap(pending_answers_);
    dead.swap(dead_qps_);
  }
  {
    std::lock_guard lk(nicop_mu_);
    for (std::uint32_t qpn : dead) nicops_.qp_died(qpn, answers);
    nicops_.expire(now, answers);
    next_deadline = std::min(next_deadline, nicops_.next_deadline());
  }
  for (const NicOpAnswer& a : answers) {
    const auto it = qps_.find(a.qpn);
    if (it != qps_.end())
      it->second->deliver_nicop_answer(static_cast<std::uint32_t>(a.token & wire::kPsnMask), a.status, a.result);
  }
}

void Engine::wake() {
  work_hint_.store(true);  // for a thread in progress(): a full pass, not the quick look
  if (sleeping_.exchange(false)) {
    const std::uint64_t one = 1;
    [[maybe_unused]] auto r = ::write(wake_fd_.get(), &one, sizeof one);
  }
}

void Engine::transmit(wire::Packet& p, std::uint32_t dst_ip, std::uint32_t src_qpn) {
  p.src_ip = ip_.s_addr;
  p.dst_ip = dst_ip;
  p.src_port = fixed_sport_ ? fixed_sport_ : wire::udp_sport(src_qpn, p.dest_qp);
  const std::size_t n = wire::build(p, tx_buf_);
  io_->send(std::span<const std::uint8_t>(tx_buf_.data(), n));
  counters_.tx_packets.fetch_add(1, std::memory_order_relaxed);
}

void Engine::receive(const RxPacket& rx, std::uint64_t now) {
  wire::Packet p;
  wire::ParseError e = wire::parse(std::span<const std::uint8_t>(rx.data, rx.len), p);
  if (e == wire::ParseError::kBadIcrc && io_->repair_icrc(rx))
    e = wire::parse(std::span<const std::uint8_t>(rx.data, rx.len), p);
  switch (e) {
    case wire::ParseError::kOk:
      break;
    case wire::ParseError::kBadIcrc:
      counters_.rx_bad_icrc.fetch_add(1, std::memory_order_relaxed);
      return;
    case wire::ParseError::kUnknownOpcode:
      counters_.rx_unknown_opcode.fetch_add(1, std::memory_order_relaxed);
      return;
    default:
      counters_.rx_malformed.fetch_add(1, std::memory_order_relaxed);
      return;
  }
  if (p.dst_ip != ip_.s_addr || (p.pkey & 0x7fff) != 0x7fff) {
    counters_.rx_malformed.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const auto it = qps_.find(p.dest_qp);
  if (it == qps_.end()) {
    counters_.rx_no_qp.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  counters_.rx_packets.fetch_add(1, std::memory_order_relaxed);
  it->second->on_packet(p, now);
}

std::size_t Engine::receive_burst() {
  rx_.clear();
  return io_->recv_burst(rx_, kRxBurst);
}

bool Engine::process(std::size_t n, std::uint64_t now, std::uint64_t& next_deadline) {
  work_hint_.store(false);
  std::shared_lock lk(qp_mu_);
  for (const RxPacket& rx : rx_) receive(rx, now);
  nicop_housekeeping(now, next_deadline);
  bool did = n > 0;
  for (auto& [qpn, qp] : qps_) did |= qp->service(now, next_deadline);
  io_->flush();
  next_deadline_ = next_deadline;
  return did;
}

bool Engine::progress(bool polling) {
  std::unique_lock lk(pass_mu_, std::try_to_lock);
  if (!lk.owns_lock()) return false;
  const std::uint64_t coarse = coarse_now_ns();
  if (polling) {
    app_polls_.fetch_add(1, std::memory_order_relaxed);
    if (!app_polling_.load(std::memory_order_relaxed)) app_polling_.store(true);
  }
  const std::size_t n = receive_burst();
  // Nothing arrived, nothing was posted, no timer is due: done, without
  // reading the precise clock (a system call where the clock source has no
  // vDSO, as under QEMU TCG, and this runs on every empty CQ poll).
  if (n == 0 && !work_hint_.load() && !inbox_nonempty_.load() && coarse + coarse_tick_ns() < next_deadline_)
    return true;
  const std::uint64_t now = now_ns();
  std::uint64_t next = now + kMaxSleepNs;
  process(n, now, next);
  lk.unlock();
  if (next <= now) wake();  // more to send than one pass moves: the engine thread goes on
  return true;
}

void Engine::sleep_until(std::uint64_t deadline, bool on_io) {
  const std::uint64_t now = now_ns();
  if (deadline <= now) return;
  sleep_for(deadline - now, on_io);
}

void Engine::sleep_for(std::uint64_t ns, bool on_io) {
  const std::uint64_t wait = std::min(ns, kMaxSleepNs);
  timespec ts{static_cast<time_t>(wait / 1'000'000'000), static_cast<long>(wait % 1'000'000'000)};
  epoll_event evs[2];
  const int n = epoll_pwait2((on_io ? epoll_fd_ : wake_epoll_fd_).get(), evs, 2, &ts, nullptr);
  for (int i = 0; i < n; ++i) {
    if (evs[i].data.fd == wake_fd_.get()) {
      std::uint64_t v;
      [[maybe_unused]] auto r = ::read(wake_fd_.get(), &v, sizeof v);
    } else {
      io_->ack_poll_fd();
    }
  }
}

bool Engine::locked_pass(std::uint64_t now, std::uint64_t& next_deadline, std::size_t& received) {
  std::lock_guard lk(pass_mu_);
  received = receive_burst();
  return process(received, now, next_deadline);
}

void Engine::run() {
  const bool can_sleep_on_io = io_->poll_fd() >= 0;
  std::uint64_t last_work = now_ns();
  std::uint64_t grace = kAppPollGraceNs;
  std::uint64_t stream_until = 0;
  while (!stop_.load(std::memory_order_relaxed)) {
    // While an application thread polls it moves the packets and runs the
    // timers: stay out of its way, and look again after the grace period
    // whether it still polls (it may have stopped without a word).
    if (app_polling_.load()) {
      const std::uint64_t polls = app_polls_.load(std::memory_order_relaxed);
      sleeping_.store(true);
      if (app_polling_.load()) sleep_for(grace, false);  // app_sleeps() wakes it
      sleeping_.store(false);
      if (app_polls_.load(std::memory_order_relaxed) == polls)
        app_polling_.store(false);
      else
        grace = std::min(2 * grace, kAppPollGraceMaxNs);
      continue;
    }
    grace = kAppPollGraceNs;
    std::uint64_t now = now_ns();
    std::uint64_t next = now + kMaxSleepNs;
    std::size_t received = 0;
    if (locked_pass(now, next, received)) {
      last_work = now;
      if (received >= kStreamBurst) stream_until = now + kStreamSpinNs;
      continue;
    }
    if (now - last_work < spin_ns_ || now < stream_until || next <= now) continue;
    // Going to sleep: publish it, then look once more so a post that raced
    // with us is not left waiting until the next timer.
    sleeping_.store(true);
    now = now_ns();
    next = now + kMaxSleepNs;
    if (locked_pass(now, next, received)) {
      sleeping_.store(false);
      last_work = now;
      continue;
    }
    // Without a descriptor to wake on, nap briefly so packets are still seen.
    sleep_until(can_sleep_on_io ? next : std::min(next, now + 50'000), true);
    sleeping_.store(false);
    counters_.engine_wakeups.fetch_add(1, std::memory_order_relaxed);
    last_work = now_ns();  // spin a little after every wake-up: a burst usually follows
  }
}

// ---------------------------------------------------------------- public objects

std::unique_ptr<Device> Device::open(const std::string& name, const std::string& spec) {
  auto io = open_packet_io(spec);  // validates the spec first, with the messages
  const IoSpec s = IoSpec::parse(spec);
  const auto spin_us = s.get_int("spin_us", Engine::kDefaultSpinNs / 1000, 0, 10'000'000);
  std::unique_ptr<Device> d(new Device());  // private constructor: make_unique cannot reach it
  d->engine_ = std::make_unique<Engine>(name, std::move(io), static_cast<std::uint64_t>(spin_us) * 1000);
  const auto keepalive_ms = s.get_int("keepalive_ms", Engine::kDefaultKeepAliveNs / 1'000'000, 0, 3'600'000);
  d->set_nic_op_keepalive(static_cast<std::uint32_t>(keepalive_ms));
  return d;
}

std::unique_ptr<Device> Device::open(const std::string& name, std::unique_ptr<PacketIo> io, std::uint32_t spin_us) {
  std::unique_ptr<Device> d(new Device());  // private constructor: make_unique cannot reach it
  d->engine_ = std::make_unique<Engine>(name, std::move(io), std::uint64_t{spin_us} * 1000);
  return d;
}

Device::~Device() = default;
const std::string& Device::name() const {
  return engine_->name();
}
std::string Device::backend() const {
  return engine_->io().describe();
}
in_addr Device::ip() const {
  return engine_->ip();
}
ibv_mtu Device::active_mtu() const {
  return engine_->active_mtu();
}
const ibv_device_attr& Device::attr() const {
  return engine_->attr();
}
DeviceStats Device::stats() const {
  return engine_->stats();
}

std::uint64_t Device::rx_packets() const {
  return engine_->counters().rx_packets.load(std::memory_order_relaxed);
}

std::map<std::string, std::uint64_t> Device::io_counters() const {
  return engine_->io().counters();
}

ibv_gid Device::gid() const {
  ibv_gid g{};
  g.raw[10] = g.raw[11] = 0xff;
  const in_addr a = engine_->ip();
  std::memcpy(g.raw + 12, &a.s_addr, 4);
  return g;
}

void Device::load_nic_op(std::uint32_t op_id, const std::string& path, const std::string& section,
                         std::uint32_t timeout_ms) {
  engine_->load_nicop(op_id, path, section, timeout_ms);
}

void Device::set_nic_op_keepalive(std::uint32_t ms) {
  engine_->set_keepalive_ns(std::uint64_t{ms} * 1'000'000);
}

void Device::progress() const {
  engine_->progress(true);
}

void Device::unload_nic_op(std::uint32_t op_id) {
  engine_->unload_nicop(op_id);
}

std::unique_ptr<Pd> Device::alloc_pd() {
  return std::unique_ptr<Pd>(new Pd(*engine_));
}

std::unique_ptr<Cq> Device::create_cq(int cqe) {
  if (cqe < 1 || cqe > engine_->attr().max_cqe)
    throw std::invalid_argument("urdma: create_cq: " + std::to_string(cqe) + " entries; the device allows 1.." +
                                std::to_string(engine_->attr().max_cqe));
  return std::unique_ptr<Cq>(new Cq(std::make_unique<CqImpl>(cqe), *engine_));
}

Pd::~Pd() = default;

std::unique_ptr<Mr> Pd::reg_mr(void* addr, std::size_t length, int access) {
  constexpr int kKnown = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ |
                         IBV_ACCESS_REMOTE_ATOMIC | URDMA_ACCESS_NIC_OP;
  if (addr == nullptr || length == 0) throw std::invalid_argument("urdma: reg_mr: empty region");
  if (access & ~kKnown) throw std::invalid_argument("urdma: reg_mr: unsupported access flags");
  if ((access & (IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_ATOMIC | URDMA_ACCESS_NIC_OP)) &&
      !(access & IBV_ACCESS_LOCAL_WRITE))
    throw std::invalid_argument("urdma: reg_mr: remote write or atomic access needs IBV_ACCESS_LOCAL_WRITE too");
  const std::uint32_t key = engine_.add_mr(addr, length, access);
  return std::unique_ptr<Mr>(new Mr(engine_, addr, length, access, key));
}

std::unique_ptr<Qp> Pd::create_qp(const QpInitAttr& init) {
  if (init.send_cq == nullptr || init.recv_cq == nullptr)
    throw std::invalid_argument("urdma: create_qp: send_cq and recv_cq are required");
  const ibv_device_attr& a = engine_.attr();
  if (init.cap.max_send_wr > static_cast<std::uint32_t>(a.max_qp_wr) ||
      init.cap.max_recv_wr > static_cast<std::uint32_t>(a.max_qp_wr) ||
      init.cap.max_send_sge > static_cast<std::uint32_t>(a.max_sge) ||
      init.cap.max_recv_sge > static_cast<std::uint32_t>(a.max_sge) || init.cap.max_inline_data > 4096)
    throw std::invalid_argument("urdma: create_qp: capabilities exceed the device's (max_qp_wr " +
                                std::to_string(a.max_qp_wr) + ", max_sge " + std::to_string(a.max_sge) +
                                ", max_inline_data 4096)");
  return std::unique_ptr<Qp>(new Qp(std::make_unique<QpImpl>(engine_, init)));
}

Mr::~Mr() {
  engine_.remove_mr(key_);
}

Cq::Cq(std::unique_ptr<CqImpl> impl, Engine& engine) : impl_(std::move(impl)), engine_(engine) {}
Cq::~Cq() = default;
int Cq::poll(int n, ibv_wc* wc) {
  if (const int got = impl_->poll(n, wc)) return got;
  // A poll of an armed CQ is the last look before the thread sleeps on its
  // event, not a polling loop: it moves packets but leaves the engine thread
  // awake to them.
  engine_.progress(!impl_->armed());
  return impl_->poll(n, wc);
}
void Cq::req_notify() {
  impl_->req_notify();
  engine_.app_sleeps();
}
int Cq::fd() const {
  return impl_->fd();
}
bool Cq::get_event(int timeout_ms) {
  return impl_->get_event(timeout_ms);
}

int Cq::wait(int n, ibv_wc* wc, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    if (const int got = poll(n, wc)) return got;
    req_notify();
    if (const int got = poll(n, wc)) return got;  // arrived while arming
    int left = -1;
    if (timeout_ms >= 0) {
      const auto ms =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
      if (ms <= 0) return 0;
      left = static_cast<int>(ms);
    }
    get_event(left);
  }
}

Qp::Qp(std::unique_ptr<QpImpl> impl) : impl_(std::move(impl)) {}
Qp::~Qp() = default;
std::uint32_t Qp::qp_num() const {
  return impl_->qpn();
}
int Qp::modify(const ibv_qp_attr& attr, int mask) {
  return impl_->modify(attr, mask);
}
int Qp::query(ibv_qp_attr& attr) const {
  return impl_->query(attr);
}
ibv_qp_state Qp::state() const {
  return impl_->state();
}
std::string Qp::error_reason() const {
  return impl_->error_reason();
}

std::string Qp::debug_state() const {
  return impl_->debug_state();
}
int Qp::post_send(ibv_send_wr* wr, ibv_send_wr** bad) {
  return impl_->post_send(wr, bad);
}
int Qp::post_recv(ibv_recv_wr* wr, ibv_recv_wr** bad) {
  return impl_->post_recv(wr, bad);
}
int Qp::post_nic_op(const NicOpWr& wr) {
  return impl_->post_nic_op(wr);
}

// ---------------------------------------------------------------- names

// rdma-core's enum names, what one greps for (libibverbs' ibv_wc_status_str
// gives prose, and this library does not link libibverbs).
const char* wc_status_str(ibv_wc_status s) {
  switch (s) {
    case IBV_WC_SUCCESS:
      return "IBV_WC_SUCCESS";
    case IBV_WC_LOC_LEN_ERR:
      return "IBV_WC_LOC_LEN_ERR";
    case IBV_WC_LOC_QP_OP_ERR:
      return "IBV_WC_LOC_QP_OP_ERR";
    case IBV_WC_LOC_PROT_ERR:
      return "IBV_WC_LOC_PROT_ERR";
    case IBV_WC_WR_FLUSH_ERR:
      return "IBV_WC_WR_FLUSH_ERR";
    case IBV_WC_BAD_RESP_ERR:
      return "IBV_WC_BAD_RESP_ERR";
    case IBV_WC_LOC_ACCESS_ERR:
      return "IBV_WC_LOC_ACCESS_ERR";
    case IBV_WC_REM_INV_REQ_ERR:
      return "IBV_WC_REM_INV_REQ_ERR";
    case IBV_WC_REM_ACCESS_ERR:
      return "IBV_WC_REM_ACCESS_ERR";
    case IBV_WC_REM_OP_ERR:
      return "IBV_WC_REM_OP_ERR";
    case IBV_WC_RETRY_EXC_ERR:
      return "IBV_WC_RETRY_EXC_ERR";
    case IBV_WC_RNR_RETRY_EXC_ERR:
      return "IBV_WC_RNR_RETRY_EXC_ERR";
    case IBV_WC_GENERAL_ERR:
      return "IBV_WC_GENERAL_ERR";
    default:
      return "IBV_WC_?";
  }
}

const char* wc_opcode_str(ibv_wc_opcode o) {
  switch (o) {
    case IBV_WC_SEND:
      return "IBV_WC_SEND";
    case IBV_WC_RDMA_WRITE:
      return "IBV_WC_RDMA_WRITE";
    case IBV_WC_RDMA_READ:
      return "IBV_WC_RDMA_READ";
    case IBV_WC_COMP_SWAP:
      return "IBV_WC_COMP_SWAP";
    case IBV_WC_FETCH_ADD:
      return "IBV_WC_FETCH_ADD";
    case IBV_WC_RECV:
      return "IBV_WC_RECV";
    case IBV_WC_RECV_RDMA_WITH_IMM:
      return "IBV_WC_RECV_RDMA_WITH_IMM";
    default:
      return "IBV_WC_?";
  }
}

const char* qp_state_str(ibv_qp_state s) {
  switch (s) {
    case IBV_QPS_RESET:
      return "RESET";
    case IBV_QPS_INIT:
      return "INIT";
    case IBV_QPS_RTR:
      return "RTR";
    case IBV_QPS_RTS:
      return "RTS";
    case IBV_QPS_SQD:
      return "SQD";
    case IBV_QPS_SQE:
      return "SQE";
    case IBV_QPS_ERR:
      return "ERROR";
    default:
      return "?";
  }
}

const char* nicop_status_str(std::uint32_t status) {
  switch (status) {
    case NICOP_ST_OK:
      return "OK";
    case NICOP_ST_PROG_ERROR:
      return "NICOP_ST_PROG_ERROR (the program failed or broke a helper's rule)";
    case NICOP_ST_TIMEOUT:
      return "NICOP_ST_TIMEOUT (parked longer than the operation's timeout)";
    case NICOP_ST_UNLOADED:
      return "NICOP_ST_UNLOADED (the operation was unloaded while the request was parked)";
    case NICOP_ST_QUEUE_FULL:
      return "NICOP_ST_QUEUE_FULL (too many parked requests on this QP)";
    case NICOP_ST_NO_ANSWER:
      return "NICOP_ST_NO_ANSWER (the program neither answered nor parked)";
    case NICOP_ST_REGION_GONE:
      return "NICOP_ST_REGION_GONE (the target region was deregistered while the request was parked)";
    default:
      return status < 0x100 ? "operation-defined status" : "unknown status";
  }
}

int mtu_to_bytes(ibv_mtu m) {
  switch (m) {
    case IBV_MTU_256:
      return 256;
    case IBV_MTU_512:
      return 512;
    case IBV_MTU_1024:
      return 1024;
    case IBV_MTU_2048:
      return 2048;
    case IBV_MTU_4096:
      return 4096;
  }
  return 0;
}

ibv_mtu mtu_from_bytes(int bytes) {
  switch (bytes) {
    case 256:
      return IBV_MTU_256;
    case 512:
      return IBV_MTU_512;
    case 1024:
      return IBV_MTU_1024;
    case 2048:
      return IBV_MTU_2048;
    case 4096:
      return IBV_MTU_4096;
  }
  return static_cast<ibv_mtu>(0);
}

}  // namespace urdma
