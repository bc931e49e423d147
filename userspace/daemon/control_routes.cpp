#include "daemon/control_routes.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <limits>
#include <optional>
#include <utility>
#include <vector>

#include "daemon/api_errors.h"

namespace egressd::daemon {

using control::ApiRequest;
using control::ApiResponse;

namespace {

// {"handler": NAME, "params": {...}} (params optional) -> HandlerRef.
Result<policy::HandlerRef> handlerRefFrom(const nlohmann::json& body) {
  auto handler = control::stringField(body, "handler");
  if (!handler.ok()) {
    return std::move(handler).error();
  }
  auto params = control::objectField(body, "params", false);
  if (!params.ok()) {
    return std::move(params).error();
  }
  policy::HandlerRef ref;
  ref.handler = *handler;
  ref.params = params->is_null() ? nlohmann::json::object() : *params;
  return ref;
}

// Absent or null -> nullopt; else a positive integer that fits a pid_t.
Result<std::optional<pid_t>> optionalPid(const nlohmann::json& body, const std::string& key) {
  if (!body.is_object() || !body.contains(key) || body.at(key).is_null()) {
    return std::optional<pid_t>();
  }
  const nlohmann::json& value = body.at(key);
  if (!value.is_number_integer() || value.get<int64_t>() <= 0 ||
      value.get<int64_t>() > std::numeric_limits<pid_t>::max()) {
    return Error(EINVAL, "field '" + key + "' must be a process id (an integer > 0)");
  }
  return std::optional<pid_t>(static_cast<pid_t>(value.get<int64_t>()));
}

// POST /v1/sandboxes: {"id", "policy", and one of "cgroup" (+ "netns"), "createCgroup",
// "pid", "container"}.
Result<CreateSandboxRequest> createSandboxRequestFrom(const nlohmann::json& body, pid_t peerPid) {
  auto id = control::stringField(body, "id");
  auto policyName = control::stringField(body, "policy");
  auto cgroup = control::optionalString(body, "cgroup");
  auto netns = control::optionalString(body, "netns");
  auto createCgroup = control::boolField(body, "createCgroup", false);
  auto pid = optionalPid(body, "pid");
  auto container = control::optionalString(body, "container");
  for (const Status& s : {Status(pid.ok() ? okStatus() : Status(pid.error())),
                          Status(container.ok() ? okStatus() : Status(container.error())),
                          Status(id.ok() ? okStatus() : Status(id.error())),
                          Status(policyName.ok() ? okStatus() : Status(policyName.error())),
                          Status(cgroup.ok() ? okStatus() : Status(cgroup.error())),
                          Status(netns.ok() ? okStatus() : Status(netns.error())),
                          Status(createCgroup.ok() ? okStatus() : Status(createCgroup.error()))}) {
    if (!s.ok()) {
      return s.error();
    }
  }
  return CreateSandboxRequest{*id,           *policyName, *cgroup,    *netns,
                              *createCgroup, *pid,        *container, peerPid};
}

}  // namespace

std::shared_ptr<const control::Router> makeControlRouter(SandboxManager& m) {
  auto router = std::make_shared<control::Router>();
  using Kind = SandboxManager::HostListKind;
  router->add("GET", "/v1/status", [&m](const ApiRequest&) {
    return ApiResponse{200, m.status()};
  });

  router->add("GET", "/v1/sandboxes", [&m](const ApiRequest&) {
    return ApiResponse{200, m.listSandboxes()};
  });
  router->add("POST", "/v1/sandboxes", [&m](const ApiRequest& r) -> ApiResponse {
    auto request = createSandboxRequestFrom(r.body, r.peerPid);
    if (!request.ok()) {
      return control::invalidRequest(request.error());
    }
    return toApiResponse(m.createSandbox(*request), 201);
  });
  router->add("GET", "/v1/sandboxes/{id}", [&m](const ApiRequest& r) {
    return toApiResponse(m.showSandbox(r.params.at("id")));
  });
  router->add("DELETE", "/v1/sandboxes/{id}", [&m](const ApiRequest& r) {
    return toApiResponse(m.deleteSandbox(r.params.at("id")));
  });

  for (const auto& [segment, kind] :
       {std::pair{"allowed-hosts", Kind::kAllowed}, std::pair{"denied-hosts", Kind::kDenied}}) {
    const std::string base = std::string("/v1/sandboxes/{id}/") + segment;
    const Kind k = kind;
    router->add("PUT", base, [&m, k](const ApiRequest& r) -> ApiResponse {
      auto hosts = control::stringList(r.body, "hosts");
      if (!hosts.ok()) {
        return control::invalidRequest(hosts.error());
      }
      return toApiResponse(m.setHosts(r.params.at("id"), k, *hosts));
    });
    router->add("POST", base, [&m, k](const ApiRequest& r) -> ApiResponse {
      auto host = control::stringField(r.body, "host");
      if (!host.ok()) {
        return control::invalidRequest(host.error());
      }
      return toApiResponse(m.addHost(r.params.at("id"), k, *host));
    });
    router->add("DELETE", base + "/{host}", [&m, k](const ApiRequest& r) {
      return toApiResponse(m.removeHost(r.params.at("id"), k, r.params.at("host")));
    });
  }

  router->add(
      "PUT", "/v1/sandboxes/{id}/outbound-by-host/{host}",
      [&m](const ApiRequest& r) -> ApiResponse {
        auto ref = handlerRefFrom(r.body);
        if (!ref.ok()) {
          return control::invalidRequest(ref.error());
        }
        return toApiResponse(m.setOutboundByHost(r.params.at("id"), r.params.at("host"), *ref));
      });
  router->add("DELETE", "/v1/sandboxes/{id}/outbound-by-host/{host}", [&m](const ApiRequest& r) {
    return toApiResponse(m.removeOutboundByHost(r.params.at("id"), r.params.at("host")));
  });
  router->add("PUT", "/v1/sandboxes/{id}/outbound-by-host",
              [&m](const ApiRequest& r) -> ApiResponse {
                auto byHost = control::objectField(r.body, "byHost", true);
                if (!byHost.ok()) {
                  return control::invalidRequest(byHost.error());
                }
                std::map<std::string, policy::HandlerRef> refs;
                for (const auto& [host, value] : byHost->items()) {
                  if (value.is_string()) {
                    policy::HandlerRef ref;
                    ref.handler = value.get<std::string>();
                    refs[host] = ref;
                    continue;
                  }
                  auto ref = handlerRefFrom(value);
                  if (!ref.ok()) {
                    return control::invalidRequest(ref.error().wrap("byHost." + host));
                  }
                  refs[host] = *ref;
                }
                return toApiResponse(m.setOutboundByHosts(r.params.at("id"), refs));
              });
  router->add("PUT", "/v1/sandboxes/{id}/outbound", [&m](const ApiRequest& r) -> ApiResponse {
    auto ref = handlerRefFrom(r.body);
    if (!ref.ok()) {
      return control::invalidRequest(ref.error());
    }
    return toApiResponse(m.setOutboundHandler(r.params.at("id"), *ref));
  });
  router->add("DELETE", "/v1/sandboxes/{id}/outbound", [&m](const ApiRequest& r) {
    return toApiResponse(m.removeOutboundHandler(r.params.at("id")));
  });

  router->add("GET", "/v1/secrets", [&m](const ApiRequest&) {
    return ApiResponse{200, m.listSecrets()};
  });
  router->add("PUT", "/v1/secrets/{name+}", [&m](const ApiRequest& r) -> ApiResponse {
    auto value = control::stringField(r.body, "value");
    if (!value.ok()) {
      return control::invalidRequest(value.error());
    }
    return toApiResponse(m.setSecret(r.params.at("name"), std::move(*value)));
  });
  router->add("DELETE", "/v1/secrets/{name+}", [&m](const ApiRequest& r) {
    return toApiResponse(m.removeSecret(r.params.at("name")));
  });

  auto policyBody = [](const ApiRequest& r, std::string* yaml,
                       std::string* source) -> std::optional<ApiResponse> {
    auto y = control::stringField(r.body, "yaml");
    if (!y.ok()) {
      return control::invalidRequest(y.error());
    }
    auto s = control::optionalString(r.body, "source");
    if (!s.ok()) {
      return control::invalidRequest(s.error());
    }
    *yaml = std::move(*y);
    *source = s->value_or("");
    return std::nullopt;
  };
  router->add("GET", "/v1/policies", [&m](const ApiRequest&) {
    return ApiResponse{200, m.listPolicies()};
  });
  router->add("GET", "/v1/policies/{name}", [&m](const ApiRequest& r) {
    return toApiResponse(m.showPolicy(r.params.at("name")));
  });
  router->add("POST", "/v1/policies", [&m, policyBody](const ApiRequest& r) {
    std::string yaml;
    std::string source;
    if (auto bad = policyBody(r, &yaml, &source)) {
      return *bad;
    }
    return toApiResponse(m.applyPolicy(yaml, source));
  });
  router->add("POST", "/v1/policies/validate", [&m, policyBody](const ApiRequest& r) {
    std::string yaml;
    std::string source;
    if (auto bad = policyBody(r, &yaml, &source)) {
      return *bad;
    }
    return toApiResponse(m.validatePolicy(yaml, source));
  });
  router->add("POST", "/v1/reload",
              [&m](const ApiRequest&) { return toApiResponse(m.reloadPolicyFiles()); });

  router->add("GET", "/v1/sandboxes/{id}/spawn",
              [&m](const ApiRequest& r) { return toApiResponse(m.spawnInfo(r.params.at("id"))); });

  router->add("GET", "/v1/audit", [&m](const ApiRequest& r) -> ApiResponse {
    audit::AuditQuery query;
    if (auto it = r.query.find("lines"); it != r.query.end()) {
      const std::string& text = it->second;
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), query.lines);
      if (ec != std::errc() || end != text.data() + text.size() || query.lines == 0 ||
          query.lines > 100000) {
        return control::apiError(400, "invalid_request",
                                 "lines must be a number from 1 to 100000, got \"" + text + "\"");
      }
    }
    if (auto it = r.query.find("after"); it != r.query.end()) {
      const std::string& text = it->second;
      uint64_t after = 0;
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), after);
      if (text.empty() || ec != std::errc() || end != text.data() + text.size()) {
        return control::apiError(400, "invalid_request",
                                 "after must be a byte offset, got \"" + text + "\"");
      }
      query.after = after;
    }
    for (auto [key, field] :
         {std::pair{"sandbox", &query.sandbox}, std::pair{"layer", &query.layer},
          std::pair{"decision", &query.decision}}) {
      if (auto it = r.query.find(key); it != r.query.end()) {
        *field = it->second;
      }
    }
    for (const auto& [value, allowed] :
         {std::pair{query.layer, std::vector<std::string>{"kernel", "proxy", "dns", "control"}},
          std::pair{query.decision,
                    std::vector<std::string>{"allow", "deny", "error", "delete"}}}) {
      if (!value.empty() && std::find(allowed.begin(), allowed.end(), value) == allowed.end()) {
        return control::apiError(400, "invalid_request",
                                 "unknown audit filter value \"" + value + "\"");
      }
    }
    return toApiResponse(m.auditTail(query));
  });
  return router;
}

}  // namespace egressd::daemon
