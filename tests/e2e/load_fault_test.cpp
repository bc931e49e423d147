// Load and faults (issue 14 part 3): 10,000 concurrent proxied connections, SIGKILL of the
// daemon under load (20 times), the faults of docs/security.md "Faults" and RSS under 30 s
// of mixed load. Bounded: the whole binary runs in a few minutes on 2 cores.
//
// The origin is tests/e2e/clients/load_origin.py (asyncio: 10,000 connections cost no
// threads) in the test internet. How a direct hit - a request that did not go through
// egressd - is told apart, two ways that do not depend on each other:
//   - a marker header: the policy's catch-all handler sets X-Load-Mark to a secret value
//     (a file the test writes; the clients never send that header), and the origin counts
//     requests without the right value;
//   - the peer address: sandboxes run in the world's sandbox netns (198.19.N.0/24), so a
//     direct connection would come from there, while egressd's upstream connections come
//     from the host side of the test veth (198.18.N.1 / 2001:db8:e9:N::1).
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "common/fs.h"
#include "control_fixture.h"
#include "http_client.h"
#include "prometheus.h"
#include "sanitizers.h"
#include "world.h"

namespace egressd::e2e {
namespace {

using nlohmann::json;
using test::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr int kLoadPort = 8180;
constexpr rlim_t kWantNofile = 65536;

std::string randomHex(size_t bytes) {
  std::random_device rd;
  std::string out;
  static const char* digits = "0123456789abcdef";
  for (size_t i = 0; i < bytes; ++i) {
    const unsigned v = rd() & 0xff;
    out += digits[v >> 4];
    out += digits[v & 0xf];
  }
  return out;
}

size_t fdCount(pid_t pid) {
  std::error_code ec;
  size_t n = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++n;
  }
  return n;
}

uint64_t rssKib(pid_t pid) {
  auto v = test::procStatusKib(pid, "VmRSS");
  return v.ok() ? *v : 0;
}

// Samples a process's VmRSS every `period` on a thread until stop().
class RssSampler {
 public:
  RssSampler(pid_t pid, milliseconds period) {
    thread_ = std::thread([this, pid, period] {
      while (!stop_.load()) {
        const uint64_t v = rssKib(pid);
        {
          std::lock_guard lock(mutex_);
          samples_.push_back(v);
        }
        std::unique_lock lock(mutex_);
        cv_.wait_for(lock, period, [this] { return stop_.load(); });
      }
    });
  }
  ~RssSampler() { stop(); }
  std::vector<uint64_t> stop() {
    stop_ = true;
    cv_.notify_all();
    if (thread_.joinable()) {
      thread_.join();
    }
    std::lock_guard lock(mutex_);
    return samples_;
  }

 private:
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<uint64_t> samples_;
  std::thread thread_;
};

uint64_t maxOf(const std::vector<uint64_t>& v) {
  return v.empty() ? 0 : *std::max_element(v.begin(), v.end());
}

std::string curveText(const std::vector<uint64_t>& v) {
  std::string s;
  for (uint64_t x : v) {
    s += (s.empty() ? "" : " ") + std::to_string(x / 1024);
  }
  return s + " (MiB)";
}

// tests/e2e/clients/load_origin.py in the test internet on .3 and ::3, port kLoadPort.
class LoadOrigin {
 public:
  static Result<std::unique_ptr<LoadOrigin>> start(World& w, const std::string& marker) {
    auto dir = test::TempDir::create();
    if (!dir.ok()) {
      return std::move(dir).error();
    }
    std::unique_ptr<LoadOrigin> o(new LoadOrigin(std::move(dir).value()));
    const std::string ready = o->dir_.path() + "/ready";
    auto proc = test::Process::spawn(test::SpawnOptions{
        .argv = {test::python3Bin(), clientsDir() + "/load_origin.py", "--listen",
                 hostPort(w.ip4(3), kLoadPort), "--listen", hostPort(w.ip6(3), kLoadPort),
                 "--ready", ready, "--stats", o->statsPath(), "--marker", marker},
        .netnsPath = w.net->internet().path()});
    if (!proc.ok()) {
      return std::move(proc).error();
    }
    o->proc_.emplace(std::move(proc).value());
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (!pathExists(ready) || !pathExists(o->statsPath())) {
      if (!o->proc_->running() || Clock::now() >= deadline) {
        return Error(EIO,
                     "load_origin.py did not start: " + o->proc_->stop(milliseconds(0)).describe());
      }
      std::this_thread::sleep_for(milliseconds(20));
    }
    return o;
  }
  std::string statsPath() const { return dir_.path() + "/stats.json"; }
  Result<json> stats() const {
    auto text = readFile(statsPath());
    if (!text.ok()) {
      return std::move(text).error();
    }
    json j = json::parse(*text, nullptr, false);
    if (!j.is_object()) {
      return Error(EINVAL, "load_origin stats: " + *text);
    }
    return j;
  }
  // Stats once they reflect at least the last `settle` of activity (written every 200 ms).
  Result<json> settledStats(milliseconds settle = milliseconds(500)) const {
    std::this_thread::sleep_for(settle);
    return stats();
  }
  bool running() { return proc_ && proc_->running(); }

 private:
  explicit LoadOrigin(test::TempDir dir) : dir_(std::move(dir)) {}
  test::TempDir dir_;
  std::optional<test::Process> proc_;
};

// Shared by the tests of this binary: the origin and the marker's secret file.
struct LoadWorld {
  test::TempDir dir;
  std::string marker;
  std::string markerFile;
  std::unique_ptr<LoadOrigin> origin;
};

Result<LoadWorld*> loadWorld() {
  static std::optional<Result<LoadWorld*>> made;
  static std::unique_ptr<LoadWorld> lw;
  if (made) {
    return *made;
  }
  auto make = [&]() -> Result<LoadWorld*> {
    auto w = world();
    if (!w.ok()) {
      return std::move(w).error();
    }
    auto dir = test::TempDir::create();
    if (!dir.ok()) {
      return std::move(dir).error();
    }
    lw.reset(new LoadWorld{std::move(dir).value(), randomHex(16), "", nullptr});
    auto file = lw->dir.writeFile("mark", lw->marker);
    if (!file.ok()) {
      return std::move(file).error();
    }
    lw->markerFile = *file;
    auto origin = LoadOrigin::start(**w, "X-Load-Mark=" + lw->marker);
    if (!origin.ok()) {
      return std::move(origin).error();
    }
    lw->origin = std::move(origin).value();
    return lw.get();
  };
  made = make();
  return *made;
}

// allowed.test through the proxy on kLoadPort, every request marked by the catch-all
// handler; other.test denied (not in allowedHosts).
PolicySpec loadSpec(const LoadWorld& lw) {
  PolicySpec s;
  s.name = "load";
  s.proxyPorts = std::vector<int>{kHttp, kHttps, kLoadPort};
  s.allowedHosts = {"allowed.test"};
  s.extraYaml = "secrets:\n  MARK: { file: \"" + lw.markerFile +
                "\" }\n"
                "outbound: mark\n"
                "outboundHandlers:\n"
                "  mark:\n"
                "    - setHeader: { name: X-Load-Mark, value: \"${secret:MARK}\", "
                "allowPlaintext: true }\n";
  return s;
}

// Runs in the sandbox's cgroup and netns, after checking the test network exists.
Result<test::Process> spawnInSandbox(const World& w, const Sandbox& sb,
                                     const std::vector<std::string>& argv) {
  if (auto ok = w.net->checkExists(); !ok.ok()) {
    return std::move(ok).error();
  }
  return test::Process::spawn(
      test::SpawnOptions{.argv = argv, .cgroup = sb.cgroup().path(), .netnsPath = sb.netnsPath()});
}

// `cat FILE` in `netnsPath`: per-namespace sysctls.
Result<std::string> readInNetns(const std::string& netnsPath, const std::string& file) {
  auto r = test::run(test::SpawnOptions{.argv = {"cat", file}, .netnsPath = netnsPath},
                     milliseconds(5000));
  if (!r.ok()) {
    return std::move(r).error();
  }
  if (!r->succeeded()) {
    return Error(EIO, "cat " + file + ": " + r->describe());
  }
  return r->out;
}

// Link ids of the egressd links on a cgroup (bpftool link show).
Result<std::set<uint64_t>> linkIds(uint64_t cgroupId) {
  auto links = bpftoolJson({"link", "show"});
  if (!links.ok()) {
    return std::move(links).error();
  }
  std::set<uint64_t> ids;
  for (const auto& l : *links) {
    if (l.value("type", "") == "cgroup" && l.value("cgroup_id", uint64_t{0}) == cgroupId) {
      ids.insert(l.value("id", uint64_t{0}));
    }
  }
  return ids;
}

size_t countOf(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
    ++n;
  }
  return n;
}

