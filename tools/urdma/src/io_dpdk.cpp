// SPDX-License-Identifier: GPL-2.0
// The dpdk back-end: RoCEv2 frames on a DPDK 22.11 port (net_af_packet on a
// Linux interface by default), with the EAL running without hugepages.
//
// This back-end owns the link layer: it adds and strips Ethernet, answers ARP
// for its address and resolves its peers by ARP.  Its IP address must not be
// one the host kernel owns: the kernel sees the same frames (af_packet taps
// the interface), so it would answer ARP too and reject the RoCE datagrams
// with ICMP port unreachable, or feed them to rxe.
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_mbuf.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <deque>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "fastpath/unique_fd.h"
#include "urdma/packet_io.h"

// DPDK 22.11's af_packet PMD puts its socket into a PACKET_FANOUT group
// numbered (pid ^ ifindex) & 0xffff, even with one queue.  Fanout group ids are
// per network namespace, and the kernel refuses (EINVAL) to add a socket to a
// group whose sockets are on another interface: two processes on the two ends
// of a veth pair in one namespace collide whenever pid_a ^ pid_b equals
// ifindex_a ^ ifindex_b, which processes started one after the other (pids a
// few apart) and a veth pair (ifindexes a few apart) make common -- the port
// then fails to attach ("could not set PACKET_FANOUT ... Invalid argument").
// urdma opens one port per interface per process (IfaceClaim), so its group
// never has another member: this wrapper, which the PMD's call resolves to
// (the executable exports it, see CMakeLists.txt), tries other group ids when
// the kernel refuses one.  Every other call passes through unchanged.
extern "C" int setsockopt(int fd, int level, int name, const void* value, socklen_t len) {
  if (level != SOL_PACKET || name != PACKET_FANOUT || len != sizeof(int) || value == nullptr)
    return static_cast<int>(::syscall(SYS_setsockopt, fd, level, name, value, len));
  int arg = *static_cast<const int*>(value);
  std::uint32_t id = static_cast<std::uint32_t>(arg) & 0xffff;
  for (int attempt = 0;; ++attempt) {
    const long rc = ::syscall(SYS_setsockopt, fd, level, name, &arg, len);
    if (rc == 0 || errno != EINVAL || attempt == 64) return static_cast<int>(rc);
    id = (id * 40503u + 0x9e37u) & 0xffff;  // another id; a collision again is unlikely
    arg = static_cast<int>((static_cast<std::uint32_t>(arg) & 0xffff0000u) | id);
  }
}

namespace urdma {
namespace {

constexpr std::uint16_t kRocePort = 4791;
constexpr std::size_t kEth = 14;
constexpr std::uint16_t kEtherIpv4 = 0x0800, kEtherArp = 0x0806;
constexpr std::size_t kMaxPending = 256;            // packets queued per unresolved peer (2 windows)
constexpr std::uint64_t kArpRetryNs = 100'000'000;  // at most one ARP request per peer per 100 ms
constexpr std::uint16_t kRingSize = 256;            // RX/TX descriptors
constexpr unsigned kPoolSize = 1023;                // mbufs per port (2^n - 1 suits the ring)
constexpr std::uint16_t kRxBurst = 64;
constexpr std::size_t kTxBatch = 32;  // frames per rte_eth_tx_burst
// TPACKET_V2 puts a received frame 66 bytes into its slot (tpacket_rcv:
// TPACKET_ALIGN(52 + 16) - 14) and transmits at most framesz - 32 bytes.
constexpr int kAfPacketRxOverhead = 66, kAfPacketTxOverhead = 32;

using Mac = std::array<std::uint8_t, 6>;
constexpr Mac kBroadcast = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

std::string fail(const std::string& what) {
  return "urdma: dpdk back-end: " + what;
}

std::uint16_t get16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>(p[0] << 8 | p[1]);
}
void put16(std::uint8_t* p, std::uint16_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}
std::uint32_t get_ip(const std::uint8_t* p) {  // network byte order, as in in_addr
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

std::string ip_str(std::uint32_t ip) {
  char buf[INET_ADDRSTRLEN];
  return inet_ntop(AF_INET, &ip, buf, sizeof buf);
}

std::string mac_str(const Mac& m) {
  char buf[18];
  std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
  return buf;
}

std::uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

// Serialises EAL start-up and device hot-plug, which DPDK does not make
// thread-safe, across every back-end instance in the process.
std::mutex& dpdk_mutex() {
  static std::mutex mu;
  return mu;
}

// ---------------------------------------------------------------- EAL

std::vector<std::string> split_spaces(const std::string& s) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while ((pos = s.find_first_not_of(' ', pos)) != std::string::npos) {
    const std::size_t end = std::min(s.find(' ', pos), s.size());
    out.push_back(s.substr(pos, end - pos));
    pos = end;
  }
  return out;
}

int first_cpu(const cpu_set_t& set) {
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) return c;
  return 0;
}

