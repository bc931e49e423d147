// Daemon lifecycle: enforcement outlives the daemon (pinned links), a restart adopts it
// without attaching twice, a bad policy (apply or SIGHUP) leaves the rules in force while a
// good one changes them, detach removes everything, and egressctl reads the pinned state.
#include <signal.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <thread>

#include "bpf/abi.h"
#include "common/fs.h"
#include "world.h"

namespace egressd::e2e {
namespace {

const std::string kA = std::to_string(kTcpA);
const std::string kB = std::to_string(kTcpB);

// The 12 egressd programs, one per hook.
const std::set<std::string> kPrograms = {
    "egressd_connect4",    "egressd_connect6",   "egressd_sendmsg4",     "egressd_sendmsg6",
    "egressd_recvmsg4",    "egressd_recvmsg6",   "egressd_getpeername4", "egressd_getpeername6",
    "egressd_sock_create", "egressd_setsockopt", "egressd_sockops",      "egressd_skb_egress"};

// What `bpftool cgroup show` and `bpftool link show` say is attached to one cgroup.
struct Attachments {
  std::map<std::string, int> timesByProgram;      // program name -> attachments
  std::map<std::string, uint64_t> progByProgram;  // program name -> program id
  std::map<uint64_t, uint64_t> linkByProg;        // program id -> id of the link holding it
  size_t total = 0;
};

Result<Attachments> attachmentsOf(const test::TestCgroup& cg) {
  auto cgid = cg.id();
  if (!cgid.ok()) {
    return std::move(cgid).error();
  }
  auto progs = bpftoolJson({"cgroup", "show", cg.path()});
  if (!progs.ok()) {
    return std::move(progs).error();
  }
  auto links = bpftoolJson({"link", "show"});
  if (!links.ok()) {
    return std::move(links).error();
  }
  Attachments a;
  try {
    for (const auto& p : *progs) {
      const std::string name = p.value("name", "?");
      ++a.total;
      ++a.timesByProgram[name];
      a.progByProgram[name] = p.at("id").get<uint64_t>();
    }
    for (const auto& l : *links) {
      if (l.value("type", "") == "cgroup" && l.value("cgroup_id", uint64_t{0}) == *cgid) {
        a.linkByProg[l.at("prog_id").get<uint64_t>()] = l.at("id").get<uint64_t>();
      }
    }
  } catch (const std::exception& e) {
    return Error(EINVAL, std::string("bpftool JSON: ") + e.what());
  }
  return a;
}

// Each egressd program attached exactly once, each through a link; returns the failure.
::testing::AssertionResult EachProgramOnceViaLinks(const Attachments& a) {
  if (a.total != kPrograms.size()) {
    return ::testing::AssertionFailure()
           << a.total << " programs attached, expected " << kPrograms.size();
  }
  for (const auto& name : kPrograms) {
    auto it = a.timesByProgram.find(name);
    if (it == a.timesByProgram.end() || it->second != 1) {
      return ::testing::AssertionFailure()
             << name << " attached " << (it == a.timesByProgram.end() ? 0 : it->second) << " times";
    }
    if (!a.linkByProg.contains(a.progByProgram.at(name))) {
      return ::testing::AssertionFailure() << name << " is attached but held by no link";
    }
  }
  return ::testing::AssertionSuccess();
}

class DaemonLifecycleTest : public E2eTest {
 protected:
  PolicySpec allowPort(int port) {
    PolicySpec s;
    s.name = "allow-" + std::to_string(port);
    s.allow = {{.cidr = w().ip4(3) + "/32", .ports = {port}, .protocol = "tcp"}};
    return s;
  }
  // A policy whose only problem is on line 4 (an IPv4 octet of 300).
  std::string badPolicy() const {
    return "name: bad\n"
           "enableInternet: false\n"
           "allow:\n"
           "  - cidr: 198.18.300.3/32\n"
           "    ports: [7002]\n";
  }
  void expectOnlyPortAllowed(Sandbox& sb, const std::string& open, const std::string& closed) {
    EXPECT_PROBE_OK(sb.probe({"tcp", w().ip4(3), open})) << "port " << open;
    EXPECT_PROBE_ERR(sb.probe({"tcp", w().ip4(3), closed}), "EPERM") << "port " << closed;
  }
  // Polls until `port` connects from the sandbox (a reload is asynchronous), bounded.
  bool eventuallyAllowed(Sandbox& sb, const std::string& port) {
    for (int i = 0; i < 50; ++i) {
      if (ProbeOk(sb.probe({"--timeout-ms", "1000", "tcp", w().ip4(3), port}))) {
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }
  Result<nlohmann::json> statusOf(Sandbox& sb) { return sandboxStatus(sb); }
};

TEST_F(DaemonLifecycleTest, SigkillLeavesEnforcementAndRestartAdoptsIt) {
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(allowPort(kTcpA)));
  ASSERT_OK_AND_ASSIGN(uint64_t cgid, sb->cgroup().id());
  ASSERT_OK_AND_ASSIGN(auto linksBefore, cgroupLinks(cgid));
  ASSERT_GT(linksBefore.count("cgroup_inet4_connect"), 0u)
      << "no connect4 link on the sandbox cgroup";
  for (const auto& [type, n] : linksBefore) {
    EXPECT_EQ(n, 1) << type << " attached " << n << " times";
  }
  expectOnlyPortAllowed(*sb, kA, kB);

  ASSERT_OK_AND_ASSIGN(auto killed, sb->daemon().killAndWait(SIGKILL));
  EXPECT_EQ(killed.termSignal, SIGKILL);
  // No daemon: the pinned links and maps still enforce.
  expectOnlyPortAllowed(*sb, kA, kB);
  EXPECT_PROBE_ERR(sb->probe({"raw"}), "EPERM");
  ASSERT_OK_AND_ASSIGN(auto linksOrphaned, cgroupLinks(cgid));
  EXPECT_EQ(linksOrphaned, linksBefore);

  ASSERT_OK_AND_ASSIGN(auto attachedBefore, attachmentsOf(sb->cgroup()));
  ASSERT_TRUE(EachProgramOnceViaLinks(attachedBefore));

  ASSERT_OK(sb->daemon().restart());
  ASSERT_OK_AND_ASSIGN(auto linksAfter, cgroupLinks(cgid));
  EXPECT_EQ(linksAfter, linksBefore) << "restart attached programs again instead of adopting";
  expectOnlyPortAllowed(*sb, kA, kB);

  // `bpftool cgroup show`: still each program exactly once (12 attachments). The restarted
  // daemon loaded new programs and swapped them into the same links (bpf_link_update):
  // every program id changed, every link id stayed.
  ASSERT_OK_AND_ASSIGN(auto attachedAfter, attachmentsOf(sb->cgroup()));
  ASSERT_TRUE(EachProgramOnceViaLinks(attachedAfter));
  for (const auto& name : kPrograms) {
    const uint64_t oldProg = attachedBefore.progByProgram.at(name);
    const uint64_t newProg = attachedAfter.progByProgram.at(name);
    EXPECT_NE(newProg, oldProg) << name << ": the old program is still attached";
    EXPECT_EQ(attachedAfter.linkByProg.at(newProg), attachedBefore.linkByProg.at(oldProg))
        << name << ": the program is held by a new link instead of the adopted one";
  }

  // The adopted sandbox is still under the restarted daemon's control.
  ASSERT_OK(sb->daemon().reload(policyYaml(allowPort(kTcpB))));
  EXPECT_TRUE(eventuallyAllowed(*sb, kB)) << sb->daemon().logs();
  EXPECT_PROBE_ERR(sb->probe({"tcp", w().ip4(3), kA}), "EPERM");
}

TEST_F(DaemonLifecycleTest, SigtermKeepsEnforcementToo) {
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(allowPort(kTcpA)));
  ASSERT_OK_AND_ASSIGN(auto r, sb->daemon().killAndWait(SIGTERM));
  EXPECT_EQ(r.exitCode, 0) << r.describe();
  expectOnlyPortAllowed(*sb, kA, kB);
}

TEST_F(DaemonLifecycleTest, BadPolicyViaApplyLeavesOldRulesInForce) {
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(allowPort(kTcpA)));
  ASSERT_OK_AND_ASSIGN(std::string bad, sb->daemon().dir().writeFile("bad.yaml", badPolicy()));
  ASSERT_OK_AND_ASSIGN(auto r, sb->daemon().apply(bad));
  EXPECT_EQ(r.exitCode, 2) << r.describe();
  EXPECT_TRUE(std::regex_search(r.err, std::regex("bad\\.yaml:4\\b"))) << r.err;
  expectOnlyPortAllowed(*sb, kA, kB);

