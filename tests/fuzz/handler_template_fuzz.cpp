// Handler value templates (handlers::Template): written in policies and in the control API's
// handler params, parsed once, expanded per request into header values and URLs. The first
// input byte's low bit is `allowSecrets`, the rest the template text. Properties:
//   - parse never fails without a message; a template that parsed keeps its source, lists
//     its params sorted and unique, and uses no secrets when they are not allowed;
//   - with every reference resolvable to a value shorter than any reference syntax
//     ("${sandbox}" is 10 bytes; values here are at most 3), expansion succeeds and is no
//     longer than the text: output is bounded by its input;
//   - a literal template expands to its text with "$$" folded to "$";
//   - a missing param fails expansion; a secret value holding CR or LF never gets through
//     (header injection), and secret values are reported for redaction.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "handlers/template.h"
#include "property.h"

namespace {

namespace handlers = egressd::handlers;
using egressd::Result;

void check(bool condition, const char* what, const std::string& detail = "") {
  egressd::fuzz::check("handler_template", condition, what, detail);
}

// '$$' -> '$'; a '$' followed by anything else stays.
std::string foldDollars(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    out += text[i];
    if (text[i] == '$' && i + 1 < text.size() && text[i + 1] == '$') {
      ++i;
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  egressd::fuzz::InputScope scope(data, size);
  if (size == 0) {
    return 0;
  }
  const bool allowSecrets = (data[0] & 1) != 0;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  auto parsed = handlers::Template::parse(text, allowSecrets);
  if (!parsed.ok()) {
    check(!parsed.error().message().empty(), "parse error without text");
    return 0;
  }
  const handlers::Template& t = *parsed;
  check(t.source() == text, "source differs from the text");
  const std::vector<std::string>& params = t.params();
  for (size_t i = 1; i < params.size(); ++i) {
    check(params[i - 1] < params[i], "params not sorted and unique");
  }
  check(allowSecrets || !t.usesSecrets(), "secret reference accepted where secrets are not");

  std::map<std::string, std::string, std::less<>> values;
  for (const std::string& name : params) {
    values[name] = "p";
  }
  int secretCalls = 0;
  const handlers::SecretResolver secrets = [&](std::string_view name) -> Result<std::string> {
    ++secretCalls;
    // NAME, or NAME/SANDBOX_ID with an id that is safe in a file path.
    const size_t slash = name.find('/');
    check(handlers::isSecretBaseName(name.substr(0, slash)) &&
              (slash == std::string_view::npos || handlers::isSandboxId(name.substr(slash + 1))),
          "resolver asked for a malformed secret name", std::string(name));
    return std::string("s3k");
  };
  std::vector<std::string> secretValues;
  handlers::TemplateContext context{&values, "sb1", &secrets, &secretValues};
  std::string detail;
  auto expanded = t.expand(context, &detail);
  check(expanded.ok(), "expansion with everything resolvable fails",
        expanded.ok() ? "" : expanded.error().message());
  check(expanded->size() <= text.size(), "expansion longer than its template");
  check(static_cast<int>(secretValues.size()) == secretCalls, "secret values not all reported");
  check(t.usesSecrets() == (secretCalls > 0), "usesSecrets disagrees with expansion");
  if (t.isLiteral()) {
    check(*expanded == foldDollars(text), "literal template expands to something else", *expanded);
  }

  if (!params.empty()) {
    const std::map<std::string, std::string, std::less<>> none;
    handlers::TemplateContext missing{&none, "sb1", &secrets, nullptr};
    check(!t.expand(missing).ok(), "expansion with a missing param succeeds");
  }
  if (t.usesSecrets()) {
    const handlers::SecretResolver injecting = [](std::string_view) -> Result<std::string> {
      return std::string("a\r\nX-Injected: 1");
    };
    handlers::TemplateContext bad{&values, "sb1", &injecting, nullptr};
    check(!t.expand(bad).ok(), "a secret holding CR/LF was expanded");
    handlers::TemplateContext noResolver{&values, "sb1", nullptr, nullptr};
    check(!t.expand(noResolver).ok(), "a secret expanded without a resolver");
  }
  return 0;
}
