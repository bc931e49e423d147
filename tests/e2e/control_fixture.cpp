#include "control_fixture.h"

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <thread>

#include "common/fs.h"
#include "servers.h"

namespace egressd::e2e {
namespace {

using nlohmann::json;
using test::milliseconds;

std::string lower(std::string s) {
  for (char& c : s) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return s;
}

std::string trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return std::string(s);
}

// One response head at the start of `data` (curl -D -): its length, or npos.
size_t parseHead(std::string_view data, HttpResponse& r) {
  const size_t end = data.find("\r\n\r\n");
  if (!data.starts_with("HTTP/") || end == std::string_view::npos) {
    return std::string_view::npos;
  }
  std::istringstream in{std::string(data.substr(0, end))};
  std::string line;
  std::getline(in, line);
  const size_t sp = line.find(' ');
  if (sp == std::string::npos) {
    return std::string_view::npos;
  }
  r.status = std::atoi(line.c_str() + sp + 1);
  r.reason = sp + 5 <= line.size() ? trim(line.substr(sp + 5)) : "";
  while (std::getline(in, line)) {
    const size_t colon = line.find(':');
    if (colon != std::string::npos) {
      r.headers[lower(trim(line.substr(0, colon)))] = trim(line.substr(colon + 1));
    }
  }
  return end + 4;
}

struct Shared {
  std::optional<test::TestCgroup> parent;
  std::unique_ptr<test::ControlDaemon> daemon;  // stopped before the parent goes
  std::optional<Error> error;
  bool tried = false;
};

Shared& shared() {
  static Shared s;
  return s;
}

class SharedDaemonEnvironment : public ::testing::Environment {
 public:
  void TearDown() override {
    shared().daemon.reset();
    shared().parent.reset();
  }
};

[[maybe_unused]] ::testing::Environment* const gSharedDaemonEnv =
    ::testing::AddGlobalTestEnvironment(new SharedDaemonEnvironment());

}  // namespace

std::vector<int> controlProxyPorts() {
  return {kHttp, kHttps, kHttpOrigin, kHttpNoServer, kAuxPort, kHttpsGood};
}

// --- curl ------------------------------------------------------------------------------

const HttpResponse& CurlResult::last() const {
  static const HttpResponse none;
  return responses.empty() ? none : responses.back();
}

json CurlResult::whoami() const {
  auto j = json::parse(last().body, nullptr, false);
  return j.is_object() ? j : json::object();
}

std::string CurlResult::seenHeader(const std::string& lowerName) const {
  const auto j = whoami();
  // headers_hex: what the origin received, even when egressd redacted it in the response.
  if (j.contains("headers_hex") && j["headers_hex"].is_object()) {
    return test::unhex(j["headers_hex"].value(lowerName, ""));
  }
  if (!j.contains("headers") || !j["headers"].is_object()) {
    return "";
  }
  return j["headers"].value(lowerName, "");
}

bool CurlResult::seen(const std::string& lowerName) const {
  const auto j = whoami();
  return j.contains("headers") && j["headers"].is_object() && j["headers"].contains(lowerName);
}

std::string CurlResult::describe() const {
  std::ostringstream s;
  s << "status " << status();
  for (const auto& r : responses) {
    s << "\n  HTTP " << r.status << " " << r.reason;
    for (const auto& [k, v] : r.headers) {
      s << "\n    " << k << ": " << v;
    }
  }
  if (!responses.empty()) {
    s << "\n  body: " << last().body.substr(0, 2000);
  }
  s << "\n  curl: " << run.describe();
  return s.str();
}

CurlResult curlInCgroup(const std::string& cgroup, const std::string& netns,
                        const std::vector<std::string>& args, milliseconds timeout) {
  std::vector<std::string> argv{"curl", "--noproxy", "*", "-sS", "--max-time",
                                "10",   "-D",        "-", "-o",  "-"};
  argv.insert(argv.end(), args.begin(), args.end());
  CurlResult reply;
  reply.run = runGuarded(argv, cgroup, netns, timeout);
  // -D - and -o - both go to stdout: every head (redirects followed with -L and interim
  // responses have no body there), then the final body.
  std::string_view out = reply.run.out;
  while (out.starts_with("HTTP/")) {
    HttpResponse r;
    const size_t headLen = parseHead(out, r);
    if (headLen == std::string_view::npos) {
      break;
    }
    out.remove_prefix(headLen);
    reply.responses.push_back(std::move(r));
  }
  if (!reply.responses.empty()) {
    reply.responses.back().body = std::string(out);
  }
  return reply;
}