  // A good policy through apply does change the rules (so "unchanged" above means something).
  ASSERT_OK_AND_ASSIGN(std::string good,
                       sb->daemon().dir().writeFile("good.yaml", policyYaml(allowPort(kTcpB))));
  ASSERT_OK_AND_ASSIGN(auto r2, sb->daemon().apply(good));
  ASSERT_EQ(r2.exitCode, 0) << r2.describe();
  expectOnlyPortAllowed(*sb, kB, kA);
}

TEST_F(DaemonLifecycleTest, BadPolicyViaSighupLeavesOldRulesInForce) {
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(allowPort(kTcpA)));
  ASSERT_OK(sb->daemon().reload(badPolicy()));
  // The rejection is logged with file:line.
  const std::string where = sb->daemon().policyPath() + ":4";
  bool logged = false;
  for (int i = 0; i < 50 && !logged; ++i) {
    logged = sb->daemon().logs().find(where) != std::string::npos;
    if (!logged) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  EXPECT_TRUE(logged) << "no '" << where << "' in the daemon log:\n" << sb->daemon().logs();
  EXPECT_TRUE(sb->daemon().running()) << "a bad policy killed the daemon:\n" << sb->daemon().logs();
  expectOnlyPortAllowed(*sb, kA, kB);

  ASSERT_OK(sb->daemon().reload(policyYaml(allowPort(kTcpB))));
  EXPECT_TRUE(eventuallyAllowed(*sb, kB)) << sb->daemon().logs();
  EXPECT_PROBE_ERR(sb->probe({"tcp", w().ip4(3), kA}), "EPERM");
}

TEST_F(DaemonLifecycleTest, DetachRemovesEnforcement) {
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(allowPort(kTcpA)));
  ASSERT_OK_AND_ASSIGN(uint64_t cgid, sb->cgroup().id());
  EXPECT_PROBE_ERR(sb->probe({"tcp", w().ip4(3), kB}), "EPERM");
  ASSERT_OK_AND_ASSIGN(auto stopped, sb->daemon().killAndWait(SIGTERM));
  ASSERT_OK_AND_ASSIGN(auto r, sb->daemon().detach());
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  ASSERT_OK_AND_ASSIGN(auto links, cgroupLinks(cgid));
  EXPECT_TRUE(links.empty()) << links.size() << " attach types still linked after detach";
  EXPECT_PROBE_OK(sb->probe({"tcp", w().ip4(3), kB}));
  EXPECT_PROBE_OK(sb->probe({"raw"}));
}

