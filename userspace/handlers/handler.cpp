// Compiling a policy's outboundHandlers into HandlerSet chains: each action's arguments checked
// and its templates parsed once, with errors naming the policy position. Running a chain per
// request is in handler_eval.cpp.
#include "handlers/handler.h"

#include <algorithm>
#include <cerrno>
#include <exception>
#include <initializer_list>
#include <set>
#include <utility>

#include "common/ascii.h"
#include "handlers/text.h"

namespace egressd::handlers {
namespace {

using nlohmann::json;

constexpr std::string_view kActionKinds =
    "setHeader, removeHeader, deny, respond, reroute or forward";

// Headers that frame the message or pick its destination: the proxy owns them, and letting a
// handler change them would desynchronize what the proxy and the upstream think the request
// is (request smuggling) or where it goes.
constexpr std::string_view kProxyOwnedHeaders[] = {
    "Host", "Content-Length", "Transfer-Encoding", "Connection",      "Keep-Alive",
    "TE",   "Trailer",        "Upgrade",           "Proxy-Connection"};
// buildResponse() writes these itself for local responses.
constexpr std::string_view kResponseOwnedHeaders[] = {"Content-Length", "Transfer-Encoding",
                                                      "Connection"};

template <size_t N>
bool isOneOf(std::string_view name, const std::string_view (&list)[N]) {
  return std::any_of(std::begin(list), std::end(list),
                     [&](std::string_view owned) { return equalsIgnoreCase(name, owned); });
}

std::string positionPrefix(const std::string& source, const policy::SourcePos& pos) {
  std::string out = source.empty() ? "<policy>" : source;
  if (pos.line > 0) {
    out += ":" + std::to_string(pos.line) + ":" + std::to_string(pos.column);
  }
  return out + ": ";
}

// Reads one action's argument object, remembering which keys were used so that the rest can
// be reported as unknown.
class Args {
 public:
  explicit Args(const json& args) : args_(args) {}

  const json* get(const std::string& key) {
    auto it = args_.find(key);
    if (it == args_.end()) {
      return nullptr;
    }
    used_.insert(key);
    return &*it;
  }

  Result<std::string> string(const std::string& key, bool required) {
    const json* value = get(key);
    if (value == nullptr) {
      if (required) {
        return Error(EINVAL, "missing required key '" + key + "'");
      }
      return std::string();
    }
    if (!value->is_string()) {
      return Error(EINVAL, key + ": expected a string, got " + detail::jsonText(*value) +
                               (value->is_number() ? " (quote it)" : ""));
    }
    return value->get<std::string>();
  }

  Result<int> status(int fallback, int min, int max) {
    const json* value = get("status");
    if (value == nullptr) {
      return fallback;
    }
    const std::string range = std::to_string(min) + ".." + std::to_string(max);
    if (!value->is_number_integer() || value->get<int64_t>() < min || value->get<int64_t>() > max) {
      return Error(EINVAL,
                   "status: expected an integer in " + range + ", got " + detail::jsonText(*value));
    }
    return static_cast<int>(value->get<int64_t>());
  }

  Status rejectUnknown(std::initializer_list<std::string_view> known) const {
    for (const auto& [key, value] : args_.items()) {
      if (used_.count(key) == 0) {
        std::string expected;
        for (std::string_view name : known) {
          expected += (expected.empty() ? "" : ", ") + std::string(name);
        }
        return Error(EINVAL, "unknown key '" + key + "' (expected " + expected + ")");
      }
    }
    return okStatus();
  }

