// SPDX-License-Identifier: GPL-2.0
// NIC-operation runtime (nicop.h): programs loaded with DPDK's librte_bpf,
// the helpers they call, FIFO wait queues and holds.
//
// librte_bpf needs no EAL: rte_bpf_elf_load, its validator, the JIT and
// rte_bpf_exec use only libelf, mmap and malloc, and rte_log works before
// rte_eal_init (it writes to stderr, or to the stream rte_openlog_stream set).
#include "nicop.h"

#include <elf.h>
#include <rte_bpf.h>
#include <rte_errno.h>
#include <rte_log.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <stdexcept>
#include <tuple>
#include <unordered_map>

namespace urdma {
namespace {

constexpr std::size_t kMaxHolds = std::size_t{1} << 20;  // all ops together
constexpr std::uintmax_t kMaxObjectBytes = std::uintmax_t{64} << 20;
constexpr std::uint64_t kNone = std::numeric_limits<std::uint64_t>::max();
constexpr std::uint64_t kMinusOne = static_cast<std::uint64_t>(-1);

std::uint64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

std::string hex(std::uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(v));
  return b;
}

struct BpfDeleter {
  void operator()(rte_bpf* b) const { rte_bpf_destroy(b); }
};
using BpfPtr = std::unique_ptr<rte_bpf, BpfDeleter>;

// The object a run works on (a request's, or the one a hold/waiter kept).
struct Obj {
  std::uint64_t va = 0;
  std::uint32_t len = 0;
  std::uint8_t* ptr = nullptr;
  std::uint8_t* region = nullptr;
  std::uint64_t region_va = 0, region_len = 0;
};

struct Waiter {
  std::uint64_t seq = 0;  // unique, in parking order
  std::uint64_t token = 0;
  std::uint32_t qpn = 0, op_id = 0;
  std::uint64_t key = 0;  // its queue's (a program may park on any key, not only va)
  std::uint64_t arg0 = 0, arg1 = 0;
  std::uint64_t parked_ns = 0, deadline = kNone;
  Obj obj;
};

struct Hold {
  std::uint64_t count = 0;
  Obj obj;
};

struct Op {
  BpfPtr bpf;
  std::uint64_t (*jit)(void*) = nullptr;
  std::uint64_t timeout_ns = 0;
  std::string path, last_error;
};

struct QpPark {
  std::uint32_t limit = NicOpRuntime::kDefaultParkLimit;
  std::size_t parked = 0;
};

using QueueKey = std::pair<std::uint32_t, std::uint64_t>;                                 // op, key
using HoldKey = std::tuple<std::uint32_t, std::uint32_t, std::uint64_t>;                  // qpn, op, key
using Deadline = std::tuple<std::uint64_t, std::uint64_t, std::uint32_t, std::uint64_t>;  // when, seq, op, key

struct Run;

// Everything the runtime keeps (NicOpRuntime::Impl is this).
struct State {
  std::map<std::uint32_t, Op> ops;
  std::map<QueueKey, std::deque<Waiter>> queues;  // only non-empty ones
  std::set<Deadline> deadlines;
  std::map<HoldKey, Hold> holds;
  std::unordered_map<std::uint32_t, QpPark> qps;
  std::uint64_t next_seq = 1;
  std::size_t parked_total = 0;
  bool use_jit = true;

  void execute(Op& op, Run& run);
  void run_event(std::uint32_t event, std::uint32_t op_id, std::uint64_t key, const Obj& obj, std::uint32_t qpn,
                 std::uint64_t now, std::vector<NicOpAnswer>& out);
  void unpark(const Waiter& w);  // bookkeeping of a waiter leaving its queue
};

// One program run.  Helpers reach it through t_run.
struct Run {
  State* state = nullptr;
  std::uint32_t op_id = 0, qpn = 0, event = 0;
  std::uint64_t arg0 = 0, arg1 = 0, now_ns = 0;
  Obj obj;
  std::vector<NicOpAnswer>* out = nullptr;
  std::string error;  // the first rule the run broke
  bool answered = false, parked = false;
  std::uint32_t status = 0;
  std::uint64_t result = 0, park_key = 0;