// Starts the EAL once per process (call with dpdk_mutex held).  rte_eal_init
// pins the calling thread to lcore 0's CPU; the caller is an application
// thread that must keep its own affinity, so it is saved and restored.  Lcore
// 0 is mapped to a CPU the process may run on (plain -l 0 means CPU 0, which a
// cpuset may exclude).
void init_eal(const std::string& extra) {
  static bool tried = false;
  static std::string error, used_extra;
  static std::vector<std::string> args;  // EAL may keep pointers into argv
  static std::vector<char*> argv;
  if (tried) {
    if (!error.empty()) throw std::runtime_error(error);
    if (!extra.empty() && extra != used_extra)
      throw std::runtime_error(fail("the EAL already runs with eal=\"" + used_extra + "\"; EAL arguments (eal=\"" +
                                    extra + "\") can be set only by the first device a process opens"));
    return;
  }
  tried = true;
  used_extra = extra;
  cpu_set_t saved;
  CPU_ZERO(&saved);
  pthread_getaffinity_np(pthread_self(), sizeof saved, &saved);
  // --no-shconf, not --in-memory: 22.11 refuses --in-memory with --no-huge
  // (which implies --legacy-mem).  Either way no files or IPC socket appear.
  args = {"urdma",
          "--no-huge",
          "-m",
          "256",
          "--no-shconf",
          "--no-pci",
          "--no-telemetry",
          "--lcores",
          "0@" + std::to_string(first_cpu(saved)),
          "--log-level=lib.eal:error"};
  for (auto& a : split_spaces(extra)) args.push_back(a);
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const int rc = rte_eal_init(static_cast<int>(args.size()), argv.data());
  const int err = rte_errno;
  pthread_setaffinity_np(pthread_self(), sizeof saved, &saved);
  if (rc < 0 && err != EALREADY) {
    std::string cmd;
    for (auto& a : args) cmd += " " + a;
    error = fail("EAL initialisation failed: " + std::string(rte_strerror(err)) + " (EAL arguments:" + cmd +
                 "); see the EAL messages above, fix eal=\"...\" or check that the DPDK plugins are installed");
    throw std::runtime_error(error);
  }
}

// ---------------------------------------------------------------- checks

// The host kernel must not own our address (see the top of the file).
void refuse_host_address(std::uint32_t ip) {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return;
  std::string owner;
  for (ifaddrs* a = list; a; a = a->ifa_next)
    if (a->ifa_addr && a->ifa_addr->sa_family == AF_INET &&
        reinterpret_cast<const sockaddr_in*>(a->ifa_addr)->sin_addr.s_addr == ip)
      owner = a->ifa_name;
  freeifaddrs(list);
  if (!owner.empty())
    throw std::runtime_error(fail(ip_str(ip) + " is an address of this host (on " + owner +
                                  "): the kernel would answer ARP for it and reject the RoCE packets; remove it " +
                                  "(ip addr del " + ip_str(ip) + "/PREFIX dev " + owner +
                                  ") or pass an ip= the host does not own"));
}

fastpath::UniqueFd raw_socket(const std::string& iface) {
  fastpath::UniqueFd fd(::socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd && (errno == EPERM || errno == EACCES))
    throw std::runtime_error(fail("no permission for a raw socket on " + iface +
                                  ": run as root or give CAP_NET_RAW (setcap cap_net_raw+ep PROGRAM)"));
  if (!fd) throw std::runtime_error(fail("AF_PACKET socket: " + std::string(std::strerror(errno))));
  return fd;
}

