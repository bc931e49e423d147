// Shared pieces of the control-plane e2e tests (control_plane_test.cpp, handlers_e2e_test.cpp):
// the binary's shared multi-sandbox daemon, a sandbox made through `egressctl sandbox create`
// (deleted again on destruction), curl inside such a sandbox, and aux_origin.py (an HTTP
// service on TCP endpoints of the test internet or on a unix socket: /whoami-like answers,
// redirects, a JSON request log with every header it received).
//
// Everything the tests change goes through egressctl (test::ControlDaemon): the tests know
// the daemon only by its command line, its API and what the sandbox and the origins see.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cgroup.h"
#include "control_daemon.h"
#include "http_client.h"
#include "process.h"
#include "temp_dir.h"
#include "world.h"

namespace egressd::e2e {

// The ports the control-plane policies proxy: 80/443, the world's HTTP origin (8080),
// the port nobody serves (8081), aux_origin.py's TCP port and the good HTTPS origin.
inline constexpr int kAuxPort = 8090;
std::vector<int> controlProxyPorts();

// `curl --noproxy '*' -sS --max-time 10 -D - -o - ARGS...` in `cgroup` (+ `netns`).
struct CurlResult {
  RunResult run;
  std::vector<HttpResponse> responses;  // every head curl printed (redirects, 1xx) in order

  int status() const { return responses.empty() ? 0 : responses.back().status; }
  const HttpResponse& last() const;
  // The final body parsed as the JSON object /whoami returns ({} when it is not one).
  nlohmann::json whoami() const;
  // A request header as the origin's /whoami saw it ("" when absent).
  std::string seenHeader(const std::string& lowerName) const;
  bool seen(const std::string& lowerName) const;
  std::string describe() const;
};
CurlResult curlInCgroup(const std::string& cgroup, const std::string& netns,
                        const std::vector<std::string>& args,
                        test::milliseconds timeout = test::milliseconds(15000));

// A sandbox created through the API, deleted through it on destruction (then its TestCgroup,
// when it has one, is removed).
class CpSandbox {
 public:
  // `egressctl sandbox create ID --policy POLICY` with a fresh TestCgroup (--cgroup) or
  // --create-cgroup (the daemon makes <cgroup-parent>/<ID>); `netns` (a netns file such as
  // the world's sandbox netns) adds --netns NETNS, and run()/curl() then join it too.
  static Result<std::unique_ptr<CpSandbox>> create(const test::ControlDaemon& daemon,
                                                   const std::string& id, const std::string& policy,
                                                   bool createCgroup = false,
                                                   const std::string& netns = "");
  ~CpSandbox();
  CpSandbox(const CpSandbox&) = delete;
  CpSandbox& operator=(const CpSandbox&) = delete;

  const std::string& id() const { return id_; }
  const std::string& cgroup() const { return cgroup_; }
  // The --netns it was created with ("" = the host's netns).
  const std::string& netns() const { return netns_; }
  // The detail JSON `sandbox create` returned.
  const nlohmann::json& created() const { return created_; }
  // `egressctl --json -s ID ARGS...`.
  test::CtlReply ctl(const std::vector<std::string>& args) const;
  // `egressctl --json sandbox show ID`.
  test::CtlReply show() const;
  // A command inside the sandbox (its cgroup and netns), after checking the test network
  // exists.
  RunResult run(const std::vector<std::string>& argv,
                test::milliseconds timeout = test::milliseconds(15000)) const;
  CurlResult curl(const std::vector<std::string>& args) const;
  // GET http://HOST:PORT/PATH with HOST resolved to `ip` by curl (--resolve), extra args.
  CurlResult get(const std::string& host, int port, const std::string& ip, const std::string& path,
                 const std::vector<std::string>& extra = {}) const;
  // The test already deleted it.
  void forget() { deleted_ = true; }

