// `egressd daemon --kubernetes` (issue 17, item 4) against a fake API server
// (clients/fake_kube_api.py on 127.0.0.1) serving pods in the form the real one does, with
// pod cgroups laid out as the kubelet lays them out, under a test cgroup (egressd-test-*,
// the daemon's --kube-cgroup-root) instead of the real kubepods. Each pod's "container" is
// a process in a container cgroup below the pod's and in the world's sandbox netns.
//
// PodsOfTheNodeGetSandboxesThatFollowThem walks the watcher's life: the first list makes a
// sandbox for an annotated pod (policy, handler params, netns of its processes, audit) and
// enforces it; watch events add, bookmark, rebind and delete; a watch that ends resumes from
// the last resourceVersion; a 410 makes the watcher list again, and the pod missing from the
// new list loses its sandbox; an operator's sandbox under a pod-like id is never touched.
// The others: a Pending pod armed by its next event once its cgroup has a process (and an
// unknown policy retried), the token file read for every request, and a daemon restart.
#include <algorithm>
#include <chrono>
#include <iostream>
#include <random>
#include <thread>

#include "common/fs.h"
#include "control_fixture.h"
#include "loader/bpffs.h"

namespace egressd::e2e {
namespace {

using nlohmann::json;
using test::CtlReply;
using test::milliseconds;

constexpr const char* kNode = "node-e2e";
constexpr const char* kToken = "e2e-token-5b1f";

std::string randomHex(size_t n) {
  static std::mt19937_64 rng(std::random_device{}() ^ static_cast<uint64_t>(::getpid()));
  std::string out;
  while (out.size() < n) {
    out += "0123456789abcdef"[rng() % 16];
  }
  return out;
}

std::string randomUid() {
  const std::string h = randomHex(32);
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-4" + h.substr(13, 3) + "-a" + h.substr(17, 3) +
         "-" + h.substr(20, 12);
}

// A pod as the API server sends it (metadata, spec.nodeName, status.phase/qosClass), from the
// recorded pod list's first pod.
json podObject(const std::string& ns, const std::string& name, const std::string& uid,
               const std::string& phase, const std::string& qos, const json& annotations,
               const std::string& resourceVersion) {
  static const json recorded = [] {
    auto text = readFile(std::string(EGRESSD_KUBE_DATA_DIR) + "/pod_list.json");
    return text.ok() ? json::parse(*text)["items"][0] : json::object();
  }();
  json pod = recorded;
  pod["kind"] = "Pod";
  pod["apiVersion"] = "v1";
  pod["metadata"]["namespace"] = ns;
  pod["metadata"]["name"] = name;
  pod["metadata"]["uid"] = uid;
  pod["metadata"]["resourceVersion"] = resourceVersion;
  pod["metadata"]["annotations"] = annotations;
  pod["spec"]["nodeName"] = kNode;
  pod["status"]["phase"] = phase;
  pod["status"]["qosClass"] = qos;
  return pod;
}

// clients/fake_kube_api.py, stopped on destruction.
class FakeApiServer {
 public:
  static Result<std::unique_ptr<FakeApiServer>> start() {
    auto dir = test::TempDir::create();
    if (!dir.ok()) {
      return std::move(dir).error();
    }
    const std::string ready = dir->path() + "/ready";
    const std::string log = dir->path() + "/requests.jsonl";
    auto proc = test::Process::spawn(
        {.argv = {test::python3Bin(), clientsDir() + "/fake_kube_api.py", "--ready", ready, "--log",
                  log, "--token", kToken, "--node", kNode}});
    if (!proc.ok()) {
      return std::move(proc).error();
    }
    std::unique_ptr<FakeApiServer> s(new FakeApiServer(std::move(*dir), std::move(*proc)));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!pathExists(ready)) {
      if (!s->proc_.running() || std::chrono::steady_clock::now() >= deadline) {
        return Error(
            EIO, "fake_kube_api.py did not start: " + s->proc_.stop(milliseconds(0)).describe());
      }
      std::this_thread::sleep_for(milliseconds(20));
    }
    auto port = readFile(ready);
    if (!port.ok()) {
      return std::move(port).error();
    }
    s->url_ = "http://127.0.0.1:" + *port;
    return s;
  }