  void fail(std::string why) {
    if (error.empty()) error = std::move(why);
  }
};

thread_local Run* t_run = nullptr;

// ---- helpers (librte_bpf calls them with five 64-bit arguments) ----------
//
// Each is noexcept: nothing may unwind through the JIT's frames.  Each
// realigns the stack: DPDK 22.11's x86 JIT calls external functions with the
// stack 8 bytes off the ABI's 16 (fixed upstream in 2026, "bpf: fix x86 call
// stack alignment for external calls", not in 22.11.11), and the first
// movaps on the stack (a std::vector push_back does one) faults.
#define NICOP_HELPER [[gnu::force_align_arg_pointer]] std::uint64_t

std::uint64_t* obj_word(Run& r, std::uint64_t off, const char* who) {
  if (r.obj.ptr == nullptr || r.obj.len < 8 || off % 8 != 0 || off > r.obj.len - 8u) {
    r.fail(std::string(who) + ": offset " + std::to_string(off) + " outside the " + std::to_string(r.obj.len) +
           "-byte object or not 8-aligned");
    return nullptr;
  }
  std::uint8_t* p = r.obj.ptr + off;
  if (reinterpret_cast<std::uintptr_t>(p) % 8 != 0) {
    r.fail(std::string(who) + ": the object's host address is not 8-aligned");
    return nullptr;
  }
  return reinterpret_cast<std::uint64_t*>(p);
}

template <typename F>
std::uint64_t guarded(F&& f) noexcept {
  Run* r = t_run;
  if (r == nullptr) return 0;
  try {
    return f(*r);
  } catch (...) {
    r->fail("helper ran out of memory");
    return 0;
  }
}

bool program_status(Run& r, std::uint64_t status, const char* who) {
  if (status >= NICOP_ST_PROG_ERROR) {
    r.fail(std::string(who) + ": status " + hex(status) + " is the runtime's (a program's are below 0x100)");
    return false;
  }
  return true;
}

NICOP_HELPER h_cas(std::uint64_t off, std::uint64_t expect, std::uint64_t desired, std::uint64_t,
                   std::uint64_t) noexcept {
  return guarded([&](Run& r) -> std::uint64_t {
    std::uint64_t* w = obj_word(r, off, "nicop_cas");
    if (w == nullptr) return 0;
    std::atomic_ref<std::uint64_t>(*w).compare_exchange_strong(expect, desired);
    return expect;  // the old value either way
  });
}

NICOP_HELPER h_faa(std::uint64_t off, std::uint64_t add, std::uint64_t, std::uint64_t, std::uint64_t) noexcept {
  return guarded([&](Run& r) -> std::uint64_t {
    std::uint64_t* w = obj_word(r, off, "nicop_faa");
    return w == nullptr ? 0 : std::atomic_ref<std::uint64_t>(*w).fetch_add(add);
  });
}

NICOP_HELPER h_load(std::uint64_t off, std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t) noexcept {
  return guarded([&](Run& r) -> std::uint64_t {
    std::uint64_t* w = obj_word(r, off, "nicop_load");
    return w == nullptr ? 0 : std::atomic_ref<std::uint64_t>(*w).load();
  });
}

NICOP_HELPER h_store(std::uint64_t off, std::uint64_t value, std::uint64_t, std::uint64_t, std::uint64_t) noexcept {
  return guarded([&](Run& r) -> std::uint64_t {
    if (std::uint64_t* w = obj_word(r, off, "nicop_store")) std::atomic_ref<std::uint64_t>(*w).store(value);
    return 0;
  });
}

NICOP_HELPER h_region_load(std::uint64_t addr, std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t) noexcept {
  return guarded([&](Run& r) -> std::uint64_t {
    const Obj& o = r.obj;
    if (o.region == nullptr || o.region_len < 8 || addr % 8 != 0 || addr < o.region_va ||
        addr - o.region_va > o.region_len - 8) {
      r.fail("nicop_region_load: address " + hex(addr) + " outside the region [" + hex(o.region_va) + ", +" +
             std::to_string(o.region_len) + ") or not 8-aligned");
      return 0;
    }
    std::uint8_t* p = o.region + (addr - o.region_va);
    if (reinterpret_cast<std::uintptr_t>(p) % 8 != 0) {
      r.fail("nicop_region_load: the region's host address is not 8-aligned");
      return 0;
    }
    return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(p)).load();
  });
}

NICOP_HELPER h_answer(std::uint64_t status, std::uint64_t result, std::uint64_t, std::uint64_t,
                      std::uint64_t) noexcept {
  return guarded([&](Run& r) -> std::uint64_t {
    status &= 0xffffffffu;
    if (r.event != NICOP_EV_REQUEST)
      r.fail("nicop_answer outside a request (event " + std::to_string(r.event) + ")");
    else if (r.parked)
      r.fail("nicop_answer after nicop_park");
    else if (r.answered)
      r.fail(r.status == NICOP_ST_QUEUE_FULL ? "nicop_answer after a refused nicop_park" : "nicop_answer twice");
    else if (program_status(r, status, "nicop_answer")) {
      r.answered = true;
      r.status = static_cast<std::uint32_t>(status);
      r.result = result;
    }
    return 0;
  });
}

