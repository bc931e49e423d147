#include "verify/battery.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <memory>
#include <random>
#include <sstream>
#include <thread>

#include "common/fs.h"
#include "common/scope_guard.h"
#include "common/unique_fd.h"
#include "daemon/arming.h"
#include "daemon/proxy_runtime.h"
#include "daemon/sandbox_request.h"
#include "loader/bpffs.h"
#include "loader/enforcer.h"
#include "loader/maps.h"
#include "proxy/listener_reservation.h"
#include "sandbox/cgroup.h"
#include "sandbox/identity.h"
#include "sandbox/spawn.h"
#include "verify/listeners.h"
#include "verify/probe_main.h"
#include "verify/testnet.h"

namespace egressd::verify {
namespace {

constexpr const char* kPrefix = "egressd-verify-";
constexpr const char* kBpffs = "/sys/fs/bpf";
// After a probe run, datagrams in flight get this long to reach their listener.
constexpr auto kSettle = std::chrono::milliseconds(300);

int removeEntry(const char* path, const struct stat*, int type, struct FTW*) {
  if (type == FTW_DP) {
    ::rmdir(path);
  } else {
    ::unlink(path);
  }
  return 0;
}

void removeTree(const std::string& path) {
  if (pathExists(path)) {
    ::nftw(path.c_str(), removeEntry, 16, FTW_DEPTH | FTW_PHYS);
  }
}

bool processAlive(pid_t pid) {
  return pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM);
}

// Cgroups and pin roots of earlier verify runs that were killed before cleaning up.
void sweepStale(const std::string& cgroupMount) {
  sweepStaleNetworks();
  for (const std::string& dirPath : {cgroupMount, std::string(kBpffs)}) {
    DIR* dir = ::opendir(dirPath.c_str());
    if (dir == nullptr) {
      continue;
    }
    std::vector<std::string> stale;
    while (dirent* e = ::readdir(dir)) {
      std::string name = e->d_name;
      if (name.starts_with(kPrefix) &&
          !processAlive(static_cast<pid_t>(std::atol(name.c_str() + std::strlen(kPrefix))))) {
        stale.push_back(dirPath + "/" + name);
      }
    }
    ::closedir(dir);
    for (const std::string& path : stale) {
      if (dirPath == kBpffs) {
        removeTree(path);  // unpinning a link of a removed cgroup frees it
      } else if (auto removed = sandbox::removeCgroupTree(path); !removed.ok()) {
        spdlog::warn("verify: removing stale {}: {}", path, removed.error().message());
      }
    }
  }
}

// The throw-away sandbox, armed like `egressd run` arms its transient one, but in its own
// pin root (so nothing of a running daemon's maps is touched) and in verify's sandbox netns.
class VerifySandbox {
 public:
  static Result<std::unique_ptr<VerifySandbox>> create(const std::string& cgroupMount,
                                                       const policy::Policy& policy,
                                                       const std::string& netnsPath,
                                                       const std::string& resolver) {
    std::unique_ptr<VerifySandbox> sb(new VerifySandbox());
    const std::string pid = std::to_string(::getpid());
    sb->id_ = "verify-" + pid;
    sb->cgroup_ = cgroupMount + "/" + kPrefix + pid;
    sb->pinRoot_ = std::string(kBpffs) + "/" + kPrefix + pid;
    sb->runDir_ = "/run/" + std::string(kPrefix) + pid;
    sb->enforcer_ = std::make_unique<loader::Enforcer>(sb->pinRoot_);
    EGRESSD_TRY(sandbox::createCgroup(sb->cgroup_));
    sb->created_ = true;
    auto reservation = proxy::ListenerReservation::reserve(netnsPath);
    if (!reservation.ok()) {
      return std::move(reservation).error();
    }
    daemon::ProxyTarget target{reservation->addr4(), reservation->addr6(), reservation->port(),
                               reservation->netnsCookie(), reservation->dnsPort()};
    proxy::DnsSockets dns = reservation->takeDnsSockets();
    auto req = daemon::buildSandboxRequest(sb->id_, sb->cgroup_, policy, target, 0);
    if (!req.ok()) {
      return std::move(req).error();
    }
    auto armed = sb->enforcer_->arm(*req);
    if (!armed.ok()) {
      return std::move(armed).error();
    }
    daemon::ProxyOptions proxyOptions;
    proxyOptions.upstreamResolver = resolver;
    proxyOptions.threads = 1;
    proxyOptions.headerTimeoutMs = 3000;
    proxyOptions.idleTimeoutMs = 3000;
    proxyOptions.ioTimeoutMs = 3000;
    proxyOptions.runDir = sb->runDir_;
    auto runtime = daemon::ProxyRuntime::start(proxyOptions, sb->pinRoot_);
    if (!runtime.ok()) {
      return std::move(runtime).error();
    }
    sb->runtime_ = std::move(*runtime);
    EGRESSD_TRY(sb->runtime_->addSandbox(sb->id_, armed->slot, policy, req->rules.ruleNames,
                                         std::move(*reservation), nullptr, std::move(dns),
                                         sb->cgroup_, netnsPath));
    return sb;
  }