  const std::string& url() const { return url_; }
  const test::TempDir& dir() const { return dir_; }

  // POST /__test/WHAT with `body`.
  Status control(const std::string& what, const json& body = json::object()) const {
    auto r = test::run({.argv = {"curl", "-sS", "--noproxy", "*", "--max-time", "5", "-X", "POST",
                                 "--data-binary", body.dump(), url_ + "/__test/" + what}},
                       milliseconds(10000));
    if (!r.ok()) {
      return std::move(r).error();
    }
    if (!r->succeeded() || r->out.find("\"ok\"") == std::string::npos) {
      return Error(EIO, "fake API /__test/" + what + ": " + r->describe());
    }
    return okStatus();
  }
  Status setPods(const std::string& resourceVersion, const std::vector<json>& pods) const {
    return control("pods", {{"resourceVersion", resourceVersion}, {"items", pods}});
  }
  Status push(const std::string& type, const json& object) const {
    return control("push", {{"type", type}, {"object", object}});
  }

  // Every API request so far: {"path", "query", "auth"}.
  std::vector<json> requests() const {
    std::vector<json> out;
    auto text = readFile(dir_.path() + "/requests.jsonl");
    if (!text.ok()) {
      return out;
    }
    size_t start = 0;
    for (size_t nl = text->find('\n'); nl != std::string::npos; nl = text->find('\n', start)) {
      out.push_back(json::parse(text->substr(start, nl - start), nullptr, false));
      start = nl + 1;
    }
    return out;
  }
  std::string log() const {
    auto text = readFile(dir_.path() + "/requests.jsonl");
    return text.ok() ? *text : "";
  }

 private:
  FakeApiServer(test::TempDir dir, test::Process proc)
      : dir_(std::move(dir)), proc_(std::move(proc)) {}
  test::TempDir dir_;
  test::Process proc_;
  std::string url_;
};

std::optional<json> listed(const test::ControlDaemon& d, const std::string& id) {
  const CtlReply list = d.ctlJson({"sandbox", "list"});
  for (const json& s : list.body.value("sandboxes", json::array())) {
    if (s.value("id", "") == id) {
      return s;
    }
  }
  return std::nullopt;
}

// Polls `sandbox list` until `id` is (or is not) there.
bool waitListed(const test::ControlDaemon& d, const std::string& id, bool present,
                milliseconds timeout = milliseconds(10000)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (listed(d, id).has_value() == present) {
      return true;
    }
    std::this_thread::sleep_for(milliseconds(100));
  }
  return false;
}

