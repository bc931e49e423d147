// Which per-host handler applies to a request's host (outboundByHost, setOutboundByHost).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace egressd::handlers {

struct HostBinding {
  std::string pattern;  // normalized glob (policy::normalizeHostGlob)
  std::string handler;
  nlohmann::json params = nlohmann::json::object();
};

// The binding for `host` (normalized: lowercase, no trailing dot): an exact pattern (no '*')
// wins over any glob, then the longest matching glob (the most specific one a reader would
// pick), ties going to the first in `bindings`. nullptr when none matches.
const HostBinding* pickByHost(const std::vector<HostBinding>& bindings, std::string_view host);

}  // namespace egressd::handlers