NICOP_HELPER h_park(std::uint64_t key, std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t) noexcept {
  return guarded([&](Run& r) -> std::uint64_t {
    if (r.event != NICOP_EV_REQUEST) {
      r.fail("nicop_park outside a request (event " + std::to_string(r.event) + ")");
      return kMinusOne;
    }
    if (r.parked || r.answered) {
      r.fail(r.parked ? "nicop_park twice" : "nicop_park after nicop_answer");
      return kMinusOne;
    }
    QpPark& q = r.state->qps[r.qpn];
    if (q.parked >= q.limit) {
      r.answered = true;  // the engine's answer; the program must stop here
      r.status = NICOP_ST_QUEUE_FULL;
      r.result = 0;
      return kMinusOne;
    }
    r.parked = true;  // enqueued when the program returns
    r.park_key = key;
    return 0;
  });
}

const Waiter* first_waiter(Run& r, std::uint64_t key) {
  auto it = r.state->queues.find({r.op_id, key});
  return it == r.state->queues.end() ? nullptr : &it->second.front();
}

NICOP_HELPER h_waiter_arg(std::uint64_t key, std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t) noexcept {
  return guarded([&](Run& r) -> std::uint64_t {
    const Waiter* w = first_waiter(r, key);
    return w == nullptr ? kMinusOne : w->arg0;
  });
}

NICOP_HELPER h_waiter_qpn(std::uint64_t key, std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t) noexcept {
  return guarded([&](Run& r) -> std::uint64_t {
    const Waiter* w = first_waiter(r, key);
    return w == nullptr ? kMinusOne : w->qpn;
  });
}

NICOP_HELPER h_wake(std::uint64_t key, std::uint64_t status, std::uint64_t result, std::uint64_t,
                    std::uint64_t) noexcept {
  return guarded([&](Run& r) -> std::uint64_t {
    status &= 0xffffffffu;
    if (!program_status(r, status, "nicop_wake")) return kMinusOne;
    auto it = r.state->queues.find({r.op_id, key});
    if (it == r.state->queues.end()) return kMinusOne;
    const Waiter w = it->second.front();
    r.out->push_back({w.token, w.qpn, static_cast<std::uint32_t>(status), result});
    it->second.pop_front();
    if (it->second.empty()) r.state->queues.erase(it);
    r.state->unpark(w);
    return w.qpn;
  });
}

NICOP_HELPER h_hold(std::uint64_t key, std::uint64_t qpn, std::uint64_t, std::uint64_t, std::uint64_t) noexcept {
  return guarded([&](Run& r) -> std::uint64_t {
    const HoldKey k{static_cast<std::uint32_t>(qpn), r.op_id, key};
    auto it = r.state->holds.find(k);
    if (it != r.state->holds.end()) {
      ++it->second.count;
    } else if (r.state->holds.size() >= kMaxHolds) {
      r.fail("nicop_hold: more than " + std::to_string(kMaxHolds) + " holds");
    } else {
      r.state->holds.emplace(k, Hold{1, r.obj});
    }
    return 0;
  });
}

NICOP_HELPER h_unhold(std::uint64_t key, std::uint64_t qpn, std::uint64_t, std::uint64_t, std::uint64_t) noexcept {
  return guarded([&](Run& r) -> std::uint64_t {
    auto it = r.state->holds.find({static_cast<std::uint32_t>(qpn), r.op_id, key});
    if (it != r.state->holds.end() && --it->second.count == 0) r.state->holds.erase(it);
    return 0;
  });
}

NICOP_HELPER h_held(std::uint64_t key, std::uint64_t qpn, std::uint64_t, std::uint64_t, std::uint64_t) noexcept {
  return guarded([&](Run& r) -> std::uint64_t {
    auto it = r.state->holds.find({static_cast<std::uint32_t>(qpn), r.op_id, key});
    return it == r.state->holds.end() ? 0 : it->second.count;
  });
}

// ---- the helper table (xsyms) ---------------------------------------------

constexpr rte_bpf_arg kU64{RTE_BPF_ARG_RAW, sizeof(std::uint64_t), 0};
constexpr rte_bpf_arg kU32{RTE_BPF_ARG_RAW, sizeof(std::uint32_t), 0};
// A void helper is declared to return a scalar (0): librte_bpf's validator
// prunes a path only where its state matches one already explored, and an
// R0 left undefined by some calls and defined by others never matches.
constexpr rte_bpf_arg kVoid = kU64;

rte_bpf_xsym helper(const char* name,
                    std::uint64_t (*fn)(std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t),
                    std::initializer_list<rte_bpf_arg> args, rte_bpf_arg ret) {
  rte_bpf_xsym x{};
  x.name = name;
  x.type = RTE_BPF_XTYPE_FUNC;
  x.func.val = fn;
  x.func.nb_args = static_cast<std::uint32_t>(args.size());
  std::uint32_t i = 0;
  for (const rte_bpf_arg& a : args) x.func.args[i++] = a;
  x.func.ret = ret;
  return x;
}