// --- CpSandbox -------------------------------------------------------------------------

Result<std::unique_ptr<CpSandbox>> CpSandbox::create(const test::ControlDaemon& daemon,
                                                     const std::string& id,
                                                     const std::string& policy, bool createCgroup,
                                                     const std::string& netns) {
  std::unique_ptr<CpSandbox> sb(new CpSandbox(daemon, id));
  sb->netns_ = netns;
  std::vector<std::string> args{"sandbox", "create", id, "--policy", policy};
  if (!netns.empty()) {
    args.insert(args.end(), {"--netns", netns});
  }
  if (createCgroup) {
    args.push_back("--create-cgroup");
  } else {
    auto cg = test::TestCgroup::create();
    if (!cg.ok()) {
      return std::move(cg).error();
    }
    sb->ownCgroup_.emplace(std::move(cg).value());
    args.insert(args.end(), {"--cgroup", sb->ownCgroup_->path()});
  }
  test::CtlReply r = daemon.ctlJson(args);
  if (!r.ok()) {
    sb->deleted_ = true;  // nothing to delete
    return Error(EIO, "egressctl sandbox create " + id + ": " + r.describe());
  }
  sb->created_ = r.body;
  sb->cgroup_ = r.body.value("cgroup", "");
  if (sb->cgroup_.empty()) {
    return Error(EINVAL, "sandbox create " + id + " returned no cgroup: " + r.body.dump());
  }
  if (!createCgroup && sb->cgroup_ != sb->ownCgroup_->path()) {
    return Error(EINVAL, "sandbox create " + id + ": cgroup " + sb->cgroup_ + ", asked for " +
                             sb->ownCgroup_->path());
  }
  return sb;
}

CpSandbox::~CpSandbox() {
  if (deleted_) {
    return;
  }
  test::CtlReply r = daemon_->ctlJson({"sandbox", "delete", id_});
  if (!r.ok()) {
    std::fprintf(stderr, "[egressd-test] cleanup: egressctl sandbox delete %s: %s\n", id_.c_str(),
                 r.describe().c_str());
  }
}

test::CtlReply CpSandbox::ctl(const std::vector<std::string>& args) const {
  return daemon_->sandboxCtl(id_, args);
}

test::CtlReply CpSandbox::show() const {
  return daemon_->ctlJson({"sandbox", "show", id_});
}

RunResult CpSandbox::run(const std::vector<std::string>& argv, milliseconds timeout) const {
  return runGuarded(argv, cgroup_, netns_, timeout);
}

CurlResult CpSandbox::curl(const std::vector<std::string>& args) const {
  return curlInCgroup(cgroup_, netns_, args);
}

CurlResult CpSandbox::get(const std::string& host, int port, const std::string& ip,
                          const std::string& path, const std::vector<std::string>& extra) const {
  const std::string addr = ip.find(':') != std::string::npos ? "[" + ip + "]" : ip;
  const std::string p = std::to_string(port);
  std::vector<std::string> args{"--resolve", host + ":" + p + ":" + addr,
                                "http://" + host + (port == 80 ? "" : ":" + p) + path};
  args.insert(args.end(), extra.begin(), extra.end());
  return curl(args);
}

// --- AuxOrigin -------------------------------------------------------------------------

