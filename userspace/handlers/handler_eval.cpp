// Running a compiled handler chain (HandlerSet::evaluate): checking the call's params, then
// walking the actions to a verdict, expanding templates (and fetching secrets) only for what
// the verdict actually uses. Compilation is in handler.cpp.
#include <algorithm>
#include <cerrno>
#include <exception>
#include <optional>
#include <utility>

#include "common/ascii.h"
#include "handlers/handler.h"
#include "handlers/text.h"

namespace egressd::handlers {
namespace {

using nlohmann::json;

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& item : items) {
    out += (out.empty() ? "" : ", ") + item;
  }
  return out;
}

// A param value as the text templates insert; nullopt for types that have no one obvious text.
std::optional<std::string> paramText(const json& value) {
  if (value.is_string()) {
    return value.get<std::string>();
  }
  if (value.is_boolean()) {
    return value.get<bool>() ? "true" : "false";
  }
  if (value.is_number_unsigned()) {
    return std::to_string(value.get<uint64_t>());
  }
  if (value.is_number_integer()) {
    return std::to_string(value.get<int64_t>());
  }
  if (value.is_number_float()) {
    return detail::jsonText(value);
  }
  return std::nullopt;
}

void addName(std::vector<std::string>& names, const std::string& name) {
  const bool present = std::any_of(names.begin(), names.end(),
                                   [&](const std::string& n) { return equalsIgnoreCase(n, name); });
  if (!present) {
    names.push_back(name);
  }
}

// The proxy names the handler itself ("handler gh: ..."), so the message does not.
Verdict errorVerdict(const std::string& message, std::string detail = {}) {
  Verdict verdict;
  verdict.kind = Verdict::Kind::kError;
  verdict.status = kErrorStatus;
  verdict.error = message;
  verdict.errorDetail = std::move(detail);
  return verdict;
}

}  // namespace

Status HandlerSet::checkChainParams(const Chain& chain, const json& params, ParamTexts* texts) {
  const std::string handler = "handler " + chain.name;
  if (!params.is_null() && !params.is_object()) {
    return Error(EINVAL,
                 handler + ": params must be a JSON object, got " + detail::jsonText(params));
  }
  std::vector<std::string> missing;
  for (const std::string& name : chain.params) {
    if (!params.is_object() || !params.contains(name)) {
      missing.push_back(name);
    }
  }
  if (!missing.empty()) {
    return Error(EINVAL, handler + " needs params: " + joined(missing));
  }
  if (params.is_null()) {
    return okStatus();
  }
  for (const auto& [name, value] : params.items()) {
    if (!std::binary_search(chain.params.begin(), chain.params.end(), name)) {
      return Error(EINVAL, handler + " has no param " + name + " (it uses: " +
                               (chain.params.empty() ? "none" : joined(chain.params)) + ")");
    }
    std::optional<std::string> text = paramText(value);
    if (!text) {
      return Error(EINVAL, handler + " param " + name + " must be a string, number or boolean");
    }
    // Params land in header values and upstream names, where a line break could start a new
    // header line.
    if (detail::hasLineBreakOrNul(*text)) {
      return Error(EINVAL, handler + " param " + name + " holds CR, LF or NUL");
    }
    if (texts != nullptr) {
      texts->emplace(name, std::move(*text));
    }
  }
  return okStatus();
}

Status HandlerSet::checkParams(std::string_view handler, const json& params) const {
  auto it = chains_.find(handler);
  if (it == chains_.end()) {
    return Error(ENOENT, "unknown handler '" + std::string(handler) + "'");
  }
  return checkChainParams(it->second, params, nullptr);
}

Verdict HandlerSet::evaluate(std::string_view handler, const json& params,
                             const http::RequestHead& request, std::string_view sandbox,
                             const SecretResolver& secrets) const {
  try {
    auto it = chains_.find(handler);
    if (it == chains_.end()) {
      return errorVerdict("not defined in the policy");
    }
    ParamTexts texts;
    if (auto status = checkChainParams(it->second, params, &texts); !status.ok()) {
      return errorVerdict(status.error().message());
    }
    return run(it->second, texts, request, sandbox, secrets);
  } catch (const std::exception& e) {
    return errorVerdict(std::string("internal error: ") + e.what());
  } catch (...) {
    return errorVerdict("internal error");
  }
}