class Kubernetes : public E2eTest {
 protected:
  void SetUp() override {
    E2eTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) {
      return;
    }
    auto origin = httpOrigin();
    ASSERT_TRUE(origin.ok()) << origin.error().message();
    origin_ = *origin;
    const test::TestNetns* ns = w().net->sandboxNetns();
    ASSERT_NE(ns, nullptr) << "the world has no sandbox netns";
    ASSERT_TRUE(ns->exists()) << ns->path();
    netns_ = ns->path();
    ASSERT_TRUE(SandboxNetnsHasNoDefaultRoute(w()));
  }
  void TearDown() override {
    if (HasFailure() && daemon_ != nullptr) {
      std::cerr << "--- daemon log ---\n"
                << daemon_->logs() << "--- fake API requests ---\n"
                << (api_ ? api_->log() : "") << "\n";
    }
  }

  // GET http://HOST:8080/whoami?tag=TAG from `cgroup` in the pods' netns.
  CurlResult fetch(const std::string& cgroup, const std::string& host, const std::string& tag) {
    const int ip = host == "other.test" ? 4 : 3;
    const std::string p = std::to_string(kHttpOrigin);
    return curlInCgroup(cgroup, netns_,
                        {"--resolve", host + ":" + p + ":" + w().ip4(ip),
                         "http://" + host + ":" + p + "/whoami?tag=" + tag});
  }
  size_t reached(const std::string& tag) const { return origin_->requestsMatching(tag).size(); }

  // The policy is in force for `cgroup`: allowed.test served, other.test refused by egressd
  // and never at the origin.
  void expectEnforced(const std::string& cgroup) {
    const std::string ok = uniqueTag("k8s-allowed");
    CurlResult served = fetch(cgroup, "allowed.test", ok);
    EXPECT_EQ(served.status(), 200) << served.describe();
    EXPECT_EQ(reached(ok), 1U);
    const std::string no = uniqueTag("k8s-denied");
    CurlResult denied = fetch(cgroup, "other.test", no);
    EXPECT_EQ(denied.status(), 403) << denied.describe();
    EXPECT_EQ(reached(no), 0U) << "other.test reached the origin";
  }

  // The daemon with --kubernetes against api_, pod cgroups under `kubeRoot`, policy k8s-web
  // (allowed.test; handler `tenant` setting X-Tenant from its params) from its policy dir.
  // `token`: what the token file holds at start.
  void startDaemon(const test::TestCgroup& kubeRoot, const std::string& token = kToken) {
    ASSERT_OK_AND_ASSIGN(test::ControlDaemon::Options opts, worldDaemonOptions());
    PolicySpec spec;
    spec.name = "k8s-web";
    spec.allowedHosts = {"allowed.test"};
    spec.extraYaml =
        "outboundHandlers:\n  tenant:\n    - setHeader: { name: X-Tenant, value: "
        "\"${params.tenant}\" }\n";
    opts.policyFiles["k8s-web.yaml"] = cpPolicy(spec);
    ASSERT_OK_AND_ASSIGN(std::string tokenFile, api_->dir().writeFile("token", token + "\n"));
    opts.extraArgs.insert(opts.extraArgs.end(),
                          {"--kubernetes", "--kube-node", kNode, "--kube-api", api_->url(),
                           "--kube-token-file", tokenFile, "--kube-cgroup-root", kubeRoot.path()});
    auto started = test::ControlDaemon::start(opts);
    ASSERT_TRUE(started.ok()) << started.error().message();
    daemon_ = std::move(*started);
  }

  // Audit records of the watcher (reason kubernetes_pod) for `id` with `decision`.
  size_t podAudits(const std::string& id, const std::string& decision) const {
    auto records = daemon_->auditRecords();
    size_t n = 0;
    for (const json& r : records.ok() ? *records : std::vector<json>{}) {
      n += r.value("sandbox", "") == id && r.value("reason", "") == "kubernetes_pod" &&
                   r.value("decision", "") == decision
               ? 1
               : 0;
    }
    return n;
  }

  test::TestHttpOrigin* origin_ = nullptr;
  std::string netns_;
  // The pods' cgroups: removed after the daemon stopped (members go in reverse order), so
  // the daemon deletes its sandboxes itself rather than racing its cgroup check.
  std::optional<test::TestCgroup> kubeRoot_;
  std::unique_ptr<FakeApiServer> api_;
  std::unique_ptr<test::ControlDaemon> daemon_;
};

