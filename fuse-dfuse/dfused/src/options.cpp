// SPDX-License-Identifier: GPL-2.0-only
#include "options.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace dfuse::dfused {

namespace fs = std::filesystem;

void add_options(CLI::App& app, Options& opts) {
  app.add_option("--backend", opts.backend, "Backend directory every node reaches (a shared POSIX directory)")
      ->required();
  app.add_option("--mountpoint", opts.mountpoint, "Where to mount (an existing, empty, unmounted directory)")
      ->required();
  app.add_option_function<std::string>(
         "--mode",
         [&opts](const std::string& text) {
           // The check below has already accepted text.
           opts.mode = *parse_mode(text);
         },
         "auto | lease | writeback | writethrough (default auto: lease when the kernel offers it and "
         "--lease-service is set, else writethrough)")
      ->check(CLI::IsMember({"auto", "lease", "writeback", "writethrough"}));
  app.add_option("--lease-service", opts.lease_service,
                 "host:port of dfuse-leased (needed for lease mode); several, comma-separated, for services that "
                 "share etcd (dfuse-leased --etcd): dfused finds the leader and follows it");
  app.add_option("--node-id", opts.node_id, "This node's name at the lease service (default hostname:pid)");
  app.add_option("--threads", opts.threads, "Threads serving FUSE requests")
      ->check(CLI::Range(1u, 256u))
      ->capture_default_str();
  app.add_option_function<double>(
         "--lease-timeout",
         [&opts](double s) { opts.lease_timeout = std::chrono::milliseconds(static_cast<long>(s * 1000)); },
         "Seconds an unreachable lease service is retried, at start and per lease request, before failing (default 30)")
      ->check(CLI::PositiveNumber);
  app.add_flag("-f,--foreground", opts.foreground, "Stay in the foreground (default: detach once mounted)");
  app.add_flag("-d,--debug", opts.debug, "Log every FUSE request (libfuse debug output; implies nothing else)");
  app.add_option("-o", opts.fuse_options, "Extra FUSE mount options, comma separated (e.g. -o max_read=131072)")
      ->allow_extra_args(false);
}

namespace {

std::string unescape_mountinfo(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      const auto oct = [](char c) { return c >= '0' && c <= '7'; };
      if (oct(s[i + 1]) && oct(s[i + 2]) && oct(s[i + 3])) {
        out.push_back(static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0')));
        i += 3;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

// Makes `path` absolute and canonical; an error message naming `what` if it
// is not an existing directory.
std::string canonical_dir(std::string& path, std::string_view what, std::string_view fix) {
  std::error_code ec;
  const fs::path p(path);
  const auto st = fs::status(p, ec);
  if (ec || !fs::exists(st)) return std::string(what) + " '" + path + "' does not exist (" + std::string(fix) + ")";
  if (!fs::is_directory(st)) return std::string(what) + " '" + path + "' is not a directory";
  const auto canon = fs::canonical(p, ec);
  if (ec) return std::string(what) + " '" + path + "': " + ec.message();
  path = canon.string();
  return {};
}

bool is_within(const std::string& inner, const std::string& outer) {
  if (inner == outer) return true;
  const std::string prefix = outer == "/" ? outer : outer + "/";
  return inner.compare(0, prefix.size(), prefix) == 0;
}

}  // namespace

std::optional<MountEntry> parse_mountinfo_line(std::string_view line) {
  // id parent major:minor root mountpoint options [optional...] - fstype source superoptions
  std::vector<std::string_view> fields;
  size_t pos = 0;
  while (pos < line.size()) {
    const size_t end = line.find(' ', pos);
    const size_t stop = end == std::string_view::npos ? line.size() : end;
    if (stop > pos) fields.push_back(line.substr(pos, stop - pos));
    pos = stop + 1;
  }
  if (fields.size() < 7) return std::nullopt;
  size_t dash = 6;
  while (dash < fields.size() && fields[dash] != "-") ++dash;
  if (dash + 1 >= fields.size()) return std::nullopt;
  MountEntry e;
  e.mountpoint = unescape_mountinfo(fields[4]);
  e.fstype = std::string(fields[dash + 1]);
  if (dash + 2 < fields.size()) e.source = unescape_mountinfo(fields[dash + 2]);
  return e;
}

std::optional<MountEntry> find_mount(const std::string& path, const std::string& mountinfo_file) {
  std::ifstream in(mountinfo_file);
  std::string line;
  std::optional<MountEntry> found;
  while (std::getline(in, line)) {
    auto e = parse_mountinfo_line(line);
    if (e && e->mountpoint == path) found = std::move(e);  // the last one is the visible one
  }
  return found;
}

std::string check_options(Options& opts) {
  if (auto err =
          canonical_dir(opts.backend, "backend directory", "create it, or point --backend at the shared directory");
      !err.empty())
    return err;
  if (auto err = canonical_dir(opts.mountpoint, "mount point", "create it first: mkdir -p " + opts.mountpoint);
      !err.empty())
    return err;
  if (is_within(opts.mountpoint, opts.backend))
    return "mount point '" + opts.mountpoint + "' lies inside the backend '" + opts.backend +
           "': dfused would serve itself; choose a mount point outside the backend";
  if (is_within(opts.backend, opts.mountpoint))
    return "backend '" + opts.backend + "' lies inside the mount point '" + opts.mountpoint +
           "': it would be hidden by the mount; choose a mount point outside the backend";
  if (auto m = find_mount(opts.mountpoint))
    return "mount point '" + opts.mountpoint + "' is already a mount (type " + m->fstype + ", source " + m->source +
           "); unmount it first: fusermount3 -u " + opts.mountpoint;
  if (opts.mode == Mode::kLease && opts.lease_service.empty())
    return "--mode lease needs --lease-service host:port (the address of dfuse-leased)";
  return {};
}

}  // namespace dfuse::dfused