// An interface af_packet can use: present, up, with room for mtu.
void check_interface(const std::string& iface, int mtu) {
  if (iface.size() >= IFNAMSIZ || if_nametoindex(iface.c_str()) == 0)
    throw std::runtime_error(
        fail("interface " + iface + " does not exist (ip link show); create it or pass iface=..."));
  fastpath::UniqueFd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, iface.c_str(), iface.size());
  if (s && ioctl(s.get(), SIOCGIFFLAGS, &ifr) == 0 && !(ifr.ifr_flags & IFF_UP))
    throw std::runtime_error(fail("interface " + iface + " is down; bring it up (ip link set " + iface + " up)"));
  if (s && ioctl(s.get(), SIOCGIFMTU, &ifr) == 0 && ifr.ifr_mtu < mtu)
    throw std::runtime_error(fail("interface " + iface + " has MTU " + std::to_string(ifr.ifr_mtu) +
                                  ", below mtu=" + std::to_string(mtu) + "; raise it (ip link set " + iface + " mtu " +
                                  std::to_string(mtu) +
                                  ", on the peer too) or pass mtu=" + std::to_string(ifr.ifr_mtu)));
  raw_socket(iface);  // fails early, with the fix, where the PMD would only log
}

// ---------------------------------------------------------------- device plan

// The device to hot-plug and what it needs.
struct DevPlan {
  std::string devargs;  // for rte_dev_probe
  std::string name;     // the ethdev name: devargs up to the first ','
  std::string iface;    // Linux interface behind the port ("" if none)
  bool af_packet = false;
  bool tap_iface = false;  // iface= of an af_packet or tap port: our poll socket can watch it
  std::uint16_t data_room = RTE_MBUF_DEFAULT_BUF_SIZE;
};

std::string devarg(const std::string& devargs, const std::string& key) {
  std::size_t pos = 0;
  while ((pos = devargs.find(',', pos)) != std::string::npos) {
    ++pos;
    if (devargs.compare(pos, key.size() + 1, key + "=") == 0) {
      const std::size_t end = std::min(devargs.find(',', pos), devargs.size());
      return devargs.substr(pos + key.size() + 1, end - pos - key.size() - 1);
    }
  }
  return "";
}

bool starts_with(const std::string& s, const char* p) {
  return s.rfind(p, 0) == 0;
}

// Slot size for af_packet: a received frame must fit after the 66-byte offset
// and a sent one in framesz - 32; 2048 (the PMD default) covers mtu 1500.
// Larger slots are whole pages, one per block, so blocks hold whole frames.
std::string af_packet_ring_args(int mtu) {
  if (mtu + static_cast<int>(kEth) + kAfPacketRxOverhead <= 2048) return "";
  const int framesz = (mtu + static_cast<int>(kEth) + kAfPacketRxOverhead + 4095) / 4096 * 4096;
  const int framecnt = std::max(128, (1 << 20) / framesz);  // ~1 MiB per ring: under RLIMIT_MEMLOCK
  return ",blocksz=" + std::to_string(framesz) + ",framesz=" + std::to_string(framesz) +
         ",framecnt=" + std::to_string(framecnt);
}

DevPlan plan_device(const IoSpec& spec, int mtu, int unit) {
  DevPlan p;
  const std::string dev = spec.get("dev"), iface = spec.get("iface");
  if (!dev.empty() && !iface.empty())
    throw std::runtime_error(fail("both dev= and iface= given; pass one (device arguments with commas are quoted: " +
                                  std::string("dev=\"net_tap0,iface=t0\")")));
  if (dev.empty() && iface.empty())
    throw std::runtime_error(
        fail("no port given; pass iface=IF (a Linux interface, via net_af_packet) or "
             "dev=\"DEVARGS\" (any DPDK port)"));
  p.devargs = dev.empty() ? "net_af_packet" + std::to_string(unit) + ",iface=" + iface + af_packet_ring_args(mtu) : dev;
  p.name = p.devargs.substr(0, p.devargs.find(','));
  p.af_packet = starts_with(p.name, "net_af_packet") || starts_with(p.name, "eth_af_packet");
  p.iface = devarg(p.devargs, "iface");
  p.tap_iface = !p.iface.empty() && (p.af_packet || starts_with(p.name, "net_tap"));
  int frame_room = mtu + static_cast<int>(kEth) + 4;  // + a VLAN tag a port may leave in place
  if (p.af_packet && p.iface.empty())
    throw std::runtime_error(fail("dev=\"" + p.devargs + "\" names no interface; add iface=IF"));
  if (p.af_packet) {
    const std::string fs = devarg(p.devargs, "framesz");
    frame_room = std::max(frame_room, (fs.empty() ? 2048 : std::atoi(fs.c_str())) - kAfPacketTxOverhead);
    check_interface(p.iface, mtu);
  }
  p.data_room = static_cast<std::uint16_t>(std::max(RTE_MBUF_DEFAULT_BUF_SIZE, frame_room + RTE_PKTMBUF_HEADROOM));
  return p;
}

// ---------------------------------------------------------------- port