 private:
  const json& args_;
  std::set<std::string> used_;
};

Result<Template> headerValueTemplate(const std::string& text, bool allowSecrets,
                                     const std::string& what) {
  // A line break would start a new header line: refused here rather than silently dropped.
  if (detail::hasLineBreakOrNul(text)) {
    return Error(EINVAL, what + ": holds CR, LF or NUL");
  }
  auto parsed = Template::parse(text, allowSecrets);
  if (!parsed.ok()) {
    return Error(EINVAL, what + ": " + parsed.error().message());
  }
  return parsed;
}

Result<Template> bodyTemplate(const std::string& text) {
  auto parsed = Template::parse(text, false);
  if (!parsed.ok()) {
    return Error(EINVAL, "body: " + parsed.error().message());
  }
  return parsed;
}

Status checkHeaderName(const std::string& name, bool response) {
  if (!http::isToken(name)) {
    return Error(EINVAL, "name: " + detail::quoted(name) + " is not a valid header name");
  }
  if (response ? isOneOf(name, kResponseOwnedHeaders) : isOneOf(name, kProxyOwnedHeaders)) {
    return Error(EINVAL, "name: " + name + " is managed by the proxy and cannot be changed");
  }
  return okStatus();
}

}  // namespace

bool HandlerSet::Action::applies(const http::RequestHead& request) const {
  return (!when || when->matches(request)) && !(unless && unless->matches(request));
}

Result<HandlerSet::Action> HandlerSet::compileAction(const std::string& handler, size_t index,
                                                     const policy::HandlerAction& source) {
  const std::string path = "outboundHandlers." + handler + "[" + std::to_string(index) + "]";
  if (!source.action.is_object() || source.action.size() != 1) {
    return Error(EINVAL, path +
                             ": an action is a mapping with exactly one key, e.g. "
                             "setHeader: { name: ..., value: ... }");
  }
  const std::string& kind = source.kind();
  const json& argsJson = source.args();

  Action action;
  action.label = path + " " + kind;
  auto fail = [&](const Error& error) {
    return Error(EINVAL, action.label + ": " + error.message());
  };

  static const std::map<std::string, Action::Kind, std::less<>> kKinds = {
      {"setHeader", Action::Kind::kSetHeader}, {"removeHeader", Action::Kind::kRemoveHeader},
      {"deny", Action::Kind::kDeny},           {"respond", Action::Kind::kRespond},
      {"reroute", Action::Kind::kReroute},     {"forward", Action::Kind::kForward}};
  auto known = kKinds.find(kind);
  if (known == kKinds.end()) {
    return Error(EINVAL, path + ": unknown action '" + kind + "' (expected " +
                             std::string(kActionKinds) + ")");
  }
  action.kind = known->second;

  // `forward: null` and `forward: true` read naturally in YAML; everything else takes a mapping.
  const json empty = json::object();
  const json* argsPtr = &argsJson;
  if (action.kind == Action::Kind::kForward && (argsJson.is_null() || argsJson == json(true))) {
    argsPtr = &empty;
  }
  if (!argsPtr->is_object()) {
    return fail(
        Error(EINVAL, "expected a mapping of arguments, got " + detail::jsonText(argsJson)));
  }
  Args args(*argsPtr);

  for (const char* key : {"when", "unless"}) {
    if (const json* spec = args.get(key)) {
      auto condition = Condition::parse(*spec);
      if (!condition.ok()) {
        return fail(Error(EINVAL, std::string(key) + ": " + condition.error().message()));
      }
      (std::string_view(key) == "when" ? action.when : action.unless) = std::move(*condition);
    }
  }

  switch (action.kind) {
    case Action::Kind::kSetHeader:
    case Action::Kind::kRemoveHeader: {
      auto name = args.string("name", true);
      if (!name.ok()) {
        return fail(name.error());
      }
      if (auto status = checkHeaderName(*name, false); !status.ok()) {
        return fail(status.error());
      }
      action.name = *name;
      if (action.kind == Action::Kind::kSetHeader) {
        auto value = args.string("value", true);
        if (!value.ok()) {
          return fail(value.error());
        }
        auto parsed = headerValueTemplate(*value, true, "value");
        if (!parsed.ok()) {
          return fail(parsed.error());
        }
        action.value = std::move(*parsed);
        if (const json* plain = args.get("allowPlaintext")) {
          if (!plain->is_boolean()) {
            return fail(Error(
                EINVAL, "allowPlaintext: expected true or false, got " + detail::jsonText(*plain)));
          }
          action.allowPlaintext = plain->get<bool>();
        }
        if (auto status = args.rejectUnknown({"name", "value", "allowPlaintext", "when", "unless"});
            !status.ok()) {
          return fail(status.error());
        }
      } else {
        if (auto status = args.rejectUnknown({"name", "when", "unless"}); !status.ok()) {
          return fail(status.error());
        }
      }
      break;
    }
    case Action::Kind::kDeny: {
      auto status = args.status(kDefaultDenyStatus, 400, 599);
      if (!status.ok()) {
        return fail(status.error());
      }
      action.status = *status;
      if (const json* body = args.get("body")) {
        if (!body->is_string()) {
          return fail(Error(EINVAL, "body: expected a string, got " + detail::jsonText(*body)));
        }
        auto parsed = bodyTemplate(body->get<std::string>());
        if (!parsed.ok()) {
          return fail(parsed.error());
        }
        action.value = std::move(*parsed);
      } else {
        // Handler names are [A-Za-z0-9_-] (the policy parser checks): no '$' to escape.
        auto parsed = Template::parse("egressd: denied by handler " + handler + "\n", false);
        if (!parsed.ok()) {
          return fail(parsed.error());
        }
        action.value = std::move(*parsed);
      }
      if (auto unknown = args.rejectUnknown({"status", "body", "when", "unless"}); !unknown.ok()) {
        return fail(unknown.error());
      }
      break;
    }
    case Action::Kind::kRespond: {
      auto status = args.status(200, 200, 599);
      if (!status.ok()) {
        return fail(status.error());
      }
      action.status = *status;
      auto body = args.string("body", false);
      if (!body.ok()) {
        return fail(body.error());
      }
      auto parsedBody = bodyTemplate(*body);
      if (!parsedBody.ok()) {
        return fail(parsedBody.error());
      }
      action.value = std::move(*parsedBody);
      if (const json* headers = args.get("headers")) {
        if (!headers->is_object()) {
          return fail(Error(EINVAL, "headers: expected a mapping of header name to value"));
        }
        for (const auto& [name, value] : headers->items()) {
          if (auto check = checkHeaderName(name, true); !check.ok()) {
            return fail(Error(EINVAL, "headers: " + check.error().message()));
          }
          if (!value.is_string()) {
            return fail(Error(
                EINVAL, "headers." + name + ": expected a string, got " + detail::jsonText(value)));
          }
          auto parsed = headerValueTemplate(value.get<std::string>(), false, "headers." + name);
          if (!parsed.ok()) {
            return fail(parsed.error());
          }
          action.headers.emplace_back(name, std::move(*parsed));
        }
      }
      if (auto unknown = args.rejectUnknown({"status", "headers", "body", "when", "unless"});
          !unknown.ok()) {
        return fail(unknown.error());
      }
      break;
    }
    case Action::Kind::kReroute: {
      auto upstream = args.string("upstream", true);
      if (!upstream.ok()) {
        return fail(upstream.error());
      }
      auto parsed = Template::parse(*upstream, false);
      if (!parsed.ok()) {
        return fail(Error(EINVAL, "upstream: " + parsed.error().message()));
      }
      action.value = std::move(*parsed);
      if (action.value.isLiteral()) {
        auto target = parseRerouteTarget(action.value.expand({}).value());
        if (!target.ok()) {
          return fail(target.error());
        }
        action.target = std::move(*target);
      }
      if (auto unknown = args.rejectUnknown({"upstream", "when", "unless"}); !unknown.ok()) {
        return fail(unknown.error());
      }
      break;
    }
    case Action::Kind::kForward:
      if (auto unknown = args.rejectUnknown({"when", "unless"}); !unknown.ok()) {
        return fail(unknown.error());
      }
      break;
  }
  return action;
}

Result<std::shared_ptr<const HandlerSet>> HandlerSet::compile(const policy::Policy& policy) {
  std::shared_ptr<HandlerSet> set(new HandlerSet());
  for (const auto& [name, handler] : policy.outboundHandlers) {
    Chain chain;
    chain.name = name;
    std::set<std::string> params;
    std::optional<size_t> endsAt;  // first action that always terminates
    for (size_t i = 0; i < handler.actions.size(); ++i) {
      const policy::HandlerAction& source = handler.actions[i];
      auto action = compileAction(name, i, source);
      if (!action.ok()) {
        return Error(EINVAL,
                     positionPrefix(policy.sourceName, source.pos) + action.error().message());
      }
      if (endsAt) {
        set->warnings_.push_back(positionPrefix(policy.sourceName, source.pos) + action->label +
                                 ": never runs (" + chain.actions[*endsAt].label +
                                 " always ends the chain)");
      } else if (action->terminates() && !action->when && !action->unless) {
        endsAt = i;
      }
      params.insert(action->value.params().begin(), action->value.params().end());
      for (const auto& header : action->headers) {
        params.insert(header.second.params().begin(), header.second.params().end());
      }
      chain.actions.push_back(std::move(*action));
    }
    chain.params.assign(params.begin(), params.end());
    set->chains_.emplace(name, std::move(chain));
  }

  auto checkRef = [&](const policy::HandlerRef& ref, const std::string& path) -> Status {
    if (auto status = set->checkParams(ref.handler, ref.params); !status.ok()) {
      return Error(EINVAL, positionPrefix(policy.sourceName, ref.pos) + path + ": " +
                               status.error().message());
    }
    return okStatus();
  };
  for (const policy::HostHandler& entry : policy.outboundByHost) {
    EGRESSD_TRY(checkRef(entry.ref, "outboundByHost[" + detail::quoted(entry.host.text) + "]"));
  }
  if (policy.outbound) {
    EGRESSD_TRY(checkRef(*policy.outbound, "outbound"));
  }
  return std::shared_ptr<const HandlerSet>(std::move(set));
}

bool HandlerSet::contains(std::string_view handler) const {
  return chains_.find(handler) != chains_.end();
}

std::vector<std::string> HandlerSet::names() const {
  std::vector<std::string> out;
  for (const auto& [name, chain] : chains_) {
    out.push_back(name);
  }
  return out;
}

std::vector<std::string> HandlerSet::params(std::string_view handler) const {
  auto it = chains_.find(handler);
  return it == chains_.end() ? std::vector<std::string>() : it->second.params;
}

}  // namespace egressd::handlers
