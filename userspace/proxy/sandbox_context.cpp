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

namespace {

handlers::HostBinding bindingOf(std::string pattern, const policy::HandlerRef& ref) {
  return handlers::HostBinding{std::move(pattern), ref.handler, ref.params};
}

// The policy's own bindings: outboundByHost in file order, then its outbound catch-all.
void addPolicyBindings(HandlerBindings& bindings, const policy::Policy& policy) {
  for (const policy::HostHandler& h : policy.outboundByHost) {
    bindings.policyByHost.push_back(bindingOf(h.host.pattern, h.ref));
  }
  if (policy.outbound) {
    bindings.policyOutbound = bindingOf("*", *policy.outbound);
  }
}

}  // namespace

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
  addPolicyBindings(bindings, policy);
  return bindings;
}

Result<std::shared_ptr<const SandboxPolicyView>> makePolicyView(
    const policy::Policy& effective, std::shared_ptr<const handlers::HandlerSet> compiled,
    const policy::InstanceOverrides* overrides) {
  if (!compiled) {
    auto made = handlers::HandlerSet::compile(effective);
    if (!made.ok()) {
      return std::move(made).error();
    }
    compiled = std::move(*made);
  }
  auto view = std::make_shared<SandboxPolicyView>();
  view->policyName = effective.name;
  view->hosts = policy::HostPolicy::fromPolicy(effective);
  view->intercept = InterceptSelection::fromPolicy(effective.interceptHttps);
  view->denyStatus = effective.denyStatus;
  view->secretSources = effective.secrets;
  view->http = effective.http;
  view->requireSni = policy::requiresSni(effective);
  view->dns = effective.dns;
  view->nameRules = policy::nameRules(effective);
  HandlerBindings& b = view->handlers;
  b.set = std::move(compiled);
  addPolicyBindings(b, effective);
  if (overrides != nullptr) {
    for (const auto& [pattern, ref] : overrides->outboundByHost) {
      b.instanceByHost.push_back(bindingOf(pattern, ref));
    }
    if (overrides->outbound) {
      b.instanceOutbound = bindingOf("*", *overrides->outbound);
    }
  }
  return std::shared_ptr<const SandboxPolicyView>(std::move(view));
}

}  // namespace egressd::proxy