const std::vector<rte_bpf_xsym>& helpers() {
  static const std::vector<rte_bpf_xsym> table = {
      helper("nicop_cas", h_cas, {kU64, kU64, kU64}, kU64),
      helper("nicop_faa", h_faa, {kU64, kU64}, kU64),
      helper("nicop_load", h_load, {kU64}, kU64),
      helper("nicop_store", h_store, {kU64, kU64}, kVoid),
      helper("nicop_region_load", h_region_load, {kU64}, kU64),
      helper("nicop_answer", h_answer, {kU32, kU64}, kVoid),
      helper("nicop_park", h_park, {kU64}, kU64),
      helper("nicop_waiter_arg", h_waiter_arg, {kU64}, kU64),
      helper("nicop_waiter_qpn", h_waiter_qpn, {kU64}, kU64),
      helper("nicop_wake", h_wake, {kU64, kU32, kU64}, kU64),
      helper("nicop_hold", h_hold, {kU64, kU32}, kVoid),
      helper("nicop_unhold", h_unhold, {kU64, kU32}, kVoid),
      helper("nicop_held", h_held, {kU64, kU32}, kU64),
  };
  return table;
}

std::string helper_names() {
  std::string s;
  for (const rte_bpf_xsym& x : helpers()) s += (s.empty() ? "" : ", ") + std::string(x.name);
  return s;
}

// ---- load: ELF checks and librte_bpf's log --------------------------------

// librte_bpf says why it refused a program only through rte_log: send that
// to memory for the duration of a load (at least ERR for lib.bpf), then
// restore the stream and levels.  rte_log's stream is process-wide: another
// thread's DPDK message during a load lands here too (loads are rare; the
// load is serialised with the engine by its caller).  Nothing from
// librte_bpf's own log reaches stderr for a refused program: the exception
// carries it.
class BpfLogCapture {
 public:
  BpfLogCapture() {
    prev_ = rte_log_get_stream();
    mem_ = open_memstream(&buf_, &len_);
    if (mem_ == nullptr) return;
    rte_openlog_stream(mem_);
    global_ = rte_log_get_global_level();
    if (global_ < RTE_LOG_ERR) rte_log_set_global_level(RTE_LOG_ERR);
    type_ = rte_log_register("lib.bpf");
    if (type_ >= 0) {
      level_ = rte_log_get_level(static_cast<std::uint32_t>(type_));
      if (level_ >= 0 && level_ < static_cast<int>(RTE_LOG_ERR))
        rte_log_set_level(static_cast<std::uint32_t>(type_), RTE_LOG_ERR);
    }
  }
  ~BpfLogCapture() { finish(); }
  BpfLogCapture(const BpfLogCapture&) = delete;
  BpfLogCapture& operator=(const BpfLogCapture&) = delete;

  std::string finish() {
    if (mem_ == nullptr) return {};
    // rte_log_get_stream() gave stderr when no stream was set: go back to
    // "none" so that the EAL's own default applies again.
    rte_openlog_stream(prev_ == stderr ? nullptr : prev_);
    rte_log_set_global_level(global_);
    if (type_ >= 0 && level_ >= 0)
      rte_log_set_level(static_cast<std::uint32_t>(type_), static_cast<std::uint32_t>(level_));
    std::fclose(mem_);
    mem_ = nullptr;
    std::string s(buf_ == nullptr ? "" : buf_, len_);
    std::free(buf_);
    buf_ = nullptr;
    return s;
  }

 private:
  FILE* prev_ = nullptr;
  FILE* mem_ = nullptr;
  char* buf_ = nullptr;
  std::size_t len_ = 0;
  std::uint32_t global_ = 0;
  int type_ = -1, level_ = -1;
};

// Drops "(0x55d1...)" pointer values and the trailing ';' of a log line.
std::string tidy(std::string line) {
  for (std::size_t p; (p = line.find("(0x")) != std::string::npos;) {
    std::size_t e = line.find(')', p);
    if (e == std::string::npos) break;
    line.erase(p, e - p + 1);
    if (p < line.size() && line[p] == ' ') line.insert(p, ":");  // "validate(0x..) loops" -> "validate: loops"
  }
  while (!line.empty() && (line.back() == ';' || line.back() == ' ' || line.back() == '\r')) line.pop_back();
  return line;
}

// What a relocation of the program's section points at, by instruction
// offset: librte_bpf only logs "resolve_xsym(NAME, OFFSET) error code: -2"
// for a call it cannot resolve, for a reference to data and for a call to a
// function of the program's own alike.
struct Reloc {
  std::string symbol;
  bool defined = false;     // in this object (a function or data of its own)
  std::uint8_t opcode = 0;  // of the instruction relocated
};
using Relocs = std::map<std::uint64_t, Reloc>;

