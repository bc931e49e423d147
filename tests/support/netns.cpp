#include "netns.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cstdio>
#include <sstream>

#include "common/fs.h"
#include "common/unique_fd.h"
#include "names.h"
#include "process.h"

namespace egressd::test {
namespace {

constexpr long kNsfsMagic = 0x6e736673;

std::string hex(int v) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%x", v);
  return buf;
}

void warnCleanup(const Status& st) {
  if (!st.ok()) {
    std::fprintf(stderr, "[egressd-test] cleanup: %s\n", st.error().message().c_str());
  }
}

std::vector<std::string> ipArgs(const std::string& netns, std::vector<std::string> rest) {
  std::vector<std::string> argv{"ip"};
  if (!netns.empty()) {
    argv.push_back("-n");
    argv.push_back(netns);
  }
  argv.insert(argv.end(), rest.begin(), rest.end());
  return argv;
}

}  // namespace

// ---- TestNetns ----

Result<TestNetns> TestNetns::create() {
  std::string name = uniqueName();
  EGRESSD_TRY(runChecked({"ip", "netns", "add", name}));
  TestNetns ns(name);
  EGRESSD_TRY(runChecked({"ip", "-n", name, "link", "set", "lo", "up"}));
  return ns;
}

TestNetns::TestNetns(TestNetns&& other) noexcept : name_(std::exchange(other.name_, "")) {}

TestNetns& TestNetns::operator=(TestNetns&& other) noexcept {
  if (this != &other) {
    warnCleanup(destroy());
    name_ = std::exchange(other.name_, "");
  }
  return *this;
}

TestNetns::~TestNetns() {
  warnCleanup(destroy());
}

bool TestNetns::exists() const {
  if (name_.empty()) {
    return false;
  }
  struct statfs fs {};
  return ::statfs(path().c_str(), &fs) == 0 && fs.f_type == kNsfsMagic;
}

Status TestNetns::exec(const std::vector<std::string>& argv) const {
  if (!exists()) {
    return Error(ENOENT, "netns " + name_ + " does not exist");
  }
  auto r = run(SpawnOptions{.argv = argv, .netnsPath = path()}, milliseconds(10000));
  if (!r.ok()) {
    return std::move(r).error();
  }
  if (!r->succeeded()) {
    return Error(EIO, "in netns " + name_ + ": '" + joinArgv(argv) + "' failed: " + r->describe());
  }
  return okStatus();
}

Status TestNetns::sysctl(const std::string& key, const std::string& value) const {
  return exec({"sysctl", "-q", "-w", key + "=" + value});
}

Status TestNetns::destroy() {
  if (name_.empty()) {
    return okStatus();
  }
  Status st = deleteNetns(name_);
  if (st.ok()) {
    name_.clear();
  }
  return st;
}

Status deleteNetns(const std::string& name) {
  struct stat st {};
  if (::stat(("/var/run/netns/" + name).c_str(), &st) != 0) {
    return okStatus();
  }
  // Processes keep a namespace alive after `ip netns del`; end ours by pid first.
  auto pids = run(SpawnOptions{.argv = {"ip", "netns", "pids", name}}, milliseconds(5000));
  if (pids.ok()) {
    std::istringstream in(pids->out);
    pid_t pid;
    while (in >> pid) {
      if (pid > 1 && pid != ::getpid()) {
        ::kill(pid, SIGKILL);
      }
    }
  }
  return runChecked({"ip", "netns", "del", name});
}

// ---- VethPair ----

namespace {

// net.ipv6.conf.default.disable_ipv6=1 on the host (also set by all.disable_ipv6=1, and
// carried into new namespaces by net.core.devconf_inherit_init_net) would leave a new veth
// without IPv6, and the world's IPv6 addresses could not be added. The setting lives on the
// test's own device and goes away with it: nothing of the host's to restore.
Status enableIpv6On(const std::string& netns, const std::string& dev) {
  if (!pathExists("/proc/sys/net/ipv6")) {
    return okStatus();  // no IPv6 in the kernel: E2eTest skips before using the world
  }
  std::vector<std::string> argv{"sysctl", "-q", "-w", "net.ipv6.conf." + dev + ".disable_ipv6=0"};
  if (!netns.empty()) {
    argv.insert(argv.begin(), {"ip", "netns", "exec", netns});
  }
  return runChecked(argv);
}

}  // namespace