// One af_packet port per interface per process: the PMD joins its socket to a
// fanout group numbered pid ^ ifindex, so a second port on the interface
// would split the traffic with the first.
class IfaceClaim {
 public:
  explicit IfaceClaim(std::string iface) : iface_(std::move(iface)) {  // with dpdk_mutex held
    if (!iface_.empty() && !claimed().insert(iface_).second)
      throw std::runtime_error(fail("interface " + iface_ + " is already used by another urdma device in this " +
                                    "process (their af_packet sockets would share its traffic); use another " +
                                    "interface, e.g. the other end of a veth pair"));
  }
  ~IfaceClaim() {
    std::lock_guard lk(dpdk_mutex());
    if (!iface_.empty()) claimed().erase(iface_);
  }
  IfaceClaim(const IfaceClaim&) = delete;
  IfaceClaim& operator=(const IfaceClaim&) = delete;

 private:
  static std::set<std::string>& claimed() {
    static std::set<std::string> set;
    return set;
  }
  std::string iface_;
};

struct PoolFree {
  void operator()(rte_mempool* p) const { rte_mempool_free(p); }
};
using Pool = std::unique_ptr<rte_mempool, PoolFree>;

// A hot-plugged ethdev: stopped, closed and detached on destruction so that a
// process can open and close devices repeatedly.
class Port {
 public:
  explicit Port(const DevPlan& plan);
  ~Port();
  Port(const Port&) = delete;
  Port& operator=(const Port&) = delete;
  void start(rte_mempool* pool);
  std::uint16_t id() const { return id_; }

 private:
  std::uint16_t id_ = 0;
  rte_device* dev_ = nullptr;
  bool started_ = false;
};

Port::Port(const DevPlan& plan) {
  const int rc = rte_dev_probe(plan.devargs.c_str());
  if (rc < 0)
    throw std::runtime_error(fail("cannot attach " + plan.devargs + ": " + rte_strerror(-rc) +
                                  "; see the PMD's messages above (driver name, interface, permissions)"));
  rte_eth_dev_info info{};
  if (rte_eth_dev_get_port_by_name(plan.name.c_str(), &id_) != 0 || rte_eth_dev_info_get(id_, &info) != 0) {
    rte_eal_hotplug_remove("vdev", plan.name.c_str());
    throw std::runtime_error(fail(plan.devargs + " attached but no ethdev is named " + plan.name +
                                  "; pass dev= with the port's name first (e.g. net_tap0,iface=t0)"));
  }
  dev_ = info.device;
}

Port::~Port() {
  std::lock_guard lk(dpdk_mutex());
  if (started_) rte_eth_dev_stop(id_);
  rte_eth_dev_close(id_);  // also releases the ethdev (every 22.11 PMD)
  if (dev_) rte_dev_remove(dev_);
}

void Port::start(rte_mempool* pool) {
  rte_eth_conf conf{};
  int rc = rte_eth_dev_configure(id_, 1, 1, &conf);
  const int socket = rte_eth_dev_socket_id(id_);
  if (rc == 0) rc = rte_eth_rx_queue_setup(id_, 0, kRingSize, socket, nullptr, pool);
  if (rc == 0) rc = rte_eth_tx_queue_setup(id_, 0, kRingSize, socket, nullptr);
  if (rc == 0) rc = rte_eth_dev_start(id_);
  if (rc != 0) throw std::runtime_error(fail("cannot start port " + std::to_string(id_) + ": " + rte_strerror(-rc)));
  started_ = true;
}

// ---------------------------------------------------------------- wake-ups

// classic BPF: ARP, or IPv4/UDP (not a later fragment) to ip:4791.  What the
// engine sleeps on; the frames themselves are read from the DPDK port.
std::vector<sock_filter> wake_filter(std::uint32_t ip) {
  enum : std::uint8_t { kAccept = 12, kDrop = 13 };
  auto to = [](int from, int target) { return static_cast<std::uint8_t>(target - from - 1); };
  return {
      BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 12),                             // 0: ethertype
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kEtherArp, to(1, kAccept), 0),  // 1
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kEtherIpv4, 0, to(2, kDrop)),   // 2
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 30),                             // 3: IPv4 destination
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ntohl(ip), 0, to(4, kDrop)),    // 4
      BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 23),                             // 5: protocol
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, IPPROTO_UDP, 0, to(6, kDrop)),  // 6
      BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 20),                             // 7: fragment offset
      BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, 0x1fff, to(8, kDrop), 0),      // 8
      BPF_STMT(BPF_LDX | BPF_B | BPF_MSH, 14),                            // 9: X = IHL * 4
      BPF_STMT(BPF_LD | BPF_H | BPF_IND, 16),                             // 10: UDP destination port
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kRocePort, 0, to(11, kDrop)),   // 11
      BPF_STMT(BPF_RET | BPF_K, 64),                                      // 12: accept (a stub is enough)
      BPF_STMT(BPF_RET | BPF_K, 0),                                       // 13: drop
  };
}