// A /whoami answer of load_origin.py that says the request carried egressd's marker.
bool jsonBodyMarked(const CurlReply& r) {
  const json j = json::parse(r.last().body, nullptr, false);
  return j.is_object() && j.value("marked", false);
}

int64_t num(const json& j, const std::string& key) {
  return j.is_object() && j.contains(key) && j[key].is_number() ? j[key].get<int64_t>() : 0;
}

CurlReply getLoad(const Sandbox& sb, const World& w, const std::string& host,
                  const std::string& path, std::vector<std::string> extra = {});

// The limit egressd logged at start ("proxy: at most N connections at once"); 0 if none.
int64_t maxConnectionsOf(const std::string& logs) {
  const std::string key = "proxy: at most ";
  const size_t at = logs.rfind(key);
  return at == std::string::npos ? 0 : std::atoll(logs.c_str() + at + key.size());
}

class LoadFaultTest : public E2eTest {
 protected:
  static void SetUpTestSuite() {
    // The daemon and the clients inherit this: the proxy holds two sockets (and at times a
    // pipe) per connection, the client one socket per connection.
    struct rlimit nofile {};
    ::getrlimit(RLIMIT_NOFILE, &nofile);
    if (nofile.rlim_max < kWantNofile) {
      nofile.rlim_max = kWantNofile;  // root (CAP_SYS_RESOURCE) may raise it up to nr_open
    }
    nofile.rlim_cur = std::max(nofile.rlim_cur, std::min(kWantNofile, nofile.rlim_max));
    ::setrlimit(RLIMIT_NOFILE, &nofile);
  }

  void SetUp() override {
    E2eTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) {
      return;
    }
    auto lw = loadWorld();
    ASSERT_TRUE(lw.ok()) << lw.error().message();
    lw_ = *lw;
    ASSERT_TRUE(lw_->origin->running()) << "load_origin.py is gone";
  }

  Result<std::unique_ptr<Sandbox>> startSandbox(std::vector<std::string> daemonArgs = {},
                                                bool auditLog = true) {
    daemonArgs.insert(daemonArgs.begin(), {"--log-level", "info"});
    return Sandbox::start(loadSpec(*lw_), SandboxOptions{.ownNetns = true,
                                                         .auditLog = auditLog,
                                                         .metrics = true,
                                                         .daemonArgs = std::move(daemonArgs)});
  }

  std::string loadEndpoint() { return hostPort(w().ip4(3), kLoadPort); }
  // load_mix.py's `mix` against allowed.test: `conns` connections split between keep-alive
  // loops, slow readers (`slowBytes`, pausing `slowWait` s) and slowloris heads; each
  // connection gives up after `timeout` s; `headerTimeout` is the daemon's, in s.
  std::vector<std::string> mixArgs(int conns, int timeout, int slowBytes, int slowWait,
                                   int headerTimeout) {
    std::vector<std::string> args = {"mix", "--connect", loadEndpoint(), "--host", "allowed.test"};
    const std::pair<const char*, int> numbers[] = {{"--conns", conns},
                                                   {"--timeout", timeout},
                                                   {"--slow-bytes", slowBytes},
                                                   {"--slow-wait", slowWait},
                                                   {"--header-timeout", headerTimeout}};
    for (const auto& [flag, value] : numbers) {
      args.push_back(flag);
      args.push_back(std::to_string(value));
    }
    return args;
  }
  // Where egressd's upstream connections come from.
  std::set<std::string> proxySide() { return {w().ip4(1), w().ip6(1)}; }

  // Between the origin's stats `since` and `now`: every new connection came from egressd's
  // side of the veth, and no request lacked egressd's marker.
  ::testing::AssertionResult NoDirectHits(const json& since, const json& now) {
    std::string problems;
    const int64_t unmarked = num(now, "unmarked") - num(since, "unmarked");
    if (unmarked != 0) {
      problems += std::to_string(unmarked) + " requests without egressd's marker (first ever: " +
                  now.value("unmarked_samples", json::array()).dump() + "); ";
    }
    // Named: items() iterates the object it was called on.
    const json byPeer = now.value("by_peer", json::object());
    const json before = since.value("by_peer", json::object());
    for (const auto& [peer, n] : byPeer.items()) {
      const int64_t added = n.get<int64_t>() - num(before, peer);
      if (!proxySide().contains(peer) && added > 0) {
        problems += std::to_string(added) + " connections from " + peer + "; ";
      }
    }
    if (problems.empty()) {
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure() << "direct hits at the origin: " << problems;
  }

  LoadWorld* lw_ = nullptr;
};

// --- 1. 10,000 concurrent connections ------------------------------------------------------

// How a load_mix.py connection may end: served, a status from egressd, or closed without one
// after sending nothing for longer than --header-timeout-ms ("idle_closed": egressd ends a
// connection that never spoke without an answer; on a busy host the client's barrier, which
// opens every connection before the first request, can outlast that timeout).
bool isClearEnding(const std::string& outcome) {
  return outcome == "served" || outcome.starts_with("status_") || outcome == "idle_closed";
}

// egressd's RSS bound under the 10,000 connections: 32 MiB plus 48 KiB per connection it
// serves at once, 1.5 to 2 times what was measured (15 MiB idle, 21-32 KiB per connection:
// 116-172 MiB peaks with 4,936 connections over five runs; docs/testing.md).
constexpr uint64_t kRssBaseBoundKib = 32 * 1024;
constexpr uint64_t kRssPerConnectionBoundKib = 48;

