#include "world.h"

#include <unistd.h>

#include <sstream>
#include <thread>

#include "host_features.h"

namespace egressd::e2e {
namespace {

using test::milliseconds;

std::optional<World>& worldSlot() {
  static std::optional<World> slot;
  return slot;
}

std::optional<Error>& worldError() {
  static std::optional<Error> err;
  return err;
}

Status buildWorld(World& w) {
  auto net = test::TestNetwork::create({.sandboxNetns = true});
  if (!net.ok()) {
    return std::move(net).error().wrap("create test network");
  }
  w.net = std::move(net).value();
  const std::string inet = w.net->internet().path();

  std::vector<std::string> tcp;
  std::vector<std::string> udp;
  for (int host : {2, 3, 4}) {
    for (int port : {kTcpA, kTcpB, kHttp, kHttps}) {
      tcp.push_back(w.ip4(host) + ":" + std::to_string(port));
      tcp.push_back("[" + w.ip6(host) + "]:" + std::to_string(port));
    }
  }
  for (int host : {3, 4}) {
    for (int port : {kUdp, kHttps}) {
      udp.push_back(w.ip4(host) + ":" + std::to_string(port));
      udp.push_back("[" + w.ip6(host) + "]:" + std::to_string(port));
    }
  }
  auto servers = test::TestServers::start(inet, tcp, udp);
  if (!servers.ok()) {
    return std::move(servers).error().wrap("start servers in " + w.net->internet().name());
  }
  w.servers.emplace(std::move(servers).value());

  test::DnsmasqOptions dns;
  dns.listen = {w.ip4(2), w.ip6(2)};
  // --address=/name/ also answers every subdomain (*.allowed.test). rebind.test points at
  // loopback: the only address outside the test network the world may ever name.
  dns.records = {"allowed.test/" + w.ip4(3), "allowed.test/" + w.ip6(3), "other.test/" + w.ip4(4),
                 "rebind.test/127.0.0.1"};
  auto dnsmasq = test::TestDnsmasq::start(inet, dns, "allowed.test");
  if (!dnsmasq.ok()) {
    return std::move(dnsmasq).error().wrap("start dnsmasq");
  }
  w.dns.emplace(std::move(dnsmasq).value());
  return okStatus();
}

// Tears the world down after the last test (before static destruction).
class WorldEnvironment : public ::testing::Environment {
 public:
  void TearDown() override { worldSlot().reset(); }
};

[[maybe_unused]] ::testing::Environment* const gWorldEnv =
    ::testing::AddGlobalTestEnvironment(new WorldEnvironment());

RunResult errorResult(const Error& e) {
  RunResult r;
  r.exitCode = -1;
  r.err = e.message();
  return r;
}

}  // namespace

size_t World::serverEventsFor(const std::string& local) const {
  std::istringstream in(servers->log());
  std::string line;
  size_t n = 0;
  while (std::getline(in, line)) {
    if (line.find(" " + local + " ") != std::string::npos) {
      ++n;
    }
  }
  return n;
}

bool World::waitForServerEvent(const std::string& needle, milliseconds timeout) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (servers->log().find(needle) != std::string::npos) {
      return true;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return false;
    }
    std::this_thread::sleep_for(milliseconds(20));
  }
}

Result<World*> world() {
  if (worldError()) {
    return *worldError();
  }
  if (!worldSlot()) {
    worldSlot().emplace();
    Status st = buildWorld(*worldSlot());
    if (!st.ok()) {
      worldSlot().reset();
      worldError() = st.error();
      return st.error();
    }
  }
  return &*worldSlot();
}

Result<test::TestHttpOrigin*> httpOrigin() {
  auto w = world();
  if (!w.ok()) {
    return std::move(w).error();
  }
  World& theWorld = **w;
  if (!theWorld.http) {
    std::vector<std::string> endpoints;
    for (int host : {3, 4}) {
      endpoints.push_back(theWorld.ip4(host) + ":" + std::to_string(kHttpOrigin));
      endpoints.push_back("[" + theWorld.ip6(host) + "]:" + std::to_string(kHttpOrigin));
    }
    auto origin = test::TestHttpOrigin::start(theWorld.net->internet().path(), endpoints);
    if (!origin.ok()) {
      return std::move(origin).error().wrap("start http_origin.py in " +
                                            theWorld.net->internet().name());
    }
    theWorld.http.emplace(std::move(origin).value());
  }
  return &*theWorld.http;
}