 private:
  CpSandbox(const test::ControlDaemon& d, std::string id) : daemon_(&d), id_(std::move(id)) {}
  std::optional<test::TestCgroup> ownCgroup_;  // declared first: removed after the delete
  const test::ControlDaemon* daemon_;
  std::string id_;
  std::string cgroup_;
  std::string netns_;
  nlohmann::json created_;
  bool deleted_ = false;
};

// tests/e2e/clients/aux_origin.py.
class AuxOrigin {
 public:
  // TCP `endpoints` inside `netnsPath` ("" = the test's netns), and/or a unix socket.
  static Result<std::unique_ptr<AuxOrigin>> start(const std::string& netnsPath,
                                                  const std::vector<std::string>& endpoints,
                                                  const std::string& unixPath = "",
                                                  const std::string& name = "aux");
  // Every request so far: {"server", "method", "path", "host", "headers": {lowercase: value}}.
  std::vector<nlohmann::json> requests() const;
  // Those whose path contains `needle`.
  std::vector<nlohmann::json> requestsMatching(const std::string& needle) const;
  std::string log() const;

 private:
  AuxOrigin(test::TempDir dir, test::Process proc) : dir_(std::move(dir)), proc_(std::move(proc)) {}
  test::TempDir dir_;
  test::Process proc_;
};

// The binary's shared daemon: --cgroup-parent (a TestCgroup), the world's resolver, the
// world's test CA for upstream TLS, an audit log. Created on first use, stopped after the
// last test; an error is kept and returned to every later caller.
Result<test::ControlDaemon*> sharedDaemon();
// The options the shared daemon uses, for tests that need a daemon of their own.
Result<test::ControlDaemon::Options> worldDaemonOptions();

// Unique in this binary; in a query string it tells which requests reached an origin.
std::string uniqueTag(const std::string& what);

// The policy text of `spec` (world.h policyYaml) with the control-plane proxy ports.
std::string cpPolicy(PolicySpec spec);

// Handlers that only mark a request: `NAME: [{setHeader: {name: X-Handler, value: NAME}}]`,
// as YAML lines under `outboundHandlers:` (indented two spaces).
std::string markerHandlers(const std::vector<std::string>& names);

// An audit-record predicate: every key of `fields` is present with that value.
std::function<bool(const nlohmann::json&)> auditMatch(const nlohmann::json& fields);

// A long-lived process inside `cgroup` (and `netns` when not empty), after checking the test
// network exists.
Result<test::Process> spawnInCgroup(const std::vector<std::string>& argv, const std::string& cgroup,
                                    const std::string& netns = "");

// Recursively reads every regular file below `dir`; returns those whose content contains
// `needle` (and the errors of files it could not read).
std::vector<std::string> filesContaining(const std::string& dir, const std::string& needle);

// Base fixture: the world, its HTTP origin and the shared daemon exist.
class ControlPlaneTest : public E2eTest {
 protected:
  void SetUp() override;
  // On failure: whether the shared daemon still runs, and the tail of its log.
  void TearDown() override;
  test::ControlDaemon& daemon() { return *daemon_; }
  // `egressctl policy apply` of `yaml`; fails the test when the daemon refuses it.
  void applyPolicy(const std::string& name, const std::string& yaml);
  // A sandbox on the shared daemon; fails the test when it cannot be made.
  std::unique_ptr<CpSandbox> sandbox(const std::string& id, const std::string& policy,
                                     bool createCgroup = false, const std::string& netns = "");

  test::TestHttpOrigin* origin_ = nullptr;
  test::ControlDaemon* daemon_ = nullptr;
};

// ControlPlaneTest plus the world's "container" netns (`netns_`), checked to exist and to
// reach only the test subnets (no default route) before a test sends anything from it.
class ControlPlaneNetnsTest : public ControlPlaneTest {
 protected:
  void SetUp() override;
  // GET http://HOST:8080/whoami?tag=TAG from `cgroup` ("" = no cgroup) in `netns_`; HOST
  // is resolved by curl to .4 for other.test, else .3.
  CurlResult fetchInNetns(const std::string& cgroup, const std::string& host,
                          const std::string& tag);

  std::string netns_;
};

}  // namespace egressd::e2e

// An egressctl call (test::CtlReply) succeeded; else its argv, exit code and output.
#define EXPECT_CTL_OK(expr)                                                     \
  do {                                                                          \
    const ::egressd::test::CtlReply egressd_ctl_ = (expr);                      \
    EXPECT_TRUE(egressd_ctl_.ok()) << #expr << ": " << egressd_ctl_.describe(); \
  } while (0)
#define ASSERT_CTL_OK(expr)                                                     \
  do {                                                                          \
    const ::egressd::test::CtlReply egressd_ctl_ = (expr);                      \
    ASSERT_TRUE(egressd_ctl_.ok()) << #expr << ": " << egressd_ctl_.describe(); \
  } while (0)