TEST_F(LoadFaultTest, TenThousandConcurrentConnectionsAreServedOrRefusedClearly) {
  constexpr int kConns = 10000;
  // The client holds one descriptor per connection (the daemon's own limit decides how many
  // it serves and is part of what is tested).
  struct rlimit nofile {};
  ::getrlimit(RLIMIT_NOFILE, &nofile);
  if (nofile.rlim_cur < kConns + 512) {
    GTEST_SKIP() << "RLIMIT_NOFILE is " << nofile.rlim_cur << " (hard " << nofile.rlim_max
                 << ", not raisable here): the client cannot hold " << kConns << " connections";
  }
  ASSERT_OK_AND_ASSIGN(auto sb,
                       startSandbox({"--header-timeout-ms", "8000", "--proxy-threads", "2"}));
  ASSERT_OK_AND_ASSIGN(std::string range,
                       readInNetns(sb->netnsPath(), "/proc/sys/net/ipv4/ip_local_port_range"));
  int lo = 0;
  int hi = 0;
  ASSERT_EQ(std::sscanf(range.c_str(), "%d %d", &lo, &hi), 2) << range;
  if (hi - lo + 1 < kConns + 1000) {
    GTEST_SKIP() << "the sandbox netns has " << hi - lo + 1
                 << " ephemeral ports (ip_local_port_range " << range << "), fewer than "
                 << kConns + 1000;
  }
  ASSERT_OK_AND_ASSIGN(std::string somaxconn,
                       readInNetns(sb->netnsPath(), "/proc/sys/net/core/somaxconn"));

  const pid_t pid = sb->daemon().pid();
  ASSERT_OK_AND_ASSIGN(json originBefore, lw_->origin->settledStats(milliseconds(300)));
  const size_t fdsBefore = fdCount(pid);
  const uint64_t rssIdle = rssKib(pid);
  RssSampler sampler(pid, milliseconds(250));
  std::vector<uint64_t> fdCurve;
  std::atomic<bool> fdStop{false};
  std::thread fdThread([&] {
    while (!fdStop) {
      fdCurve.push_back(fdCount(pid));
      std::this_thread::sleep_for(milliseconds(250));
    }
  });
  const auto started = Clock::now();
  auto ran =
      pythonClientIn(*sb, "load_mix.py", mixArgs(kConns, 60, 65536, 3, 8), milliseconds(200000));
  fdStop = true;
  fdThread.join();
  ASSERT_TRUE(ran.ok()) << ran.error().message();
  const json res = *ran;
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  const std::vector<uint64_t> curve = sampler.stop();
  const uint64_t peak = maxOf(curve);
  ASSERT_OK_AND_ASSIGN(uint64_t hwm, test::procStatusKib(pid, "VmHWM"));

  // Every connection ended in a counted outcome, and each is a served request or a clear
  // status from egressd: nothing hung, was cut without an answer or reached the origin
  // around the proxy.
  const json outcomes = res.value("outcomes", json::object());
  int64_t total = 0;
  for (const auto& [kind, byOutcome] : outcomes.items()) {
    for (const auto& [outcome, n] : byOutcome.items()) {
      total += n.get<int64_t>();
      const bool clear = isClearEnding(outcome);
      EXPECT_TRUE(clear) << n << " " << kind << " connections ended " << outcome;
    }
  }
  EXPECT_EQ(total, kConns) << res.dump();
  // egressd serves as many at once as its descriptor limit allows (the limit it logged at
  // start) and answers the others 503 connection_limit at once; slowloris heads it took get
  // 408 after --header-timeout-ms. Every connection is open before any request is sent, so
  // at least min(limit, kConns) were taken.
  const int64_t limit = maxConnectionsOf(sb->daemon().logs());
  ASSERT_GT(limit, 0) << "no connection limit in the daemon log:\n" << sb->daemon().logs();
  int64_t refused = 0;
  int64_t taken = 0;
  for (const auto& [kind, byOutcome] : outcomes.items()) {
    refused += num(byOutcome, "status_503");
    taken +=
        num(byOutcome, "served") + num(byOutcome, "status_408") + num(byOutcome, "idle_closed");
    if (kind != "slowloris") {
      EXPECT_EQ(num(byOutcome, "status_408"), 0) << kind << ": " << res.dump();
    } else {
      EXPECT_EQ(num(byOutcome, "served"), 0) << res.dump();
    }
  }
  EXPECT_GE(taken, std::min<int64_t>(limit, kConns)) << res.dump();
  ASSERT_OK_AND_ASSIGN(std::string metricsText, sb->daemon().scrapeMetrics());
  const auto samples = test::parsePrometheusText(metricsText);
  EXPECT_EQ(test::promValue(samples, "egressd_proxy_connections_refused_total",
                            {{"sandbox", sb->daemon().sandboxId()}}),
            static_cast<double>(refused));
  EXPECT_TRUE(res.value("errors", json::array()).empty()) << res.dump();
  EXPECT_TRUE(sb->daemon().running()) << sb->daemon().logs();

  ASSERT_OK_AND_ASSIGN(json originAfter, lw_->origin->settledStats());
  EXPECT_TRUE(NoDirectHits(originBefore, originAfter));
  // Each served keep-alive connection made two requests, each slow reader one.
  const int64_t servedRequests = 2 * num(outcomes.value("keepalive", json::object()), "served") +
                                 num(outcomes.value("slow_reader", json::object()), "served");
  EXPECT_EQ(num(originAfter, "marked") - num(originBefore, "marked"), servedRequests)
      << originAfter.dump();

  // No descriptor leak: once the clients are gone, egressd holds what it held before plus
  // the idle upstream connections it keeps for reuse (each one also open at the origin).
  size_t fdsAfter = 0;
  int64_t pooled = 0;
  for (int i = 0; i < 50; ++i) {
    fdsAfter = fdCount(pid);
    ASSERT_OK_AND_ASSIGN(json st, lw_->origin->stats());
    pooled = num(st, "open");
    if (fdsAfter <= fdsBefore + static_cast<size_t>(pooled)) {
      break;
    }
    std::this_thread::sleep_for(milliseconds(200));
  }
  EXPECT_LE(fdsAfter, fdsBefore + static_cast<size_t>(pooled))
      << "fds before " << fdsBefore << ", after " << fdsAfter << ", idle upstream " << pooled;
  // The pool keeps at most 64 idle connections per upstream (.3 and ::3) and thread (2).
  EXPECT_LE(pooled, 64 * 2 * 2) << "more idle upstream connections than the pool keeps";

  const uint64_t bound = kRssBaseBoundKib + kRssPerConnectionBoundKib *
                                                static_cast<uint64_t>(std::max<int64_t>(taken, 0));
  if (test::kAddressSanitizer) {
    std::cout << "[ note     ] RSS bound not checked: this is an ASan build (shadow memory, "
                 "quarantine)"
              << std::endl;
  } else {
    EXPECT_LT(std::max(peak, hwm), bound)
        << "egressd's RSS peaked at " << std::max(peak, hwm) / 1024 << " MiB, bound "
        << bound / 1024 << " MiB: " << curveText(curve);
  }
  std::cout << "[ numbers  ] 10k: limit " << limit << ", taken " << taken << ", 503 " << refused
            << ", fds peak " << maxOf(fdCurve) << "; "
            << res.value("outcomes", json::object()).dump() << " in " << seconds << " s; RSS idle "
            << rssIdle / 1024 << " MiB, peak " << peak / 1024 << " MiB (VmHWM " << hwm / 1024
            << " MiB); fds before " << fdsBefore << ", after " << fdsAfter << " (idle upstream "
            << pooled << "); ports " << hi - lo + 1 << ", somaxconn " << somaxconn
            << "; longest silence before a request " << res.value("max_silence", 0.0) << " s"
            << std::endl;
}

// --max-connections set low: the same clear refusal on any host, whatever its descriptor
// limit (the 10,000-connection test only reaches the limit where RLIMIT_NOFILE is small).
TEST_F(LoadFaultTest, ConnectionsPastMaxConnectionsGetA503AtOnce) {
  ASSERT_OK_AND_ASSIGN(auto sb,
                       startSandbox({"--max-connections", "50", "--header-timeout-ms", "2000"}));
  EXPECT_EQ(maxConnectionsOf(sb->daemon().logs()), 50) << sb->daemon().logs();
  const auto started = Clock::now();
  ASSERT_OK_AND_ASSIGN(json res, pythonClientIn(*sb, "load_mix.py", mixArgs(200, 20, 65536, 1, 2),
                                                milliseconds(60000)));
  const json outcomes = res.value("outcomes", json::object());
  int64_t refused = 0;
  int64_t taken = 0;
  for (const auto& [kind, byOutcome] : outcomes.items()) {
    for (const auto& [outcome, n] : byOutcome.items()) {
      EXPECT_TRUE(outcome == "served" || outcome == "status_503" || outcome == "idle_closed" ||
                  (kind == "slowloris" && outcome == "status_408"))
          << n << " " << kind << " ended " << outcome;
      (outcome == "status_503" ? refused : taken) += n.get<int64_t>();
    }
  }
  // All 200 are connected before any request, but the proxy accepts them from its queue
  // at its own pace, and a taken connection that ends (a slow reader after --slow-wait, a
  // keep-alive once every keep-alive has its answer) frees its place for one accepted
  // later. So: at least 50 taken, every one of the 200 ends served/503/408, and most of
  // those past the limit are refused. (Exactly 50/150 held here; a loaded CI host took 62.)
  EXPECT_GE(taken, 50) << res.dump();
  EXPECT_EQ(taken + refused, 200) << res.dump();
  EXPECT_GE(refused, 100) << res.dump();
  // Answered at once, not after a timeout (the slowloris ones taken wait for 408).
  EXPECT_LT(Clock::now() - started, std::chrono::seconds(25));
  ASSERT_OK_AND_ASSIGN(json a,
                       sb->daemon().waitForAudit(auditWith({{"reason", "connection_limit"}})));
  EXPECT_EQ(a.value("status", 0), 503) << a;
  EXPECT_EQ(a.value("decision", ""), "deny") << a;
  EXPECT_EQ(a.value("orig_dst", ""), loadEndpoint()) << a;
  ASSERT_OK_AND_ASSIGN(std::string metricsText, sb->daemon().scrapeMetrics());
  EXPECT_EQ(test::promValue(test::parsePrometheusText(metricsText),
                            "egressd_proxy_connections_refused_total",
                            {{"sandbox", sb->daemon().sandboxId()}}),
            static_cast<double>(refused));
  // Once the others are gone, new connections are served again.
  auto r = getLoad(*sb, w(), "allowed.test", "/whoami?after-limit");
  EXPECT_EQ(r.status(), 200) << r.describe();
}