// Checks what librte_bpf would only log: an ELF64 little-endian relocatable
// BPF object with an executable PROGBITS section `section`.  Returns the
// section's relocations.
Relocs check_elf(const std::string& path, const std::string& section) {
  const std::string what = "nicop: " + path + ": ";
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec) throw std::runtime_error(what + ec.message());
  if (!std::filesystem::is_regular_file(status)) throw std::runtime_error(what + "not a regular file");
  if (std::filesystem::file_size(path, ec) > kMaxObjectBytes)
    throw std::runtime_error(what + "larger than " + std::to_string(kMaxObjectBytes >> 20) +
                             " MiB: not a NIC operation");
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error(what + std::strerror(errno));
  std::string img((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  Elf64_Ehdr eh{};
  if (img.size() < sizeof eh || std::memcmp(img.data(), ELFMAG, SELFMAG) != 0)
    throw std::runtime_error(what + "not an ELF file (build NIC operations with bpf/Makefile)");
  std::memcpy(&eh, img.data(), sizeof eh);
  if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB || eh.e_type != ET_REL ||
      (eh.e_machine != EM_BPF && eh.e_machine != EM_NONE))
    throw std::runtime_error(what + "not a 64-bit little-endian relocatable BPF object (e_machine " +
                             std::to_string(eh.e_machine) + "; build with clang -target bpf)");
  if (eh.e_shentsize != sizeof(Elf64_Shdr) || eh.e_shoff > img.size() || eh.e_shstrndx >= eh.e_shnum ||
      (img.size() - eh.e_shoff) / sizeof(Elf64_Shdr) < eh.e_shnum)
    throw std::runtime_error(what + "truncated or corrupt section headers");
  auto shdr = [&](std::size_t i) {
    Elf64_Shdr sh{};
    std::memcpy(&sh, img.data() + eh.e_shoff + i * sizeof sh, sizeof sh);
    return sh;
  };
  const Elf64_Shdr strtab = shdr(eh.e_shstrndx);
  auto name = [&](const Elf64_Shdr& sh) -> std::string {
    if (strtab.sh_offset > img.size() || sh.sh_name >= img.size() - strtab.sh_offset) return {};
    const char* s = img.data() + strtab.sh_offset + sh.sh_name;
    return std::string(s, strnlen(s, img.size() - strtab.sh_offset - sh.sh_name));
  };
  std::string code_sections;
  for (std::size_t i = 1; i < eh.e_shnum; ++i) {
    const Elf64_Shdr sh = shdr(i);
    const std::string n = name(sh);
    const bool code = sh.sh_type == SHT_PROGBITS && (sh.sh_flags & SHF_EXECINSTR) && sh.sh_size > 0;
    if (code) code_sections += (code_sections.empty() ? "" : ", ") + n;
    if (n != section) continue;
    if (sh.sh_type != SHT_PROGBITS || sh.sh_flags != (SHF_ALLOC | SHF_EXECINSTR))
      throw std::runtime_error(what + "section " + section +
                               " is not code (librte_bpf wants SHT_PROGBITS with exactly ALLOC|EXECINSTR)");
    if (sh.sh_size == 0 || sh.sh_size % 8 != 0) throw std::runtime_error(what + "section " + section + " is empty");
    if (sh.sh_offset > img.size() || sh.sh_size > img.size() - sh.sh_offset)
      throw std::runtime_error(what + "section " + section + " is truncated");
    Relocs relocs;
    for (std::size_t j = 1; j < eh.e_shnum; ++j) {
      const Elf64_Shdr rel = shdr(j);
      if (rel.sh_type == SHT_RELA && rel.sh_info == i)
        throw std::runtime_error(what + "section " + section +
                                 " has RELA relocations (librte_bpf applies SHT_REL only)");
      if (rel.sh_type != SHT_REL || rel.sh_info != i || rel.sh_link >= eh.e_shnum) continue;
      const Elf64_Shdr symtab = shdr(rel.sh_link);
      const Elf64_Shdr symstr = symtab.sh_link < eh.e_shnum ? shdr(symtab.sh_link) : Elf64_Shdr{};
      for (std::uint64_t k = 0; k + sizeof(Elf64_Rel) <= rel.sh_size; k += sizeof(Elf64_Rel)) {
        if (rel.sh_offset + k + sizeof(Elf64_Rel) > img.size()) break;
        Elf64_Rel r{};
        std::memcpy(&r, img.data() + rel.sh_offset + k, sizeof r);
        Reloc info;
        const std::uint64_t sym_off = symtab.sh_offset + ELF64_R_SYM(r.r_info) * sizeof(Elf64_Sym);
        if (sym_off + sizeof(Elf64_Sym) <= img.size()) {
          Elf64_Sym sym{};
          std::memcpy(&sym, img.data() + sym_off, sizeof sym);
          info.defined = sym.st_shndx != SHN_UNDEF;
          if (symstr.sh_offset < img.size() && sym.st_name < img.size() - symstr.sh_offset) {
            const char* n = img.data() + symstr.sh_offset + sym.st_name;
            info.symbol.assign(n, strnlen(n, img.size() - symstr.sh_offset - sym.st_name));
          }
        }
        if (r.r_offset < sh.sh_size) info.opcode = static_cast<std::uint8_t>(img[sh.sh_offset + r.r_offset]);
        relocs[r.r_offset] = info;
      }
    }
    return relocs;
  }
  throw std::runtime_error(what + "no section " + section +
                           " (code sections: " + (code_sections.empty() ? "none" : code_sections) + ")");
}

