#include "handlers/host_binding.h"

#include "common/ascii.h"
#include "policy/host_policy.h"

namespace egressd::handlers {

const HostBinding* pickByHost(const std::vector<HostBinding>& bindings, std::string_view host) {
  const HostBinding* bestGlob = nullptr;
  for (const HostBinding& binding : bindings) {
    if (binding.pattern.find('*') == std::string::npos) {
      if (equalsIgnoreCase(binding.pattern, host)) {
        return &binding;  // the first exact one; patterns are unique per list anyway
      }
      continue;
    }
    if ((bestGlob == nullptr || binding.pattern.size() > bestGlob->pattern.size()) &&
        policy::hostGlobMatches(binding.pattern, host)) {
      bestGlob = &binding;
    }
  }
  return bestGlob;
}

}  // namespace egressd::handlers