Verdict HandlerSet::run(const Chain& chain, const ParamTexts& params,
                        const http::RequestHead& request, std::string_view sandbox,
                        const SecretResolver& secrets) const {
  const TemplateContext context{&params, sandbox, &secrets};
  // Header edits are collected by name and expanded only once the chain forwards or
  // reroutes: a secret is never fetched for a header that is overridden, removed, or never
  // sent because the chain denied.
  std::vector<const Action*> sets;
  std::vector<std::string> removes;
  Verdict verdict;

  auto expandOrError = [&](const Template& t, const Action& action,
                           std::string& out) -> std::optional<Verdict> {
    std::string detail;
    auto expanded = t.expand(context, &detail);
    if (!expanded.ok()) {
      Verdict error = errorVerdict(expanded.error().message(), std::move(detail));
      error.rule = action.label;
      return error;
    }
    out = std::move(*expanded);
    return std::nullopt;
  };

  const Action* end = nullptr;
  for (const Action& action : chain.actions) {
    if (!action.applies(request)) {
      continue;
    }
    if (action.kind == Action::Kind::kSetHeader || action.kind == Action::Kind::kRemoveHeader) {
      sets.erase(std::remove_if(
                     sets.begin(), sets.end(),
                     [&](const Action* set) { return equalsIgnoreCase(set->name, action.name); }),
                 sets.end());
      if (action.kind == Action::Kind::kSetHeader) {
        sets.push_back(&action);
      }
      addName(removes, action.name);
      continue;
    }
    end = &action;
    break;
  }

  if (end != nullptr) {
    verdict.rule = end->label;
    switch (end->kind) {
      case Action::Kind::kDeny:
      case Action::Kind::kRespond: {
        verdict.kind =
            end->kind == Action::Kind::kDeny ? Verdict::Kind::kDeny : Verdict::Kind::kRespond;
        verdict.status = end->status;
        if (auto error = expandOrError(end->value, *end, verdict.body)) {
          return *error;
        }
        for (const auto& [name, value] : end->headers) {
          std::string text;
          if (auto error = expandOrError(value, *end, text)) {
            return *error;
          }
          if (detail::hasLineBreakOrNul(text)) {
            Verdict error = errorVerdict("response header " + name + " holds CR/LF");
            error.rule = end->label;
            return error;
          }
          verdict.responseHeaders.push_back(http::Header{name, std::move(text)});
        }
        return verdict;
      }
      case Action::Kind::kReroute: {
        verdict.kind = Verdict::Kind::kReroute;
        if (end->target) {
          verdict.reroute = *end->target;
        } else {
          std::string upstream;
          if (auto error = expandOrError(end->value, *end, upstream)) {
            return *error;
          }
          auto target = parseRerouteTarget(upstream);
          if (!target.ok()) {
            Verdict error = errorVerdict(target.error().message());
            error.rule = end->label;
            return error;
          }
          verdict.reroute = std::move(*target);
        }
        break;
      }
      default:
        verdict.kind = Verdict::Kind::kForward;
        break;
    }
  }

  std::vector<std::string> secretValues;
  TemplateContext setContext = context;
  setContext.secretValues = &secretValues;
  for (const Action* set : sets) {
    std::string value;
    std::string detail;
    auto expanded = set->value.expand(setContext, &detail);
    if (!expanded.ok()) {
      Verdict error = errorVerdict(expanded.error().message(), std::move(detail));
      error.rule = set->label;
      return error;
    }
    value = std::move(*expanded);
    if (detail::hasLineBreakOrNul(value)) {
      Verdict error = errorVerdict("setHeader " + set->name + " value holds CR/LF");
      error.rule = set->label;
      return error;
    }
    verdict.injectedSecret = verdict.injectedSecret || set->value.usesSecrets();
    if (set->value.usesSecrets() && !set->allowPlaintext && verdict.secretNeedsTls.empty()) {
      verdict.secretNeedsTls = set->name;
    }
    verdict.setHeaders.push_back(http::Header{set->name, std::move(value)});
  }
  verdict.secretValues = std::move(secretValues);
  verdict.removeHeaders = std::move(removes);
  return verdict;
}

}  // namespace egressd::handlers