// The connection limit set above what the descriptors allow (here: the daemon's
// RLIMIT_NOFILE lowered to 300 after start): when accept() fails with EMFILE, the spare
// descriptor takes the waiting connection and answers it 503 out_of_descriptors instead of
// leaving it to stall in the listen queue. Every connection ends with a status.
TEST_F(LoadFaultTest, RunningOutOfDescriptorsGetsA503NotAStall) {
  if (test::kAddressSanitizer) {
    // Once a process is out of descriptors, UBSan's vptr check (clang 14) reports any
    // valid polymorphic object as "invalid vptr (memory cannot be printed)": it probes the
    // memory through a descriptor it can no longer get. A ten-line program that exhausts
    // RLIMIT_NOFILE and copies a shared_ptr reproduces it; here it stopped the daemon.
    GTEST_SKIP() << "not meaningful in a sanitizer build: UBSan's vptr check needs a free "
                    "descriptor to probe memory";
  }
  ASSERT_OK_AND_ASSIGN(auto sb, startSandbox({"--max-connections", "5000", "--header-timeout-ms",
                                              "2000", "--proxy-threads", "2"}));
  const pid_t pid = sb->daemon().pid();
  struct rlimit low {
    300, 300
  };
  ASSERT_EQ(::prlimit(pid, RLIMIT_NOFILE, &low, nullptr), 0) << std::strerror(errno);
  const auto started = Clock::now();
  ASSERT_OK_AND_ASSIGN(json res, pythonClientIn(*sb, "load_mix.py", mixArgs(600, 20, 65536, 1, 2),
                                                milliseconds(90000)));
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  const json outcomes = res.value("outcomes", json::object());
  std::map<std::string, int64_t> totals;
  for (const auto& [kind, byOutcome] : outcomes.items()) {
    for (const auto& [outcome, n] : byOutcome.items()) {
      totals[outcome] += n.get<int64_t>();
      EXPECT_TRUE(isClearEnding(outcome))
          << n << " " << kind << " ended " << outcome << ": " << res.dump();
    }
  }
  EXPECT_GT(totals["status_503"], 0) << res.dump();
  EXPECT_GT(totals["served"], 0) << res.dump();
  ASSERT_OK_AND_ASSIGN(json a,
                       sb->daemon().waitForAudit(auditWith({{"reason", "out_of_descriptors"}})));
  EXPECT_EQ(a.value("status", 0), 503) << a;
  EXPECT_TRUE(sb->daemon().running()) << sb->daemon().logs();
  // With descriptors back, it serves again.
  struct rlimit back {
    20000, 20000
  };
  ::prlimit(pid, RLIMIT_NOFILE, &back, nullptr);
  auto r = getLoad(*sb, w(), "allowed.test", "/whoami?after-emfile");
  EXPECT_EQ(r.status(), 200) << r.describe();
  std::cout << "[ numbers  ] out of descriptors (RLIMIT_NOFILE 300, 600 connections): "
            << outcomes.dump() << " in " << seconds << " s" << std::endl;
}

// --- 2. SIGKILL under load, 20 times ----------------------------------------------------------