  ~VerifySandbox() {
    runtime_.reset();
    if (created_) {
      if (auto removed = sandbox::removeCgroupTree(cgroup_); !removed.ok()) {
        spdlog::error("verify: removing {}: {}", cgroup_, removed.error().message());
      }
      if (auto detached = enforcer_->detach(id_); !detached.ok()) {
        spdlog::error("verify: detaching {}: {}", id_, detached.error().message());
      }
    }
    removeTree(pinRoot_);
    removeTree(runDir_);
  }

  const std::string& cgroup() const { return cgroup_; }
  const std::string& pinRoot() const { return pinRoot_; }
  const std::string& id() const { return id_; }

 private:
  VerifySandbox() = default;
  std::string id_;
  std::string cgroup_;
  std::string pinRoot_;
  std::string runDir_;
  bool created_ = false;
  std::unique_ptr<loader::Enforcer> enforcer_;
  std::unique_ptr<daemon::ProxyRuntime> runtime_;
};

// Runs the probe as `user` inside the sandbox; one ActionResult per case (in order).
Result<std::vector<ActionResult>> runProbe(const BatteryOptions& o, const std::string& cgroup,
                                           const std::string& netnsPath,
                                           const sandbox::RunAsUser& user, const Targets& t,
                                           const std::string& tokenPrefix,
                                           const std::vector<Case>& cases) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return lastSystemError("pipe for the verify probe");
  }
  UniqueFd readEnd(fds[0]);
  UniqueFd writeEnd(fds[1]);
  sandbox::SpawnOptions spawn;
  spawn.argv = {o.selfExe, kProbeSubcommand};
  for (std::string& a : probeArguments(t, tokenPrefix, cases)) {
    spawn.argv.push_back(std::move(a));
  }
  spawn.cgroupPath = cgroup;
  spawn.netnsPath = netnsPath;
  spawn.env = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin"};
  spawn.user = user;
  spawn.cwd = "/";
  spawn.stdoutFd = writeEnd.get();
  auto child = sandbox::spawnInCgroup(spawn);
  writeEnd.reset();
  if (!child.ok()) {
    return std::move(child).error().wrap("starting the verify probe as " + user.name);
  }
  std::string out;
  // Each case is bounded by the probe (5 s); this bound only catches a wedged probe.
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(10 + 6 * cases.size());
  while (std::chrono::steady_clock::now() < deadline && !o.interrupted()) {
    pollfd pfd{readEnd.get(), POLLIN, 0};
    if (::poll(&pfd, 1, 200) <= 0) {
      continue;
    }
    char buf[4096];
    ssize_t n = ::read(readEnd.get(), buf, sizeof(buf));
    if (n <= 0) {
      break;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  ::kill(*child, SIGKILL);  // gone already, unless interrupted or wedged
  auto status = sandbox::waitForExit(*child);
  std::vector<ActionResult> results(
      cases.size(), ActionResult::failure(ECANCELED, "probe", "the case did not run"));
  std::istringstream lines(out);
  std::string line;
  while (std::getline(lines, line)) {
    if (!line.starts_with("CASE ")) {
      continue;
    }
    size_t space = line.find(' ', 5);
    size_t index = results.size();
    std::from_chars(line.data() + 5, line.data() + std::min(space, line.size()), index);
    if (index < results.size() && space != std::string::npos) {
      results[index] = ActionResult::parse(line.substr(space + 1));
    }
  }
  if (status.ok() && *status != 0 && *status != 128 + SIGKILL) {
    return Error(EIO,
                 "the verify probe as " + user.name + " exited with " + std::to_string(*status));
  }
  return results;
}

std::string randomTag() {
  std::random_device rd;
  std::ostringstream s;
  s << std::hex << rd() << rd();
  return s.str().substr(0, 10);
}

bool allowedByPolicyKinds(const policy::Policy& p, const Case& c) {
  // A socket kind the user's policy re-enables is the policy's choice, not a hole.
  if (p.sockets.ping && c.id.starts_with("socket-ping")) {
    return true;
  }
  if (p.sockets.raw && c.id.starts_with("socket-raw")) {
    return true;
  }
  return p.sockets.other &&
         (c.id == "socket-sctp" || c.id == "socket-mptcp" || c.id == "socket-udplite");
}

std::string firstAddress(const policy::Cidr& cidr) {
  policy::Cidr host = cidr;
  const int bits = cidr.maxPrefixLen();
  if (cidr.prefixLen < bits) {
    host.bytes[bits / 8 - 1] |= 1;  // .1 / ::1 of the network, not the network address
  }
  host.prefixLen = bits;
  std::string text = host.toString();
  return text.substr(0, text.find('/'));
}

std::string sampleName(const std::string& glob) {
  std::string out;
  for (char ch : glob) {
    out += ch == '*' ? std::string("verify-sample") : std::string(1, ch);
  }
  return out;
}

}  // namespace

