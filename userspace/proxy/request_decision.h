// The proxy's judgement of one HTTP request, apart from any I/O (docs/proxy.md "How a request
// is judged"): request head + what the session knows (port, TLS server name) + the sandbox's
// policy view -> refuse it, answer it, or forward it with these header edits. HTTP/1.1
// sessions use it per request; an HTTP/2 stream is judged by the same function.
//
// The one step left to the caller is the upstream choice for a forwarded request that is not
// rerouted (resolveUpstream: it resolves the name, and may still deny by address).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "handlers/reroute.h"
#include "handlers/secret_store.h"
#include "http/message.h"
#include "policy/host_policy.h"
#include "proxy/sandbox_context.h"

namespace egressd::proxy {

// Why a request ended the way it did, for the audit line and the metrics.
struct RequestOutcome {
  std::string decision = "allow";  // allow | deny | error
  std::string reason;
  std::string rule;
  std::string handler;  // the handler that ran, if one did
  int status = 0;
  std::string detail;
};

// What the session knows of a request besides its head.
struct RequestContext {
  uint16_t port = 0;  // the original destination port
  // Set inside an intercepted TLS session: the name that session was judged for (the SNI, or
  // the original destination's address without one). Every request's Host must be it.
  std::optional<std::string_view> tlsServerName;
  std::string_view sandboxId;
  // API-set secret values; nullptr: only the policy's file and env sources resolve.
  const handlers::SecretStore* secrets = nullptr;
};

struct RequestDecision {
  enum class Action {
    kMalformed,  // answer `status` with `body` and close; audit reason bad_request
    kAnswer,     // egressd answers itself (a denial or a handler's response); no upstream
    kForward,    // goes upstream: to `reroute`, else to the host's own addresses
  };
  Action action = Action::kForward;
  RequestOutcome outcome;
  std::string host;  // the request's normalized host ("" when malformed)

  // kMalformed / kAnswer: the response egressd sends.
  std::string body;
  std::vector<http::Header> responseHeaders;
  // The connection must close after the answer (an error), whatever the client asked for.
  bool close = false;
  // Said in the daemon's log only (it may name a secret's file or variable, never a value).
  std::string operatorLog;

  // kForward.
  std::optional<policy::NormalizedHost> normalizedHost;
  policy::HostDecision hostDecision;  // for resolveUpstream() when not rerouted
  std::optional<handlers::RerouteTarget> reroute;
  // Header edits for the upstream request. setHeaders may hold secret values: they go to the
  // upstream only, never into a log line or an answer of egressd's.
  std::vector<http::Header> setHeaders;
  std::vector<std::string> dropHeaders;
  std::vector<std::string> secretValues;  // to redact in the response (SecretRedactor)
};

RequestDecision decideRequest(const http::RequestHead& head, const RequestContext& context,
                              const SandboxPolicyView& view);

// Connection management is per hop (RFC 9110 7.6.1): the request's hop-by-hop header names
// (Connection and the fields it lists, Keep-Alive, Proxy-Connection, TE), never Host,
// Content-Length or Transfer-Encoding. Upgrade requests and HTTP/1.0 keep theirs.
std::vector<std::string> hopByHopHeaders(const http::RequestHead& head);

// X-Egressd-Reason (and X-Egressd-Rule when `rule` is given; "default" when empty) for
// egressd's own answers.
std::vector<http::Header> reasonHeaders(const std::string& reason,
                                        const std::string* rule = nullptr);

// The body of a denial: which request, which sandbox, which rule and why.
std::string denyBody(std::string_view host, std::string_view sandboxId,
                     const RequestOutcome& outcome);

}  // namespace egressd::proxy
