// A container sandbox with its own network namespace, made through the control API:
// `egressctl sandbox create ID --policy P --cgroup CG --netns /var/run/netns/NAME` on the
// shared multi-sandbox daemon, with the world's sandbox netns (world.h) as the container's.
// Clients join the sandbox cgroup AND that netns, as a container runtime would place them.
//
// What only a netns sandbox can get wrong, and what these tests therefore pin down: the
// proxy's listener must live in the sandbox's netns (the kernel redirects to loopback there),
// SOCK_DESTROY must search that netns (not the daemon's), and delete must detach the
// programs from the cgroup while the daemon goes on serving the others.
#include <algorithm>
#include <set>

#include "common/fs.h"
#include "control_fixture.h"

namespace egressd::e2e {
namespace {

using nlohmann::json;
using test::CtlReply;
using test::milliseconds;

const std::string kA = std::to_string(kTcpA);

// "198.18.N.1:PORT" -> "198.18.N.1" (the peer field of http_origin.py's /whoami).
std::string peerHost(const CurlResult& r) {
  std::string peer = r.whoami().value("peer", "");
  if (const size_t colon = peer.rfind(':'); colon != std::string::npos) {
    peer.resize(colon);
  }
  if (peer.size() >= 2 && peer.front() == '[') {
    peer = peer.substr(1, peer.size() - 2);
  }
  return peer;
}

// The JSON object on the last line of `out` (null when there is none).
json lastJsonLine(const std::string& out) {
  std::string text = out;
  while (!text.empty() && text.back() == '\n') {
    text.pop_back();
  }
  const size_t nl = text.rfind('\n');
  auto j = json::parse(nl == std::string::npos ? text : text.substr(nl + 1), nullptr, false);
  return j.is_object() ? j : json();
}

// SOCK_DESTROY shows as ECONNABORTED (control-plane.md); a reset is accepted too. Not "eof"
// (the server closing) nor "timeout" (packets dropped while the socket lives on).
bool endedByEgressd(const std::string& result) {
  return result == "error:ECONNABORTED" || result == "error:ECONNRESET";
}

std::vector<std::string> withProbe(std::vector<std::string> args) {
  args.insert(args.begin(), probeBin());
  return args;
}

// `bpftool -j cgroup show CGROUP`: the programs attached to it. (bpftool prints a bare
// newline, not "[]", for a cgroup with none.)
Result<json> cgroupPrograms(const std::string& cgroup) {
  auto r = test::run({.argv = {"bpftool", "-j", "cgroup", "show", cgroup}}, milliseconds(10000));
  if (!r.ok()) {
    return std::move(r).error();
  }
  if (!r->succeeded()) {
    return Error(EIO, "bpftool cgroup show " + cgroup + ": " + r->describe());
  }
  if (r->out.find_first_not_of(" \n") == std::string::npos) {
    return json::array();
  }
  auto j = json::parse(r->out, nullptr, false);
  if (!j.is_array()) {
    return Error(EINVAL, "bpftool cgroup show " + cgroup + ": not a JSON array: " + r->out);
  }
  return j;
}

class ControlNetns : public ControlPlaneNetnsTest {
 protected:
  // A policy whose proxy lets allowed.test through and whose kernel rules allow TCP `kTcpA`
  // to .3 and .4.
  PolicySpec basePolicy(const std::string& name) {
    PolicySpec s;
    s.name = name;
    s.allowedHosts = {"allowed.test"};
    s.allow = {{.cidr = w().ip4(3) + "/32", .ports = {kTcpA}, .protocol = "tcp"},
               {.cidr = w().ip4(4) + "/32", .ports = {kTcpA}, .protocol = "tcp"}};
    return s;
  }

  // GET http://HOST:8080/whoami?tag=TAG from `sb` (HOST resolved by curl to .3 or .4).
  CurlResult fetch(const CpSandbox& sb, const std::string& host, const std::string& tag) {
    const int ip = host == "other.test" || host.ends_with(".other.test") ? 4 : 3;
    return sb.get(host, kHttpOrigin, w().ip4(ip), "/whoami?tag=" + tag);
  }
  // The same request from the container's netns but outside every sandbox cgroup.
  CurlResult fetchOutsideCgroup(const std::string& host, const std::string& tag) {
    return fetchInNetns("", host, tag);
  }
  size_t reached(const std::string& tag) const { return origin_->requestsMatching(tag).size(); }