std::string builtinPolicyYaml(const std::string& origin) {
  return "name: egressd-verify\n"
         "enableInternet: false\n"
         "interceptHttps: false\n"
         "proxyPorts: [80, 443]\n"
         "allowedHosts: [\"*.allowed.verify.test\"]\n"
         "deniedHosts: [\"*.denied.verify.test\"]\n"
         "allow:\n"
         "  - { cidr: " +
         origin + "/32, ports: [" + std::to_string(kTcpPort) + "], protocol: tcp }\n";
}

std::vector<Case> policySamples(const policy::Policy& p) {
  std::vector<Case> out;
  std::string error;
  constexpr size_t kPerKind = 3;
  auto add = [&](const std::string& kind, const std::string& param) {
    Case c = sampleCase(kind, param, &error);
    if (error.empty()) {
      out.push_back(std::move(c));
    }
  };
  for (size_t i = 0; i < p.deniedHosts.cidrs.size() && i < kPerKind; ++i) {
    add("deny-cidr", firstAddress(p.deniedHosts.cidrs[i].cidr));
  }
  for (size_t i = 0; i < p.deniedHosts.globs.size() && i < kPerKind; ++i) {
    add("deny-host", sampleName(p.deniedHosts.globs[i].pattern));
  }
  if (p.allowedHosts.present) {
    add("unlisted-host", "not-allowed.verify-sample.test");
  }
  for (size_t i = 0; i < p.allowedHosts.globs.size() && i < kPerKind; ++i) {
    add("allow-host", sampleName(p.allowedHosts.globs[i].pattern));
  }
  size_t cidrRules = 0;
  for (const policy::AllowRule& rule : p.allow) {
    if (rule.host.has_value() || cidrRules == kPerKind) {
      continue;
    }
    ++cidrRules;
    const uint16_t port = rule.ports.empty() ? kTcpPort : rule.ports.front().first;
    std::string addr = firstAddress(rule.cidr);
    if (addr.find(':') != std::string::npos) {
      addr = "[" + addr + "]";
    }
    add("allow-cidr", addr + ":" + std::to_string(port) +
                          (rule.protocol == policy::Protocol::kUdp ? "/udp" : ""));
  }
  return out;
}