Result<test::TestCa*> testCa() {
  auto w = world();
  if (!w.ok()) {
    return std::move(w).error();
  }
  World& theWorld = **w;
  if (!theWorld.ca) {
    test::TestCaOptions options;
    options.dnsNames = {"allowed.test", "*.allowed.test", "other.test", "*.other.test"};
    options.ips = {theWorld.ip4(3), theWorld.ip4(4), theWorld.ip6(3), theWorld.ip6(4)};
    auto ca = test::TestCa::create(options);
    if (!ca.ok()) {
      return std::move(ca).error().wrap("make the test CA");
    }
    theWorld.ca.emplace(std::move(ca).value());
  }
  return &*theWorld.ca;
}

Result<test::TestHttpOrigin*> httpsOrigin() {
  auto ca = testCa();
  if (!ca.ok()) {
    return std::move(ca).error();
  }
  World& theWorld = **world();
  if (!theWorld.https) {
    const test::TestCa& c = **ca;
    std::vector<test::TlsEndpoint> tls;
    for (int host : {3, 4}) {
      for (const auto& [port, cert] :
           {std::pair{kHttpsGood, &c.good()}, std::pair{kHttpsExpired, &c.expired()},
            std::pair{kHttpsWrongName, &c.wrongName()},
            std::pair{kHttpsUntrusted, &c.untrusted()}}) {
        for (const std::string& ep : {theWorld.ip4(host) + ":" + std::to_string(port),
                                      "[" + theWorld.ip6(host) + "]:" + std::to_string(port)}) {
          tls.push_back({ep, cert->certFile, cert->keyFile});
        }
      }
    }
    auto origin = test::TestHttpOrigin::start(theWorld.net->internet().path(), {}, tls);
    if (!origin.ok()) {
      return std::move(origin).error().wrap("start the HTTPS http_origin.py in " +
                                            theWorld.net->internet().name());
    }
    theWorld.https.emplace(std::move(origin).value());
  }
  return &*theWorld.https;
}

std::string probeBin() {
#ifdef EGRESSD_PROBE_BIN
  return EGRESSD_PROBE_BIN;
#else
  return "egressd-probe";
#endif
}

std::string policyYaml(const PolicySpec& spec) {
  std::ostringstream y;
  y << "name: " << spec.name << "\n";
  y << "enableInternet: " << (spec.enableInternet ? "true" : "false") << "\n";
  if (!spec.allow.empty()) {
    y << "allow:\n";
    for (const auto& a : spec.allow) {
      if (!a.host.empty()) {
        y << "  - host: \"" << a.host << "\"\n";
      } else {
        y << "  - cidr: " << a.cidr << "\n";
      }
      if (!a.ports.empty()) {
        y << "    ports: [";
        for (size_t i = 0; i < a.ports.size(); ++i) {
          y << (i ? ", " : "") << a.ports[i];
        }
        y << "]\n";
      }
      if (!a.protocol.empty()) {
        y << "    protocol: " << a.protocol << "\n";
      }
    }
  }
  auto list = [&](const char* key, const std::vector<std::string>& v) {
    if (!v.empty()) {
      y << key << ":\n";
      for (const auto& e : v) {
        y << "  - \"" << e << "\"\n";
      }
    }
  };
  list("allowedHosts", spec.allowedHosts);
  list("deniedHosts", spec.deniedHosts);
  std::string resolver = spec.resolver;
  if (resolver.empty()) {
    auto w = world();
    if (w.ok()) {
      resolver = (*w)->resolver4();
    }
  }
  if (!resolver.empty() || !spec.dnsExtra.empty()) {
    y << "dns:\n";
    if (!resolver.empty()) {
      y << "  upstream: \"" << resolver << "\"\n";
    }
    y << spec.dnsExtra;
  }
  if (spec.proxyPorts) {
    y << "proxyPorts: [";
    for (size_t i = 0; i < spec.proxyPorts->size(); ++i) {
      y << (i ? ", " : "") << (*spec.proxyPorts)[i];
    }
    y << "]\n";
  }
  y << spec.extraYaml;
  return y.str();
}

