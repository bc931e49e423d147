// Real servers for e2e tests, started inside a network namespace: tests/e2e/servers.py
// (TCP greeting+echo, UDP echo, an event log), tests/e2e/http_origin.py (HTTP/1.1 origins
// with a request log) and dnsmasq (the DNS "resolver" of the test internet). All are
// readiness-checked before use and killed by pid on destruction.
#pragma once

#include <string>
#include <vector>

#include "common/result.h"
#include "process.h"
#include "temp_dir.h"

namespace egressd::test {

class TestServers {
 public:
  // Starts servers.py in `netnsPath` (empty: the test's netns) on "ADDR:PORT" endpoints
  // ("[v6]:PORT" for IPv6; port 0 picks a free port) and waits until all are bound.
  static Result<TestServers> start(const std::string& netnsPath,
                                   const std::vector<std::string>& tcp,
                                   const std::vector<std::string>& udp);
  TestServers(TestServers&&) = default;
  TestServers& operator=(TestServers&&) = delete;  // TempDir is not assignable
  ~TestServers() = default;

  // Lines "tcp ADDR:PORT" / "udp ADDR:PORT" of the bound sockets, in argument order.
  const std::vector<std::string>& bound() const { return bound_; }
  // Port of the i-th TCP / UDP endpoint (useful with port 0).
  int tcpPort(size_t i) const;
  int udpPort(size_t i) const;
  // The event log so far ("tcp-accept LOCAL PEER", "udp-recv LOCAL PEER LEN").
  std::string log() const;
  Process& process() { return proc_; }

 private:
  TestServers(TempDir dir, Process proc) : dir_(std::move(dir)), proc_(std::move(proc)) {}
  TempDir dir_;
  Process proc_;
  std::vector<std::string> bound_;
};

struct DnsmasqOptions {
  std::vector<std::string> listen;   // listen addresses
  std::vector<std::string> records;  // "name/address" pairs for --address=/name/address
};

class TestDnsmasq {
 public:
  // Starts dnsmasq in `netnsPath` and waits until it answers `probeName` (via dig from
  // inside the namespace) on the first listen address.
  static Result<TestDnsmasq> start(const std::string& netnsPath, const DnsmasqOptions& opts,
                                   const std::string& probeName);
  TestDnsmasq(TestDnsmasq&&) = default;
  // dnsmasq's query log (--log-queries, to stderr).
  std::string log() const { return proc_.stderrText(); }
  Process& process() { return proc_; }

 private:
  explicit TestDnsmasq(Process proc) : proc_(std::move(proc)) {}
  Process proc_;
};

// An HTTPS endpoint of http_origin.py: "ADDR:PORT" / "[V6]:PORT" and the PEM files it serves.
struct TlsEndpoint {
  std::string endpoint;
  std::string certFile;
  std::string keyFile;
};

// tests/e2e/http_origin.py: HTTP/1.1 origins (GET /whoami, POST /upload, GET /download,
// GET /close, GET /ws), every request logged as "req SERVER METHOD PATH HOST" before its
// body is read; over TLS also every handshake ("tls SERVER PEER SNI", "tls-fail SERVER PEER
// REASON") and /whoami reports the SNI it saw.
class TestHttpOrigin {
 public:
  // Starts http_origin.py in `netnsPath` on "ADDR:PORT" / "[V6]:PORT" endpoints (plain HTTP)
  // and `tls` endpoints (HTTPS) and waits until all listen.
  static Result<TestHttpOrigin> start(const std::string& netnsPath,
                                      const std::vector<std::string>& endpoints,
                                      const std::vector<TlsEndpoint>& tls = {});
  TestHttpOrigin(TestHttpOrigin&&) = default;
  TestHttpOrigin& operator=(TestHttpOrigin&&) = delete;  // TempDir is not assignable

  // "http LOCAL" lines of the listening sockets, in argument order ("https LOCAL" after).
  const std::vector<std::string>& bound() const { return bound_; }
  // The request log so far.
  std::string log() const;
  // Request log lines containing `needle` (e.g. a tag the test put in the path).
  std::vector<std::string> requestsMatching(const std::string& needle) const;
  // Requests that arrived on `server` ("198.18.N.4:8080", "[2001:db8:e9:N::4]:8080").
  size_t requestsTo(const std::string& server) const;
  Process& process() { return proc_; }

 private:
  TestHttpOrigin(TempDir dir, Process proc) : dir_(std::move(dir)), proc_(std::move(proc)) {}
  TempDir dir_;
  Process proc_;
  std::vector<std::string> bound_;
};

// Waits until a server script wrote its --ready file and returns its non-empty lines; on
// failure the process is killed and its output is in the error.
Result<std::vector<std::string>> waitForReadyFile(Process& proc, const std::string& ready,
                                                  const std::string& what);

std::string serversScript();
std::string httpOriginScript();
// The interpreter for the test scripts and clients: $EGRESSD_TEST_PYTHON, else the
// distribution's /usr/bin/python3 (a python3 found first in PATH may be a version-manager
// shim that costs half a second per start), else "python3" from PATH.
std::string python3Bin();

}  // namespace egressd::test
