// SPDX-License-Identifier: GPL-2.0
#include "link.h"

#include <cstring>
#include <iostream>
#include <stdexcept>

#include "tcp.h"
#include "urdma/packet_io.h"
#include "volt/thread_cpu.h"

namespace volt::bench {
namespace {

constexpr const char* kTargetDevice = "volt-target";

// The target itself: a Target, the run's TargetSession and the arrival log.
class TargetHost {
 public:
  explicit TargetHost(const TargetParams& p) : log_(std::make_shared<ArrivalLog>()) {
    TargetConfig cfg;
    cfg.locks = p.locks;
    cfg.data_size = std::max<std::uint32_t>(8, p.data_size);
    cfg.volt_object = p.volt_object;
    logged_ = p.arrival_log;
    // With the arrival log the device is opened over a wrapped packet I/O:
    // the spec's engine keys are applied by hand.
    std::unique_ptr<urdma::Device> dev;
    if (logged_) {
      const urdma::IoSpec spec = urdma::IoSpec::parse(p.backend);
      dev = urdma::Device::open(kTargetDevice, tap_arrivals(urdma::open_packet_io(p.backend), log_),
                                static_cast<std::uint32_t>(spec.get_int("spin_us", 0, 0, 10'000'000)));
      if (spec.keys.count("keepalive_ms"))
        dev->set_nic_op_keepalive(static_cast<std::uint32_t>(spec.get_int("keepalive_ms", 500, 0, 3'600'000)));
    } else {
      dev = urdma::Device::open(kTargetDevice, p.backend);
    }
    target_ = std::make_unique<Target>(std::move(dev), cfg);
  }
  ~TargetHost() {
    session_.reset();
    target_.reset();
  }

  RemoteRegion open(const OpenRequest& req, std::vector<QpAddr>& addrs) {
    session_.reset();
    if (req.kind == Kind::kVolt && target_->config().volt_object.empty())
      throw std::runtime_error("the target did not load VOLT (no --volt-object, or volt not in its --kinds)");
    target_->reset();
    connect_ = req.connect;
    session_ = std::make_unique<TargetSession>(*target_, req.kind, req.clients, req.rpc_spin);
    addrs.clear();
    for (std::uint32_t i = 0; i < req.clients; ++i) addrs.push_back(session_->addr(i));
    if (req.log_arrivals) log_->start(std::size_t{8} << 20);
    return remote_region(*target_);
  }
  void connect(const std::vector<QpAddr>& client) {
    for (std::uint32_t i = 0; i < client.size(); ++i) session_->connect(i, client[i], connect_);
    session_->start();
  }
  // app_cpu: a target process's threads but the engine; in a single process
  // (the clients share it) the RPC server thread's.
  TargetSnap snap(bool whole_process) {
    const urdma::DeviceStats s = target_->dev().stats();
    const ThreadCpu t = thread_cpu(engine_thread_name(kTargetDevice));
    TargetSnap x{s.engine_busy_ns, t.matching_ns, s.tx_packets, s.engine_wakeups, 0};
    if (whole_process)
      x.app_cpu_ns = t.other_ns;
    else if (session_ && session_->rpc())
      x.app_cpu_ns = session_->rpc()->cpu_ns();
    return x;
  }
  Closing close() {
    Closing c;
    log_->stop();
    c.truncated = log_->truncated();
    c.logged = logged_;
    c.arrivals = log_->take();
    const std::uint32_t n = session_ ? static_cast<std::uint32_t>(qpn_count()) : 0;
    for (std::uint32_t i = 0; i < n; ++i) c.qpns.push_back(session_->qpn(i));
    for (std::uint64_t l = 0; l < target_->config().locks; ++l) {
      std::uint64_t v = 0;
      std::memcpy(&v, target_->host(target_->data_addr(l)), 8);
      c.guarded_sum += v;
    }
    session_.reset();
    return c;
  }
  void set_clients(std::uint32_t n) { clients_ = n; }
  std::size_t qpn_count() const { return clients_; }
  std::string backend() const { return target_->dev().backend(); }

 private:
  std::shared_ptr<ArrivalLog> log_;
  std::unique_ptr<Target> target_;
  std::unique_ptr<TargetSession> session_;
  ConnectParams connect_;
  std::uint32_t clients_ = 0;
  bool logged_ = true;
};

class LocalLink : public TargetLink {
 public:
  explicit LocalLink(const TargetParams& p) : host_(p) {}
  RemoteRegion open(const OpenRequest& req, std::vector<QpAddr>& addrs) override {
    host_.set_clients(req.clients);
    return host_.open(req, addrs);
  }
  void connect(const std::vector<QpAddr>& client) override { host_.connect(client); }
  TargetSnap snap() override { return host_.snap(false); }
  Closing close() override { return host_.close(); }
  std::string describe() const override { return host_.backend() + " (in this process)"; }