  // Through egressd's proxy: 200, seen once by the origin, from the daemon's side of the
  // test network (the proxy connects from the host, never from the container's address).
  void expectProxied(const CpSandbox& sb, const std::string& host) {
    const std::string t = uniqueTag("proxied");
    CurlResult r = fetch(sb, host, t);
    EXPECT_EQ(r.status(), 200) << sb.id() << " -> " << host << ": " << r.describe();
    EXPECT_EQ(reached(t), 1u) << sb.id() << " -> " << host << ": the origin did not see " << t;
    EXPECT_EQ(peerHost(r), w().ip4(1))
        << sb.id() << " -> " << host << " did not come through egressd's proxy: " << r.describe();
  }
  // egressd's 403 and nothing at the origin.
  void expectDenied(const CpSandbox& sb, const std::string& host, const std::string& reason) {
    const std::string t = uniqueTag("denied");
    CurlResult r = fetch(sb, host, t);
    EXPECT_EQ(r.status(), 403) << sb.id() << " -> " << host << ": " << r.describe();
    EXPECT_EQ(r.last().header("X-Egressd-Reason"), reason)
        << sb.id() << " -> " << host << ": " << r.describe();
    EXPECT_EQ(reached(t), 0u) << sb.id() << " -> " << host << " reached the origin:\n"
                              << origin_->log();
  }
};

// 1. The container sandbox's HTTP goes through egressd's proxy (listening in its netns):
//    an allowed name is served, another gets egressd's 403; `sandbox show` names the netns.
TEST_F(ControlNetns, ProxyServesAndDeniesInsideTheSandboxNetns) {
  const PolicySpec s = basePolicy("netns-proxy");
  applyPolicy(s.name, cpPolicy(s));
  auto sb = sandbox("netns-proxy", s.name, /*createCgroup=*/false, netns_);
  ASSERT_TRUE(sb);
  EXPECT_EQ(sb->created().value("netns", ""), netns_) << sb->created();

  CtlReply show = sb->show();
  ASSERT_TRUE(show.ok()) << show.describe();
  EXPECT_EQ(show.body.value("netns", ""), netns_) << show.body;
  EXPECT_EQ(show.body.value("cgroup", ""), sb->cgroup()) << show.body;
  EXPECT_GT(show.body.value("proxyPort", 0), 0) << show.body;
  // The human summary names it too.
  RunResult human = daemon().ctl({"sandbox", "show", sb->id()});
  EXPECT_TRUE(human.succeeded()) << human.describe();
  EXPECT_NE(human.out.find(netns_), std::string::npos) << human.describe();

  expectProxied(*sb, "allowed.test");
  expectDenied(*sb, "other.test", "not_in_allowed_hosts");
  expectDenied(*sb, "www.allowed.test", "not_in_allowed_hosts");  // an exact name only

  // The same netns outside the sandbox cgroup is not egressd's business: straight to the
  // origin, from the container's own address (so the peer above does tell the proxy apart).
  const std::string t = uniqueTag("outside");
  CurlResult direct = fetchOutsideCgroup("other.test", t);
  EXPECT_EQ(direct.status(), 200) << direct.describe();
  EXPECT_EQ(peerHost(direct), w().net->sandboxIp4(2)) << direct.describe();
  EXPECT_EQ(reached(t), 1u) << origin_->log();

  // A runtime change reaches the netns sandbox's proxy at once.
  EXPECT_CTL_OK(sb->ctl({"allow-host", "other.test"}));
  expectProxied(*sb, "other.test");
}

// 2. Tightening the kernel rules ends the container's established connection to the newly
//    denied address (SOCK_DESTROY in the sandbox's netns), not the one to another allowed
//    address, nor the same connection from a process of that netns outside the cgroup.
TEST_F(ControlNetns, DenyHostEndsEstablishedConnectionsInTheSandboxNetns) {
  const PolicySpec s = basePolicy("netns-tighten");
  applyPolicy(s.name, cpPolicy(s));
  auto sb = sandbox("netns-tighten", s.name, /*createCgroup=*/false, netns_);
  ASSERT_TRUE(sb);
  CtlReply before = sb->show();
  ASSERT_TRUE(before.ok()) << before.describe();
  const int closedBefore = before.body["counters"].value("closedSockets", -1);
  ASSERT_GE(closedBefore, 0) << before.body;

  const std::string tcp3 = hostPort(w().ip4(3), kTcpA);
  const std::string tcp4 = hostPort(w().ip4(4), kTcpA);
  auto tmp = test::TempDir::createOrThrow();
  const std::string trigger = tmp.path() + "/go";
  const std::string holdConns = clientsDir() + "/hold_conns.py";
  ASSERT_OK_AND_ASSIGN(test::Process holder,
                       spawnInCgroup({test::python3Bin(), holdConns, "--tcp", tcp3, "--tcp", tcp4,
                                      "--trigger", trigger, "--wait", "20"},
                                     sb->cgroup(), netns_));
  // Same netns, same destination, outside the sandbox cgroup.
  ASSERT_OK_AND_ASSIGN(test::Process bystander,
                       spawnInCgroup({test::python3Bin(), holdConns, "--tcp", tcp3, "--trigger",
                                      trigger, "--wait", "20"},
                                     "", netns_));
  for (test::Process* p : {&holder, &bystander}) {
    ASSERT_TRUE(p->waitForOutput("\"ready\"", milliseconds(10000)))
        << p->stdoutText() << p->stderrText();
  }
  const json ready = lastJsonLine(holder.stdoutText());
  for (const auto& ep : {tcp3, tcp4}) {
    ASSERT_EQ(ready["ready"]["tcp"].value(ep, ""), "ok") << ep << ": " << holder.stdoutText();
  }
  ASSERT_EQ(lastJsonLine(bystander.stdoutText())["ready"]["tcp"].value(tcp3, ""), "ok")
      << bystander.stdoutText();
  // The servers saw the container's own address: the connections are the netns's.
  EXPECT_TRUE(w().waitForServerEvent(w().net->sandboxIp4(2), milliseconds(2000)))
      << w().servers->log();

  CtlReply deny = sb->ctl({"deny-host", w().ip4(3)});
  ASSERT_TRUE(deny.ok()) << deny.describe();
  ASSERT_OK(writeFileAtomic(trigger, "go\n"));
  ASSERT_OK_AND_ASSIGN(RunResult hr, holder.wait(milliseconds(15000)));
  ASSERT_OK_AND_ASSIGN(RunResult br, bystander.wait(milliseconds(15000)));
  const json after = lastJsonLine(hr.out);
  ASSERT_TRUE(after.contains("after")) << hr.describe();
  const std::string t3 = after["after"]["tcp"].value(tcp3, "");
  EXPECT_TRUE(endedByEgressd(t3)) << "the sandbox's connection to the denied address " << tcp3
                                  << " went on (" << t3 << "): " << hr.describe();
  EXPECT_EQ(after["after"]["tcp"].value(tcp4, ""), "ok") << hr.describe();
  const json bAfter = lastJsonLine(br.out);
  EXPECT_EQ(bAfter["after"]["tcp"].value(tcp3, ""), "ok")
      << "a connection of the netns outside the sandbox cgroup was ended: " << br.describe();

  // New connections follow the new rule as well.
  EXPECT_PROBE_ERR(sb->run({probeBin(), "tcp", w().ip4(3), kA}), "EPERM");
  EXPECT_PROBE_OK(sb->run({probeBin(), "tcp", w().ip4(4), kA}));

  CtlReply show = sb->show();
  ASSERT_TRUE(show.ok()) << show.describe();
  EXPECT_EQ(show.body["counters"].value("closedSockets", -1), closedBefore + 1)
      << "exactly the one connection to " << tcp3 << " was to be ended: " << show.body;
}

// 3. `sandbox delete` of the netns sandbox detaches everything from its cgroup (its
//    processes in the netns are free again) while the daemon serves the other sandboxes, and
//    the same netns can hold a new sandbox afterwards.
TEST_F(ControlNetns, DeleteRemovesEnforcementAndTheDaemonServesTheOthers) {
  const PolicySpec s = basePolicy("netns-delete");
  PolicySpec narrow = s;
  narrow.allow = {{.cidr = w().ip4(3) + "/32", .ports = {kTcpA}, .protocol = "tcp"}};
  narrow.name = "netns-delete-narrow";
  applyPolicy(s.name, cpPolicy(s));
  applyPolicy(narrow.name, cpPolicy(narrow));
  auto sb = sandbox("netns-delete", narrow.name, /*createCgroup=*/false, netns_);
  auto other = sandbox("netns-delete-other", s.name);
  ASSERT_TRUE(sb && other);
  const std::string cgroup = sb->cgroup();

  ASSERT_OK_AND_ASSIGN(json progs, cgroupPrograms(cgroup));
  ASSERT_TRUE(progs.is_array() && !progs.empty())
      << "nothing attached to " << cgroup << " while the sandbox exists: " << progs;
  EXPECT_PROBE_ERR(sb->run({probeBin(), "tcp", w().ip4(4), kA}), "EPERM");
  expectProxied(*sb, "allowed.test");
  // Its proxy listens on loopback inside the container's netns.
  CtlReply shown = sb->show();
  ASSERT_TRUE(shown.ok()) << shown.describe();
  const std::string proxyPort = std::to_string(shown.body.value("proxyPort", 0));
  const std::vector<std::string> toProxy{"tcp", "127.0.0.1", proxyPort, "--no-read"};
  ASSERT_PROBE_OK(runGuarded(withProbe(toProxy), "", netns_, milliseconds(15000)));

  CtlReply del = daemon().ctlJson({"sandbox", "delete", sb->id()});
  ASSERT_TRUE(del.ok()) << del.describe();
  sb->forget();
  EXPECT_EQ(del.body.value("deleted", ""), "netns-delete") << del.body;

  ASSERT_OK_AND_ASSIGN(progs, cgroupPrograms(cgroup));
  EXPECT_TRUE(progs.is_array() && progs.empty())
      << "still attached to " << cgroup << " after delete: " << progs;
  CtlReply gone = sb->show();
  EXPECT_EQ(gone.errorStatus(), 404) << gone.describe();
  CtlReply list = daemon().ctlJson({"sandbox", "list"});
  ASSERT_TRUE(list.ok()) << list.describe();
  std::set<std::string> ids;
  for (const auto& e : list.body["sandboxes"]) {
    ids.insert(e.value("id", ""));
  }
  EXPECT_EQ(ids.count("netns-delete"), 0u) << list.body;
  EXPECT_EQ(ids.count("netns-delete-other"), 1u) << list.body;

  // The cgroup (still there, the test's) is no longer enforced: a connection the policy
  // denied goes through, and port 8080 is no longer redirected to a proxy.
  EXPECT_PROBE_OK(sb->run({probeBin(), "tcp", w().ip4(4), kA}));
  const std::string t = uniqueTag("after-delete");
  CurlResult direct = fetch(*sb, "other.test", t);
  EXPECT_EQ(direct.status(), 200) << direct.describe();
  EXPECT_EQ(peerHost(direct), w().net->sandboxIp4(2)) << direct.describe();
  // Its listener in the netns is closed.
  EXPECT_PROBE_ERR(runGuarded(withProbe(toProxy), "", netns_, milliseconds(15000)), "ECONNREFUSED");

  // The daemon goes on: the other sandbox is served and denied as before, and changes apply.
  ASSERT_TRUE(daemon().running()) << daemon().logs();
  expectProxied(*other, "allowed.test");
  expectDenied(*other, "other.test", "not_in_allowed_hosts");
  EXPECT_CTL_OK(other->ctl({"allow-host", "other.test"}));
  expectProxied(*other, "other.test");

  // The same netns takes a new sandbox (a fresh proxy listener there).
  auto again = sandbox("netns-delete-again", narrow.name, /*createCgroup=*/false, netns_);
  ASSERT_TRUE(again);
  expectProxied(*again, "allowed.test");
  expectDenied(*again, "other.test", "not_in_allowed_hosts");
  EXPECT_PROBE_ERR(again->run({probeBin(), "tcp", w().ip4(4), kA}), "EPERM");
}

}  // namespace
}  // namespace egressd::e2e