// 200 connections loop requests (every 10th to a denied host) while the daemon is killed
// with SIGKILL and restarted, 20 times. While it is down: the origin receives nothing, new
// proxied connections are refused (ECONNREFUSED from the kernel, the listener being gone),
// the links stay. After each restart: the same policy (allowed host served and marked by
// its handler, denied host 403) and the same pinned link ids.
TEST_F(LoadFaultTest, SigkillUnderLoadNeverLeaksAndRestartsWithTheSameLinks) {
  constexpr int kRounds = 20;
  constexpr int kLoopConns = 200;
  ASSERT_OK_AND_ASSIGN(auto sb, startSandbox({}, false));
  ASSERT_OK_AND_ASSIGN(json originStart, lw_->origin->settledStats(milliseconds(300)));
  ASSERT_OK_AND_ASSIGN(uint64_t cgid, sb->cgroup().id());
  ASSERT_OK_AND_ASSIGN(std::set<uint64_t> links, linkIds(cgid));
  ASSERT_GE(links.size(), 12u) << "egressd's links on the sandbox cgroup";
  ASSERT_OK_AND_ASSIGN(auto dir, test::TempDir::create());
  const std::string phaseFile = dir.path() + "/phase";
  const std::string stopFile = dir.path() + "/stop";
  const std::string statsFile = dir.path() + "/stats.json";
  auto setPhase = [&](const std::string& phase) {
    ASSERT_OK(writeFileAtomic(phaseFile, phase, 0644));
  };
  setPhase("up-0");
  std::string peers;
  for (const auto& p : proxySide()) {
    peers += (peers.empty() ? "" : ",") + p;
  }
  ASSERT_OK_AND_ASSIGN(test::Process client, spawnInSandbox(w(), *sb,
                                                            {test::python3Bin(),
                                                             clientsDir() + "/load_mix.py",
                                                             "loop",
                                                             "--connect",
                                                             loadEndpoint(),
                                                             "--host",
                                                             "allowed.test",
                                                             "--denied-host",
                                                             "other.test",
                                                             "--conns",
                                                             std::to_string(kLoopConns),
                                                             "--phase",
                                                             phaseFile,
                                                             "--stop",
                                                             stopFile,
                                                             "--stats",
                                                             statsFile,
                                                             "--expect-peer",
                                                             peers,
                                                             "--max-seconds",
                                                             "240"}));
  auto phaseStats = [&](const std::string& phase) -> json {
    auto text = readFile(statsFile);
    if (!text.ok()) {
      return json::object();
    }
    json j = json::parse(*text, nullptr, false);
    if (!j.is_object()) {
      return json::object();
    }
    return j.value("phases", json::object()).value(phase, json::object());
  };
  // Polls the client's stats until `phase` has `n` of `outcome` (bounded).
  auto waitFor = [&](const std::string& phase, const std::string& outcome, int64_t n,
                     milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      if (num(phaseStats(phase), outcome) >= n) {
        return true;
      }
      std::this_thread::sleep_for(milliseconds(50));
    }
    return false;
  };
  ASSERT_TRUE(waitFor("up-0", "ok", kLoopConns, milliseconds(30000)))
      << phaseStats("up-0").dump() << "\n"
      << client.stderrText();

  const auto started = Clock::now();
  std::vector<double> downSeconds;
  for (int round = 0; round < kRounds && !HasFatalFailure(); ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const std::string down = "down-" + std::to_string(round);
    const std::string up = "up-" + std::to_string(round + 1);
    ASSERT_OK(sb->daemon().killAndWait(SIGKILL));
    const auto killedAt = Clock::now();
    setPhase(down);
    // Bytes the dead proxy had queued may still be delivered: then the origin's count
    // stands still while the daemon is down.
    ASSERT_OK_AND_ASSIGN(json atKill, lw_->origin->settledStats(milliseconds(400)));
    auto probe = sb->probe(
        {"--timeout-ms", "2000", "tcp", w().ip4(3), std::to_string(kLoadPort), "--no-read"});
    EXPECT_PROBE_ERR(probe, "ECONNREFUSED");
    EXPECT_TRUE(waitFor(down, "refused", kLoopConns / 4, milliseconds(5000)))
        << "the looping clients' new connections were not refused: " << phaseStats(down).dump();
    ASSERT_OK_AND_ASSIGN(std::set<uint64_t> orphanLinks, linkIds(cgid));
    EXPECT_EQ(orphanLinks, links) << "links changed with the daemon dead";
    ASSERT_OK_AND_ASSIGN(json beforeRestart, lw_->origin->stats());
    EXPECT_EQ(num(beforeRestart, "requests"), num(atKill, "requests"))
        << "the origin received requests while egressd was dead";
    EXPECT_EQ(num(beforeRestart, "connections"), num(atKill, "connections"))
        << "the origin accepted connections while egressd was dead";

    setPhase("restart-" + std::to_string(round));
    ASSERT_OK(sb->daemon().restart());
    setPhase(up);
    downSeconds.push_back(std::chrono::duration<double>(Clock::now() - killedAt).count());
    EXPECT_TRUE(waitFor(up, "ok", kLoopConns, milliseconds(20000))) << phaseStats(up).dump();
    EXPECT_TRUE(waitFor(up, "denied_403", 10, milliseconds(10000))) << phaseStats(up).dump();
    ASSERT_OK_AND_ASSIGN(std::set<uint64_t> after, linkIds(cgid));
    EXPECT_EQ(after, links) << "the restart made new links instead of adopting the pinned ones";
  }
  const double loopSeconds = std::chrono::duration<double>(Clock::now() - started).count();
  ASSERT_OK(writeFileAtomic(stopFile, "stop", 0644));
  ASSERT_OK_AND_ASSIGN(auto ended, client.wait(milliseconds(30000)));
  ASSERT_TRUE(ended.succeeded()) << ended.describe();
  json final = json::parse(ended.out, nullptr, false);
  ASSERT_TRUE(final.is_object()) << ended.out;

  // Over every phase: no unmarked answer, none from another peer, no denied host served.
  json totals = json::object();
  const json phases = final.value("phases", json::object());
  for (const auto& [phase, outcomes] : phases.items()) {
    for (const auto& [outcome, n] : outcomes.items()) {
      totals[outcome] = num(totals, outcome) + n.get<int64_t>();
      EXPECT_FALSE(outcome == "unmarked" || outcome.starts_with("peer_") || outcome == "mismatch" ||
                   outcome.starts_with("denied_got_"))
          << phase << ": " << n << " " << outcome;
    }
  }
  ASSERT_OK_AND_ASSIGN(json originStats, lw_->origin->settledStats());
  EXPECT_TRUE(NoDirectHits(originStart, originStats));
  EXPECT_TRUE(final.value("errors", json::array()).empty()) << final.dump();

  // The control: the detector does see a direct hit. One request from the sandbox's netns
  // but outside its cgroup (not redirected) reaches the origin unmarked, from the
  // sandbox's own address.
  RunResult direct = runGuarded({"curl", "--noproxy", "*", "-sS", "--max-time", "5",
                                 "http://" + loadEndpoint() + "/whoami?control=direct"},
                                "", sb->netnsPath(), milliseconds(10000));
  EXPECT_EQ(direct.exitCode, 0) << direct.describe();
  EXPECT_NE(direct.out.find("\"marked\": false"), std::string::npos) << direct.describe();
  ASSERT_OK_AND_ASSIGN(json controlStats, lw_->origin->settledStats());
  EXPECT_FALSE(NoDirectHits(originStats, controlStats))
      << "a direct request was not detected: " << controlStats.dump();
  double maxDown = 0;
  for (double d : downSeconds) {
    maxDown = std::max(maxDown, d);
  }
  std::cout << "[ numbers  ] kill -9 x" << kRounds << ": " << loopSeconds << " s, down window max "
            << maxDown << " s; totals " << totals.dump() << std::endl;
}

// --- 3. Faults ---------------------------------------------------------------------------

// GET http://HOST:kLoadPort/PATH from the sandbox with curl (HOST resolved to .3 by curl).
CurlReply getLoad(const Sandbox& sb, const World& w, const std::string& host,
                  const std::string& path, std::vector<std::string> extra) {
  std::vector<std::string> args{"--resolve",
                                host + ":" + std::to_string(kLoadPort) + ":" + w.ip4(3),
                                "http://" + host + ":" + std::to_string(kLoadPort) + path};
  args.insert(args.end(), extra.begin(), extra.end());
  return curlIn(sb, args, milliseconds(30000));
}

// A helper process in the test internet that writes `ready` once it serves.
Result<test::Process> startInInternet(const World& w, const std::vector<std::string>& argv,
                                      const std::string& ready) {
  auto proc =
      test::Process::spawn(test::SpawnOptions{.argv = argv, .netnsPath = w.net->internet().path()});
  if (!proc.ok()) {
    return std::move(proc).error();
  }
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (!pathExists(ready)) {
    if (!proc->running() || Clock::now() >= deadline) {
      return Error(
          EIO, test::joinArgv(argv) + " did not start: " + proc->stop(milliseconds(0)).describe());
    }
    std::this_thread::sleep_for(milliseconds(20));
  }
  return std::move(proc).value();
}

// Upstream resolver down: a name the policy allows cannot be resolved, so the request gets
// a 502 resolve_failed; it is never sent to the address the sandbox connected to instead.
// Slow (answers after 1 s, inside the 2 s per-attempt timeout): served, later. Slower than
// both attempts (2 x 2 s): 502 like a dead one. The sandbox's own DNS queries get SERVFAIL.
TEST_F(LoadFaultTest, ResolverDownOrSlowFailsClosed) {
  ASSERT_OK_AND_ASSIGN(auto dir, test::TempDir::create());
  const std::string slowEp = w().ip4(2) + ":5301";
  const std::string slowerEp = w().ip4(2) + ":5302";
  ASSERT_OK_AND_ASSIGN(
      auto slow, startInInternet(w(),
                                 {test::python3Bin(), clientsDir() + "/slow_dns.py", "--listen",
                                  slowEp, "--upstream", w().resolver4(), "--delay", "1", "--ready",
                                  dir.path() + "/slow"},
                                 dir.path() + "/slow"));
  ASSERT_OK_AND_ASSIGN(
      auto slower, startInInternet(w(),
                                   {test::python3Bin(), clientsDir() + "/slow_dns.py", "--listen",
                                    slowerEp, "--upstream", w().resolver4(), "--delay", "6",
                                    "--ready", dir.path() + "/slower"},
                                   dir.path() + "/slower"));
  struct Case {
    std::string name;
    std::string resolver;
    int status;
    double minSeconds;
    double maxSeconds;
  };
  const std::vector<Case> cases = {
      {"down", w().ip4(2) + ":5399", 502, 0, 6},  // nothing listens: port unreachable
      {"slow", slowEp, 200, 0.9, 5},
      {"slower", slowerEp, 502, 3.5, 8},
  };
  std::vector<std::string> failedPaths;
  for (const Case& c : cases) {
    SCOPED_TRACE("resolver " + c.name + " " + c.resolver);
    PolicySpec spec = loadSpec(*lw_);
    spec.resolver = c.resolver;
    ASSERT_OK_AND_ASSIGN(
        auto sb, Sandbox::start(spec, SandboxOptions{.ownNetns = true,
                                                     .auditLog = true,
                                                     .daemonArgs = {"--log-level", "info"}}));
    const auto t0 = Clock::now();
    auto r = getLoad(*sb, w(), "allowed.test", "/whoami?fault=resolver-" + c.name);
    const double took = std::chrono::duration<double>(Clock::now() - t0).count();
    EXPECT_EQ(r.status(), c.status) << r.describe();
    EXPECT_GE(took, c.minSeconds);
    EXPECT_LE(took, c.maxSeconds);
    if (c.status == 502) {
      EXPECT_EQ(r.last().header("X-Egressd-Reason"), "resolve_failed") << r.describe();
      failedPaths.push_back("/whoami?fault=resolver-" + c.name);
      ASSERT_OK_AND_ASSIGN(json a,
                           sb->daemon().waitForAudit(auditWith({{"reason", "resolve_failed"}})));
      EXPECT_EQ(a.value("status", 0), 502) << a;
      // The sandbox's own query is not answered from anywhere else either.
      auto dig = digIn(*sb, w().ip4(2), "allowed.test", false);
      EXPECT_TRUE(dig.out.find("status: NOERROR") == std::string::npos) << dig.describe();
    } else {
      EXPECT_TRUE(jsonBodyMarked(r)) << r.describe();
    }
    // Denials do not wait for the resolver.
    const auto d0 = Clock::now();
    auto denied = getLoad(*sb, w(), "other.test", "/whoami?fault=resolver-denied");
    EXPECT_EQ(denied.status(), 403) << denied.describe();
    EXPECT_LT(Clock::now() - d0, std::chrono::seconds(2));
    std::cout << "[ numbers  ] resolver " << c.name << ": " << r.status() << " after " << took
              << " s" << std::endl;
  }
  // Checked by path once the slower resolver's late answers (6 s) have had time to arrive:
  // a request given up with a 502 is never sent on afterwards either. (A count of all
  // requests before and after would race with the stats file's 200 ms refresh.)
  std::this_thread::sleep_for(std::chrono::seconds(3));
  ASSERT_OK_AND_ASSIGN(json stats, lw_->origin->settledStats());
  const json seen = stats.value("fault_paths", json::object());
  for (const std::string& path : failedPaths) {
    EXPECT_FALSE(seen.contains(path))
        << path << " reached the origin although its name did not resolve: " << seen.dump();
  }
  EXPECT_TRUE(seen.contains("/whoami?fault=resolver-slow")) << seen.dump();
  (void)slow.stop(milliseconds(0));
  (void)slower.stop(milliseconds(0));
}