Result<std::unique_ptr<Sandbox>> Sandbox::start(const PolicySpec& spec, bool ownNetns) {
  return start(spec, SandboxOptions{.ownNetns = ownNetns});
}

Result<std::unique_ptr<Sandbox>> Sandbox::start(const PolicySpec& spec,
                                                const SandboxOptions& options) {
  auto w = world();
  if (!w.ok()) {
    return std::move(w).error();
  }
  auto cg = test::TestCgroup::create();
  if (!cg.ok()) {
    return std::move(cg).error();
  }
  std::string netns;
  if (options.ownNetns) {
    netns = (*w)->net->sandboxNetns()->path();
  }
  std::unique_ptr<Sandbox> s(new Sandbox(std::move(cg).value(), netns));
  test::EgressdDaemon::Options opts;
  opts.cgroup = s->cgroup_.path();
  opts.policyYaml = policyYaml(spec);
  opts.netnsPath = netns;
  opts.auditLog = options.auditLog;
  opts.metrics = options.metrics;
  opts.extraArgs.insert(opts.extraArgs.end(), options.daemonArgs.begin(), options.daemonArgs.end());
  auto d = test::EgressdDaemon::start(opts);
  if (!d.ok()) {
    return std::move(d).error().wrap("start egressd for " + s->cgroup_.path() + " with policy:\n" +
                                     opts.policyYaml);
  }
  s->daemon_ = std::move(d).value();
  return s;
}

RunResult runGuarded(const std::vector<std::string>& argv, const std::string& cgroup,
                     const std::string& netnsPath, milliseconds timeout) {
  // Never send anything unless the namespaces this test made are still there.
  auto w = world();
  if (!w.ok()) {
    return errorResult(w.error());
  }
  if (Status st = (*w)->net->checkExists(); !st.ok()) {
    return errorResult(st.error().wrap("refusing to run " + test::joinArgv(argv)));
  }
  auto r = test::run(test::SpawnOptions{.argv = argv, .cgroup = cgroup, .netnsPath = netnsPath},
                     timeout);
  if (!r.ok()) {
    return errorResult(r.error());
  }
  return std::move(r).value();
}

RunResult Sandbox::probe(const std::vector<std::string>& args) const {
  std::vector<std::string> argv{probeBin()};
  argv.insert(argv.end(), args.begin(), args.end());
  return runGuarded(argv, cgroup_.path(), netnsPath_, milliseconds(15000));
}

RunResult Sandbox::probeOutside(const std::vector<std::string>& args) const {
  std::vector<std::string> argv{probeBin()};
  argv.insert(argv.end(), args.begin(), args.end());
  return runGuarded(argv, "", netnsPath_, milliseconds(15000));
}

RunResult Sandbox::runInside(const std::vector<std::string>& argv, const std::string& cgroupPath,
                             milliseconds timeout) const {
  return runGuarded(argv, cgroupPath.empty() ? cgroup_.path() : cgroupPath, netnsPath_, timeout);
}

RunResult probeHost(const std::vector<std::string>& args) {
  std::vector<std::string> argv{probeBin()};
  argv.insert(argv.end(), args.begin(), args.end());
  return runGuarded(argv, "", "", milliseconds(15000));
}

::testing::AssertionResult ProbeOk(const RunResult& r) {
  if (r.exitCode == 0 && r.out.starts_with("OK")) {
    return ::testing::AssertionSuccess() << r.out;
  }
  return ::testing::AssertionFailure() << "expected probe OK, got " << r.describe();
}

::testing::AssertionResult ProbeErr(const RunResult& r, const std::string& errnoName) {
  if (r.exitCode == 1 && r.out.starts_with("ERR " + errnoName + " ")) {
    return ::testing::AssertionSuccess() << r.out;
  }
  return ::testing::AssertionFailure()
         << "expected probe ERR " << errnoName << ", got " << r.describe();
}

void E2eTest::SetUp() {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "e2e tests need root";
  }
  // The world gives every namespace and veth IPv6 addresses (and enables IPv6 on its own
  // veths when the host's default is off); only a kernel without IPv6 stops it.
  EGRESSD_SKIP_UNLESS_HOST_FEATURE(host::kIpv6);
  auto w = world();
  ASSERT_TRUE(w.ok()) << "test world: " << w.error().message();
  world_ = *w;
  auto st = world_->net->checkExists();
  ASSERT_TRUE(st.ok()) << st.error().message();
}

}  // namespace egressd::e2e