TEST_F(Kubernetes, PodsOfTheNodeGetSandboxesThatFollowThem) {
  // The kubelet's layout under a test cgroup: web-0 Burstable under the systemd driver,
  // api-1 Guaranteed under cgroupfs (the watcher looks for both).
  ASSERT_OK_AND_ASSIGN(kubeRoot_, test::TestCgroup::create());
  const test::TestCgroup& kubeRoot = *kubeRoot_;
  ASSERT_OK_AND_ASSIGN(test::TestCgroup operatorCgroup, test::TestCgroup::create());
  const std::string webUid = randomUid();
  const std::string apiUid = randomUid();
  std::string webUnit = webUid;
  std::replace(webUnit.begin(), webUnit.end(), '-', '_');
  const std::string webPod =
      "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + webUnit + ".slice";
  ASSERT_OK_AND_ASSIGN(std::string webContainer, kubeRoot.createChild(webPod + "/cri-containerd-" +
                                                                      randomHex(64) + ".scope"));
  const std::string apiPod = "kubepods/pod" + apiUid;
  ASSERT_OK_AND_ASSIGN(std::string apiContainer,
                       kubeRoot.createChild(apiPod + "/" + randomHex(64)));
  ASSERT_OK_AND_ASSIGN(test::Process webProc,
                       spawnInCgroup({"sleep", "300"}, webContainer, netns_));
  ASSERT_OK_AND_ASSIGN(test::Process apiProc,
                       spawnInCgroup({"sleep", "300"}, apiContainer, netns_));

  ASSERT_OK_AND_ASSIGN(api_, FakeApiServer::start());
  const json webAnnotations = {{"egressd.io/policy", "k8s-web"},
                               {"egressd.io/outbound-handler", "tenant"},
                               {"egressd.io/params-tenant", "acme"}};
  const json web = podObject("shop", "web-0", webUid, "Running", "Burstable", webAnnotations, "90");
  const json plain =
      podObject("shop", "plain", randomUid(), "Running", "BestEffort", json::object(), "91");
  ASSERT_OK(api_->setPods("100", {web, plain}));

  ASSERT_NO_FATAL_FAILURE(startDaemon(kubeRoot));

  // An operator's sandbox with an id a pod could have: never the watcher's to delete.
  const std::string operatorId = "k8s-shop_manual";
  ASSERT_CTL_OK(daemon_->ctlJson(
      {"sandbox", "create", operatorId, "--policy", "k8s-web", "--cgroup", operatorCgroup.path()}));

  // --- the first list: web-0's sandbox, on its pod cgroup and in its netns, with params.
  const std::string webId = "k8s-shop_web-0";
  ASSERT_TRUE(waitListed(*daemon_, webId, true)) << "no sandbox for shop/web-0";
  const json webEntry = *listed(*daemon_, webId);
  EXPECT_EQ(webEntry.value("policy", ""), "k8s-web") << webEntry.dump();
  EXPECT_EQ(webEntry.value("owner", ""), "kubernetes-pod/" + webUid) << webEntry.dump();
  EXPECT_EQ(webEntry.value("cgroup", ""), kubeRoot.path() + "/" + webPod) << webEntry.dump();
  EXPECT_FALSE(listed(*daemon_, "k8s-shop_plain").has_value()) << "a pod without annotation";
  const CtlReply shown = daemon_->ctlJson({"sandbox", "show", webId});
  ASSERT_CTL_OK(shown);
  EXPECT_EQ(shown.body.value("netns", ""), daemon_->runDir() + "/netns/" + webId)
      << shown.body.dump();
  auto created = daemon_->waitForAudit(auditMatch({{"sandbox", webId},
                                                   {"layer", "control"},
                                                   {"decision", "create"},
                                                   {"reason", "kubernetes_pod"}}));
  ASSERT_OK(created);
  EXPECT_NE(created->value("detail", "").find("pod shop/web-0"), std::string::npos)
      << created->dump();

  // Enforced from the container's cgroup: allowed.test through the proxy (with the pod's
  // handler params), other.test refused and never at the origin.
  bool bound = false;
  for (int i = 0; i < 50 && !bound; ++i) {  // the handler binding follows the create
    const CtlReply s = daemon_->ctlJson({"sandbox", "show", webId});
    bound = s.body.dump().find("\"tenant\"") != std::string::npos;
    if (!bound) {
      std::this_thread::sleep_for(milliseconds(100));
    }
  }
  EXPECT_TRUE(bound) << daemon_->ctlJson({"sandbox", "show", webId}).body.dump();
  expectEnforced(webContainer);
  CurlResult served = fetch(webContainer, "allowed.test", uniqueTag("k8s-tenant"));
  EXPECT_EQ(served.seenHeader("x-tenant"), "acme") << served.describe();

  // The list asked for this node's pods with the token; the watch started at its version.
  std::vector<json> requests = api_->requests();
  ASSERT_GE(requests.size(), 2U) << api_->log();
  EXPECT_EQ(requests[0]["query"].value("fieldSelector", ""), std::string("spec.nodeName=") + kNode);
  EXPECT_FALSE(requests[0]["query"].contains("watch"));
  EXPECT_TRUE(requests[0].value("auth", false));
  EXPECT_EQ(requests[1]["query"].value("watch", ""), "1");
  EXPECT_EQ(requests[1]["query"].value("resourceVersion", ""), "100");
  EXPECT_EQ(requests[1]["query"].value("allowWatchBookmarks", ""), "true");

  // --- watch events: api-1 added (Pending, then Running), a bookmark, the watch ends.
  const std::string apiId = "k8s-shop_api-1";
  const json apiAnnotations = {{"egressd.io/policy", "k8s-web"}};
  ASSERT_OK(api_->push(
      "ADDED", podObject("shop", "api-1", apiUid, "Pending", "Guaranteed", apiAnnotations, "120")));
  ASSERT_OK(api_->push("MODIFIED", podObject("shop", "api-1", apiUid, "Running", "Guaranteed",
                                             apiAnnotations, "130")));
  ASSERT_TRUE(waitListed(*daemon_, apiId, true)) << "no sandbox for shop/api-1";
  EXPECT_EQ(listed(*daemon_, apiId)->value("cgroup", ""), kubeRoot.path() + "/" + apiPod);
  ASSERT_OK(api_->push("BOOKMARK", {{"kind", "Pod"},
                                    {"apiVersion", "v1"},
                                    {"metadata", {{"resourceVersion", "250"}}},
                                    {"spec", {{"containers", nullptr}}},
                                    {"status", json::object()}}));
  ASSERT_OK(api_->control("end-watch"));
  bool resumed = false;
  for (int i = 0; i < 100 && !resumed; ++i) {
    for (const json& r : api_->requests()) {
      resumed = resumed || r["query"].value("resourceVersion", "") == "250";
    }
    std::this_thread::sleep_for(milliseconds(100));
  }
  EXPECT_TRUE(resumed) << "the watch did not resume from the bookmark's version:\n" << api_->log();

  // --- DELETED: api-1's sandbox, its links and its netns pin go; audited with the pod.
  const std::string apiLinks = loader::linksDir(daemon_->pinRoot(), apiId);
  EXPECT_TRUE(pathExists(apiLinks)) << apiLinks;
  ASSERT_OK(api_->push("DELETED", podObject("shop", "api-1", apiUid, "Running", "Guaranteed",
                                            apiAnnotations, "260")));
  ASSERT_TRUE(waitListed(*daemon_, apiId, false)) << "shop/api-1's sandbox outlived the pod";
  EXPECT_FALSE(pathExists(apiLinks)) << "pinned links of a deleted sandbox: " << apiLinks;
  EXPECT_FALSE(pathExists(daemon_->runDir() + "/netns/" + apiId));
  auto deleted = daemon_->waitForAudit(auditMatch({{"sandbox", apiId},
                                                   {"layer", "control"},
                                                   {"decision", "delete"},
                                                   {"reason", "kubernetes_pod"}}));
  ASSERT_OK(deleted);
  EXPECT_NE(deleted->value("detail", "").find("pod shop/api-1"), std::string::npos)
      << deleted->dump();
  EXPECT_TRUE(listed(*daemon_, webId).has_value());

  // --- MODIFIED with other params: the handler is rebound in place (no new sandbox).
  json retenanted = webAnnotations;
  retenanted["egressd.io/params-tenant"] = "globex";
  ASSERT_OK(api_->push(
      "MODIFIED", podObject("shop", "web-0", webUid, "Running", "Burstable", retenanted, "270")));
  std::string tenant;
  for (int i = 0; i < 50 && tenant != "globex"; ++i) {
    std::this_thread::sleep_for(milliseconds(100));
    tenant = fetch(webContainer, "allowed.test", uniqueTag("k8s-rebind")).seenHeader("x-tenant");
  }
  EXPECT_EQ(tenant, "globex") << "the new params were not applied";
  EXPECT_EQ(podAudits(webId, "create"), 1U);

  // --- 410: the next watch is refused as too old; the watcher lists again, and web-0 is not
  // in the new list (it went while the watch was down), so its sandbox goes too.
  ASSERT_OK(api_->setPods("500", {plain}));
  ASSERT_OK(api_->control("gone"));
  ASSERT_OK(api_->control("end-watch"));
  ASSERT_TRUE(waitListed(*daemon_, webId, false)) << "web-0's sandbox survived the re-list";
  requests = api_->requests();
  size_t lists = 0;
  for (const json& r : requests) {
    lists += r["query"].contains("watch") ? 0 : 1;
  }
  EXPECT_EQ(lists, 2U) << api_->log();
  EXPECT_FALSE(pathExists(loader::linksDir(daemon_->pinRoot(), webId)));
  // The operator's sandbox is still there.
  EXPECT_TRUE(listed(*daemon_, operatorId).has_value());
  ASSERT_CTL_OK(daemon_->ctlJson({"sandbox", "delete", operatorId}));
  (void)webProc.stop(milliseconds(0));
  (void)apiProc.stop(milliseconds(0));
}