// Slot allocation is serialised between egressd processes by an flock on the pin root
// directory: eight `egressd apply` at once on one pin root each get their own slot and
// their own links, and no lock file is left anywhere once the pin root is gone.
TEST_F(DaemonLifecycleTest, ConcurrentAppliesOnOnePinRootGetDistinctSlots) {
  constexpr int kApplies = 8;
  test::PinRoot pinRoot;
  test::TempDir dir = test::TempDir::createOrThrow();
  const std::string policyFile = dir.path() + "/policy.yaml";
  ASSERT_OK(writeFileAtomic(policyFile, policyYaml(allowPort(kTcpA))));
  std::vector<test::TestCgroup> cgroups;
  for (int i = 0; i < kApplies; ++i) {
    ASSERT_OK_AND_ASSIGN(test::TestCgroup cg, test::TestCgroup::create());
    cgroups.push_back(std::move(cg));
  }
  std::vector<Result<RunResult>> results(kApplies, Error(EINVAL, "not run"));
  std::vector<std::thread> appliers;
  appliers.reserve(kApplies);
  for (int i = 0; i < kApplies; ++i) {
    appliers.emplace_back([&, i] {
      results[i] = test::run({.argv = {test::egressdBin(), "apply", "--sandbox",
                                       "conc" + std::to_string(i), "--cgroup", cgroups[i].path(),
                                       "--policy", policyFile, "--pin-root", pinRoot.path()}},
                             std::chrono::milliseconds(60000));
    });
  }
  for (std::thread& t : appliers) {
    t.join();
  }
  for (int i = 0; i < kApplies; ++i) {
    ASSERT_TRUE(results[i].ok()) << results[i].error().message();
    EXPECT_EQ(results[i]->exitCode, 0) << results[i]->describe();
  }
  ASSERT_OK_AND_ASSIGN(
      RunResult status,
      test::run({.argv = {test::egressctlBin(), "status", "--json", "--pin-root", pinRoot.path()}},
                std::chrono::milliseconds(20000)));
  ASSERT_EQ(status.exitCode, 0) << status.describe();
  const nlohmann::json listed = nlohmann::json::parse(status.out, nullptr, false);
  ASSERT_TRUE(listed.contains("sandboxes")) << status.out;
  std::set<std::string> ids;
  std::set<int64_t> slots;
  for (const auto& sb : listed["sandboxes"]) {
    ids.insert(sb.value("id", ""));
    slots.insert(sb.value("slot", int64_t{-1}));
    EXPECT_EQ(sb["links"].size(), kPrograms.size()) << sb.dump();
  }
  EXPECT_EQ(ids.size(), size_t{kApplies}) << status.out;
  EXPECT_EQ(slots.size(), size_t{kApplies}) << "two sandboxes share a slot:\n" << status.out;
  for (const test::TestCgroup& cg : cgroups) {
    ASSERT_OK_AND_ASSIGN(Attachments a, attachmentsOf(cg));
    EXPECT_TRUE(EachProgramOnceViaLinks(a)) << cg.path();
  }
  // The lock was the pin root itself: nothing named after it outlives it.
  std::string flattened = pinRoot.path();
  std::replace(flattened.begin(), flattened.end(), '/', '_');
  EXPECT_FALSE(pathExists("/run/egressd/locks/" + flattened + ".lock"));
}