Result<VethPair> VethPair::create(const std::string& hostName, const std::string& peerName,
                                  const std::string& peerNetns, const std::string& hostNetns) {
  if (hostName.size() > 15 || peerName.size() > 15) {
    return Error(EINVAL, "veth names longer than 15 characters: " + hostName + ", " + peerName);
  }
  std::vector<std::string> rest{"link", "add", hostName, "type", "veth", "peer", "name", peerName};
  if (!peerNetns.empty()) {
    rest.push_back("netns");
    rest.push_back(peerNetns);
  }
  EGRESSD_TRY(runChecked(ipArgs(hostNetns, rest)));
  VethPair pair(hostName, peerName, hostNetns);
  EGRESSD_TRY(enableIpv6On(hostNetns, hostName));
  EGRESSD_TRY(enableIpv6On(peerNetns, peerName));
  return pair;
}

VethPair::VethPair(VethPair&& other) noexcept
    : host_(std::exchange(other.host_, "")),
      peer_(std::exchange(other.peer_, "")),
      hostNetns_(std::move(other.hostNetns_)) {}

VethPair::~VethPair() {
  warnCleanup(destroy());
}

bool VethPair::exists() const {
  if (host_.empty()) {
    return false;
  }
  auto r = run(SpawnOptions{.argv = ipArgs(hostNetns_, {"link", "show", "dev", host_})},
               milliseconds(5000));
  return r.ok() && r->succeeded();
}

Status VethPair::destroy() {
  if (host_.empty()) {
    return okStatus();
  }
  if (exists()) {
    EGRESSD_TRY(runChecked(ipArgs(hostNetns_, {"link", "del", "dev", host_})));
  }
  host_.clear();
  peer_.clear();
  return okStatus();
}

// ---- TestNetwork ----