 private:
  TargetHost host_;
};

// ---------------------------------------------------------------- the side channel

enum Msg : std::uint32_t { kOpen = 1, kConnect = 2, kSnap = 3, kClose = 4 };
constexpr std::uint64_t kMagic = 0x31484e4254504c56ULL;  // "VLPTBNH1"

struct WireOpen {
  std::uint32_t kind, clients, log, rpc_spin;
  ConnectParams connect;
};

void put_ok(Tcp& t) {
  t.put(std::uint32_t{0});
}
void put_error(Tcp& t, const std::string& e) {
  t.put(std::uint32_t{1});
  t.put_string(e);
}
void get_status(Tcp& t) {
  if (t.get<std::uint32_t>() != 0) throw std::runtime_error("the target says: " + t.get_string());
}

template <class T>
void put_vec(Tcp& t, const std::vector<T>& v) {
  t.put(static_cast<std::uint64_t>(v.size()));
  if (!v.empty()) t.send(v.data(), v.size() * sizeof(T));
}
template <class T>
std::vector<T> get_vec(Tcp& t) {
  const auto n = t.get<std::uint64_t>();
  if (n > (std::uint64_t{1} << 28) / sizeof(T)) throw std::runtime_error("side channel: implausible vector length");
  std::vector<T> v(n);
  if (n) t.recv(v.data(), n * sizeof(T));
  return v;
}

class RemoteLink : public TargetLink {
 public:
  RemoteLink(const std::string& host, int port) : tcp_(Tcp::connect(host, port, 5000)), where_(host) {
    tcp_.put(kMagic);
    if (tcp_.get<std::uint64_t>() != kMagic) throw std::runtime_error(host + " is not a volt-bench target");
    backend_ = tcp_.get_string();
  }
  RemoteRegion open(const OpenRequest& req, std::vector<QpAddr>& addrs) override {
    tcp_.put(kOpen);
    tcp_.put(WireOpen{static_cast<std::uint32_t>(req.kind), req.clients, req.log_arrivals, req.rpc_spin, req.connect});
    get_status(tcp_);
    const auto r = tcp_.get<RemoteRegion>();
    addrs = get_vec<QpAddr>(tcp_);
    return r;
  }
  void connect(const std::vector<QpAddr>& client) override {
    tcp_.put(kConnect);
    put_vec(tcp_, client);
    get_status(tcp_);
  }
  TargetSnap snap() override {
    tcp_.put(kSnap);
    get_status(tcp_);
    return tcp_.get<TargetSnap>();
  }
  Closing close() override {
    tcp_.put(kClose);
    get_status(tcp_);
    Closing c;
    c.truncated = tcp_.get<std::uint32_t>() != 0;
    c.logged = tcp_.get<std::uint32_t>() != 0;
    c.guarded_sum = tcp_.get<std::uint64_t>();
    c.qpns = get_vec<std::uint32_t>(tcp_);
    c.arrivals = get_vec<Arrival>(tcp_);
    return c;
  }
  std::string describe() const override { return backend_ + " (target process at " + where_ + ")"; }

 private:
  Tcp tcp_;
  std::string where_, backend_;
};

void serve_one(TargetHost& host, Tcp& t) {
  std::uint32_t msg = 0;
  while (t.recv_or_eof(&msg, sizeof msg)) {
    try {
      if (msg == kOpen) {
        const auto w = t.get<WireOpen>();
        host.set_clients(w.clients);
        std::vector<QpAddr> addrs;
        const RemoteRegion r =
            host.open({static_cast<Kind>(w.kind), w.clients, w.log != 0, w.rpc_spin != 0, w.connect}, addrs);
        std::cerr << "volt-bench target: " << kind_name(static_cast<Kind>(w.kind)) << ", " << w.clients << " clients"
                  << std::endl;
        put_ok(t);
        t.put(r);
        put_vec(t, addrs);
      } else if (msg == kConnect) {
        host.connect(get_vec<QpAddr>(t));
        put_ok(t);
      } else if (msg == kSnap) {
        const TargetSnap s = host.snap(true);
        put_ok(t);
        t.put(s);
      } else if (msg == kClose) {
        Closing c = host.close();
        put_ok(t);
        t.put(std::uint32_t{c.truncated});
        t.put(std::uint32_t{c.logged});
        t.put(c.guarded_sum);
        put_vec(t, c.qpns);
        put_vec(t, c.arrivals);
      } else {
        throw std::runtime_error("unknown side-channel message " + std::to_string(msg));
      }
    } catch (const std::exception& e) {
      put_error(t, e.what());
    }
  }
}

}  // namespace

std::unique_ptr<TargetLink> local_link(const TargetParams& p) {
  return std::make_unique<LocalLink>(p);
}

std::unique_ptr<TargetLink> remote_link(const std::string& host, int port) {
  return std::make_unique<RemoteLink>(host, port);
}

void serve_target(const TargetParams& p, int port, bool once) {
  TargetHost host(p);
  TcpListener listener(port);
  std::cerr << "volt-bench target: " << host.backend() << ", " << p.locks << " locks, "
            << (p.volt_object.empty() ? "VOLT not loaded" : "VOLT loaded") << "; waiting for clients on TCP port "
            << listener.port() << std::endl;
  do {
    Tcp t = listener.accept();
    try {
      if (t.get<std::uint64_t>() != kMagic) throw std::runtime_error("a peer that is not volt-bench connected");
      t.put(kMagic);
      t.put_string(host.backend());
      serve_one(host, t);
    } catch (const std::exception& e) {
      std::cerr << "volt-bench target: client dropped: " << e.what() << std::endl;
    }
    host.close();
  } while (!once);
}

}  // namespace volt::bench
