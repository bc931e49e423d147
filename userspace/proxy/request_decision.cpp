#include "proxy/request_decision.h"

#include <algorithm>

#include "common/ascii.h"
#include "proxy/request_rules.h"
#include "proxy/upstream_choice.h"

namespace egressd::proxy {

namespace {

// The audit rule of a handler's own decision: the action that ended the chain
// ("outboundHandlers.kv[1] reroute"), or the handler when the chain ran out.
std::string handlerRule(const handlers::HostBinding& binding, const handlers::Verdict& verdict) {
  return verdict.rule.empty() ? "handler " + binding.handler : verdict.rule;
}

// Resolves secrets when the daemon gave the sandbox no store: the policy's file and env
// sources still work, API-set values do not exist.
const handlers::SecretStore& policyOnlySecrets() {
  static const handlers::SecretStore store;
  return store;
}

handlers::Verdict evaluateHandler(const SandboxPolicyView& view,
                                  const handlers::HostBinding& binding,
                                  const http::RequestHead& head, const RequestContext& context) {
  if (!view.handlers.set || !view.handlers.set->contains(binding.handler)) {
    handlers::Verdict v;
    v.kind = handlers::Verdict::Kind::kError;
    v.status = handlers::kErrorStatus;
    v.error = "not defined in policy " + view.policyName;
    return v;
  }
  const handlers::SecretStore& store =
      context.secrets != nullptr ? *context.secrets : policyOnlySecrets();
  const auto& sources = view.secretSources;
  const std::string id(context.sandboxId);
  const handlers::SecretResolver resolver = [&store, &sources, &id](std::string_view name) {
    return store.get(name, id, sources);
  };
  return view.handlers.set->evaluate(binding.handler, binding.params, head, id, resolver);
}

RequestDecision malformed(std::string reason) {
  RequestDecision d;
  d.action = RequestDecision::Action::kMalformed;
  d.outcome.decision = "deny";
  d.outcome.reason = "bad_request";
  d.outcome.status = 400;
  d.outcome.detail = std::move(reason);
  d.body = "egressd: " + d.outcome.detail + "\n";
  d.responseHeaders = reasonHeaders("bad_request");
  d.close = true;
  return d;
}

// A refusal of egressd's own (not the host policy's): "egressd: DETAIL" with the reason.
void refuse(RequestDecision& d, std::string reason, int status, std::string detail) {
  d.action = RequestDecision::Action::kAnswer;
  d.outcome.decision = "deny";
  d.outcome.reason = std::move(reason);
  d.outcome.status = status;
  d.outcome.detail = std::move(detail);
  d.body = "egressd: " + d.outcome.detail + "\n";
  d.responseHeaders = reasonHeaders(d.outcome.reason);
  if (status == 405) {
    d.responseHeaders.push_back(
        http::Header{"Allow", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"});
  }
}

// The handler's verdict applied to `d`. Returns false when it ended the request (an answer).
bool applyVerdict(RequestDecision& d, handlers::Verdict verdict,
                  const handlers::HostBinding& binding, const std::string& sandboxId,
                  bool tlsSession) {
  using Kind = handlers::Verdict::Kind;
  d.outcome.handler = binding.handler;
  switch (verdict.kind) {
    case Kind::kDeny:
      d.action = RequestDecision::Action::kAnswer;
      d.outcome.decision = "deny";
      d.outcome.reason = "handler_deny";
      d.outcome.rule = handlerRule(binding, verdict);
      d.outcome.status = verdict.status;
      d.body = std::move(verdict.body);
      d.responseHeaders = reasonHeaders(d.outcome.reason);
      d.responseHeaders.push_back(http::Header{"X-Egressd-Handler", binding.handler});
      return false;
    case Kind::kRespond:
      // A virtual host: egressd is the server, the upstream is never contacted.
      d.action = RequestDecision::Action::kAnswer;
      d.outcome.decision = "allow";
      d.outcome.reason = "handler_respond";
      d.outcome.rule = handlerRule(binding, verdict);
      d.outcome.status = verdict.status;
      d.body = std::move(verdict.body);
      d.responseHeaders = std::move(verdict.responseHeaders);
      return false;
    case Kind::kError:
      d.action = RequestDecision::Action::kAnswer;
      d.outcome.decision = "error";
      d.outcome.reason = "handler_error";
      d.outcome.rule = handlerRule(binding, verdict);
      d.outcome.status = handlers::kErrorStatus;
      d.outcome.detail = "handler " + binding.handler + ": " + verdict.error;
      // The detail (which secret file or variable failed) is for the operator's log only;
      // neither it nor the client's text ever holds a secret value.
      d.operatorLog = "sandbox " + sandboxId + ": " + d.outcome.detail +
                      (verdict.errorDetail.empty() ? "" : " (" + verdict.errorDetail + ")");
      d.body = "egressd: " + d.outcome.detail + "\n";
      d.responseHeaders = reasonHeaders(d.outcome.reason);
      d.responseHeaders.push_back(http::Header{"X-Egressd-Handler", binding.handler});
      d.close = true;
      return false;
    case Kind::kReroute:
      // Operator-configured: the target is not judged by the host policy (it may well be a
      // loopback or unix-socket service the sandbox itself could never reach).
      d.outcome.decision = "allow";
      d.outcome.reason = "handler_reroute";
      d.outcome.rule = handlerRule(binding, verdict);
      d.reroute = verdict.reroute;
      break;
    case Kind::kForward:
      if (!d.hostDecision.allowed()) {
        d.hostDecision = handlerDecision(*d.normalizedHost, binding.handler);
      }
      break;
  }
  d.setHeaders = std::move(verdict.setHeaders);
  d.dropHeaders.insert(d.dropHeaders.end(), verdict.removeHeaders.begin(),
                       verdict.removeHeaders.end());
  d.secretValues = std::move(verdict.secretValues);
  if (!verdict.secretNeedsTls.empty()) {
    // An injected secret never crosses the network in cleartext unless its setHeader says
    // allowPlaintext: the request's own upstream is cleartext outside interception, a
    // reroute's when it is http:// (a unix socket never leaves the host).
    const bool cleartext =
        d.reroute ? d.reroute->kind == handlers::RerouteTarget::Kind::kTcp : !tlsSession;
    if (cleartext) {
      d.setHeaders.clear();
      d.secretValues.clear();
      d.reroute.reset();
      refuse(d, "secret_over_plaintext", 403,
             "handler " + binding.handler + " would send a secret in " + verdict.secretNeedsTls +
                 " to " + (verdict.kind == Kind::kReroute ? verdict.reroute.text() : d.host) +
                 " over cleartext HTTP; use https (or reroute to https://), or set "
                 "allowPlaintext: true on that setHeader");
      return false;
    }
  }
  return true;
}

}  // namespace

RequestDecision decideRequest(const http::RequestHead& head, const RequestContext& context,
                              const SandboxPolicyView& view) {
  // h2c would switch the connection to a protocol the proxy cannot judge per request.
  if (head.upgrade && !head.upgradeProtocol.empty() &&
      toLowerAscii(head.upgradeProtocol).find("h2c") != std::string::npos) {
    return malformed("Upgrade: h2c is not supported (HTTP/2 over cleartext)");
  }
  auto host = policy::normalizeHost(head.authority.empty() ? head.host : head.authority);
  if (!host.ok()) {
    return malformed("bad Host: " + host.error().message());
  }
  RequestDecision d;
  d.host = host->name;
  if (context.tlsServerName && d.host != *context.tlsServerName) {
    // The TLS session was set up (and judged) for one name: a request for another host
    // inside it would be domain fronting through an allowed name.
    refuse(d, "host_sni_mismatch", 421,
           "Host " + d.host + " does not match the TLS server name " +
               std::string(*context.tlsServerName));
    return d;
  }
  // Requests egressd answers itself, whatever their host (docs/security.md "Requests").
  if (isTraceMethod(head.method) && !view.http.allowTrace) {
    refuse(d, "method_refused", 405,
           head.method +
               " echoes the request, injected credentials included, back to the client; "
               "refused (policy http.allowTrace)");
    return d;
  }
  // Any Upgrade header (with or without "Connection: upgrade", in every list element and
  // every repeat of the header): after a 101 the connection is a tunnel nobody judges.
  if (auto refused = firstUnlisted(upgradeProtocols(head.headers), view.http.allowUpgrades)) {
    refuse(d, "upgrade_refused", 403,
           "Upgrade to " + *refused +
               " is not allowed (policy http.allowUpgrades); the connection would become a "
               "tunnel egressd does not judge");
    return d;
  }

  d.normalizedHost = *host;
  d.hostDecision = view.hosts.decide(*host, context.port);
  d.dropHeaders = hopByHopHeaders(head);
  // Trust headers a sandbox must not be able to write (docs/security.md "Requests"), and an
  // Upgrade that is not one (no "Connection: upgrade", or HTTP/1.0).
  d.dropHeaders.insert(d.dropHeaders.end(), alwaysStrippedHeaders().begin(),
                       alwaysStrippedHeaders().end());
  d.dropHeaders.insert(d.dropHeaders.end(), forwardedHeaders().begin(), forwardedHeaders().end());
  if (!head.upgrade) {
    d.dropHeaders.emplace_back("Upgrade");
  }

  // Handlers run after the host policy (precedence 1-2): a host it denies for a reason of its
  // own never reaches one (handlerMayApply).
  const handlers::HostBinding* binding =
      handlerMayApply(d.hostDecision) ? view.handlers.pick(d.host) : nullptr;
  if (binding != nullptr) {
    // Evaluated per request, never cached: a keep-alive connection's next request (say a
    // redirect the client follows to another host) gets the verdict for its own host.
    const bool forwards =
        applyVerdict(d, evaluateHandler(view, *binding, head, context), *binding,
                     std::string(context.sandboxId), context.tlsServerName.has_value());
    if (!forwards) {
      return d;
    }
  }
  if (view.http.forwarded == policy::ForwardedMode::kSandbox) {
    // egressd's own values, unless the handler set that header itself.
    for (http::Header& h : sandboxForwardedHeaders(context.sandboxId)) {
      const bool handlerSet =
          std::any_of(d.setHeaders.begin(), d.setHeaders.end(),
                      [&](const auto& s) { return http::fieldNameMatches(s.name, h.name); });
      if (!handlerSet) {
        d.setHeaders.push_back(std::move(h));
      }
    }
  }
  d.action = RequestDecision::Action::kForward;
  return d;
}

std::vector<std::string> hopByHopHeaders(const http::RequestHead& head) {
  if (head.upgrade || head.versionMinor == 0) {
    return {};
  }
  std::vector<std::string> names = {"Connection", "Keep-Alive", "Proxy-Connection", "TE"};
  if (const http::Header* connection = head.find("Connection")) {
    for (std::string_view token : http::listElements(connection->value)) {
      // Never let a client strip what the request's framing or routing depends on; a '*'
      // would read as a prefix to dropHeaders (http::fieldNameMatches).
      if (token.find('*') == std::string_view::npos && !http::equalsIgnoreCase(token, "Host") &&
          !http::equalsIgnoreCase(token, "Content-Length") &&
          !http::equalsIgnoreCase(token, "Transfer-Encoding")) {
        names.emplace_back(token);
      }
    }
  }
  return names;
}

std::vector<http::Header> reasonHeaders(const std::string& reason, const std::string* rule) {
  std::vector<http::Header> h;
  if (rule != nullptr) {
    h.push_back(http::Header{"X-Egressd-Rule", rule->empty() ? std::string("default") : *rule});
  }
  h.push_back(http::Header{"X-Egressd-Reason", reason});
  return h;
}

std::string denyBody(std::string_view host, std::string_view sandboxId,
                     const RequestOutcome& outcome) {
  std::string body = "egressd: request to " +
                     (host.empty() ? std::string("?") : std::string(host)) +
                     " denied for sandbox " + std::string(sandboxId);
  body += outcome.rule.empty() ? " (" + outcome.reason + ")"
                               : " by rule " + outcome.rule + " (" + outcome.reason + ")";
  if (!outcome.detail.empty()) {
    body += ": " + outcome.detail;
  }
  body += "\n";
  return body;
}

}  // namespace egressd::proxy
