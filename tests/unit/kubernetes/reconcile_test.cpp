// The reconcile plan: what the watcher creates, rebinds and deletes, and what it never touches.
#include "kubernetes/reconcile.h"

#include <gtest/gtest.h>

namespace egressd::kubernetes {
namespace {

DesiredSandbox want(const std::string& name, const std::string& uid, const std::string& policy,
                    std::optional<OutboundBinding> outbound = std::nullopt) {
  DesiredSandbox d;
  d.id = sandboxIdForPod("shop", name);
  d.podKey = "shop/" + name;
  d.podUid = uid;
  d.policy = policy;
  d.outbound = std::move(outbound);
  return d;
}

ExistingSandbox have(const DesiredSandbox& d) {
  return {d.id, d.owner(), d.policy, d.outbound};
}

std::vector<std::string> ids(const std::vector<DesiredSandbox>& list) {
  std::vector<std::string> out;
  for (const auto& d : list) {
    out.push_back(d.id);
  }
  return out;
}

std::vector<std::string> ids(const std::vector<Removal>& list) {
  std::vector<std::string> out;
  for (const auto& r : list) {
    out.push_back(r.id);
  }
  return out;
}

using Ids = std::vector<std::string>;

TEST(ReconcileTest, NewPodsAreCreatedAndKnownOnesLeftAsTheyAre) {
  const DesiredSandbox a = want("a", "u1", "p");
  const DesiredSandbox b = want("b", "u2", "p");
  const ReconcilePlan plan = planReconcile({a, b}, {have(a)});
  EXPECT_EQ(ids(plan.create), Ids{b.id});
  EXPECT_TRUE(plan.remove.empty());
  EXPECT_TRUE(plan.rebind.empty());
  EXPECT_TRUE(planReconcile({a, b}, {have(a), have(b)}).empty());
}

TEST(ReconcileTest, OwnSandboxesWithoutAPodAreDeletedOperatorsNever) {
  const DesiredSandbox gone = want("gone", "u1", "p");
  ExistingSandbox operatorOne{"ci-runner", "", "p", std::nullopt};
  ExistingSandbox operatorK8sName{sandboxIdForPod("shop", "manual"), "", "p", std::nullopt};
  const ReconcilePlan plan = planReconcile({}, {have(gone), operatorOne, operatorK8sName});
  EXPECT_EQ(ids(plan.remove), Ids{gone.id});
  EXPECT_EQ(plan.remove[0].podKey, "");
  EXPECT_TRUE(plan.create.empty());
}

TEST(ReconcileTest, APodWhoseIdIsAnOperatorsSandboxIsAConflictNotATakeover) {
  const DesiredSandbox pod = want("web-0", "u1", "p");
  const ReconcilePlan plan = planReconcile({pod}, {{pod.id, "", "other", std::nullopt}});
  EXPECT_TRUE(plan.empty());
  ASSERT_EQ(plan.conflicts.size(), 1U);
  EXPECT_EQ(plan.conflicts[0].id, pod.id);
  EXPECT_NE(plan.conflicts[0].why.find("operator"), std::string::npos);
}

TEST(ReconcileTest, APodMadeAnewUnderTheSameNameReplacesTheOldSandbox) {
  const DesiredSandbox old = want("web-0", "u1", "p");
  const DesiredSandbox now = want("web-0", "u2", "p");
  const ReconcilePlan plan = planReconcile({now}, {have(old)});
  EXPECT_EQ(ids(plan.remove), Ids{now.id});
  EXPECT_EQ(plan.remove[0].podKey, "shop/web-0");
  ASSERT_EQ(plan.create.size(), 1U);
  EXPECT_EQ(plan.create[0].podUid, "u2");
}

TEST(ReconcileTest, AnotherPolicyReplacesAnotherBindingRebinds) {
  const DesiredSandbox before = want("a", "u1", "p", OutboundBinding{"h", {{"k", "1"}}});
  DesiredSandbox newPolicy = before;
  newPolicy.policy = "q";
  ReconcilePlan plan = planReconcile({newPolicy}, {have(before)});
  EXPECT_EQ(ids(plan.remove), Ids{before.id});
  EXPECT_EQ(ids(plan.create), Ids{before.id});
  EXPECT_TRUE(plan.rebind.empty());

  DesiredSandbox newParams = before;
  newParams.outbound->params["k"] = "2";
  plan = planReconcile({newParams}, {have(before)});
  EXPECT_TRUE(plan.remove.empty());
  EXPECT_TRUE(plan.create.empty());
  EXPECT_EQ(ids(plan.rebind), Ids{before.id});

  DesiredSandbox unbound = before;
  unbound.outbound.reset();
  plan = planReconcile({unbound}, {have(before)});
  EXPECT_EQ(ids(plan.rebind), Ids{before.id});
}

TEST(ReconcileTest, TwoPodsOnOneIdAreAConflict) {
  DesiredSandbox first = want("a", "u1", "p");
  DesiredSandbox second = want("a", "u2", "p");
  second.podKey = "shop/a (hash twin)";
  const ReconcilePlan plan = planReconcile({first, second}, {});
  EXPECT_EQ(ids(plan.create), Ids{first.id});
  EXPECT_EQ(plan.create[0].podUid, "u1");
  EXPECT_EQ(plan.conflicts.size(), 1U);
}

}  // namespace
}  // namespace egressd::kubernetes
