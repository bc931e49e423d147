// Policy YAML (policy::parsePolicy: files, `egressctl policy apply`, the control API's
// validate route), then everything a loaded policy goes through: compileKernelRules, the
// proxy's HostPolicy, HandlerSet::compile. Properties:
//   - no input crashes, throws or recurses without bound (ASan catches stack overflow);
//   - a refusal names the source ("fuzz.yaml..."): a user must see which file is wrong;
//   - parsing is deterministic (same warnings, same compiled rule names);
//   - compiled rule ids index ruleNames, ruleNames[0] is "";
//   - host globs are stored normalized: normalizeHostGlob of what was written gives the
//     stored pattern, and normalizing the pattern again changes nothing;
//   - the host policy decides on every allowedHosts glob's own name (with '*' filled in).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "handlers/handler.h"
#include "policy/compile.h"
#include "policy/host_policy.h"
#include "policy/policy.h"
#include "property.h"

namespace {

namespace policy = egressd::policy;

void check(bool condition, const char* what, const std::string& detail = "") {
  egressd::fuzz::check("policy_yaml", condition, what, detail);
}

void checkGlobs(const policy::HostList& list) {
  for (const policy::HostGlob& glob : list.globs) {
    auto fromText = policy::normalizeHostGlob(glob.text);
    check(fromText.ok() && *fromText == glob.pattern, "stored glob is not normalizeHostGlob(text)",
          glob.text + " -> " + glob.pattern);
    auto again = policy::normalizeHostGlob(glob.pattern);
    check(again.ok() && *again == glob.pattern, "normalizeHostGlob is not idempotent",
          glob.pattern);
  }
}

template <typename Entries>
void checkRuleIds(const Entries& entries, size_t names) {
  for (const auto& entry : entries) {
    check(entry.second.rule_id > 0 && entry.second.rule_id < names, "rule id out of range",
          std::to_string(entry.second.rule_id));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  egressd::fuzz::InputScope scope(data, size);
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = policy::parsePolicy(text, "fuzz.yaml");
  if (!parsed.ok()) {
    check(parsed.error().message().starts_with("fuzz.yaml"), "error does not name the source",
          parsed.error().message());
    return 0;
  }
  const policy::Policy& p = *parsed;
  check(p.sourceName == "fuzz.yaml", "sourceName lost");
  checkGlobs(p.allowedHosts);
  checkGlobs(p.deniedHosts);

  auto again = policy::parsePolicy(text, "fuzz.yaml");
  check(again.ok() && again->warnings == p.warnings && again->name == p.name,
        "second parse differs");

  auto rules = policy::compileKernelRules(p);
  if (rules.ok()) {
    check(!rules->ruleNames.empty() && rules->ruleNames[0].empty(), "ruleNames[0] is not \"\"");
    checkRuleIds(rules->allow4, rules->ruleNames.size());
    checkRuleIds(rules->allow6, rules->ruleNames.size());
    checkRuleIds(rules->deny4, rules->ruleNames.size());
    checkRuleIds(rules->deny6, rules->ruleNames.size());
    auto rulesAgain = policy::compileKernelRules(*again);
    check(rulesAgain.ok() && rulesAgain->ruleNames == rules->ruleNames,
          "compiled rule names differ between two parses");
  } else {
    check(!rules.error().message().empty(), "compile error without text");
  }
  (void)policy::kernelKnobs(p);
  (void)policy::nameRules(p);

  const policy::HostPolicy hosts = policy::HostPolicy::fromPolicy(p);
  for (const policy::HostGlob& glob : p.allowedHosts.globs) {
    std::string name = glob.pattern;
    for (char& c : name) {
      c = c == '*' ? 'x' : c;
    }
    (void)hosts.decideName(name);
  }

  auto handlers = egressd::handlers::HandlerSet::compile(p);
  check(handlers.ok() || !handlers.error().message().empty(), "handler error without text");
  return 0;
}
