#include "verify/host_checks.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>

#include "bpf/abi.h"
#include "common/fs.h"
#include "common/unique_fd.h"
#include "loader/bpffs.h"
#include "loader/enforcer.h"
#include "loader/maps.h"
#include "loader/skeleton.h"
#include "sandbox/cgroup.h"

namespace egressd::verify {
namespace {

Check make(std::string name, Level level, std::string detail, std::string advice = "") {
  return Check{std::move(name), level, std::move(detail), std::move(advice)};
}

struct Advice {
  Level missing;
  const char* whenMissing;
  Level ok = Level::kPass;
  const char* whenOk = "";
};

// How each probe's result matters to egressd, and what to do about it.
const std::map<std::string, Advice, std::less<>>& adviceTable() {
  static const std::map<std::string, Advice, std::less<>> table = {
      {std::string(host::kKernelVersion),
       {Level::kFail, "upgrade to Linux 5.15 or later (docs/bpf.md)"}},
      {std::string(host::kCgroup2),
       {Level::kFail,
        "mount cgroup2 (mount -t cgroup2 none /sys/fs/cgroup), egressd enforces per "
        "cgroup v2"}},
      {std::string(host::kCgroup2NsDelegate),
       {Level::kWarn,
        "remount cgroup2 with -o nsdelegate, or give sandboxes you arm yourself no root: without "
        "it a root process may move itself out (egressd run closes this itself)"}},
      {std::string(host::kBpffs),
       {Level::kWarn, "mount -t bpf bpf /sys/fs/bpf (egressd mounts it on first use)"}},
      {std::string(host::kBtfVmlinux),
       {Level::kWarn,
        "use a kernel built with CONFIG_DEBUG_INFO_BTF if a hook below fails to load"}},
      {std::string(host::kIoUring),
       {Level::kPass, "", Level::kWarn,
        "sandboxes you arm yourself can use io_uring: give them a seccomp profile refusing it, or "
        "sysctl kernel.io_uring_disabled=2 (egressd run refuses it unless --allow-io-uring)"}},
      {std::string(host::kIa32Emulation),
       {Level::kPass, "", Level::kPass,
        "egressd run's seccomp filter kills foreign-ABI syscalls; your own sandbox profiles must "
        "too (or boot with ia32_emulation=0)"}},
      {std::string(host::kX32Abi),
       {Level::kPass, "", Level::kPass,
        "egressd run's seccomp filter refuses x32 syscall numbers; your own profiles must too"}},
      {std::string(host::kIpv6), {Level::kPass, "IPv6 is off: nothing to enforce there"}},
      {std::string(host::kIpv6Loopback), {Level::kPass, ""}},
      {std::string(host::kTcpFastOpen), {Level::kPass, ""}},
      {std::string(host::kPingGroupRange),
       {Level::kPass, "", Level::kPass,
        "ping sockets are open to these groups; egressd refuses them in sandboxes unless a policy "
        "sets sockets.ping"}},
      {std::string(host::kUnprivilegedUserns),
       {Level::kPass, "", Level::kWarn,
        "sandboxed code can create user namespaces (more kernel surface; its sockets stay in the "
        "sandbox's hooks): sysctl user.max_user_namespaces=0 if your sandboxes need none"}},
  };
  return table;
}

std::string absoluteCgroupPath(const std::string& mount, const std::string& path) {
  return path.starts_with("/") ? path : mount + "/" + path;
}

// Each hook's pinned link of `id` is a live cgroup link on cgroup `cgroupId`.
std::vector<std::string> linkProblems(const std::string& pinRoot, const std::string& id,
                                      uint64_t cgroupId) {
  std::vector<std::string> problems;
  for (const loader::HookSpec& hook : loader::allHooks()) {
    const std::string pin = loader::linkPinPath(pinRoot, id, hook.programName);
    int fd = bpf_obj_get(pin.c_str());
    if (fd < 0) {
      problems.push_back(std::string(hook.programName) + ": no pinned link (" +
                         std::strerror(errno) + ")");
      continue;
    }
    UniqueFd link(fd);
    bpf_link_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(link.get(), &info, &len) != 0) {
      problems.push_back(std::string(hook.programName) + ": link info: " + std::strerror(errno));
      continue;
    }
    if (info.type != BPF_LINK_TYPE_CGROUP || info.cgroup.cgroup_id == 0) {
      problems.push_back(std::string(hook.programName) + ": link is defunct (cgroup gone)");
    } else if (info.cgroup.cgroup_id != cgroupId) {
      problems.push_back(std::string(hook.programName) + ": link on cgroup id " +
                         std::to_string(info.cgroup.cgroup_id) + ", not " +
                         std::to_string(cgroupId));
    }
  }
  return problems;
}

// "every hook: link is defunct (cgroup gone)" when all hooks share one problem.
std::string join(const std::vector<std::string>& parts) {
  if (parts.size() == loader::allHooks().size() && parts.size() > 1) {
    auto reason = [](const std::string& p) { return p.substr(p.find(':')); };
    if (std::all_of(parts.begin(), parts.end(),
                    [&](const std::string& p) { return reason(p) == reason(parts[0]); })) {
      return "every hook" + reason(parts[0]);
    }
  }
  std::string out;
  for (const std::string& p : parts) {
    out += (out.empty() ? "" : "; ") + p;
  }
  return out;
}

bool socketAnswers(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (!fd || path.size() >= sizeof(addr.sun_path)) {
    return false;
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
}

}  // namespace

std::string_view levelName(Level level) {
  switch (level) {
    case Level::kPass:
      return "pass";
    case Level::kWarn:
      return "warn";
    case Level::kFail:
      break;
  }
  return "FAIL";
}

Check judgeFeature(const host::Feature& f) {
  const auto& table = adviceTable();
  auto it = table.find(f.name);
  if (f.status == host::FeatureStatus::kUnknown) {
    return make(f.name, Level::kWarn, f.detail, "could not be determined; see the detail");
  }
  if (it == table.end()) {
    return make(f.name, f.ok() ? Level::kPass : Level::kWarn, f.detail);
  }
  const Advice& a = it->second;
  if (f.ok()) {
    return make(f.name, a.ok, f.detail, a.whenOk);
  }
  return make(f.name, a.missing, f.detail, a.whenMissing);
}

std::vector<Check> featureChecks() {
  std::vector<Check> out;
  for (const host::Feature& f : host::probeAll()) {
    out.push_back(judgeFeature(f));
  }
  return out;
}

std::vector<Check> hookChecks() {
  std::vector<Check> out;
  const std::string pid = std::to_string(::getpid());
  const std::string pinRoot =
      std::string(loader::kBpffsMount) + "/egressd-verify-" + pid + "-hooks";
  auto features = loader::probeKernelFeatures();
  if (!features.ok()) {
    out.push_back(
        make("bpf hooks", Level::kFail, features.error().message(),
             "egressd refuses to start on this kernel: it needs every hook (docs/bpf.md)"));
    return out;
  }
  auto mount = sandbox::findCgroup2Mount();
  if (!mount.ok()) {
    out.push_back(make("bpf hooks", Level::kFail, mount.error().message(), "mount cgroup2"));
    return out;
  }
  if (auto mounted = loader::ensureBpffsMounted(); !mounted.ok()) {
    out.push_back(
        make("bpf hooks", Level::kFail, mounted.error().message(), "mount -t bpf bpf /sys/fs/bpf"));
    return out;
  }
  const std::string cgroup = *mount + "/egressd-verify-" + pid + "-hooks";
  auto cleanup = [&] {
    ::rmdir(cgroup.c_str());
    for (const std::string& name : loader::PinnedMaps::names()) {
      ::unlink((pinRoot + "/" + name).c_str());
    }
    ::rmdir(pinRoot.c_str());
  };
  if (auto made = makeDirs(pinRoot, 0700); !made.ok()) {
    out.push_back(make("bpf hooks", Level::kFail, made.error().message(), ""));
    return out;
  }
  if (auto created = sandbox::createCgroup(cgroup); !created.ok()) {
    cleanup();
    out.push_back(make("bpf hooks", Level::kFail, created.error().message(),
                       "egressd must be able to create cgroups under the cgroup2 mount"));
    return out;
  }
  {
    auto skel = loader::Skeleton::load(pinRoot, 0, *features);
    UniqueFd cgroupFd(::open(cgroup.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    for (const loader::HookSpec& hook : loader::allHooks()) {
      std::string name = std::string("hook ") + hook.programName;
      if (!skel.ok()) {
        out.push_back(make(name, Level::kFail, "load: " + skel.error().message(),
                           "the kernel's verifier refuses egressd's programs: report it with "
                           "`egressd verify --json` and the kernel version"));
        continue;
      }
      bpf_program* prog = (*skel)->program(hook.programName);
      if (prog == nullptr) {
        out.push_back(make(name, Level::kFail, "not in the BPF object", "rebuild egressd"));
        continue;
      }
      int linkFd = bpf_link_create(bpf_program__fd(prog), cgroupFd.get(), hook.attachType, nullptr);
      if (linkFd < 0) {
        out.push_back(make(name, Level::kFail, std::string("attach: ") + std::strerror(errno),
                           std::string("the kernel lacks ") + hook.kernelNote));
        continue;
      }
      UniqueFd link(linkFd);
      bpf_link_detach(link.get());
      out.push_back(
          make(name, Level::kPass, std::string("loads and attaches (") + hook.kernelNote + ")"));
    }
  }
  cleanup();
  return out;
}

std::vector<Check> daemonChecks(const DaemonPaths& paths) {
  std::vector<Check> out;
  const bool running = socketAnswers(paths.socket);
  auto mount = sandbox::findCgroup2Mount();
  const std::string cgroupMount = mount.ok() ? *mount : "/sys/fs/cgroup";

  // Sandboxes the kernel side knows: the pinned maps.
  std::map<std::string, loader::SandboxState> pinned;
  if (loader::PinnedMaps::exist(paths.pinRoot)) {
    auto maps = loader::PinnedMaps::open(paths.pinRoot);
    auto list =
        maps.ok() ? maps->listSandboxes() : Result<std::vector<loader::SandboxState>>(maps.error());
    if (!list.ok()) {
      out.push_back(make("pinned sandboxes", Level::kFail, list.error().message(),
                         "check " + paths.pinRoot + " with `egressctl maps` and bpftool"));
    } else {
      for (const loader::SandboxState& s : *list) {
        if ((s.config.flags & EGRESSD_SB_ACTIVE) != 0) {
          pinned[std::string(s.config.id)] = s;
        }
      }
    }
  }
  // Sandboxes the daemon's state names.
  std::map<std::string, std::string> stateCgroups;
  if (pathExists(paths.stateFile)) {
    auto text = readFile(paths.stateFile);
    nlohmann::json state = text.ok() ? nlohmann::json::parse(*text, nullptr, false)
                                     : nlohmann::json(nlohmann::json::value_t::discarded);
    if (state.is_discarded() || !state.is_object()) {
      out.push_back(make("daemon state", Level::kFail,
                         paths.stateFile + " is unreadable or not JSON",
                         "restore it from a backup or recreate the sandboxes with egressctl"));
    } else {
      for (const auto& s : state.value("sandboxes", nlohmann::json::array())) {
        stateCgroups[s.value("id", "")] = s.value("cgroup", "");
      }
    }
  }
  if (!running && pinned.empty() && stateCgroups.empty()) {
    out.push_back(make("daemon", Level::kPass, "no egressd daemon running, no sandbox pinned"));
    return out;
  }
  if (running) {
    out.push_back(make("daemon", Level::kPass, "answers on " + paths.socket));
  } else {
    out.push_back(make("daemon", Level::kWarn,
                       "not running, " + std::to_string(pinned.size()) +
                           " sandbox(es) pinned: kernel rules hold, proxied ports and DNS fail "
                           "closed",
                       "start `egressd daemon` (systemctl start egressd)"));
  }
  for (const auto& [id, cgroup] : stateCgroups) {
    const std::string name = "sandbox " + id;
    auto it = pinned.find(id);
    if (it == pinned.end()) {
      out.push_back(
          make(name, Level::kFail,
               "in " + paths.stateFile + " but not armed in " + paths.pinRoot + ": NOT ENFORCED",
               "restart the daemon (it re-arms every sandbox of its state)"));
      continue;
    }
    auto id2 = loader::cgroupIdOf(absoluteCgroupPath(cgroupMount, cgroup));
    if (!id2.ok()) {
      out.push_back(make(name, Level::kFail, id2.error().message(),
                         "the sandbox's cgroup is gone: delete the sandbox (egressctl sandbox "
                         "delete " +
                             id + ")"));
      continue;
    }
    if (*id2 != it->second.config.cgroup_id) {
      out.push_back(make(name, Level::kFail,
                         "enforced on cgroup id " + std::to_string(it->second.config.cgroup_id) +
                             ", but " + cgroup + " is id " + std::to_string(*id2),
                         "restart the daemon to re-arm the sandbox on its cgroup"));
      continue;
    }
  }
  for (const auto& [id, s] : pinned) {
    const std::string name = "sandbox " + id;
    auto problems = linkProblems(paths.pinRoot, id, s.config.cgroup_id);
    if (!problems.empty()) {
      out.push_back(make(name, Level::kFail, "NOT ENFORCED: " + join(problems),
                         "re-arm it (restart the daemon, or `egressd apply` for a sandbox armed "
                         "that way); if its cgroup is gone on purpose: egressd detach --sandbox " +
                             id));
    } else if (std::none_of(out.begin(), out.end(),
                            [&](const Check& c) { return c.name == name; })) {
      out.push_back(make(name, Level::kPass,
                         "every hook's link attached to cgroup id " +
                             std::to_string(s.config.cgroup_id) +
                             (stateCgroups.count(id) != 0 ? " (" + stateCgroups[id] + ")" : "")));
    }
  }
  return out;
}

}  // namespace egressd::verify
