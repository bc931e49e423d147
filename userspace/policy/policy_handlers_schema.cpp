// The policy schema of handlers and their inputs: `secrets`, `outboundHandlers` (each a list
// of actions, kept as JSON for handlers/ to compile), `outbound`, `outboundByHost`, and the
// check that every handler referred to is defined. Part of the Parser in policy_parser.h.
#include <algorithm>
#include <cctype>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "policy/policy_parser.h"
#include "yaml/strict_reader.h"

namespace egressd::policy::schema {
namespace {

using yaml::elements;
using yaml::entries;
using yaml::fail;
using yaml::quote;
using yaml::scalar;

bool isName(std::string_view text, bool allowDash) {
  return !text.empty() &&
         std::all_of(text.begin(), text.end(), [&](char c) { return isNameChar(c, allowDash); });
}

}  // namespace

std::map<std::string, SecretSource> Parser::secrets(const Field& field) const {
  std::map<std::string, SecretSource> out;
  for (const auto& [key, value] : entries(field)) {
    const std::string name = key.node.Scalar();
    if (!isName(name, false)) {
      fail(key, "secret names may contain only letters, digits and '_'");
    }
    const auto items = entries(value);
    diagnostics_.rejectUnknownKeys(value, items, {"file", "env"});
    if (items.size() != 1) {
      fail(value, "expected exactly one of 'file' or 'env'");
    }
    const auto& [kindKey, source] = items.front();
    SecretSource secret;
    secret.pos = source.pos;
    secret.value = scalar(source, "a path or variable name");
    if (kindKey.node.Scalar() == "file") {
      secret.kind = SecretSource::Kind::kFile;
      // The daemon's working directory is arbitrary; a relative path would depend on it.
      if (secret.value.empty() || secret.value.front() != '/') {
        fail(source, "secret files need an absolute path, got " + quote(secret.value));
      }
    } else {
      secret.kind = SecretSource::Kind::kEnv;
      if (!isName(secret.value, false) ||
          std::isdigit(static_cast<unsigned char>(secret.value[0]))) {
        fail(source, "invalid environment variable name " + quote(secret.value));
      }
    }
    out.emplace(name, std::move(secret));
  }
  return out;
}

HandlerRef Parser::handlerRef(const Field& field) const {
  HandlerRef ref;
  if (field.node.IsScalar()) {
    ref.handler = field.node.Scalar();
    ref.pos = field.pos;
  } else {
    if (!field.node.IsMap()) {
      fail(field, "expected a handler name or {handler: NAME, params: {...}}");
    }
    const auto items = entries(field);
    diagnostics_.rejectUnknownKeys(field, items, {"handler", "params"});
    bool hasHandler = false;
    for (const auto& [key, value] : items) {
      if (key.node.Scalar() == "handler") {
        ref.handler = scalar(value, "a handler name");
        ref.pos = value.pos;
        hasHandler = true;
      } else {
        if (!value.node.IsMap()) {
          fail(value, "expected a mapping of parameters");
        }
        size_t budget = yaml::kMaxJsonNodes;
        ref.params = yaml::toJson(value, budget);
      }
    }
    if (!hasHandler) {
      fail(field, "missing required key 'handler'");
    }
  }
  if (!isName(ref.handler, true)) {
    fail(ref.pos, field.path, "invalid handler name " + quote(ref.handler));
  }
  return ref;
}

std::vector<HostHandler> Parser::outboundByHost(const Field& field) const {
  std::vector<HostHandler> out;
  std::map<std::string, SourcePos> seen;
  for (const auto& [key, value] : entries(field, yaml::KeyPath::kQuoted)) {
    HostGlob host = hostGlob(key);
    if (auto [prev, inserted] = seen.emplace(host.pattern, key.pos); !inserted) {
      fail(key, "same host as line " + std::to_string(prev->second.line));
    }
    out.push_back(HostHandler{std::move(host), handlerRef(value)});
  }
  return out;
}

std::map<std::string, Handler> Parser::outboundHandlers(const Field& field) const {
  std::map<std::string, Handler> out;
  for (const auto& [key, value] : entries(field)) {
    Handler handler;
    handler.name = key.node.Scalar();
    handler.pos = key.pos;
    if (!isName(handler.name, true)) {
      fail(key, "handler names may contain only letters, digits, '_' and '-'");
    }
    size_t budget = yaml::kMaxJsonNodes;
    for (const Field& step : elements(value, "actions")) {
      if (!step.node.IsMap() || step.node.size() != 1) {
        fail(step,
             "an action is a mapping with exactly one key, e.g. "
             "setHeader: { name: ..., value: ... }");
      }
      handler.actions.push_back(HandlerAction{yaml::toJson(step, budget), step.pos});
    }
    out.emplace(handler.name, std::move(handler));
  }
  return out;
}

void Parser::checkHandlerRefs(const Policy& policy) const {
  std::vector<std::string> names;
  for (const auto& [name, handler] : policy.outboundHandlers) {
    names.push_back(name);
  }
  auto check = [&](const HandlerRef& ref, const std::string& path) {
    if (policy.outboundHandlers.count(ref.handler) == 0) {
      fail(ref.pos, path,
           "unknown handler '" + ref.handler + "' (not in outboundHandlers)" +
               yaml::didYouMean(ref.handler, names));
    }
  };
  for (const auto& entry : policy.outboundByHost) {
    check(entry.ref, "outboundByHost[" + quote(entry.host.text) + "]");
  }
  if (policy.outbound) {
    check(*policy.outbound, "outbound");
  }
}
}  // namespace egressd::policy::schema
