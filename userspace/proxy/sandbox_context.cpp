#include "proxy/sandbox_context.h"

namespace egressd::proxy {

InterceptSelection InterceptSelection::fromPolicy(const policy::InterceptHttps& intercept) {
  InterceptSelection selection;
  selection.all = intercept.all;
  for (const auto& glob : intercept.hosts) {
    selection.globs.push_back(glob.pattern);
  }
  return selection;
}

bool InterceptSelection::matches(std::string_view name) const {
  if (all) {
    return true;
  }
  for (const std::string& glob : globs) {
    if (policy::hostGlobMatches(glob, name)) {
      return true;
    }
  }
  return false;
}

}  // namespace egressd::proxy