// Our own AF_PACKET socket on the port's interface, filtered in the kernel so
// that it only becomes readable for traffic the port will want.
fastpath::UniqueFd open_wake_socket(const std::string& iface, std::uint32_t ip) {
  const unsigned ifindex = if_nametoindex(iface.c_str());
  if (ifindex == 0) throw std::runtime_error(fail("interface " + iface + " vanished (ip link show)"));
  fastpath::UniqueFd fd = raw_socket(iface);
  auto code = wake_filter(ip);
  sock_fprog prog{static_cast<unsigned short>(code.size()), code.data()};
  // The filter goes on before bind: a socket with protocol 0 receives nothing
  // until bound, so no unfiltered frame gets queued.
  if (setsockopt(fd.get(), SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) != 0)
    throw std::runtime_error(fail("SO_ATTACH_FILTER: " + std::string(std::strerror(errno))));
  sockaddr_ll sll{};
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_ALL);
  sll.sll_ifindex = static_cast<int>(ifindex);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&sll), sizeof sll) != 0)
    throw std::runtime_error(fail("bind AF_PACKET to " + iface + ": " + std::strerror(errno)));
  return fd;
}

// ---------------------------------------------------------------- the back-end

struct Counters {
  IoCounter arp_requests_sent, arp_replies_sent, arp_conflicts;
  IoCounter rx_ip_options, rx_bad_ip_checksum, rx_fragments, rx_other;
  IoCounter tx_queued_unresolved, tx_dropped_unresolved, tx_no_mbuf, tx_ring_full, tx_malformed;
};

struct Neighbour {
  Mac mac{};
  bool known = false;
  std::uint64_t last_request_ns = 0;
  std::deque<std::vector<std::uint8_t>> pending;  // waiting for the MAC
};

class DpdkIo final : public PacketIo {
 public:
  DpdkIo(const IoSpec& spec, std::uint32_t ip, int mtu);
  ~DpdkIo() override;
  bool send(std::span<const std::uint8_t> p) override;
  void resolve(std::uint32_t ip) override;
  void flush() override;
  std::size_t recv_burst(std::vector<RxPacket>& out, std::size_t max) override;
  int poll_fd() const override { return wake_fd_.get(); }
  void ack_poll_fd() override;
  in_addr local_ip() const override { return in_addr{ip_}; }
  int link_mtu() const override { return mtu_; }
  std::string describe() const override;
  std::map<std::string, std::uint64_t> counters() const override;

 private:
  bool transmit(const Mac& dst, std::uint16_t ethertype, std::span<const std::uint8_t> payload);
  void request(std::uint32_t ip, Neighbour& n);
  void learn(std::uint32_t ip, const Mac& mac, bool create);
  // in_place: f stays valid until the next recv_burst (its mbuf is held),
  // so a packet for the transport is handed out where it lies.  Returns
  // whether it was (the caller then holds the mbuf).
  bool on_frame(const std::uint8_t* f, std::size_t len, std::vector<RxPacket>& out, bool in_place);
  void on_arp(const std::uint8_t* f, std::size_t len);
  IoCounter* rejects(const std::uint8_t* ip, std::size_t iplen);
  bool on_ipv4(const std::uint8_t* f, std::size_t len, std::vector<RxPacket>& out, bool in_place);
  void free_held();

  std::uint32_t ip_;
  int mtu_;
  DevPlan plan_;
  std::unique_ptr<IfaceClaim> claim_;  // released after the port has closed
  Pool pool_;                          // declared before port_: the port's queues use it until closed
  std::unique_ptr<Port> port_;
  Mac mac_{};
  fastpath::UniqueFd wake_fd_;
  std::unordered_map<std::uint32_t, Neighbour> neigh_;
  // What the last recv_burst returned: packets in their mbufs (held until the
  // next call), or copied (a frame in several segments).
  std::array<rte_mbuf*, kRxBurst> held_{};
  std::uint16_t held_n_ = 0;
  std::vector<std::vector<std::uint8_t>> rx_store_;
  std::size_t rx_used_ = 0;
  std::vector<std::uint8_t> linear_;  // a multi-segment frame, copied flat
  // Frames waiting for flush(): one rte_eth_tx_burst for many (net_af_packet
  // makes one sendto() system call per burst).
  std::array<rte_mbuf*, kTxBatch> txq_{};
  std::uint16_t txn_ = 0;
  Counters c_;
};