TEST_F(DaemonLifecycleTest, StatusJsonListsSandboxAndCountsDenials) {
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(allowPort(kTcpA)));
  ASSERT_OK_AND_ASSIGN(auto before, statusOf(*sb));
  ASSERT_OK_AND_ASSIGN(uint64_t cgid, sb->cgroup().id());
  EXPECT_EQ(before.value("cgroupId", uint64_t{0}), cgid) << before.dump(2);
  const uint64_t deniedBefore = before.value("denied", uint64_t{0});

  EXPECT_PROBE_ERR(sb->probe({"tcp", w().ip4(3), kB}), "EPERM");
  EXPECT_PROBE_ERR(sb->probe({"tcp", w().ip4(4), kA}), "EPERM");
  EXPECT_PROBE_OK(sb->probe({"tcp", w().ip4(3), kA}));

  ASSERT_OK_AND_ASSIGN(auto after, statusOf(*sb));
  EXPECT_GE(after.value("denied", uint64_t{0}), deniedBefore + 2) << after.dump(2);
  ASSERT_TRUE(after.contains("counters")) << after.dump(2);
  EXPECT_GE(after["counters"].value("deny_default", uint64_t{0}), 2u) << after.dump(2);
  EXPECT_GE(after["counters"].value("allow_rule", uint64_t{0}), 1u) << after.dump(2);

  // Human output names the sandbox too.
  ASSERT_OK_AND_ASSIGN(auto text, sb->daemon().ctl({"status"}));
  EXPECT_EQ(text.exitCode, 0) << text.describe();
  EXPECT_NE(text.out.find(sb->daemon().sandboxId()), std::string::npos) << text.out;
}

