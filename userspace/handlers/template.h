// Value templates of handler actions: "Bearer ${secret:GH_TOKEN}", "${params.tenant}-${sandbox}".
//
// A template is parsed once when a policy is compiled, so a typo is a policy error with its
// position rather than a 502 at request time; expansion per request only concatenates.
// Syntax: ${params.NAME}, ${sandbox}, ${secret:NAME}, ${secret:NAME/${sandbox}},
// ${secret:NAME/SANDBOX_ID}; "$$" is a literal '$', and a '$' not followed by '{' or '$' is
// itself. Anything else after "${" is an error.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace egressd::handlers {

// What expansion asks for a `${secret:NAME}` (NAME already expanded, e.g. "API_KEY/sb1").
// The error message is for the daemon's log: it may name a file or variable, never a value.
using SecretResolver = std::function<Result<std::string>(std::string_view name)>;

// Secret names as the templates and the SecretStore accept them: [A-Za-z0-9_]+ optionally
// followed by "/" and a sandbox id.
bool isSecretBaseName(std::string_view text);
// [A-Za-z0-9_.-]{1,63}, and neither "." nor "..": ids end up in secret file paths.
bool isSandboxId(std::string_view text);

struct TemplateContext {
  // Param values as text; a referenced name that is missing is an expansion error.
  const std::map<std::string, std::string, std::less<>>* params = nullptr;
  std::string_view sandbox;
  const SecretResolver* secrets = nullptr;  // null: any ${secret:...} fails to expand
  // When given, every secret value expanded is appended (for redaction in responses).
  std::vector<std::string>* secretValues = nullptr;
};

class Template {
 public:
  Template() = default;  // the empty literal

  // `allowSecrets` false makes any ${secret:...} an error: secrets may only go where the
  // sandbox can never read them back (request headers to the upstream).
  // Errors (EINVAL) give the 1-based character position: "unknown reference \"${foo}\" at
  // character 8 (expected ${params.NAME}, ${sandbox} or ${secret:NAME})".
  static Result<Template> parse(std::string_view text, bool allowSecrets);

  const std::string& source() const { return source_; }
  // True when there is nothing to expand; expand() then returns the text after "$$" folding.
  bool isLiteral() const;
  bool usesSecrets() const { return usesSecrets_; }
  // Names used as ${params.NAME}, sorted, without duplicates.
  const std::vector<std::string>& params() const { return params_; }

  // The client-safe reason on failure ("secret API_KEY/sb1 is not available", "secret X holds
  // CR/LF", "missing param tenant"); `detail`, when given, receives the resolver's own message
  // for the daemon's log (never a secret value either).
  Result<std::string> expand(const TemplateContext& context, std::string* detail = nullptr) const;

 private:
  struct Segment {
    enum class Kind { kLiteral, kParam, kSandbox, kSecret };
    enum class Scope { kShared, kThisSandbox, kNamedSandbox };
    Kind kind = Kind::kLiteral;
    std::string text;  // literal text, param name or secret base name
    Scope scope = Scope::kShared;
    std::string sandboxId;  // kNamedSandbox
  };

  std::string source_;
  std::vector<Segment> segments_;
  std::vector<std::string> params_;
  bool usesSecrets_ = false;
};

}  // namespace egressd::handlers