#include <nlohmann/json.hpp>

namespace egressd::e2e {

Result<std::map<std::string, int>> cgroupLinks(uint64_t cgroupId) {
  auto r = test::run({.argv = {"bpftool", "-j", "link", "show"}}, test::milliseconds(10000));
  if (!r.ok()) {
    return std::move(r).error();
  }
  if (!r->succeeded()) {
    return Error(EIO, "bpftool link show: " + r->describe());
  }
  std::map<std::string, int> counts;
  try {
    auto links = nlohmann::json::parse(r->out.empty() ? "[]" : r->out);
    for (const auto& l : links) {
      if (l.value("type", "") == "cgroup" && l.contains("cgroup_id") &&
          l["cgroup_id"].get<uint64_t>() == cgroupId) {
        ++counts[l.value("attach_type", "?")];
      }
    }
  } catch (const std::exception& e) {
    return Error(EINVAL, std::string("parse bpftool output: ") + e.what());
  }
  return counts;
}

::testing::AssertionResult SandboxNetnsHasNoDefaultRoute(const World& w) {
  const test::TestNetns* ns = w.net ? w.net->sandboxNetns() : nullptr;
  if (ns == nullptr || !ns->exists()) {
    return ::testing::AssertionFailure() << "the world's sandbox netns does not exist";
  }
  for (const char* family : {"-4", "-6"}) {
    auto r = test::run({.argv = {"ip", family, "-n", ns->name(), "route", "show", "default"}},
                       test::milliseconds(5000));
    if (!r.ok()) {
      return ::testing::AssertionFailure() << "ip route: " << r.error().message();
    }
    if (!r->succeeded()) {
      return ::testing::AssertionFailure() << "ip route: " << r->describe();
    }
    if (r->out.find_first_not_of(" \n") != std::string::npos) {
      return ::testing::AssertionFailure()
             << "sandbox netns " << ns->name() << " has a default route (" << family
             << "): " << r->out << "refusing to send to special destinations from it";
    }
  }
  return ::testing::AssertionSuccess();
}

Result<nlohmann::json> sandboxStatus(Sandbox& sb) {
  auto r = sb.daemon().ctl({"status", "--json"});
  if (!r.ok()) {
    return std::move(r).error();
  }
  if (!r->succeeded()) {
    return Error(EIO, "egressctl status --json: " + r->describe());
  }
  try {
    auto j = nlohmann::json::parse(r->out);
    for (const auto& s : j.at("sandboxes")) {
      if (s.value("id", "") == sb.daemon().sandboxId()) {
        return s;
      }
    }
    return Error(ENOENT, "sandbox " + sb.daemon().sandboxId() + " not in status: " + r->out);
  } catch (const std::exception& e) {
    return Error(EINVAL, std::string("status JSON: ") + e.what() + "\n" + r->out);
  }
}

uint64_t counterOf(const nlohmann::json& status, const std::string& reason) {
  if (!status.contains("counters") || !status["counters"].contains(reason)) {
    return 0;
  }
  return status["counters"][reason].get<uint64_t>();
}

Result<nlohmann::json> bpftoolJson(const std::vector<std::string>& args) {
  std::vector<std::string> argv{"bpftool", "-j"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = test::run({.argv = argv}, test::milliseconds(10000));
  if (!r.ok()) {
    return std::move(r).error();
  }
  if (!r->succeeded()) {
    return Error(EIO, test::joinArgv(argv) + ": " + r->describe());
  }
  try {
    return nlohmann::json::parse(r->out.empty() ? "[]" : r->out);
  } catch (const std::exception& e) {
    return Error(EINVAL, "parse output of " + test::joinArgv(argv) + ": " + e.what());
  }
}

Result<nlohmann::json> bpftoolMapDump(const std::string& pinnedPath) {
  return bpftoolJson({"map", "dump", "pinned", pinnedPath});
}

RunResult digIn(const Sandbox& sb, const std::string& server, const std::string& name, bool tcp) {
  return sb.runInside({"dig", "+time=2", "+tries=1", tcp ? "+tcp" : "+notcp", "@" + server, name});
}

}  // namespace egressd::e2e