// The origin sends the head and half the body, then a RST: the sandbox gets the head and a
// truncated body and the connection ends (curl: "transfer closed with N bytes remaining",
// exit 18) - a proxy cannot change a status already sent; nothing pretends the body was
// whole. Both the buffered and the spliced (>= 64 KiB) body paths; the daemon serves on.
TEST_F(LoadFaultTest, OriginResetMidBodyEndsTheClientConnection) {
  ASSERT_OK_AND_ASSIGN(auto sb, startSandbox());
  for (int bytes : {4000, 200000}) {
    SCOPED_TRACE(std::to_string(bytes) + " bytes before the reset");
    auto r = getLoad(*sb, w(), "allowed.test", "/reset?bytes=" + std::to_string(bytes));
    EXPECT_EQ(r.status(), 200) << r.describe();
    EXPECT_EQ(r.run.exitCode, 18) << "want curl's partial-file error: " << r.describe();
    EXPECT_LT(r.last().body.size(), static_cast<size_t>(2 * bytes)) << r.describe();
    auto ok = getLoad(*sb, w(), "allowed.test", "/whoami?after-reset");
    EXPECT_EQ(ok.status(), 200) << ok.describe();
  }
  EXPECT_TRUE(sb->daemon().running()) << sb->daemon().logs();
}