// librte_bpf's "resolve_xsym(NAME, OFFSET) error code: -2", said plainly.
std::string unresolved(const std::string& line, const Relocs& relocs) {
  const std::size_t b = line.find('('), c = line.find(", "), e = line.find(')');
  if (b == std::string::npos || c == std::string::npos || e == std::string::npos || c < b || e < c) return {};
  const std::string name = line.substr(b + 1, c - b - 1);
  std::uint64_t off = 0;
  try {
    off = std::stoull(line.substr(c + 2, e - c - 2));
  } catch (const std::exception&) {
    return {};
  }
  const auto it = relocs.find(off);
  const Reloc r = it != relocs.end() ? it->second : Reloc{name, false, 0x85};
  const std::string at = " at instruction " + std::to_string(off / 8);
  if (r.opcode == 0x18)  // BPF_LD | BPF_IMM | BPF_DW
    return "reference to data " + (r.symbol.empty() ? std::string("(a section)") : r.symbol) + at +
           " (NIC operations have no globals, static data or maps)";
  if (r.defined)
    return "call to a function of its own" + at +
           " (librte_bpf runs one function: make the others static __always_inline)";
  return "call to unknown helper " + r.symbol + at + " (the helpers are " + helper_names() + ")";
}

std::string load_failure(const std::string& path, const std::string& section, const std::string& log, int err,
                         const Relocs& relocs) {
  std::vector<std::string> reasons;
  std::string plain;
  bool loader = false;
  std::istringstream in(log);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line.find("EBPF_PSEUDO_CALL") != std::string::npos ||
        line.find("successfully creates") != std::string::npos || line.rfind("rte_bpf_elf_load(fname=", 0) == 0)
      continue;
    if (line.rfind("resolve_xsym(", 0) == 0) {
      loader = true;
      if (plain.empty()) plain = unresolved(line, relocs);
    } else if (line.rfind("find_elf_code", 0) == 0 || line.rfind("check_elf_header", 0) == 0) {
      loader = true;
    }
    reasons.push_back(tidy(line));
  }
  std::string why;
  for (const std::string& r : reasons) why += (why.empty() ? "" : "; ") + r;
  if (why.empty()) why = "error " + std::to_string(err) + " (" + std::strerror(err) + "), nothing logged";
  const std::string head = "nicop: " + path + " section " + section + " rejected by librte_bpf's ";
  if (!plain.empty()) return head + "ELF loader: " + plain + " [" + why + "]";
  return head + (loader ? "ELF loader: " : "validator: ") + why;
}

// ---- runs ------------------------------------------------------------------

void State::execute(Op& op, Run& run) {
  nicop_ctx c{};
  c.event = run.event;
  c.op_id = run.op_id;
  c.qpn = run.qpn;
  c.len = run.obj.len;
  c.va = run.obj.va;
  c.arg0 = run.arg0;
  c.arg1 = run.arg1;
  c.now_ns = run.now_ns;
  Run* outer = t_run;
  t_run = &run;
  const std::uint64_t rc = (use_jit && op.jit != nullptr) ? op.jit(&c) : rte_bpf_exec(op.bpf.get(), &c);
  t_run = outer;
  if (rc != 0) run.fail("returned " + std::to_string(static_cast<std::int64_t>(rc)));
  if (!run.error.empty()) op.last_error = run.error;
}

void State::unpark(const Waiter& w) {
  if (w.deadline != kNone) deadlines.erase({w.deadline, w.seq, w.op_id, w.key});
  auto q = qps.find(w.qpn);
  if (q != qps.end() && q->second.parked > 0) --q->second.parked;
  --parked_total;
}

void State::run_event(std::uint32_t event, std::uint32_t op_id, std::uint64_t key, const Obj& obj, std::uint32_t qpn,
                      std::uint64_t now, std::vector<NicOpAnswer>& out) {
  auto it = ops.find(op_id);
  if (it == ops.end()) return;
  Run run;
  run.state = this;
  run.op_id = op_id;
  run.qpn = qpn;
  run.event = event;
  run.arg0 = key;
  run.now_ns = now;
  run.obj = obj;
  run.out = &out;
  execute(it->second, run);  // an engine event has nobody to answer: a failure only counts
}

}  // namespace

struct NicOpRuntime::Impl : State {};

NicOpRuntime::NicOpRuntime() : impl_(std::make_unique<Impl>()) {}
NicOpRuntime::~NicOpRuntime() = default;