// A Pending pod whose cgroup is not there yet gets no sandbox and no error that sticks; once
// the kubelet made the cgroup and started its first process, the next event about the pod
// (it turns Running) arms it at once. An unknown policy is retried until the policy exists.
TEST_F(Kubernetes, PendingPodIsArmedWhenItsCgroupHasAProcess) {
  ASSERT_OK_AND_ASSIGN(kubeRoot_, test::TestCgroup::create());
  const test::TestCgroup& kubeRoot = *kubeRoot_;
  ASSERT_OK_AND_ASSIGN(api_, FakeApiServer::start());
  ASSERT_OK(api_->setPods("100", {}));
  ASSERT_NO_FATAL_FAILURE(startDaemon(kubeRoot));
  const std::string uid = randomUid();
  const json annotations = {{"egressd.io/policy", "k8s-web"}};
  ASSERT_OK(api_->push(
      "ADDED", podObject("jobs", "late", uid, "Pending", "BestEffort", annotations, "110")));
  std::this_thread::sleep_for(milliseconds(1500));
  const std::string id = "k8s-jobs_late";
  EXPECT_FALSE(listed(*daemon_, id).has_value()) << "a sandbox without a pod cgroup";

  std::string unit = uid;
  std::replace(unit.begin(), unit.end(), '-', '_');
  ASSERT_OK_AND_ASSIGN(std::string container,
                       kubeRoot.createChild("kubepods.slice/kubepods-besteffort.slice/"
                                            "kubepods-besteffort-pod" +
                                            unit + ".slice/crio-" + randomHex(64) + ".scope"));
  ASSERT_OK_AND_ASSIGN(test::Process proc, spawnInCgroup({"sleep", "300"}, container, netns_));
  const auto changed = std::chrono::steady_clock::now();
  ASSERT_OK(api_->push(
      "MODIFIED", podObject("jobs", "late", uid, "Running", "BestEffort", annotations, "120")));
  ASSERT_TRUE(waitListed(*daemon_, id, true)) << "the pod never got its sandbox";
  EXPECT_LT(std::chrono::steady_clock::now() - changed, std::chrono::seconds(3))
      << "armed by the backoff, not by the pod's event";
  expectEnforced(container);

  // A pod asking for a policy the daemon does not have yet: nothing, until the policy file
  // appears and is loaded (SIGHUP); then the retry makes the sandbox.
  const std::string otherUid = randomUid();
  ASSERT_OK_AND_ASSIGN(
      std::string otherContainer,
      kubeRoot.createChild("kubepods/besteffort/pod" + otherUid + "/" + randomHex(64)));
  ASSERT_OK_AND_ASSIGN(test::Process other,
                       spawnInCgroup({"sleep", "300"}, otherContainer, netns_));
  ASSERT_OK(api_->push("ADDED", podObject("jobs", "early", otherUid, "Running", "BestEffort",
                                          {{"egressd.io/policy", "k8s-later"}}, "130")));
  std::this_thread::sleep_for(milliseconds(1500));
  EXPECT_FALSE(listed(*daemon_, "k8s-jobs_early").has_value());
  PolicySpec later;
  later.name = "k8s-later";
  later.allowedHosts = {"allowed.test"};
  ASSERT_OK(daemon_->writePolicyFile("k8s-later.yaml", cpPolicy(later)));
  ASSERT_OK(daemon_->signal(SIGHUP));
  EXPECT_TRUE(waitListed(*daemon_, "k8s-jobs_early", true, milliseconds(15000)))
      << "the pod's sandbox was not made once its policy existed";
  (void)proc.stop(milliseconds(0));
  (void)other.stop(milliseconds(0));
}

