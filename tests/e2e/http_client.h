// HTTP clients run inside a sandbox for the proxy tests - curl, and the python clients in
// tests/e2e/clients/ (raw bytes, WebSocket, large streams, many connections) - and a parser
// for the responses they bring back.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "world.h"

namespace egressd::e2e {

struct HttpResponse {
  int status = 0;
  std::string reason;
  std::map<std::string, std::string> headers;  // lowercase name -> value (the last one)
  std::string body;

  // The header's value, "" when absent.
  std::string header(const std::string& name) const;
};

// Consecutive responses on one connection, as a raw client received them: framed by
// Content-Length, chunked encoding, no body (1xx, 204, 304, 101, and the final responses
// whose index is in `answersToHead`, i.e. to HEAD requests), or - without framing - the rest
// of the data. Interim 1xx responses are listed too. Stops at an incomplete response.
std::vector<HttpResponse> parseResponses(std::string_view data,
                                         const std::vector<size_t>& answersToHead = {});

// Where the python clients (tests/e2e/clients/*.py) are.
std::string clientsDir();

// "ip:port", "[v6]:port".
std::string hostPort(const std::string& ip, int port);

struct CurlReply {
  RunResult run;
  // Every response head curl printed (interim 1xx first); the last one carries the body.
  std::vector<HttpResponse> responses;

  // Status of the final response; 0 when curl got none (see run).
  int status() const { return responses.empty() ? 0 : responses.back().status; }
  const HttpResponse& last() const;
  std::string describe() const;
};

// `curl --noproxy '*' -sS --max-time 10 -D - -o - ARGS...` inside the sandbox.
CurlReply curlIn(const Sandbox& sb, const std::vector<std::string>& args,
                 test::milliseconds timeout = test::milliseconds(15000));

struct RawOptions {
  double gapSeconds = 0;   // between payloads
  double dripSeconds = 0;  // > 0: payloads go out byte by byte, this far apart
  double readTimeoutSeconds = 5;
  bool shutdown = false;        // half-close (SHUT_WR) once everything is sent
  bool outsideSandbox = false;  // in the sandbox's netns but not its cgroup: not redirected
};

struct RawExchange {
  RunResult run;
  std::string data;    // what the server sent
  std::string end;     // "eof", "reset", "timeout", "" (the client failed: see run)
  double seconds = 0;  // from connect to `end`
  std::string sendError;
  std::string connectError;

  std::vector<HttpResponse> responses(const std::vector<size_t>& answersToHead = {}) const {
    return parseResponses(data, answersToHead);
  }
  int firstStatus() const;
  bool closedByServer() const { return end == "eof" || end == "reset"; }
  std::string describe() const;
};

// clients/raw_http.py inside the sandbox: sends `payloads` verbatim to `endpoint` and
// reads until the server closes or the read timeout passes.
RawExchange rawHttpIn(const Sandbox& sb, const std::string& endpoint,
                      const std::vector<std::string>& payloads, const RawOptions& options = {});

// python3 clients/<script> ARGS inside the sandbox; its stdout (one JSON object) parsed.
Result<nlohmann::json> pythonClientIn(const Sandbox& sb, const std::string& script,
                                      const std::vector<std::string>& args,
                                      test::milliseconds timeout = test::milliseconds(30000));

// An audit-record predicate: every key of `fields` is present with that value.
std::function<bool(const nlohmann::json&)> auditWith(const nlohmann::json& fields);

}  // namespace egressd::e2e