void NicOpRuntime::load(std::uint32_t op_id, const std::string& path, const std::string& section,
                        std::uint64_t timeout_ns) {
  if (op_id == kNicOpKeepAliveId)
    throw std::runtime_error("nicop: operation id " + std::to_string(op_id) +
                             " is reserved for the transport's keep-alive; pick another");
  if (auto it = impl_->ops.find(op_id); it != impl_->ops.end())
    throw std::runtime_error("nicop: operation " + std::to_string(op_id) + " is already loaded (from " +
                             it->second.path + "); unload it first");
  const Relocs relocs = check_elf(path, section);

  const std::vector<rte_bpf_xsym>& xs = helpers();
  rte_bpf_prm prm{};
  prm.xsym = xs.data();
  prm.nb_xsym = static_cast<std::uint32_t>(xs.size());
  prm.prog_arg.type = RTE_BPF_ARG_PTR;
  prm.prog_arg.size = sizeof(nicop_ctx);

  BpfLogCapture capture;
  BpfPtr bpf(rte_bpf_elf_load(&prm, path.c_str(), section.c_str()));
  const int err = rte_errno;
  const std::string log = capture.finish();
  if (!bpf) throw std::runtime_error(load_failure(path, section, log, err, relocs));

  Op op;
  rte_bpf_jit jit{};
  if (rte_bpf_get_jit(bpf.get(), &jit) == 0) op.jit = jit.func;
  op.bpf = std::move(bpf);
  op.timeout_ns = timeout_ns;
  op.path = path;
  impl_->ops.emplace(op_id, std::move(op));
}

void NicOpRuntime::unload(std::uint32_t op_id, std::vector<NicOpAnswer>& out) {
  for (auto it = impl_->queues.begin(); it != impl_->queues.end();) {
    if (it->first.first != op_id) {
      ++it;
      continue;
    }
    for (const Waiter& w : it->second) {
      out.push_back({w.token, w.qpn, NICOP_ST_UNLOADED, 0});
      impl_->unpark(w);
    }
    it = impl_->queues.erase(it);
  }
  std::erase_if(impl_->holds, [&](const auto& h) { return std::get<1>(h.first) == op_id; });
  impl_->ops.erase(op_id);
}

bool NicOpRuntime::loaded(std::uint32_t op_id) const {
  return impl_->ops.contains(op_id);
}

bool NicOpRuntime::jitted(std::uint32_t op_id) const {
  auto it = impl_->ops.find(op_id);
  return it != impl_->ops.end() && impl_->use_jit && it->second.jit != nullptr;
}

void NicOpRuntime::set_jit(bool on) {
  impl_->use_jit = on;
}

std::string NicOpRuntime::last_error(std::uint32_t op_id) const {
  auto it = impl_->ops.find(op_id);
  return it == impl_->ops.end() ? std::string{} : it->second.last_error;
}

void NicOpRuntime::set_park_limit(std::uint32_t qpn, std::uint32_t limit) {
  impl_->qps[qpn].limit = limit;
}

bool NicOpRuntime::run(const NicOpRequest& r, std::vector<NicOpAnswer>& out) {
  auto it = impl_->ops.find(r.op_id);
  if (it == impl_->ops.end()) {
    out.push_back({r.token, r.qpn, NICOP_ST_UNLOADED, 0});
    return false;
  }
  Op& op = it->second;
  Run run;
  run.state = impl_.get();
  run.op_id = r.op_id;
  run.qpn = r.qpn;
  run.event = NICOP_EV_REQUEST;
  run.arg0 = r.arg0;
  run.arg1 = r.arg1;
  run.now_ns = r.now_ns != 0 ? r.now_ns : monotonic_ns();
  run.obj = Obj{r.va, r.len, r.obj, r.region, r.region_va, r.region_len};
  run.out = &out;
  impl_->execute(op, run);

  if (!run.error.empty()) {
    out.push_back({r.token, r.qpn, NICOP_ST_PROG_ERROR, 0});
    return false;
  }
  if (run.answered) {
    out.push_back({r.token, r.qpn, run.status, run.result});
    return false;
  }
  if (!run.parked) {
    op.last_error = "neither answered nor parked a request";
    out.push_back({r.token, r.qpn, NICOP_ST_NO_ANSWER, 0});
    return false;
  }
  Waiter w;
  w.seq = impl_->next_seq++;
  w.token = r.token;
  w.qpn = r.qpn;
  w.op_id = r.op_id;
  w.arg0 = r.arg0;
  w.arg1 = r.arg1;
  w.parked_ns = run.now_ns;
  w.deadline = op.timeout_ns != 0 ? run.now_ns + op.timeout_ns : kNone;
  w.key = run.park_key;
  w.obj = run.obj;
  impl_->queues[{r.op_id, run.park_key}].push_back(w);
  if (w.deadline != kNone) impl_->deadlines.insert({w.deadline, w.seq, w.op_id, run.park_key});
  ++impl_->qps[r.qpn].parked;
  ++impl_->parked_total;
  return true;
}

