// A pod's annotations -> the sandbox it asks for, and the id it gets.
#include "kubernetes/pod_sandbox.h"

#include <gtest/gtest.h>

#include "common/fs.h"
#include "test_util.h"

namespace egressd::kubernetes {
namespace {

PodRecord pod(std::map<std::string, std::string> annotations, std::string phase = "Running") {
  PodRecord p;
  p.uid = "6f1c2d3e-8a9b-4c5d-9e0f-1a2b3c4d5e6f";
  p.ns = "shop";
  p.name = "web-0";
  p.nodeName = "node-a";
  p.phase = std::move(phase);
  p.qosClass = "Burstable";
  p.annotations = std::move(annotations);
  return p;
}

TEST(PodSandboxTest, SandboxIdsAreKubernetesNamesJoinedUnambiguously) {
  EXPECT_EQ(sandboxIdForPod("shop", "web-0"), "k8s-shop_web-0");
  // '-' joins would make these the same id.
  EXPECT_NE(sandboxIdForPod("a-b", "c"), sandboxIdForPod("a", "b-c"));
  // Dots of a pod name are kept; what a sandbox id cannot hold becomes '-'.
  EXPECT_EQ(sandboxIdForPod("ns", "web.v2"), "k8s-ns_web.v2");
  EXPECT_EQ(sandboxIdForPod("ns", "we b/x"), "k8s-ns_we-b-x");
}

TEST(PodSandboxTest, LongNamesAreCutAndKeepAHashOfTheWholeName) {
  const std::string ns(40, 'n');
  const std::string name = std::string(60, 'p') + "-0";
  const std::string id = sandboxIdForPod(ns, name);
  EXPECT_EQ(id.size(), 63U);
  EXPECT_EQ(id.rfind("k8s-nnnn", 0), 0U);
  EXPECT_EQ(id[54], '-');
  // Two pods differing only beyond the cut still get two ids, and the same pod the same id.
  EXPECT_NE(id, sandboxIdForPod(ns, std::string(60, 'p') + "-1"));
  EXPECT_EQ(id, sandboxIdForPod(ns, name));
  EXPECT_EQ(sandboxIdForPod(std::string(63, 'a'), "b").size(), 63U);
}

TEST(PodSandboxTest, PolicyHandlerAndParamsFromAnnotations) {
  auto want = desiredSandbox(pod({{"egressd.io/policy", "shop-web"},
                                  {"egressd.io/outbound-handler", "perTenant"},
                                  {"egressd.io/params-tenant", "acme"},
                                  {"egressd.io/params-region", "eu-1"},
                                  {"app.kubernetes.io/name", "web"}}),
                             "node-a");
  ASSERT_TRUE(want.has_value());
  EXPECT_EQ(want->id, "k8s-shop_web-0");
  EXPECT_EQ(want->podKey, "shop/web-0");
  EXPECT_EQ(want->policy, "shop-web");
  EXPECT_EQ(want->owner(), "kubernetes-pod/6f1c2d3e-8a9b-4c5d-9e0f-1a2b3c4d5e6f");
  ASSERT_TRUE(want->outbound.has_value());
  EXPECT_EQ(want->outbound->handler, "perTenant");
  EXPECT_EQ(want->outbound->params, (nlohmann::json{{"tenant", "acme"}, {"region", "eu-1"}}));
  EXPECT_TRUE(want->problems.empty());
}

TEST(PodSandboxTest, TheRecordedPodListMapsAsExpected) {
  ASSERT_OK_AND_ASSIGN(std::string body,
                       readFile(std::string(EGRESSD_KUBE_DATA_DIR) + "/pod_list.json"));
  ASSERT_OK_AND_ASSIGN(PodList list, parsePodList(body));
  ASSERT_EQ(list.pods.size(), 3U);
  auto web = desiredSandbox(list.pods[0], "node-a");
  ASSERT_TRUE(web.has_value());
  EXPECT_EQ(web->policy, "shop-web");
  EXPECT_EQ(web->outbound->params, (nlohmann::json{{"tenant", "acme"}}));
  EXPECT_FALSE(desiredSandbox(list.pods[1], "node-a").has_value()) << "a Succeeded job pod";
  EXPECT_FALSE(desiredSandbox(list.pods[2], "node-a").has_value()) << "no annotation";
  EXPECT_FALSE(desiredSandbox(list.pods[0], "node-b").has_value()) << "another node's pod";
}

TEST(PodSandboxTest, PhasesThatStillHaveProcessesKeepTheSandbox) {
  for (const char* phase : {"Pending", "Running", "Unknown", ""}) {
    EXPECT_TRUE(desiredSandbox(pod({{"egressd.io/policy", "p"}}, phase), "node-a")) << phase;
  }
  EXPECT_TRUE(desiredSandbox(pod({{"egressd.io/policy", "p"}}, "Pending"), "node-a")->pending);
  EXPECT_FALSE(desiredSandbox(pod({{"egressd.io/policy", "p"}}, "Running"), "node-a")->pending);
  for (const char* phase : {"Succeeded", "Failed"}) {
    EXPECT_FALSE(desiredSandbox(pod({{"egressd.io/policy", "p"}}, phase), "node-a")) << phase;
  }
  // A terminating pod (deletionTimestamp) still runs its containers for the grace period.
  PodRecord terminating = pod({{"egressd.io/policy", "p"}});
  terminating.terminating = true;
  ASSERT_TRUE(desiredSandbox(terminating, "node-a"));
  EXPECT_TRUE(desiredSandbox(terminating, "node-a")->terminating);
}

TEST(PodSandboxTest, ParamsWithoutAHandlerAreReportedAndThePolicyStays) {
  auto want =
      desiredSandbox(pod({{"egressd.io/policy", "p"}, {"egressd.io/params-x", "1"}}), "node-a");
  ASSERT_TRUE(want.has_value());
  EXPECT_EQ(want->policy, "p");
  EXPECT_FALSE(want->outbound.has_value());
  ASSERT_EQ(want->problems.size(), 1U);
  EXPECT_NE(want->problems[0].find("egressd.io/outbound-handler"), std::string::npos);

  auto handlerOnly = desiredSandbox(
      pod({{"egressd.io/policy", "p"}, {"egressd.io/outbound-handler", "h"}}), "node-a");
  ASSERT_TRUE(handlerOnly->outbound.has_value());
  EXPECT_EQ(handlerOnly->outbound->params, nlohmann::json::object());

  auto emptyParam = desiredSandbox(pod({{"egressd.io/policy", "p"},
                                        {"egressd.io/outbound-handler", "h"},
                                        {"egressd.io/params-", "v"}}),
                                   "node-a");
  EXPECT_EQ(emptyParam->problems.size(), 1U);
  auto emptyPolicy = desiredSandbox(pod({{"egressd.io/policy", ""}}), "node-a");
  ASSERT_TRUE(emptyPolicy.has_value());
  EXPECT_EQ(emptyPolicy->problems.size(), 1U);
}

}  // namespace
}  // namespace egressd::kubernetes