int next_unit() {
  static int unit = 0;  // under dpdk_mutex
  return unit++;
}

DpdkIo::DpdkIo(const IoSpec& spec, std::uint32_t ip, int mtu) : ip_(ip), mtu_(mtu) {
  std::lock_guard lk(dpdk_mutex());
  const int unit = next_unit();
  plan_ = plan_device(spec, mtu, unit);  // checks the interface before the EAL spends any time
  claim_ = std::make_unique<IfaceClaim>(plan_.af_packet ? plan_.iface : "");
  init_eal(spec.get("eal"));
  const std::string pool_name = "urdma_pool" + std::to_string(unit);
  pool_.reset(rte_pktmbuf_pool_create(pool_name.c_str(), kPoolSize, 0, 0, plan_.data_room, SOCKET_ID_ANY));
  if (!pool_)
    throw std::runtime_error(fail("cannot create the mbuf pool: " + std::string(rte_strerror(rte_errno)) +
                                  " (the mempool_ring plugin must be installed; EAL memory is -m 256)"));
  port_ = std::make_unique<Port>(plan_);
  port_->start(pool_.get());
  rte_ether_addr mac;
  if (rte_eth_macaddr_get(port_->id(), &mac) != 0) throw std::runtime_error(fail("cannot read the port's MAC"));
  std::memcpy(mac_.data(), mac.addr_bytes, 6);
  if (plan_.tap_iface) wake_fd_ = open_wake_socket(plan_.iface, ip_);
}

std::string DpdkIo::describe() const {
  return "dpdk " + plan_.name + (plan_.iface.empty() ? "" : " iface=" + plan_.iface) + " mac=" + mac_str(mac_) +
         " ip=" + ip_str(ip_) + " mtu=" + std::to_string(mtu_);
}

std::map<std::string, std::uint64_t> DpdkIo::counters() const {
  // The port's own: for af_packet, port_rx_missed is the kernel's count of
  // frames that found the receive ring full (PACKET_STATISTICS tp_drops).
  rte_eth_stats st{};
  const bool have = rte_eth_stats_get(port_->id(), &st) == 0;
  return {{"port_rx_packets", have ? st.ipackets : 0},
          {"port_rx_missed", have ? st.imissed : 0},
          {"port_rx_errors", have ? st.ierrors : 0},
          {"port_rx_no_mbuf", have ? st.rx_nombuf : 0},
          {"port_tx_packets", have ? st.opackets : 0},
          {"port_tx_errors", have ? st.oerrors : 0},
          {"arp_requests_sent", c_.arp_requests_sent.get()},
          {"arp_replies_sent", c_.arp_replies_sent.get()},
          {"arp_conflicts", c_.arp_conflicts.get()},
          {"rx_ip_options", c_.rx_ip_options.get()},
          {"rx_bad_ip_checksum", c_.rx_bad_ip_checksum.get()},
          {"rx_fragments", c_.rx_fragments.get()},
          {"rx_other", c_.rx_other.get()},
          {"tx_queued_unresolved", c_.tx_queued_unresolved.get()},
          {"tx_dropped_unresolved", c_.tx_dropped_unresolved.get()},
          {"tx_no_mbuf", c_.tx_no_mbuf.get()},
          {"tx_ring_full", c_.tx_ring_full.get()},
          {"tx_malformed", c_.tx_malformed.get()}};
}

bool DpdkIo::transmit(const Mac& dst, std::uint16_t ethertype, std::span<const std::uint8_t> payload) {
  rte_mbuf* m = rte_pktmbuf_alloc(pool_.get());
  if (!m) {
    ++c_.tx_no_mbuf;
    return false;
  }
  auto* f = reinterpret_cast<std::uint8_t*>(rte_pktmbuf_append(m, static_cast<std::uint16_t>(kEth + payload.size())));
  if (!f) {
    rte_pktmbuf_free(m);
    ++c_.tx_no_mbuf;
    return false;
  }
  std::memcpy(f, dst.data(), 6);
  std::memcpy(f + 6, mac_.data(), 6);
  put16(f + 12, ethertype);
  std::memcpy(f + kEth, payload.data(), payload.size());
  txq_[txn_++] = m;
  if (txn_ == txq_.size()) flush();
  return true;
}