void NicOpRuntime::qp_died(std::uint32_t qpn, std::vector<NicOpAnswer>& out) {
  const std::uint64_t now = monotonic_ns();
  struct Gone {
    std::uint32_t op_id;
    std::uint64_t key;
    Obj obj;
  };
  std::vector<Gone> gone;
  for (auto it = impl_->queues.begin(); it != impl_->queues.end();) {
    std::deque<Waiter>& dq = it->second;
    const bool head = dq.front().qpn == qpn;
    Obj head_obj = dq.front().obj;
    for (auto w = dq.begin(); w != dq.end();) {
      if (w->qpn == qpn) {
        impl_->unpark(*w);
        w = dq.erase(w);
      } else {
        ++w;
      }
    }
    if (dq.empty()) {
      it = impl_->queues.erase(it);
      continue;
    }
    if (head) gone.push_back({it->first.first, it->first.second, head_obj});
    ++it;
  }
  for (const Gone& g : gone) impl_->run_event(NICOP_EV_WAITER_GONE, g.op_id, g.key, g.obj, qpn, now, out);

  std::vector<std::pair<HoldKey, Hold>> mine;
  for (auto it = impl_->holds.lower_bound({qpn, 0, 0}); it != impl_->holds.end() && std::get<0>(it->first) == qpn; ++it)
    mine.push_back(*it);
  for (const auto& [k, h] : mine)
    for (std::uint64_t i = 0; i < h.count; ++i)
      impl_->run_event(NICOP_EV_QP_DIED, std::get<1>(k), std::get<2>(k), h.obj, qpn, now, out);
  std::erase_if(impl_->holds, [&](const auto& h) { return std::get<0>(h.first) == qpn; });
  impl_->qps.erase(qpn);
}

void NicOpRuntime::expire(std::uint64_t now_ns, std::vector<NicOpAnswer>& out) {
  std::map<QueueKey, std::pair<Obj, std::uint32_t>> gone;  // queues that lost their first waiter
  while (!impl_->deadlines.empty() && std::get<0>(*impl_->deadlines.begin()) <= now_ns) {
    const auto [when, seq, op_id, key] = *impl_->deadlines.begin();
    impl_->deadlines.erase(impl_->deadlines.begin());
    auto q = impl_->queues.find({op_id, key});
    if (q == impl_->queues.end()) continue;
    std::deque<Waiter>& dq = q->second;
    auto w = std::find_if(dq.begin(), dq.end(), [&](const Waiter& x) { return x.seq == seq; });
    if (w == dq.end()) continue;
    const bool head = w == dq.begin();
    Waiter gone_one = *w;
    gone_one.deadline = kNone;  // already out of the deadline set
    dq.erase(w);
    impl_->unpark(gone_one);
    out.push_back({gone_one.token, gone_one.qpn, NICOP_ST_TIMEOUT, 0});
    if (dq.empty()) {
      impl_->queues.erase(q);
      gone.erase({op_id, key});
    } else if (head) {
      gone.emplace(QueueKey{op_id, key}, std::pair{gone_one.obj, gone_one.qpn});
    }
  }
  for (const auto& [k, v] : gone)
    if (impl_->queues.contains(k))
      impl_->run_event(NICOP_EV_WAITER_GONE, k.first, k.second, v.first, v.second, now_ns, out);
}

std::uint64_t NicOpRuntime::next_deadline() const {
  return impl_->deadlines.empty() ? kNone : std::get<0>(*impl_->deadlines.begin());
}

void NicOpRuntime::forget_region(const std::uint8_t* region, std::vector<NicOpAnswer>& out) {
  if (region == nullptr) return;
  for (auto it = impl_->queues.begin(); it != impl_->queues.end();) {
    std::deque<Waiter>& dq = it->second;
    for (auto w = dq.begin(); w != dq.end();) {
      if (w->obj.region == region) {
        out.push_back({w->token, w->qpn, NICOP_ST_REGION_GONE, 0});
        impl_->unpark(*w);
        w = dq.erase(w);
      } else {
        ++w;
      }
    }
    it = dq.empty() ? impl_->queues.erase(it) : std::next(it);
  }
  std::erase_if(impl_->holds, [&](const auto& h) { return h.second.obj.region == region; });
}

std::size_t NicOpRuntime::parked(std::uint32_t qpn) const {
  auto it = impl_->qps.find(qpn);
  return it == impl_->qps.end() ? 0 : it->second.parked;
}

bool NicOpRuntime::has_state(std::uint32_t qpn) const {
  if (parked(qpn) > 0) return true;
  const auto it = impl_->holds.lower_bound(HoldKey{qpn, 0, 0});
  return it != impl_->holds.end() && std::get<0>(it->first) == qpn;
}

std::size_t NicOpRuntime::parked_total() const {
  return impl_->parked_total;
}

}  // namespace urdma