Result<BatteryReport> runBattery(const BatteryOptions& o) {
  BatteryReport report;
  auto mount = sandbox::findCgroup2Mount();
  if (!mount.ok()) {
    return std::move(mount).error();
  }
  sweepStale(*mount);

  auto net = TestNetwork::create();
  if (!net.ok()) {
    return std::move(net).error();
  }
  Targets t;
  t.dns = (*net)->ip(2);
  t.origin = (*net)->ip(3);
  t.other = (*net)->ip(4);

  Listeners listeners;
  listeners.setDnsAnswer(t.origin);
  const std::string inet = (*net)->internetNetns();
  const std::string sbNetns = (*net)->sandboxNetns();
  auto add = [&](const std::string& ns, const std::string& ip, uint16_t port, ListenerKind kind,
                 const std::string& role) -> Result<uint16_t> {
    return listeners.add(ns, ip, port, kind, role);
  };
  for (const auto& [ip, role] : {std::pair{t.origin, "origin"}, std::pair{t.other, "other"}}) {
    for (const auto& [port, kind] :
         {std::pair{kTcpPort, ListenerKind::kTcp}, std::pair{kHttpPort, ListenerKind::kHttp},
          std::pair{kTlsPort, ListenerKind::kTcp}, std::pair{kTlsPort, ListenerKind::kUdp},
          std::pair{kUdpPort, ListenerKind::kUdp}, std::pair{kDnsPort, ListenerKind::kDns}}) {
      if (auto r = add(inet, ip, port, kind, role); !r.ok()) {
        return std::move(r).error();
      }
    }
  }
  if (auto r = add(inet, t.dns, kDnsPort, ListenerKind::kDns, "dns"); !r.ok()) {
    return std::move(r).error();
  }
  auto loopPort = add(sbNetns, "127.0.0.1", 0, ListenerKind::kTcp, "loopback");
  if (!loopPort.ok()) {
    return std::move(loopPort).error();
  }
  t.loopbackPort = *loopPort;
  if (auto r = add(sbNetns, "::1", t.loopbackPort, ListenerKind::kTcp, "loopback"); !r.ok()) {
    return std::move(r).error();
  }
  EGRESSD_TRY(listeners.start());

  // The policy and the cases it is checked with.
  std::vector<Case> cases;
  Result<policy::Policy> policy = Error(0, "");
  if (o.policyFile.empty()) {
    report.policyName = "built-in test policy";
    policy = policy::parsePolicy(builtinPolicyYaml(t.origin), "built-in verify policy");
  } else {
    report.policyName = o.policyFile;
    policy = daemon::loadPolicy(o.policyFile);
  }
  if (!policy.ok()) {
    return std::move(policy).error();
  }
  for (const Case& c : builtinCases()) {
    const bool selected = o.onlyCases.empty() || std::find(o.onlyCases.begin(), o.onlyCases.end(),
                                                           c.id) != o.onlyCases.end();
    const bool applies =
        o.policyFile.empty() || (c.policyIndependent && !allowedByPolicyKinds(*policy, c));
    if (selected && applies) {
      cases.push_back(c);
    }
  }
  if (!o.policyFile.empty()) {
    for (Case& c : policySamples(*policy)) {
      cases.push_back(std::move(c));
    }
  }

  auto sb = VerifySandbox::create(*mount, *policy, sbNetns, t.dns + ":53");
  if (!sb.ok()) {
    return std::move(sb).error().wrap("arming verify's sandbox");
  }

  if (o.afterArmForTest) {
    o.afterArmForTest((*sb)->pinRoot(), (*sb)->id());
  }

  std::vector<sandbox::RunAsUser> users;
  for (const char* spec : {"root", "nobody"}) {
    auto u = sandbox::resolveRunAsUser(spec, nullptr, nullptr);
    if (!u.ok()) {
      return std::move(u).error();
    }
    users.push_back(*u);
  }
  const std::string runTag = randomTag();
  for (size_t ui = 0; ui < users.size(); ++ui) {
    if (o.interrupted()) {
      report.interrupted = true;
      break;
    }
    EGRESSD_TRY((*net)->checkIsolated());
    const std::string tokenPrefix = "vfy" + runTag + "u" + std::to_string(ui);
    auto results = runProbe(o, (*sb)->cgroup(), sbNetns, users[ui], t, tokenPrefix, cases);
    if (!results.ok()) {
      return std::move(results).error();
    }
    std::this_thread::sleep_for(kSettle);
    for (size_t k = 0; k < cases.size(); ++k) {
      CaseRow row;
      row.c = cases[k];
      row.user = users[ui].isRoot() ? "root" : users[ui].name;
      row.observed.call = (*results)[k];
      row.observed.reachedSinks = listeners.whereSeen(caseToken(tokenPrefix, k));
      for (const std::string& label : row.observed.reachedSinks) {
        const Sink& s = row.c.sink;
        if (!s.empty() && Listeners::labelMatches(label, s.host, s.port, s.udp)) {
          row.observed.tokenAtSink = true;
        }
      }
      row.verdict = judge(row.c, row.observed);
      if (row.observed.call.err == ECANCELED && row.observed.call.step == "probe") {
        row.verdict = o.interrupted() ? Verdict::kSkip : Verdict::kError;
      }
      report.rows.push_back(std::move(row));
    }
  }
  report.interrupted = report.interrupted || o.interrupted();
  listeners.stop();
  return report;
}

}  // namespace egressd::verify
