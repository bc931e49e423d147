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

const handlers::HostBinding* HandlerBindings::pick(std::string_view host,
                                                   std::string_view* from) const {
  auto found = [from](const handlers::HostBinding* binding, std::string_view origin) {
    if (from != nullptr) {
      *from = origin;
    }
    return binding;
  };
  if (const handlers::HostBinding* b = handlers::pickByHost(instanceByHost, host)) {
    return found(b, "instance");
  }
  if (const handlers::HostBinding* b = handlers::pickByHost(policyByHost, host)) {
    return found(b, "policy");
  }
  if (instanceOutbound) {
    return found(&*instanceOutbound, "instance");
  }
  if (policyOutbound) {
    return found(&*policyOutbound, "policy");
  }
  return nullptr;
}

bool HandlerBindings::empty() const {
  return instanceByHost.empty() && policyByHost.empty() && !instanceOutbound && !policyOutbound;
}

Result<HandlerBindings> HandlerBindings::fromPolicy(const policy::Policy& policy) {
  HandlerBindings bindings;
  if (policy.outboundHandlers.empty() && policy.outboundByHost.empty() && !policy.outbound) {
    return bindings;
  }
  auto set = handlers::HandlerSet::compile(policy);
  if (!set.ok()) {
    return std::move(set).error();
  }
  bindings.set = std::move(*set);
  for (const policy::HostHandler& h : policy.outboundByHost) {
    bindings.policyByHost.push_back(
        handlers::HostBinding{h.host.pattern, h.ref.handler, h.ref.params});
  }
  if (policy.outbound) {
    bindings.policyOutbound =
        handlers::HostBinding{"*", policy.outbound->handler, policy.outbound->params};
  }
  return bindings;
}

}  // namespace egressd::proxy