Result<std::unique_ptr<AuxOrigin>> AuxOrigin::start(const std::string& netnsPath,
                                                    const std::vector<std::string>& endpoints,
                                                    const std::string& unixPath,
                                                    const std::string& name) {
  auto dir = test::TempDir::create();
  if (!dir.ok()) {
    return std::move(dir).error();
  }
  const std::string ready = dir->path() + "/ready";
  std::vector<std::string> argv{test::python3Bin(),
                                clientsDir() + "/aux_origin.py",
                                "--ready",
                                ready,
                                "--log",
                                dir->path() + "/requests.jsonl",
                                "--name",
                                name};
  for (const auto& e : endpoints) {
    argv.insert(argv.end(), {"--listen", e});
  }
  if (!unixPath.empty()) {
    argv.insert(argv.end(), {"--unix", unixPath});
  }
  auto proc = test::Process::spawn(test::SpawnOptions{.argv = argv, .netnsPath = netnsPath});
  if (!proc.ok()) {
    return std::move(proc).error();
  }
  std::unique_ptr<AuxOrigin> o(new AuxOrigin(std::move(dir).value(), std::move(proc).value()));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!pathExists(ready)) {
    if (!o->proc_.running() || std::chrono::steady_clock::now() >= deadline) {
      RunResult r = o->proc_.stop(milliseconds(0));
      return Error(EIO, "aux_origin.py did not become ready: " + r.describe());
    }
    std::this_thread::sleep_for(milliseconds(20));
  }
  return o;
}

std::string AuxOrigin::log() const {
  auto text = readFile(dir_.path() + "/requests.jsonl");
  return text.ok() ? *text : "";
}

std::vector<json> AuxOrigin::requests() const {
  std::vector<json> out;
  std::istringstream in(log());
  std::string line;
  while (std::getline(in, line)) {
    auto j = json::parse(line, nullptr, false);
    if (j.is_object()) {
      out.push_back(std::move(j));
    }
  }
  return out;
}

std::vector<json> AuxOrigin::requestsMatching(const std::string& needle) const {
  std::vector<json> out;
  for (auto& r : requests()) {
    if (r.value("path", "").find(needle) != std::string::npos) {
      out.push_back(std::move(r));
    }
  }
  return out;
}

// --- shared daemon ---------------------------------------------------------------------

Result<test::ControlDaemon::Options> worldDaemonOptions() {
  auto w = world();
  if (!w.ok()) {
    return std::move(w).error();
  }
  auto ca = testCa();
  if (!ca.ok()) {
    return std::move(ca).error();
  }
  test::ControlDaemon::Options o;
  o.upstreamResolver = (*w)->resolver4();
  o.upstreamCaFile = (*ca)->caCertFile();
  o.auditLog = true;
  return o;
}

Result<test::ControlDaemon*> sharedDaemon() {
  Shared& s = shared();
  if (s.error) {
    return *s.error;
  }
  if (s.daemon) {
    return s.daemon.get();
  }
  auto fail = [&](Error e) -> Result<test::ControlDaemon*> {
    s.error = e;
    s.daemon.reset();
    s.parent.reset();
    return e;
  };
  auto cg = test::TestCgroup::create();
  if (!cg.ok()) {
    return fail(std::move(cg).error().wrap("cgroup parent of the shared daemon"));
  }
  s.parent.emplace(std::move(cg).value());
  auto opts = worldDaemonOptions();
  if (!opts.ok()) {
    return fail(std::move(opts).error());
  }
  opts->cgroupParent = s.parent->path();
  auto d = test::ControlDaemon::start(*opts);
  if (!d.ok()) {
    return fail(std::move(d).error().wrap("start the shared egressd daemon"));
  }
  s.daemon = std::move(d).value();
  return s.daemon.get();
}

std::string uniqueTag(const std::string& what) {
  static std::atomic<int> counter{0};
  std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  for (char& c : name) {
    c = c == '/' ? '.' : c;
  }
  char number[16];
  std::snprintf(number, sizeof(number), "%05d", counter++);
  return name + "-" + what + "-" + number;
}

std::string cpPolicy(PolicySpec spec) {
  if (!spec.proxyPorts) {
    spec.proxyPorts = controlProxyPorts();
  }
  return policyYaml(spec);
}

std::string markerHandlers(const std::vector<std::string>& names) {
  std::string y;
  for (const auto& n : names) {
    y += "  " + n + ":\n    - setHeader: { name: X-Handler, value: " + n + " }\n";
  }
  return y;
}