void DpdkIo::flush() {
  if (txn_ == 0) return;
  const std::uint16_t sent = rte_eth_tx_burst(port_->id(), 0, txq_.data(), txn_);
  for (std::uint16_t i = sent; i < txn_; ++i) {
    rte_pktmbuf_free(txq_[i]);  // lost, as on a full NIC ring: retransmission recovers
    ++c_.tx_ring_full;
  }
  txn_ = 0;
}

DpdkIo::~DpdkIo() {
  flush();
  free_held();
}

void DpdkIo::free_held() {
  if (held_n_) rte_pktmbuf_free_bulk(held_.data(), held_n_);
  held_n_ = 0;
}

bool DpdkIo::send(std::span<const std::uint8_t> p) {
  if (p.size() < 20 || (p[0] >> 4) != 4 || p.size() > static_cast<std::size_t>(mtu_)) {
    ++c_.tx_malformed;
    return false;
  }
  const std::uint32_t dst = get_ip(p.data() + 16);
  Neighbour& n = neigh_[dst];
  if (n.known) return transmit(n.mac, kEtherIpv4, p);
  request(dst, n);
  if (n.pending.size() >= kMaxPending) {
    ++c_.tx_dropped_unresolved;
    return false;
  }
  n.pending.emplace_back(p.begin(), p.end());
  ++c_.tx_queued_unresolved;
  return true;
}

void DpdkIo::resolve(std::uint32_t ip) {
  if (ip == 0 || ip == ip_) return;
  Neighbour& n = neigh_[ip];
  if (!n.known) request(ip, n);
}

void DpdkIo::request(std::uint32_t ip, Neighbour& n) {
  const std::uint64_t now = now_ns();
  if (n.last_request_ns != 0 && now - n.last_request_ns < kArpRetryNs) return;
  n.last_request_ns = now;
  std::array<std::uint8_t, 46> arp{};  // 28 bytes of ARP, zero-padded to the 60-byte minimum frame
  put16(&arp[0], 1);                   // Ethernet
  put16(&arp[2], kEtherIpv4);
  arp[4] = 6;
  arp[5] = 4;
  put16(&arp[6], 1);  // request
  std::memcpy(&arp[8], mac_.data(), 6);
  std::memcpy(&arp[14], &ip_, 4);
  std::memcpy(&arp[24], &ip, 4);  // target MAC (18..23) unknown: zeros
  if (transmit(kBroadcast, kEtherArp, arp)) ++c_.arp_requests_sent;
}

// Records ip -> mac (create: also when we had no entry) and sends what waited for it.
void DpdkIo::learn(std::uint32_t ip, const Mac& mac, bool create) {
  if (ip == 0 || ip == ip_ || (mac[0] & 1)) return;  // unset, ours, or a multicast MAC
  auto it = neigh_.find(ip);
  if (it == neigh_.end()) {
    if (!create) return;
    it = neigh_.emplace(ip, Neighbour{}).first;
  }
  Neighbour& n = it->second;
  n.mac = mac;
  n.known = true;
  while (!n.pending.empty()) {
    transmit(n.mac, kEtherIpv4, n.pending.front());
    n.pending.pop_front();
  }
}

void DpdkIo::on_arp(const std::uint8_t* f, std::size_t len) {
  const std::uint8_t* a = f + kEth;
  if (len < kEth + 28 || get16(a) != 1 || get16(a + 2) != kEtherIpv4 || a[4] != 6 || a[5] != 4) {
    ++c_.rx_other;
    return;
  }
  const std::uint16_t op = get16(a + 6);
  Mac sha;
  std::memcpy(sha.data(), a + 8, 6);
  const std::uint32_t spa = get_ip(a + 14), tpa = get_ip(a + 24);
  if (spa == ip_ && sha != mac_) ++c_.arp_conflicts;  // someone else claims our address
  learn(spa, sha, tpa == ip_);
  if (op != 1 || tpa != ip_) return;
  std::array<std::uint8_t, 46> reply{};
  std::memcpy(reply.data(), a, 6);  // hardware/protocol types and lengths
  put16(&reply[6], 2);              // reply
  std::memcpy(&reply[8], mac_.data(), 6);
  std::memcpy(&reply[14], &ip_, 4);
  std::memcpy(&reply[18], sha.data(), 6);
  std::memcpy(&reply[24], &spa, 4);
  if (transmit(sha, kEtherArp, reply)) ++c_.arp_replies_sent;
}

