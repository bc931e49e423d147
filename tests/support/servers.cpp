#include "servers.h"

#include <unistd.h>

#include <cstdlib>
#include <sstream>
#include <thread>

#include "common/fs.h"

namespace egressd::test {
namespace {

int portOf(const std::string& line) {
  auto colon = line.rfind(':');
  return colon == std::string::npos ? -1 : std::atoi(line.c_str() + colon + 1);
}

}  // namespace

// Waits until a server script wrote its --ready file and returns its non-empty lines; on
// failure the process is killed and its output is in the error.
Result<std::vector<std::string>> waitForReadyFile(Process& proc, const std::string& ready,
                                                  const std::string& what) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!pathExists(ready)) {
    if (!proc.running() || std::chrono::steady_clock::now() >= deadline) {
      RunResult r = proc.stop(milliseconds(0));
      return Error(EIO, what + " did not become ready: " + r.describe());
    }
    std::this_thread::sleep_for(milliseconds(20));
  }
  auto text = readFile(ready);
  if (!text.ok()) {
    return std::move(text).error();
  }
  std::vector<std::string> lines;
  std::istringstream in(*text);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) {
      lines.push_back(line);
    }
  }
  return lines;
}

std::string serversScript() {
#ifdef EGRESSD_SERVERS_PY
  return EGRESSD_SERVERS_PY;
#else
  return "";
#endif
}

std::string python3Bin() {
  if (const char* over = ::getenv("EGRESSD_TEST_PYTHON"); over && *over) {
    return over;
  }
  return ::access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
}

std::string httpOriginScript() {
#ifdef EGRESSD_HTTP_ORIGIN_PY
  return EGRESSD_HTTP_ORIGIN_PY;
#else
  return "";
#endif
}

Result<TestServers> TestServers::start(const std::string& netnsPath,
                                       const std::vector<std::string>& tcp,
                                       const std::vector<std::string>& udp) {
  auto dir = TempDir::create();
  if (!dir.ok()) {
    return std::move(dir).error();
  }
  const std::string ready = dir->path() + "/ready";
  const std::string log = dir->path() + "/events.log";
  std::vector<std::string> argv{python3Bin(), serversScript(), "--ready", ready, "--log", log};
  for (const auto& t : tcp) {
    argv.push_back("--tcp");
    argv.push_back(t);
  }
  for (const auto& u : udp) {
    argv.push_back("--udp");
    argv.push_back(u);
  }
  auto proc = Process::spawn(SpawnOptions{.argv = argv, .netnsPath = netnsPath});
  if (!proc.ok()) {
    return std::move(proc).error();
  }
  TestServers s(std::move(dir).value(), std::move(proc).value());
  auto bound = waitForReadyFile(s.proc_, ready, "servers.py");
  if (!bound.ok()) {
    return std::move(bound).error();
  }
  s.bound_ = std::move(bound).value();
  return s;
}

int TestServers::tcpPort(size_t i) const {
  size_t k = 0;
  for (const auto& b : bound_) {
    if (b.starts_with("tcp ") && k++ == i) {
      return portOf(b);
    }
  }
  return -1;
}

int TestServers::udpPort(size_t i) const {
  size_t k = 0;
  for (const auto& b : bound_) {
    if (b.starts_with("udp ") && k++ == i) {
      return portOf(b);
    }
  }
  return -1;
}

std::string TestServers::log() const {
  auto text = readFile(dir_.path() + "/events.log");
  return text.ok() ? *text : "";
}

Result<TestHttpOrigin> TestHttpOrigin::start(const std::string& netnsPath,
                                             const std::vector<std::string>& endpoints,
                                             const std::vector<TlsEndpoint>& tls) {
  auto dir = TempDir::create();
  if (!dir.ok()) {
    return std::move(dir).error();
  }
  const std::string ready = dir->path() + "/ready";
  std::vector<std::string> argv{python3Bin(), httpOriginScript(),           "--ready", ready,
                                "--log",      dir->path() + "/requests.log"};
  for (const auto& e : endpoints) {
    argv.push_back("--listen");
    argv.push_back(e);
  }
  for (const auto& t : tls) {
    argv.push_back("--tls-listen");
    argv.push_back(t.endpoint + "|" + t.certFile + "|" + t.keyFile);
  }
  auto proc = Process::spawn(SpawnOptions{.argv = argv, .netnsPath = netnsPath});
  if (!proc.ok()) {
    return std::move(proc).error();
  }
  TestHttpOrigin o(std::move(dir).value(), std::move(proc).value());
  auto bound = waitForReadyFile(o.proc_, ready, "http_origin.py");
  if (!bound.ok()) {
    return std::move(bound).error();
  }
  o.bound_ = std::move(bound).value();
  return o;
}

std::string TestHttpOrigin::log() const {
  auto text = readFile(dir_.path() + "/requests.log");
  return text.ok() ? *text : "";
}

std::vector<std::string> TestHttpOrigin::requestsMatching(const std::string& needle) const {
  std::vector<std::string> out;
  std::istringstream in(log());
  std::string line;
  while (std::getline(in, line)) {
    if (line.find(needle) != std::string::npos) {
      out.push_back(line);
    }
  }
  return out;
}

size_t TestHttpOrigin::requestsTo(const std::string& server) const {
  return requestsMatching("req " + server + " ").size();
}

Result<TestDnsmasq> TestDnsmasq::start(const std::string& netnsPath, const DnsmasqOptions& opts,
                                       const std::string& probeName) {
  if (opts.listen.empty()) {
    return Error(EINVAL, "dnsmasq: no listen address");
  }
  std::vector<std::string> argv{"dnsmasq",       "--no-daemon",      "--conf-file=/dev/null",
                                "--no-resolv",   "--no-hosts",       "--bind-interfaces",
                                "--port=53",     "--pid-file=",      "--user=root",
                                "--log-queries", "--log-facility=-", "--cache-size=0"};
  for (const auto& l : opts.listen) {
    argv.push_back("--listen-address=" + l);
  }
  for (const auto& r : opts.records) {
    argv.push_back("--address=/" + r);
  }
  auto proc = Process::spawn(SpawnOptions{.argv = argv, .netnsPath = netnsPath});
  if (!proc.ok()) {
    return std::move(proc).error();
  }
  TestDnsmasq d(std::move(proc).value());
  // Ready = it answers; asked from inside its own namespace (no sandbox, no BPF involved).
  for (int attempt = 0; attempt < 50; ++attempt) {
    auto r = run(SpawnOptions{.argv = {"dig", "+short", "+time=1", "+tries=1", "@" + opts.listen[0],
                                       probeName},
                              .netnsPath = netnsPath},
                 milliseconds(3000));
    if (r.ok() && r->succeeded() && !r->out.empty()) {
      return d;
    }
    if (!d.proc_.running()) {
      break;
    }
    std::this_thread::sleep_for(milliseconds(100));
  }
  RunResult r = d.proc_.stop(milliseconds(0));
  return Error(EIO, "dnsmasq did not answer " + probeName + ": " + r.describe());
}

}  // namespace egressd::test