std::function<bool(const json&)> auditMatch(const json& fields) {
  return [fields](const json& record) {
    for (const auto& [key, value] : fields.items()) {
      if (!record.contains(key) || record[key] != value) {
        return false;
      }
    }
    return true;
  };
}

Result<test::Process> spawnInCgroup(const std::vector<std::string>& argv, const std::string& cgroup,
                                    const std::string& netns) {
  auto w = world();
  if (!w.ok()) {
    return std::move(w).error();
  }
  EGRESSD_TRY((*w)->net->checkExists());
  return test::Process::spawn(
      test::SpawnOptions{.argv = argv, .cgroup = cgroup, .netnsPath = netns});
}

std::vector<std::string> filesContaining(const std::string& dir, const std::string& needle) {
  std::vector<std::string> hits;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file()) {
      continue;
    }
    auto text = readFile(it->path().string());
    if (!text.ok()) {
      hits.push_back(it->path().string() + " (unreadable: " + text.error().message() + ")");
    } else if (text->find(needle) != std::string::npos) {
      hits.push_back(it->path().string());
    }
  }
  if (ec) {
    hits.push_back(dir + " (walk failed: " + ec.message() + ")");
  }
  return hits;
}

// --- fixture ---------------------------------------------------------------------------

void ControlPlaneTest::SetUp() {
  E2eTest::SetUp();
  if (IsSkipped() || HasFatalFailure()) {
    return;
  }
  auto origin = httpOrigin();
  ASSERT_TRUE(origin.ok()) << origin.error().message();
  origin_ = *origin;
  auto d = sharedDaemon();
  ASSERT_TRUE(d.ok()) << d.error().message();
  daemon_ = *d;
  ASSERT_TRUE(daemon_->running()) << "the shared daemon exited:\n" << daemon_->logs();
}

void ControlPlaneTest::TearDown() {
  if (!HasFailure() || daemon_ == nullptr) {
    return;
  }
  const std::string logs = daemon_->logs();
  // The last lines: enough to see what the daemon did around the failure.
  size_t start = logs.size();
  for (int lines = 0; start > 0 && lines < 80; --start) {
    if (logs[start - 1] == '\n') {
      ++lines;
    }
  }
  std::fprintf(stderr, "[egressd-test] shared daemon %s; its log ends with:\n%s\n",
               daemon_->running() ? "running" : "NOT running", logs.substr(start).c_str());
}

void ControlPlaneNetnsTest::SetUp() {
  ControlPlaneTest::SetUp();
  if (IsSkipped() || HasFatalFailure()) {
    return;
  }
  const test::TestNetns* ns = w().net->sandboxNetns();
  ASSERT_NE(ns, nullptr) << "the world has no sandbox netns";
  ASSERT_TRUE(ns->exists()) << ns->path();
  netns_ = ns->path();
  ASSERT_TRUE(SandboxNetnsHasNoDefaultRoute(w()));
}

CurlResult ControlPlaneNetnsTest::fetchInNetns(const std::string& cgroup, const std::string& host,
                                               const std::string& tag) {
  const int ip = host == "other.test" ? 4 : 3;
  const std::string p = std::to_string(kHttpOrigin);
  return curlInCgroup(cgroup, netns_,
                      {"--resolve", host + ":" + p + ":" + w().ip4(ip),
                       "http://" + host + ":" + p + "/whoami?tag=" + tag});
}

void ControlPlaneTest::applyPolicy(const std::string& name, const std::string& yaml) {
  test::CtlReply r = daemon_->policyApply(name + ".yaml", yaml);
  ASSERT_TRUE(r.ok()) << "policy apply " << name << ":\n" << yaml << "\n" << r.describe();
  EXPECT_EQ(r.body.value("name", ""), name) << r.body.dump();
}

std::unique_ptr<CpSandbox> ControlPlaneTest::sandbox(const std::string& id,
                                                     const std::string& policy, bool createCgroup,
                                                     const std::string& netns) {
  auto sb = CpSandbox::create(*daemon_, id, policy, createCgroup, netns);
  if (!sb.ok()) {
    ADD_FAILURE() << sb.error().message();
    return nullptr;
  }
  return std::move(sb).value();
}

}  // namespace egressd::e2e