TEST_F(DaemonLifecycleTest, MapsListsPinnedPathsUnderThePinRoot) {
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(allowPort(kTcpA)));
  ASSERT_OK_AND_ASSIGN(auto r, sb->daemon().ctl({"maps"}));
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  std::regex pinned(sb->daemon().pinRoot() + "/[A-Za-z0-9_./-]+");
  int found = 0;
  for (auto it = std::sregex_iterator(r.out.begin(), r.out.end(), pinned);
       it != std::sregex_iterator(); ++it) {
    EXPECT_TRUE(pathExists(it->str())) << it->str();
    ++found;
  }
  EXPECT_GT(found, 0) << r.out;
}

// The pinned maps carry BTF: bpftool prints named fields, including the sandbox id string
// and the per-CPU counters, and those agree with egressctl status.
TEST_F(DaemonLifecycleTest, BpftoolDumpsPinnedMapsWithBtfNames) {
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(allowPort(kTcpA)));
  EXPECT_PROBE_ERR(sb->probe({"tcp", w().ip4(3), kB}), "EPERM");
  EXPECT_PROBE_ERR(sb->probe({"tcp", w().ip4(4), kA}), "EPERM");
  const std::string pin = sb->daemon().pinRoot();
  const std::string id = sb->daemon().sandboxId();

  auto text = test::run({.argv = {"bpftool", "map", "dump", "pinned", pin + "/egressd_sandboxes"}},
                        test::milliseconds(10000));
  ASSERT_OK(text);
  ASSERT_TRUE(text->succeeded()) << text->describe();
  EXPECT_NE(text->out.find("\"id\": \"" + id + "\""), std::string::npos)
      << "sandbox id not in the dump:\n"
      << text->out.substr(0, 2000);

  ASSERT_OK_AND_ASSIGN(auto configs, bpftoolMapDump(pin + "/egressd_sandboxes"));
  int named = 0;
  for (const auto& e : configs) {
    ASSERT_TRUE(e.contains("formatted")) << "no BTF-formatted entry: " << e.dump();
    const auto& v = e["formatted"].at("value");
    ASSERT_TRUE(v.contains("id") && v.contains("flags")) << v.dump();
    if (v["id"] == id) {
      ++named;
      EXPECT_NE(v["flags"].get<uint32_t>() & 1U, 0U) << "not active: " << v.dump();
    }
  }
  EXPECT_EQ(named, 1) << "entries naming " << id;

  ASSERT_OK_AND_ASSIGN(auto status, sandboxStatus(*sb));
  const auto slot = status.at("slot").get<uint64_t>();
  ASSERT_OK_AND_ASSIGN(auto counters, bpftoolMapDump(pin + "/egressd_counters"));
  bool foundSlot = false;
  for (const auto& e : counters) {
    ASSERT_TRUE(e.contains("formatted")) << "no BTF-formatted entry: " << e.dump();
    const auto& f = e["formatted"];
    if (f.at("key").get<uint64_t>() != slot) {
      continue;
    }
    foundSlot = true;
    ASSERT_TRUE(f.contains("values") && f["values"].is_array() && !f["values"].empty())
        << "not per-CPU values: " << f.dump();
    uint64_t denyDefault = 0;
    for (const auto& cpu : f["values"]) {
      ASSERT_TRUE(cpu.contains("cpu")) << cpu.dump();
      const auto& byReason = cpu.at("value").at("by_reason");
      ASSERT_EQ(byReason.size(), static_cast<size_t>(EGRESSD_REASON_MAX)) << cpu.dump();
      denyDefault += byReason.at(EGRESSD_REASON_deny_default).get<uint64_t>();
    }
    EXPECT_EQ(denyDefault, counterOf(status, "deny_default")) << f.dump();
    EXPECT_GE(denyDefault, 2u) << f.dump();
  }
  EXPECT_TRUE(foundSlot) << "slot " << slot << " not in egressd_counters";
}

}  // namespace
}  // namespace egressd::e2e