// The token file is read for every request (projected service-account tokens rotate): with a
// token the API server refuses (401) the watcher keeps trying with its backoff, and once the
// file holds a good token the next attempt lists the pods.
TEST_F(Kubernetes, TokenIsReadAgainForEveryRequest) {
  ASSERT_OK_AND_ASSIGN(kubeRoot_, test::TestCgroup::create());
  const test::TestCgroup& kubeRoot = *kubeRoot_;
  const std::string uid = randomUid();
  ASSERT_OK_AND_ASSIGN(std::string container,
                       kubeRoot.createChild("kubepods/pod" + uid + "/" + randomHex(64)));
  ASSERT_OK_AND_ASSIGN(test::Process proc, spawnInCgroup({"sleep", "300"}, container, netns_));
  ASSERT_OK_AND_ASSIGN(api_, FakeApiServer::start());
  ASSERT_OK(api_->setPods("100", {podObject("ops", "rotated", uid, "Running", "Guaranteed",
                                            {{"egressd.io/policy", "k8s-web"}}, "10")}));
  ASSERT_NO_FATAL_FAILURE(startDaemon(kubeRoot, "expired-token"));
  const std::string tokenFile = api_->dir().path() + "/token";
  std::this_thread::sleep_for(milliseconds(2000));
  size_t refused = 0;
  for (const json& r : api_->requests()) {
    refused += r.value("auth", true) ? 0 : 1;
  }
  EXPECT_GE(refused, 2U) << "the watcher did not keep trying:\n" << api_->log();
  EXPECT_FALSE(listed(*daemon_, "k8s-ops_rotated").has_value());

  ASSERT_OK(writeFileAtomic(tokenFile, std::string(kToken) + "\n"));
  EXPECT_TRUE(waitListed(*daemon_, "k8s-ops_rotated", true, milliseconds(15000)))
      << "the new token was not used:\n"
      << api_->log();
  EXPECT_TRUE(daemon_->running());
  (void)proc.stop(milliseconds(0));
}