// A 256 KiB tmpfs the test mounts for the audit log, then fills. Requests are still judged
// and enforced (allowed served, denied 403); the lost records are counted, and once there
// is space again one audit line says how many were dropped.
TEST_F(LoadFaultTest, AuditDiskFullKeepsEnforcingAndCountsLostRecords) {
  ASSERT_OK_AND_ASSIGN(auto dir, test::TempDir::create());
  const std::string mnt = dir.path() + "/audit-fs";
  ASSERT_OK(makeDirs(mnt, 0700));
  ASSERT_EQ(::mount("egressd-test-audit", mnt.c_str(), "tmpfs", MS_NOSUID | MS_NODEV,
                    "size=256k,mode=0700"),
            0)
      << "mount tmpfs on " << mnt << ": " << std::strerror(errno);
  struct Unmount {
    std::string path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{mnt};
  const std::string auditPath = mnt + "/audit.jsonl";
  ASSERT_OK_AND_ASSIGN(auto sb, startSandbox({"--audit-log", auditPath}, false));
  // startSandbox asks for metrics too: the lost records are counted there.
  auto first = getLoad(*sb, w(), "allowed.test", "/whoami?audit=first");
  ASSERT_EQ(first.status(), 200) << first.describe();

  // Fill the file system.
  {
    std::ofstream filler(mnt + "/filler", std::ios::binary);
    const std::string block(4096, 'f');
    for (int i = 0; i < 1024 && filler.write(block.data(), block.size()); ++i) {
    }
  }
  for (int i = 0; i < 30; ++i) {
    auto r = getLoad(*sb, w(), "allowed.test", "/whoami?audit=full-" + std::to_string(i));
    EXPECT_EQ(r.status(), 200) << r.describe();
    auto d = getLoad(*sb, w(), "other.test", "/whoami?audit=denied-" + std::to_string(i));
    EXPECT_EQ(d.status(), 403) << d.describe();
  }
  // The writer tried (every 200 ms) and failed; the daemon says so and keeps running.
  bool warned = false;
  for (int i = 0; i < 50 && !warned; ++i) {
    warned = sb->daemon().logs().find("audit records are being lost") != std::string::npos;
    std::this_thread::sleep_for(milliseconds(100));
  }
  EXPECT_TRUE(warned) << sb->daemon().logs();
  EXPECT_TRUE(sb->daemon().running());
  ASSERT_OK_AND_ASSIGN(std::string metricsText, sb->daemon().scrapeMetrics());
  const double droppedMetric = test::promValue(test::parsePrometheusText(metricsText),
                                               "egressd_audit_records_dropped_total", {})
                                   .value_or(-1);
  EXPECT_GE(droppedMetric, 30.0) << metricsText;
  ASSERT_OK_AND_ASSIGN(json originBefore, lw_->origin->stats());

  ASSERT_EQ(::unlink((mnt + "/filler").c_str()), 0);
  auto after = getLoad(*sb, w(), "allowed.test", "/whoami?audit=after");
  EXPECT_EQ(after.status(), 200) << after.describe();
  bool noted = false;
  std::string text;
  for (int i = 0; i < 50 && !noted; ++i) {
    std::this_thread::sleep_for(milliseconds(100));
    auto t = readFile(auditPath);
    text = t.ok() ? *t : "";
    noted = text.find("\"audit_records_dropped\"") != std::string::npos &&
            text.find("/whoami") != std::string::npos;
  }
  EXPECT_TRUE(noted) << text;
  // Every complete line is JSON (a failed write left no half line behind).
  size_t lines = 0;
  for (size_t at = 0; at < text.size();) {
    const size_t end = text.find('\n', at);
    if (end == std::string::npos) {
      break;
    }
    const json line = json::parse(text.substr(at, end - at), nullptr, false);
    EXPECT_TRUE(line.is_object()) << "not JSON: " << text.substr(at, end - at);
    at = end + 1;
    ++lines;
  }
  std::cout << "[ numbers  ] audit disk full: " << droppedMetric << " dropped (metric); " << lines
            << " lines kept; "
            << (noted ? text.substr(text.find("audit_records_dropped") - 60, 200) : "")
            << std::endl;
}

// Scrapers that send a request and never read, or never send one: each is cut after the
// metrics server's 5 s request deadline (plus a 1 s linger); meanwhile the proxy serves and
// a well-behaved scrape is answered at once; afterwards egressd holds no more descriptors.
TEST_F(LoadFaultTest, MetricsScraperThatNeverReadsBlocksNothing) {
  ASSERT_OK_AND_ASSIGN(auto sb, startSandbox({}, false));
  const pid_t pid = sb->daemon().pid();
  // Warm up first: the request below leaves an idle upstream connection in the pool.
  auto warm = getLoad(*sb, w(), "allowed.test", "/whoami?metrics-warm");
  ASSERT_EQ(warm.status(), 200) << warm.describe();
  ASSERT_OK(sb->daemon().scrapeMetrics());
  ASSERT_OK_AND_ASSIGN(json originBefore, lw_->origin->settledStats(milliseconds(300)));
  const size_t fdsBefore = fdCount(pid);
  const std::string script =
      "import socket, sys, time\n"
      "socks = []\n"
      "for i in range(200):\n"
      "    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
      "    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)\n"
      "    s.connect(sys.argv[1])\n"
      "    if i % 2 == 0:\n"
      "        s.sendall(b'GET /metrics HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n')\n"
      "    socks.append(s)\n"
      "print('held', flush=True)\n"
      "time.sleep(float(sys.argv[2]))\n";
  ASSERT_OK_AND_ASSIGN(
      test::Process stuck,
      test::Process::spawn(test::SpawnOptions{
          .argv = {test::python3Bin(), "-c", script, sb->daemon().metricsSocketPath(), "12"}}));
  ASSERT_TRUE(stuck.waitForOutput("held", milliseconds(10000))) << stuck.stderrText();
  const size_t fdsStuck = fdCount(pid);
  const auto t0 = Clock::now();
  ASSERT_OK_AND_ASSIGN(std::string text, sb->daemon().scrapeMetrics());
  const double scrapeSeconds = std::chrono::duration<double>(Clock::now() - t0).count();
  EXPECT_LT(scrapeSeconds, 2.0);
  EXPECT_NE(text.find("egressd_proxy_connections_total"), std::string::npos);
  auto r = getLoad(*sb, w(), "allowed.test", "/whoami?metrics-stuck");
  EXPECT_EQ(r.status(), 200) << r.describe();
  // The stuck scrapers are cut while they still hold their ends open.
  // The request may have left one more idle upstream connection (pools are per proxy
  // thread): those are open at the origin too, and allowed for.
  size_t fdsAfter = 0;
  size_t allowed = fdsBefore;
  for (int i = 0; i < 40; ++i) {
    fdsAfter = fdCount(pid);
    ASSERT_OK_AND_ASSIGN(json st, lw_->origin->stats());
    allowed = fdsBefore + static_cast<size_t>(
                              std::max<int64_t>(0, num(st, "open") - num(originBefore, "open")));
    if (fdsAfter <= allowed) {
      break;
    }
    std::this_thread::sleep_for(milliseconds(250));
  }
  const double cutSeconds = std::chrono::duration<double>(Clock::now() - t0).count();
  EXPECT_TRUE(stuck.running()) << "the scrapers gave up first; nothing was tested";
  EXPECT_LE(fdsAfter, allowed) << "fds before " << fdsBefore << ", with 200 stuck scrapers "
                               << fdsStuck << ", after " << fdsAfter;
  EXPECT_GE(fdsStuck, fdsBefore + 150) << "the scrapers were not held by egressd";
  std::cout << "[ numbers  ] stuck scrapers: fds " << fdsBefore << " -> " << fdsStuck << " -> "
            << fdsAfter << " after " << cutSeconds << " s; scrape took " << scrapeSeconds << " s"
            << std::endl;
  (void)stuck.stop(milliseconds(0));
}

// The multi-sandbox daemon: a control-plane policy and a sandbox in the world's sandbox
// netns, enforced in the kernel (7001 not allowed: EPERM) and through the proxy.
class LoadFaultControlTest : public LoadFaultTest {
 protected:
  std::string policyYamlText() {
    PolicySpec s = loadSpec(*lw_);
    s.name = "faults";
    return policyYaml(s);
  }
  Result<std::unique_ptr<test::ControlDaemon>> startDaemon() {
    auto o = worldDaemonOptions();
    if (!o.ok()) {
      return std::move(o).error();
    }
    o->policyFiles = {{"faults.yaml", policyYamlText()}};
    o->extraArgs = {"--log-level", "info"};
    return test::ControlDaemon::start(*o);
  }
  // Kernel rules and the proxy's: 7001 EPERM; allowed.test served (marked); other.test 403.
  void expectEnforced(const CpSandbox& sb, bool proxyUp) {
    auto probe = sb.run({probeBin(), "tcp", w().ip4(3), std::to_string(kTcpA)});
    EXPECT_PROBE_ERR(probe, "EPERM");
    auto ok = sb.get("allowed.test", kLoadPort, w().ip4(3), "/whoami?faults");
    auto denied = sb.get("other.test", kLoadPort, w().ip4(3), "/whoami?faults-denied");
    if (proxyUp) {
      EXPECT_EQ(ok.status(), 200) << ok.describe();
      EXPECT_EQ(denied.status(), 403) << denied.describe();
    } else {
      // Fail closed: the proxied port refuses, nothing goes direct.
      EXPECT_EQ(ok.status(), 0) << ok.describe();
      EXPECT_EQ(denied.status(), 0) << denied.describe();
      auto refused =
          sb.run({probeBin(), "tcp", w().ip4(3), std::to_string(kLoadPort), "--no-read"});
      EXPECT_PROBE_ERR(refused, "ECONNREFUSED");
    }
  }
};

// state.json truncated or not JSON at start: egressd refuses to start, naming the file and
// what to do; it does not start empty (which would drop the sandboxes' rules from its
// care) and it does not touch the pins, so every sandbox stays enforced by the kernel and
// its proxied ports fail closed. With the file back, the restart restores the sandbox.
TEST_F(LoadFaultControlTest, CorruptStateAtStartIsAClearErrorAndEnforcementStays) {
  ASSERT_OK_AND_ASSIGN(auto daemon, startDaemon());
  ASSERT_OK_AND_ASSIGN(auto sb, CpSandbox::create(*daemon, "faults-state", "faults", false,
                                                  w().net->sandboxNetns()->path()));
  expectEnforced(*sb, true);
  ASSERT_OK_AND_ASSIGN(uint64_t cgid, test::cgroupId(sb->cgroup()));
  ASSERT_OK_AND_ASSIGN(std::set<uint64_t> links, linkIds(cgid));
  const std::string statePath = daemon->stateDir() + "/state.json";
  ASSERT_OK_AND_ASSIGN(std::string good, readFile(statePath));
  ASSERT_OK(daemon->killAndWait(SIGKILL));

  for (const std::string& bad :
       {good.substr(0, good.size() / 2), std::string("\x01\x02 not json"), std::string(""),
        std::string("{\"sandboxes\": 7}"), std::string("{\"sandboxes\": [{\"id\": 5}]}")}) {
    SCOPED_TRACE("state.json: " + bad.substr(0, 40));
    ASSERT_OK(writeFileAtomic(statePath, bad, 0600));
    Status restarted = daemon->restart();
    ASSERT_FALSE(restarted.ok()) << "egressd started with a corrupt state file";
    EXPECT_NE(restarted.error().message().find(statePath), std::string::npos)
        << "the error does not name the file: " << restarted.error().message();
    EXPECT_FALSE(daemon->running());
    expectEnforced(*sb, false);
    ASSERT_OK_AND_ASSIGN(std::set<uint64_t> now, linkIds(cgid));
    EXPECT_EQ(now, links) << "the failed start changed the sandbox's links";
  }
  ASSERT_OK(writeFileAtomic(statePath, good, 0600));
  ASSERT_OK(daemon->restart());
  expectEnforced(*sb, true);
  ASSERT_OK_AND_ASSIGN(std::set<uint64_t> restored, linkIds(cgid));
  EXPECT_EQ(restored, links);
}

// The policy directory unreadable - replaced by a file, or holding a *.yaml that is not a
// readable file - at SIGHUP: the reload is refused with an error naming the path, the
// policies in force stay; at start: egressd refuses to start (the pins keep enforcing).
TEST_F(LoadFaultControlTest, UnreadablePolicyDirIsRefusedAndTheRulesStay) {
  ASSERT_OK_AND_ASSIGN(auto daemon, startDaemon());
  ASSERT_OK_AND_ASSIGN(auto sb, CpSandbox::create(*daemon, "faults-policydir", "faults", false,
                                                  w().net->sandboxNetns()->path()));
  expectEnforced(*sb, true);
  const std::string dir = daemon->policyDir();
  const std::string aside = dir + ".aside";
  auto waitForLog = [&](const std::string& needle) {
    for (int i = 0; i < 50; ++i) {
      if (daemon->logs().find(needle) != std::string::npos) {
        return true;
      }
      std::this_thread::sleep_for(milliseconds(100));
    }
    return false;
  };

  // The directory replaced by a regular file.
  ASSERT_EQ(::rename(dir.c_str(), aside.c_str()), 0) << std::strerror(errno);
  std::ofstream(dir) << "not a directory\n";
  ASSERT_TRUE(std::filesystem::is_regular_file(dir));
  ASSERT_OK(daemon->signal(SIGHUP));
  EXPECT_TRUE(waitForLog("policy directory " + dir)) << daemon->logs();
  EXPECT_TRUE(daemon->running());
  expectEnforced(*sb, true);

  // At start: a clear refusal naming the directory; the sandbox stays enforced.
  ASSERT_OK(daemon->killAndWait(SIGKILL));
  Status restarted = daemon->restart();
  ASSERT_FALSE(restarted.ok()) << "egressd started without its policy directory";
  EXPECT_NE(restarted.error().message().find(dir), std::string::npos)
      << restarted.error().message();
  expectEnforced(*sb, false);

  // Back as a directory, with a *.yaml that cannot be read (a dangling symlink).
  ASSERT_EQ(::unlink(dir.c_str()), 0);
  ASSERT_EQ(::rename(aside.c_str(), dir.c_str()), 0) << std::strerror(errno);
  ASSERT_OK(daemon->restart());
  expectEnforced(*sb, true);
  const std::string dangling = dir + "/extra.yaml";
  ASSERT_EQ(::symlink((dir + "/no-such-file").c_str(), dangling.c_str()), 0);
  ASSERT_OK(daemon->signal(SIGHUP));
  EXPECT_TRUE(waitForLog(dangling)) << daemon->logs();
  expectEnforced(*sb, true);
  ASSERT_EQ(::unlink(dangling.c_str()), 0);

  // A hidden one (an editor's lock, ".#faults.yaml" -> nowhere) is not a policy file: the
  // reload goes through.
  const std::string lock = dir + "/.#faults.yaml";
  ASSERT_EQ(::symlink("root@host.1234:1700000000", lock.c_str()), 0);
  const size_t reloadsBefore = countOf(daemon->logs(), "policies reloaded from");
  ASSERT_OK(daemon->signal(SIGHUP));
  bool reloaded = false;
  for (int i = 0; i < 50 && !reloaded; ++i) {
    reloaded = countOf(daemon->logs(), "policies reloaded from") > reloadsBefore;
    std::this_thread::sleep_for(milliseconds(100));
  }
  EXPECT_TRUE(reloaded) << daemon->logs();
  ASSERT_EQ(::unlink(lock.c_str()), 0);
  expectEnforced(*sb, true);
}

// --- 4. Memory under 30 s of mixed load ------------------------------------------------------

// egressd's RSS bound under the mixed load below (measured: see docs/testing.md).
// Measured on 2 cores: 15 MiB idle; the loop alone stays flat at 48 MiB, each round of
// 2,000 connections adds a little less than the one before (glibc's per-thread arenas
// keeping freed memory: with MALLOC_ARENA_MAX=1 the same rounds end at 85 MiB instead of
// 112); maxima of 134-182 MiB in full runs. The bound is 1.4 times the highest seen.
constexpr uint64_t kMixedLoadRssBoundKib = 256 * 1024;

// 30 s of: 200 connections looping requests (every 10th denied), and back to back rounds of
// 2,000 concurrent connections (keep-alive, slow readers of 256 KiB, slowloris heads cut
// after 2 s). RSS is sampled every second and must stay under kMixedLoadRssBoundKib.
TEST_F(LoadFaultTest, RssStaysBoundedUnderThirtySecondsOfMixedLoad) {
  constexpr auto kDuration = std::chrono::seconds(30);
  ASSERT_OK_AND_ASSIGN(auto sb, startSandbox({"--header-timeout-ms", "2000"}, true));
  const pid_t pid = sb->daemon().pid();
  const uint64_t idle = rssKib(pid);
  ASSERT_OK_AND_ASSIGN(json originStart, lw_->origin->settledStats(milliseconds(300)));
  ASSERT_OK_AND_ASSIGN(auto dir, test::TempDir::create());
  const std::string stopFile = dir.path() + "/stop";
  ASSERT_OK_AND_ASSIGN(
      test::Process loop,
      spawnInSandbox(
          w(), *sb,
          {test::python3Bin(), clientsDir() + "/load_mix.py", "loop", "--connect", loadEndpoint(),
           "--host", "allowed.test", "--denied-host", "other.test", "--conns", "200", "--stop",
           stopFile, "--stats", dir.path() + "/loop.json", "--max-seconds", "60"}));
  const auto started = Clock::now();
  std::atomic<bool> done{false};
  std::vector<json> rounds;
  std::thread mixer([&] {
    while (!done && Clock::now() - started < kDuration - std::chrono::seconds(4)) {
      auto r =
          pythonClientIn(*sb, "load_mix.py", mixArgs(2000, 20, 262144, 1, 2), milliseconds(60000));
      rounds.push_back(r.ok() ? *r : json{{"error", r.error().message()}});
    }
  });
  std::vector<uint64_t> curve;
  while (Clock::now() - started < kDuration) {
    curve.push_back(rssKib(pid));
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  done = true;
  mixer.join();
  ASSERT_OK(writeFileAtomic(stopFile, "stop", 0644));
  ASSERT_OK_AND_ASSIGN(auto ended, loop.wait(milliseconds(30000)));
  const json loopStats = json::parse(ended.out, nullptr, false);
  ASSERT_TRUE(loopStats.is_object()) << ended.describe();
  ASSERT_OK_AND_ASSIGN(uint64_t hwm, test::procStatusKib(pid, "VmHWM"));

  // The load was real and was served.
  const json loopOutcomes = loopStats.value("phases", json::object()).value("", json::object());
  EXPECT_GT(num(loopOutcomes, "ok"), 1000) << loopStats.dump();
  EXPECT_GT(num(loopOutcomes, "denied_403"), 100) << loopStats.dump();
  ASSERT_GE(rounds.size(), 2u);
  int64_t served = 0;
  for (const json& round : rounds) {
    ASSERT_TRUE(round.contains("outcomes")) << round.dump();
    const json outcomes = round["outcomes"];
    for (const auto& [kind, byOutcome] : outcomes.items()) {
      for (const auto& [outcome, n] : byOutcome.items()) {
        EXPECT_TRUE(isClearEnding(outcome)) << n << " " << kind << " ended " << outcome;
        if (outcome == "served") {
          served += n.get<int64_t>();
        }
      }
    }
  }
  ASSERT_OK_AND_ASSIGN(json originStats, lw_->origin->settledStats());
  EXPECT_TRUE(NoDirectHits(originStart, originStats));
  const uint64_t peak = std::max(maxOf(curve), hwm);
  if (test::kAddressSanitizer) {
    std::cout << "[ note     ] RSS bound not checked: this is an ASan build (shadow memory, "
                 "quarantine)"
              << std::endl;
  } else {
    EXPECT_LT(peak, kMixedLoadRssBoundKib)
        << "egressd's RSS grew past " << kMixedLoadRssBoundKib / 1024
        << " MiB: " << curveText(curve);
  }
  std::cout << "[ numbers  ] mixed 30 s: RSS idle " << idle / 1024 << " MiB, max " << peak / 1024
            << " MiB; curve " << curveText(curve) << "; loop " << loopOutcomes.dump() << "; "
            << rounds.size() << " mix rounds, " << served << " served" << std::endl;
}

}  // namespace
}  // namespace egressd::e2e