// Why an IPv4 packet is not one for the transport (the counter to bump), or
// nullptr if it is.
IoCounter* DpdkIo::rejects(const std::uint8_t* ip, std::size_t iplen) {
  if (iplen < 28 || (ip[0] >> 4) != 4 || get_ip(ip + 16) != ip_ || ip[9] != IPPROTO_UDP) return &c_.rx_other;
  // rxe and the ICRC assume a 20-byte header; the kernel would have checked the checksum.
  if ((ip[0] & 0x0f) != 5) return &c_.rx_ip_options;
  if (rte_raw_cksum(ip, 20) != 0xffff) return &c_.rx_bad_ip_checksum;
  if (get16(ip + 6) & 0x3fff) return &c_.rx_fragments;  // MF or an offset: no reassembly here
  const std::size_t total = get16(ip + 2);              // less than iplen when the frame was padded to 60 bytes
  if (total < 28 || total > iplen || get16(ip + 22) != kRocePort) return &c_.rx_other;
  return nullptr;
}

bool DpdkIo::on_ipv4(const std::uint8_t* f, std::size_t len, std::vector<RxPacket>& out, bool in_place) {
  const std::uint8_t* ip = f + kEth;
  if (IoCounter* why = rejects(ip, len - kEth)) {
    ++*why;
    return false;
  }
  Mac src;
  std::memcpy(src.data(), f + 6, 6);
  learn(get_ip(ip + 12), src, true);
  const std::size_t total = get16(ip + 2);
  if (in_place) {
    out.push_back({ip, total});
    return true;
  }
  if (rx_used_ == rx_store_.size()) rx_store_.emplace_back();
  auto& slot = rx_store_[rx_used_++];
  slot.assign(ip, ip + total);
  out.push_back({slot.data(), slot.size()});
  return false;
}

bool DpdkIo::on_frame(const std::uint8_t* f, std::size_t len, std::vector<RxPacket>& out, bool in_place) {
  const std::uint16_t type = len >= kEth ? get16(f + 12) : 0;
  if (type == kEtherIpv4) return on_ipv4(f, len, out, in_place);
  if (type == kEtherArp)
    on_arp(f, len);
  else
    ++c_.rx_other;
  return false;
}

std::size_t DpdkIo::recv_burst(std::vector<RxPacket>& out, std::size_t max) {
  rx_used_ = 0;
  free_held();  // the packets the previous call handed out
  const std::size_t before = out.size();
  std::array<rte_mbuf*, kRxBurst> mbufs;
  const std::uint16_t want = static_cast<std::uint16_t>(std::min<std::size_t>(max, kRxBurst));
  const std::uint16_t n = want ? rte_eth_rx_burst(port_->id(), 0, mbufs.data(), want) : 0;
  for (std::uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = mbufs[i];
    const std::uint8_t* f = rte_pktmbuf_mtod(m, const std::uint8_t*);
    const bool in_place = m->nb_segs == 1;
    if (!in_place) {
      linear_.resize(m->pkt_len);
      f = static_cast<const std::uint8_t*>(rte_pktmbuf_read(m, 0, m->pkt_len, linear_.data()));
    }
    if (f && on_frame(f, m->pkt_len, out, in_place))
      held_[held_n_++] = m;
    else
      rte_pktmbuf_free(m);
  }
  flush();  // ARP replies, and what waited for a MAC just learned
  return out.size() - before;
}

void DpdkIo::ack_poll_fd() {
  // The frames are read from the port; these are only wake-up stubs.  Bounded
  // so that a flood cannot keep the engine here.
  std::uint8_t stub[64];
  for (int i = 0; i < 1024; ++i)
    if (::recv(wake_fd_.get(), stub, sizeof stub, MSG_DONTWAIT | MSG_TRUNC) < 0) break;
}

}  // namespace

std::unique_ptr<PacketIo> open_dpdk_io(const IoSpec& spec) {
  const std::string ip = spec.get("ip");
  in_addr addr{};
  if (ip.empty())
    throw std::runtime_error(fail("no address; pass ip=A.B.C.D, an address on the link that the host does not own"));
  if (inet_pton(AF_INET, ip.c_str(), &addr) != 1 || addr.s_addr == 0)
    throw std::runtime_error(fail("ip=" + ip + " is not a usable IPv4 address (A.B.C.D)"));
  const int mtu = static_cast<int>(spec.get_int("mtu", 1500, 576, 9216));
  refuse_host_address(addr.s_addr);
  return std::make_unique<DpdkIo>(spec, addr.s_addr, mtu);
}

}  // namespace urdma