// A daemon restart: the sandboxes persist in state.json and are re-armed, and the first list
// after the restart reconciles: a pod that went meanwhile loses its sandbox (its cgroup still
// lingering), a new pod gets one, and the pod that stayed keeps its sandbox, not re-created.
TEST_F(Kubernetes, RestartReArmsAndReconcilesWhatChangedMeanwhile) {
  ASSERT_OK_AND_ASSIGN(kubeRoot_, test::TestCgroup::create());
  const test::TestCgroup& kubeRoot = *kubeRoot_;
  struct Pod {
    std::string name;
    std::string uid = randomUid();
    std::string cgroup;
    std::string container;
  };
  Pod keep{"keep"};
  Pod gone{"gone"};
  Pod fresh{"fresh"};
  std::vector<test::Process> procs;
  for (Pod* p : {&keep, &gone, &fresh}) {
    p->cgroup = kubeRoot.path() + "/kubepods/besteffort/pod" + p->uid;
    ASSERT_OK_AND_ASSIGN(p->container, kubeRoot.createChild("kubepods/besteffort/pod" + p->uid +
                                                            "/" + randomHex(64)));
    ASSERT_OK_AND_ASSIGN(test::Process proc, spawnInCgroup({"sleep", "300"}, p->container, netns_));
    procs.push_back(std::move(proc));
  }
  auto pod = [](const Pod& p, const std::string& rv) {
    return podObject("team", p.name, p.uid, "Running", "BestEffort",
                     {{"egressd.io/policy", "k8s-web"}}, rv);
  };
  ASSERT_OK_AND_ASSIGN(api_, FakeApiServer::start());
  ASSERT_OK(api_->setPods("100", {pod(keep, "10"), pod(gone, "11")}));
  ASSERT_NO_FATAL_FAILURE(startDaemon(kubeRoot));
  const std::string keepId = "k8s-team_keep";
  const std::string goneId = "k8s-team_gone";
  const std::string freshId = "k8s-team_fresh";
  ASSERT_TRUE(waitListed(*daemon_, keepId, true));
  ASSERT_TRUE(waitListed(*daemon_, goneId, true));
  ASSERT_TRUE(
      daemon_->waitForAudit(auditMatch({{"sandbox", keepId}, {"decision", "create"}})).ok());

  auto stopped = daemon_->killAndWait(SIGTERM);
  ASSERT_OK(stopped);
  // While it is down: `gone` leaves the API (the kubelet has not removed its cgroup yet),
  // `fresh` arrives. Enforcement of `keep` stays pinned meanwhile: fail closed, its proxied
  // port refuses connections and nothing reaches the origin.
  ASSERT_OK(api_->setPods("300", {pod(keep, "10"), pod(fresh, "12")}));
  const std::string down = uniqueTag("k8s-down");
  CurlResult refused = fetch(keep.container, "allowed.test", down);
  EXPECT_EQ(refused.status(), 0) << refused.describe();
  EXPECT_EQ(reached(down), 0U) << "a request got through while egressd was down";

  ASSERT_OK(daemon_->restart());
  ASSERT_TRUE(waitListed(*daemon_, freshId, true)) << "no sandbox for the pod that came";
  ASSERT_TRUE(waitListed(*daemon_, goneId, false)) << "the pod that went kept its sandbox";
  EXPECT_TRUE(listed(*daemon_, keepId).has_value());
  EXPECT_EQ(podAudits(keepId, "create"), 1U) << "the pod that stayed got its sandbox anew";
  EXPECT_EQ(podAudits(keepId, "delete"), 0U);
  // The audit line follows the delete (written by the audit thread): wait for it.
  EXPECT_OK(daemon_->waitForAudit(auditMatch({{"sandbox", goneId}, {"decision", "delete"}})));
  EXPECT_EQ(podAudits(goneId, "delete"), 1U);
  EXPECT_TRUE(pathExists(gone.cgroup)) << "a pod cgroup is the kubelet's, never egressd's";
  expectEnforced(keep.container);
  expectEnforced(fresh.container);
  for (test::Process& p : procs) {
    (void)p.stop(milliseconds(0));
  }
}

}  // namespace
}  // namespace egressd::e2e
