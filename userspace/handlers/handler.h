// Handler chains (docs/design.md "Vocabulary", handler): the compiled `outboundHandlers` of one
// policy and their evaluation against one HTTP request.
//
// Everything a policy author can get wrong is found by HandlerSet::compile, with the file
// position of the offending action, so that a bad policy is rejected while the old one stays
// in force; evaluate() then only matches conditions, concatenates templates and asks for
// secrets. A compiled set is immutable: the proxy threads share it without locks and a policy
// reload swaps the shared_ptr.
//
// Actions run top to bottom. setHeader/removeHeader edit the request sent upstream; deny,
// respond, reroute and forward end the chain; a chain that runs out forwards. Conditions
// (when/unless) see the request as the client sent it.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "handlers/condition.h"
#include "handlers/reroute.h"
#include "handlers/template.h"
#include "http/message.h"
#include "policy/policy.h"

namespace egressd::handlers {

inline constexpr int kDefaultDenyStatus = 403;
inline constexpr int kErrorStatus = 502;

struct Verdict {
  enum class Kind { kForward, kReroute, kDeny, kRespond, kError };
  Kind kind = Kind::kForward;
  // kForward/kReroute: headers to add, with their final values (may hold secrets: never log
  // them), and the names to drop from the client's headers (every setHeaders name included,
  // so a set header replaces whatever the client sent under that name).
  std::vector<http::Header> setHeaders;
  std::vector<std::string> removeHeaders;
  int status = 0;  // kDeny/kRespond; kError: 502
  std::string body;
  std::vector<http::Header> responseHeaders;  // kRespond
  RerouteTarget reroute;                      // kReroute
  // kError: for the client and the audit ("secret GH_TOKEN is not available"; the caller
  // adds which handler), never a secret value. errorDetail adds what only the daemon's log
  // should see (the secret file or variable that failed); never a secret value either.
  std::string error;
  std::string errorDetail;
  // The action that ended the chain, for the audit: "outboundHandlers.kv[1] reroute"; empty
  // when the chain ran out (an implicit forward).
  std::string rule;
  bool injectedSecret = false;  // setHeaders carries at least one secret value
  // The secret values in setHeaders (each as resolved, not the whole header value): the
  // proxy redacts them in the response. Never log them.
  std::vector<std::string> secretValues;
  // The first set header carrying a secret whose setHeader lacks `allowPlaintext: true`
  // (empty: none): the proxy refuses to send it over a cleartext upstream connection.
  std::string secretNeedsTls;
};

class HandlerSet {
 public:
  // Validates every action and every use (outboundByHost, outbound) with its params. Errors
  // (EINVAL) start "FILE:LINE:COL: " and name handler, index and action:
  // "p.yaml:12:7: outboundHandlers.kv[1] reroute: upstream \"unix:relative\" must be an
  // absolute path".
  static Result<std::shared_ptr<const HandlerSet>> compile(const policy::Policy& policy);

  bool contains(std::string_view handler) const;
  std::vector<std::string> names() const;  // sorted
  // The ${params.X} names a handler uses, sorted; empty for an unknown handler.
  std::vector<std::string> params(std::string_view handler) const;

  // Params given with a use of `handler` (API input and policy refs): every used param
  // present, no unknown ones, values string/number/bool (no CR/LF/NUL). null counts as {}.
  // "handler kv needs params: tenant", "handler kv has no param x (it uses: tenant)";
  // ENOENT "unknown handler 'x'" for a handler that is not in the set.
  Status checkParams(std::string_view handler, const nlohmann::json& params) const;

  // Evaluates one request. Never throws; problems come back as kError (502).
  Verdict evaluate(std::string_view handler, const nlohmann::json& params,
                   const http::RequestHead& request, std::string_view sandbox,
                   const SecretResolver& secrets) const;

  // "FILE:LINE:COL: outboundHandlers.h[2] setHeader: never runs (outboundHandlers.h[1]
  // forward always ends the chain)": valid, but probably not what the author meant.
  const std::vector<std::string>& warnings() const { return warnings_; }

 private:
  struct Action {
    enum class Kind { kSetHeader, kRemoveHeader, kDeny, kRespond, kReroute, kForward };
    Kind kind = Kind::kForward;
    std::string label;  // "outboundHandlers.kv[1] reroute"
    std::optional<Condition> when;
    std::optional<Condition> unless;
    std::string name;             // setHeader/removeHeader
    bool allowPlaintext = false;  // setHeader: a secret may go over cleartext HTTP
    Template value;               // setHeader value, deny/respond body, reroute upstream
    int status = 0;
    std::vector<std::pair<std::string, Template>> headers;  // respond
    std::optional<RerouteTarget> target;                    // reroute without templates

    bool applies(const http::RequestHead& request) const;
    bool terminates() const { return kind != Kind::kSetHeader && kind != Kind::kRemoveHeader; }
  };
  struct Chain {
    std::string name;
    std::vector<Action> actions;
    std::vector<std::string> params;  // sorted union of the actions' ${params.X}
  };
  using ParamTexts = std::map<std::string, std::string, std::less<>>;

  HandlerSet() = default;
  static Result<Action> compileAction(const std::string& handler, size_t index,
                                      const policy::HandlerAction& action);
  static Status checkChainParams(const Chain& chain, const nlohmann::json& params,
                                 ParamTexts* texts);
  Verdict run(const Chain& chain, const ParamTexts& params, const http::RequestHead& request,
              std::string_view sandbox, const SecretResolver& secrets) const;

  std::map<std::string, Chain, std::less<>> chains_;
  std::vector<std::string> warnings_;
};

}  // namespace egressd::handlers
