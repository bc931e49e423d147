// `egressd verify`'s attack battery against the real kernel. The battery IS the test list:
// every case of userspace/verify/cases.h runs here (through the same runBattery() the
// product uses, with its own test netns and throw-away sandbox) and must hold its expected
// outcome, as root and as nobody. Then the product binary itself must exit 0 with a clean
// table, and a battery whose sandbox lost a hook (its pinned link detached for real) must
// report exactly that hole.
#include <bpf/bpf.h>
#include <gtest/gtest.h>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "cgroup.h"
#include "common/fs.h"
#include "egressd.h"
#include "loader/bpffs.h"
#include "process.h"
#include "sandbox/cgroup.h"
#include "temp_dir.h"
#include "verify/battery.h"
#include "verify/cases.h"

namespace egressd::verify {
namespace {

BatteryOptions options() {
  BatteryOptions o;
  o.selfExe = test::egressdBin();
  return o;
}

std::string describe(const CaseRow& row) {
  return row.c.id + " as " + row.user + ": expected " + row.c.expectedText() + ", observed " +
         observedText(row.c, row.observed);
}

TEST(VerifyBattery, EveryCaseOfTheTableHoldsItsExpectedOutcome) {
  auto report = runBattery(options());
  ASSERT_TRUE(report.ok()) << report.error().message();
  std::map<std::string, std::set<std::string>> ran;  // case -> users
  for (const CaseRow& row : report->rows) {
    ran[row.c.id].insert(row.user);
    if (row.verdict == Verdict::kSkip) {
      // Only a protocol this kernel does not have (e.g. SCTP not built) may be skipped.
      EXPECT_FALSE(row.c.unsupportedErrnos.empty()) << describe(row);
      EXPECT_FALSE(row.observed.call.ok) << describe(row);
      continue;
    }
    EXPECT_EQ(row.verdict, Verdict::kPass) << describe(row);
  }
  for (const Case& c : builtinCases()) {
    EXPECT_EQ(ran[c.id], (std::set<std::string>{"root", "nobody"})) << c.id;
  }
  EXPECT_FALSE(report->interrupted);
}

TEST(VerifyBattery, DetachedHookIsReportedAsTheHoleItOpens) {
  BatteryOptions o = options();
  o.onlyCases = {"sockopt-ipv6-rthdr", "sockopt-ip-options", "tcp-denied", "control-tcp-allowed"};
  bool detached = false;
  o.afterArmForTest = [&](const std::string& pinRoot, const std::string& id) {
    // What a weakened build or a lost link amounts to: no setsockopt program on the cgroup.
    const std::string pin = loader::linkPinPath(pinRoot, id, "egressd_setsockopt");
    int fd = bpf_obj_get(pin.c_str());
    ASSERT_GE(fd, 0) << pin;
    detached = bpf_link_detach(fd) == 0;
    ::close(fd);
  };
  auto report = runBattery(o);
  ASSERT_TRUE(report.ok()) << report.error().message();
  ASSERT_TRUE(detached);
  ASSERT_EQ(report->rows.size(), 8U);
  for (const CaseRow& row : report->rows) {
    if (row.c.id.starts_with("sockopt-")) {
      EXPECT_EQ(row.verdict, Verdict::kHole) << describe(row);
      EXPECT_TRUE(row.observed.call.ok) << describe(row);
    } else {
      EXPECT_EQ(row.verdict, Verdict::kPass) << describe(row);
    }
  }
}

TEST(VerifyCommand, ExitsZeroWithACleanTable) {
  auto r = test::run({{test::egressdBin(), "verify", "--json"}}, test::milliseconds(60000));
  ASSERT_TRUE(r.ok()) << r.error().message();
  ASSERT_EQ(r->exitCode, 0) << r->describe();
  auto j = nlohmann::json::parse(r->out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r->out;
  EXPECT_EQ(j["exitCode"], 0);
  EXPECT_EQ(j["holes"], "");
  EXPECT_LT(j["seconds"].get<double>(), 30.0);
  std::set<std::string> ids;
  for (const auto& c : j["battery"]["cases"]) {
    EXPECT_TRUE(c["verdict"] == "pass" || c["verdict"] == "skip") << c.dump();
    ids.insert(c["id"].get<std::string>());
  }
  EXPECT_EQ(ids.size(), builtinCases().size());
  for (const auto& c : j["checks"]) {
    EXPECT_NE(c["level"], "FAIL") << c.dump();
  }
}

TEST(VerifyCommand, TableNamesEveryCaseAndSaysPass) {
  auto r = test::run({{test::egressdBin(), "verify"}}, test::milliseconds(60000));
  ASSERT_TRUE(r.ok()) << r.error().message();
  ASSERT_EQ(r->exitCode, 0) << r->describe();
  EXPECT_NE(r->out.find("RESULT: PASS"), std::string::npos) << r->out;
  for (const Case& c : builtinCases()) {
    EXPECT_NE(r->out.find(" " + c.id + " "), std::string::npos) << c.id;
  }
}

TEST(VerifyCommand, UserPolicySamplesAreChecked) {
  auto dir = test::TempDir::create();
  ASSERT_TRUE(dir.ok()) << dir.error().message();
  auto file = dir->writeFile("user.yaml",
                             "name: user\n"
                             "allowedHosts: [\"api.example.test\"]\n"
                             "deniedHosts: [\"*.evil.example.test\", \"203.0.113.0/24\"]\n"
                             "allow:\n"
                             "  - { cidr: 192.0.2.0/24, ports: [5432], protocol: tcp }\n");
  ASSERT_TRUE(file.ok()) << file.error().message();
  auto r = test::run({{test::egressdBin(), "verify", "--policy", *file, "--json"}},
                     test::milliseconds(60000));
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->exitCode, 0) << r->describe();
  auto j = nlohmann::json::parse(r->out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r->out;
  std::map<std::string, std::string> verdicts;
  for (const auto& c : j["battery"]["cases"]) {
    verdicts[c["id"].get<std::string>() + "/" + c["user"].get<std::string>()] = c["verdict"];
  }
  EXPECT_EQ(verdicts["policy-denied 203.0.113.1/root"], "pass");
  EXPECT_EQ(verdicts["policy-denied verify-sample.evil.example.test/root"], "pass");
  EXPECT_EQ(verdicts["policy-denied not-allowed.verify-sample.test/nobody"], "pass");
  EXPECT_EQ(verdicts["policy-allowed api.example.test/root"], "pass");
  EXPECT_EQ(verdicts["policy-allowed 192.0.2.1:5432/nobody"], "pass");
  // The policy-independent attacks ran too; the built-in policy's controls did not apply.
  EXPECT_EQ(verdicts["socket-packet/root"], "pass");
  EXPECT_EQ(verdicts.count("control-tcp-allowed/root"), 0U);
}

// A sandbox armed with `egressd apply` is checked through its pins; once its cgroup is gone,
// its links are defunct and verify says the sandbox is not enforced (exit 1).
TEST(VerifyCommand, PinnedSandboxIsCheckedAndDefunctLinksFail) {
  auto cg = test::TestCgroup::create();
  ASSERT_TRUE(cg.ok()) << cg.error().message();
  test::PinRoot pins;
  auto dir = test::TempDir::create();
  ASSERT_TRUE(dir.ok()) << dir.error().message();
  auto policyFile = dir->writeFile("p.yaml", "name: p\nenableInternet: false\n");
  ASSERT_TRUE(policyFile.ok()) << policyFile.error().message();
  auto applied = test::run({{test::egressdBin(), "apply", "--sandbox", "vfy1", "--cgroup",
                             cg->path(), "--policy", *policyFile, "--pin-root", pins.path()}},
                           test::milliseconds(20000));
  ASSERT_TRUE(applied.ok() && applied->exitCode == 0) << applied->describe();
  auto check = [&]() -> nlohmann::json {
    auto r = test::run({{test::egressdBin(), "verify", "--json", "--pin-root", pins.path(),
                         "--state-dir", dir->path(), "--socket", dir->path() + "/none.sock"}},
                       test::milliseconds(60000));
    EXPECT_TRUE(r.ok());
    auto j = nlohmann::json::parse(r->out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << r->describe();
    j["exit"] = r->exitCode;
    return j;
  };
  auto levelOf = [](const nlohmann::json& j, const std::string& name) -> std::string {
    for (const auto& c : j["checks"]) {
      if (c["name"] == name) {
        return c["level"].get<std::string>() + " " + c["detail"].get<std::string>();
      }
    }
    return "absent";
  };
  auto enforced = check();
  EXPECT_EQ(enforced["exit"], 0) << enforced.dump(2);
  EXPECT_TRUE(levelOf(enforced, "sandbox vfy1").starts_with("pass")) << enforced.dump(2);
  ASSERT_TRUE(cg->destroy().ok());
  auto defunct = check();
  EXPECT_EQ(defunct["exit"], 1);
  EXPECT_TRUE(levelOf(defunct, "sandbox vfy1").starts_with("FAIL NOT ENFORCED")) << defunct.dump(2);
  auto detached = test::run({{test::egressdBin(), "detach", "--sandbox", "vfy1", "--pin-root",
                              pins.path(), "--run-dir", dir->path()}},
                            test::milliseconds(20000));
  EXPECT_TRUE(detached.ok() && detached->exitCode == 0) << detached->describe();
}

// Ctrl-C in the middle of the battery: exit 130, the table of what ran, and nothing of
// verify's left behind (cgroup, pin root, run dir, namespaces, veth).
TEST(VerifyCommand, InterruptCleansUpEverything) {
  auto p = test::Process::spawn({{test::egressdBin(), "verify"}});
  ASSERT_TRUE(p.ok()) << p.error().message();
  const std::string pid = std::to_string(p->pid());
  // Host checks take ~0.3 s, the network ~0.5 s, the battery ~2 s: 1.5 s lands in the cases.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  ASSERT_TRUE(p->signal(SIGINT).ok());
  auto r = p->wait(test::milliseconds(30000));
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->exitCode, 130) << r->describe();
  EXPECT_NE(r->out.find("RESULT: INTERRUPTED"), std::string::npos) << r->out;
  auto mount = sandbox::findCgroup2Mount();
  ASSERT_TRUE(mount.ok());
  for (const std::string& path :
       {*mount + "/egressd-verify-" + pid, *mount + "/egressd-verify-" + pid + "-hooks",
        "/sys/fs/bpf/egressd-verify-" + pid, "/sys/fs/bpf/egressd-verify-" + pid + "-hooks",
        "/run/egressd-verify-" + pid, "/var/run/netns/egressd-verify-" + pid + "-net",
        "/var/run/netns/egressd-verify-" + pid + "-sb", "/sys/class/net/ev" + pid + "h",
        "/run/egressd/locks/_sys_fs_bpf_egressd-verify-" + pid + ".lock"}) {
    EXPECT_FALSE(pathExists(path)) << path << " left behind";
  }
}

TEST(VerifyCommand, BadPolicyIsAUsageErrorNamingTheFile) {
  auto dir = test::TempDir::create();
  ASSERT_TRUE(dir.ok()) << dir.error().message();
  auto file = dir->writeFile("bad.yaml", "name: bad\nenableInternet: maybe\n");
  ASSERT_TRUE(file.ok()) << file.error().message();
  auto r =
      test::run({{test::egressdBin(), "verify", "--policy", *file}}, test::milliseconds(20000));
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->exitCode, 2) << r->describe();
  EXPECT_NE(r->err.find(*file), std::string::npos) << r->err;
}

}  // namespace
}  // namespace egressd::verify
