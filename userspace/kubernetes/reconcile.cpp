#include "kubernetes/reconcile.h"

#include <map>
#include <set>

namespace egressd::kubernetes {

ReconcilePlan planReconcile(const std::vector<DesiredSandbox>& desired,
                            const std::vector<ExistingSandbox>& existing) {
  ReconcilePlan plan;
  std::map<std::string, const ExistingSandbox*> byId;
  for (const ExistingSandbox& sandbox : existing) {
    byId.emplace(sandbox.id, &sandbox);
  }
  std::map<std::string, const DesiredSandbox*> wanted;
  for (const DesiredSandbox& want : desired) {
    auto [it, inserted] = wanted.emplace(want.id, &want);
    if (!inserted) {
      plan.conflicts.push_back(
          {want.id, "pods " + it->second->podKey + " and " + want.podKey + " map to one id"});
    }
  }
  std::set<std::string> removed;
  for (const ExistingSandbox& sandbox : existing) {
    if (sandbox.owner.rfind(kOwnerPrefix, 0) != 0) {
      continue;  // an operator's: never touched
    }
    auto want = wanted.find(sandbox.id);
    if (want == wanted.end()) {
      plan.remove.push_back({sandbox.id, "no pod on this node asks for it any more", ""});
      removed.insert(sandbox.id);
    } else if (sandbox.owner != want->second->owner()) {
      plan.remove.push_back(
          {sandbox.id,
           "pod " + want->second->podKey + " was made anew (uid " + want->second->podUid + ")",
           want->second->podKey});
      removed.insert(sandbox.id);
    } else if (sandbox.policy != want->second->policy) {
      plan.remove.push_back({sandbox.id,
                             "pod " + want->second->podKey + " now asks for policy " +
                                 want->second->policy + " (was " + sandbox.policy + ")",
                             want->second->podKey});
      removed.insert(sandbox.id);
    }
  }
  for (const auto& [id, want] : wanted) {
    auto have = byId.find(id);
    if (have == byId.end() || removed.count(id) != 0U) {
      plan.create.push_back(*want);
      continue;
    }
    const ExistingSandbox& sandbox = *have->second;
    if (sandbox.owner.rfind(kOwnerPrefix, 0) != 0) {
      plan.conflicts.push_back({id, "pod " + want->podKey + " maps to sandbox " + id +
                                        ", which an operator made; the pod gets no sandbox"});
      continue;
    }
    if (sandbox.outbound != want->outbound) {
      plan.rebind.push_back(*want);
    }
  }
  return plan;
}

}  // namespace egressd::kubernetes