namespace {

// Serialises subnet picking between concurrently starting test processes.
class NetLock {
 public:
  NetLock() : fd_(::open("/run/egressd-test-net.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600)) {
    if (fd_) {
      ::flock(fd_.get(), LOCK_EX);
    }
  }
  ~NetLock() {
    if (fd_) {
      ::flock(fd_.get(), LOCK_UN);
    }
  }

 private:
  UniqueFd fd_;
};

Result<int> pickSubnet() {
  auto addrs = run(SpawnOptions{.argv = {"ip", "-o", "addr", "show"}}, milliseconds(5000));
  if (!addrs.ok()) {
    return std::move(addrs).error();
  }
  int start = static_cast<int>(::getpid() % 250);
  for (int i = 0; i < 250; ++i) {
    int n = (start + i) % 250 + 1;
    std::string v4 = " 198.18." + std::to_string(n) + ".";
    std::string v6 = " 2001:db8:e9:" + hex(n) + "::";
    if (addrs->out.find(v4) == std::string::npos && addrs->out.find(v6) == std::string::npos) {
      return n;
    }
  }
  return Error(EADDRINUSE, "no free 198.18.N.0/24 test subnet");
}

}  // namespace

std::string TestNetwork::ip4(int host) const {
  return "198.18." + std::to_string(n_) + "." + std::to_string(host);
}
std::string TestNetwork::ip6(int host) const {
  return "2001:db8:e9:" + hex(n_) + "::" + hex(host);
}
std::string TestNetwork::sandboxIp4(int host) const {
  return "198.19." + std::to_string(n_) + "." + std::to_string(host);
}
std::string TestNetwork::sandboxIp6(int host) const {
  return "2001:db8:e9:" + hex(0x100 + n_) + "::" + hex(host);
}

Result<std::unique_ptr<TestNetwork>> TestNetwork::create(const TestNetworkOptions& opts) {
  std::unique_ptr<TestNetwork> net(new TestNetwork());
  auto inet = TestNetns::create();
  if (!inet.ok()) {
    return std::move(inet).error().wrap("create internet netns");
  }
  net->internet_ = std::make_unique<TestNetns>(std::move(inet).value());
  const std::string in = net->internet_->name();

  std::string base = uniqueVethBase();
  {
    NetLock lock;
    auto n = pickSubnet();
    if (!n.ok()) {
      return std::move(n).error();
    }
    net->n_ = *n;
    auto up = VethPair::create(base + "h", base + "p", in);
    if (!up.ok()) {
      return std::move(up).error().wrap("create uplink veth");
    }
    net->uplink_ = std::make_unique<VethPair>(std::move(up).value());
    const std::string h = base + "h";
    EGRESSD_TRY(runChecked({"ip", "addr", "add", net->ip4(1) + "/24", "dev", h}));
  }
  const std::string h = base + "h";
  const std::string p = base + "p";
  for (const auto& argv : std::vector<std::vector<std::string>>{
           {"ip", "-6", "addr", "add", net->ip6(1) + "/64", "dev", h, "nodad"},
           {"ip", "link", "set", h, "up"},
           {"ip", "-n", in, "addr", "add", net->ip4(2) + "/24", "dev", p},
           {"ip", "-n", in, "addr", "add", net->ip4(3) + "/24", "dev", p},
           {"ip", "-n", in, "addr", "add", net->ip4(4) + "/24", "dev", p},
           {"ip", "-n", in, "-6", "addr", "add", net->ip6(2) + "/64", "dev", p, "nodad"},
           {"ip", "-n", in, "-6", "addr", "add", net->ip6(3) + "/64", "dev", p, "nodad"},
           {"ip", "-n", in, "-6", "addr", "add", net->ip6(4) + "/64", "dev", p, "nodad"},
           {"ip", "-n", in, "link", "set", p, "up"},
       }) {
    EGRESSD_TRY(runChecked(argv));
  }

  if (opts.sandboxNetns) {
    auto sbx = TestNetns::create();
    if (!sbx.ok()) {
      return std::move(sbx).error().wrap("create sandbox netns");
    }
    net->sandbox_ = std::make_unique<TestNetns>(std::move(sbx).value());
    const std::string sn = net->sandbox_->name();
    std::string sbase = uniqueVethBase();
    const std::string s = sbase + "s";
    const std::string i = sbase + "i";
    auto link = VethPair::create(s, i, in, sn);
    if (!link.ok()) {
      return std::move(link).error().wrap("create sandbox veth");
    }
    net->sandboxLink_ = std::make_unique<VethPair>(std::move(link).value());
    for (const auto& argv : std::vector<std::vector<std::string>>{
             {"ip", "-n", sn, "addr", "add", net->sandboxIp4(2) + "/24", "dev", s},
             {"ip", "-n", sn, "-6", "addr", "add", net->sandboxIp6(2) + "/64", "dev", s, "nodad"},
             {"ip", "-n", sn, "link", "set", s, "up"},
             {"ip", "-n", in, "addr", "add", net->sandboxIp4(1) + "/24", "dev", i},
             {"ip", "-n", in, "-6", "addr", "add", net->sandboxIp6(1) + "/64", "dev", i, "nodad"},
             {"ip", "-n", in, "link", "set", i, "up"},
             {"ip", "-n", sn, "route", "add", "198.18." + std::to_string(net->n_) + ".0/24", "via",
              net->sandboxIp4(1)},
             {"ip", "-n", sn, "-6", "route", "add", "2001:db8:e9:" + hex(net->n_) + "::/64", "via",
              net->sandboxIp6(1)},
         }) {
      EGRESSD_TRY(runChecked(argv));
    }
    EGRESSD_TRY(net->sandbox_->sysctl("net.ipv4.ping_group_range", "0 2147483647"));
  }
  return net;
}

TestNetwork::~TestNetwork() = default;

Status TestNetwork::checkExists() const {
  if (!internet_ || !internet_->exists()) {
    return Error(ENOENT, "test internet netns is gone");
  }
  if (sandbox_ && !sandbox_->exists()) {
    return Error(ENOENT, "test sandbox netns " + sandbox_->name() + " is gone");
  }
  if (!uplink_ || !uplink_->exists()) {
    return Error(ENOENT, "test uplink veth is gone");
  }
  return okStatus();
}

}  // namespace egressd::test
