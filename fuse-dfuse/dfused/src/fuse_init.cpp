// SPDX-License-Identifier: GPL-2.0-only
#include "fuse_init.h"

#include <algorithm>
#include <cstring>

#include "dfuse/kernel_abi.h"

namespace dfuse::dfused {

bool InitOffer::leases() const {
  return (flags & abi::kInitLeases) != 0;
}
bool InitOffer::direct_io_allow_mmap() const {
  return (flags & kInitDirectIoAllowMmap) != 0;
}

bool InitOffer::handle_killpriv_v2() const {
  return (flags & FUSE_HANDLE_KILLPRIV_V2) != 0;
}

std::optional<InitOffer> parse_init_request(const void* buf, size_t len) {
  fuse_in_header in;
  // The 7.36+ fuse_init_in carries flags2; older kernels send a shorter body.
  constexpr size_t kMinBody = offsetof(fuse_init_in, flags) + sizeof(uint32_t);
  if (len < sizeof(in) + kMinBody) return std::nullopt;
  std::memcpy(&in, buf, sizeof(in));
  if (in.opcode != FUSE_INIT) return std::nullopt;
  fuse_init_in arg{};
  std::memcpy(&arg, static_cast<const char*>(buf) + sizeof(in), std::min(len - sizeof(in), sizeof(arg)));
  InitOffer offer;
  offer.major = arg.major;
  offer.minor = arg.minor;
  offer.flags = arg.flags;
  if ((arg.flags & FUSE_INIT_EXT) && len >= sizeof(in) + offsetof(fuse_init_in, flags2) + sizeof(uint32_t))
    offer.flags |= static_cast<uint64_t>(arg.flags2) << 32;
  return offer;
}

bool patch_init_out(void* body, size_t len, const InitAccept& accept) {
  if (len < offsetof(fuse_init_out, flags2) + sizeof(uint32_t)) return false;
  fuse_init_out out{};
  std::memcpy(&out, body, std::min(len, sizeof(out)));
  uint64_t extra = 0;
  if (accept.leases) extra |= abi::kInitLeases;
  if (accept.direct_io_allow_mmap) extra |= kInitDirectIoAllowMmap;
  if (accept.handle_killpriv_v2) extra |= FUSE_HANDLE_KILLPRIV_V2;
  out.flags |= static_cast<uint32_t>(extra);
  if ((extra >> 32) != 0) {
    out.flags |= FUSE_INIT_EXT;
    out.flags2 |= static_cast<uint32_t>(extra >> 32);
  }
  std::memcpy(body, &out, std::min(len, sizeof(out)));
  return true;
}

}  // namespace dfuse::dfused
