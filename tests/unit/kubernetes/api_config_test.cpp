// The API server's configuration: in-cluster defaults, and plain http only to loopback.
#include <gtest/gtest.h>
#include <stdlib.h>

#include "common/fs.h"
#include "kubernetes/api_client.h"
#include "kubernetes/pod_watcher.h"
#include "temp_dir.h"
#include "test_util.h"

namespace egressd::kubernetes {
namespace {

class ApiConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(token_, dir_.writeFile("token", "t0k3n\n"));
    ASSERT_OK_AND_ASSIGN(ca_, dir_.writeFile("ca.crt", "-----BEGIN CERTIFICATE-----\n"));
    ::unsetenv("KUBERNETES_SERVICE_HOST");
    ::unsetenv("KUBERNETES_SERVICE_PORT");
  }
  void TearDown() override {
    ::unsetenv("KUBERNETES_SERVICE_HOST");
    ::unsetenv("KUBERNETES_SERVICE_PORT");
  }
  test::TempDir dir_ = test::TempDir::createOrThrow();
  std::string token_;
  std::string ca_;
};

TEST_F(ApiConfigTest, InClusterServerFromTheServiceEnvironment) {
  ::setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
  ::setenv("KUBERNETES_SERVICE_PORT", "443", 1);
  ASSERT_OK_AND_ASSIGN(ApiConfig config, resolveApiConfig("", token_, ca_));
  EXPECT_EQ(config.server, "https://10.96.0.1:443");
  EXPECT_EQ(config.tokenFile, token_);
  EXPECT_EQ(config.caFile, ca_);
  ::setenv("KUBERNETES_SERVICE_HOST", "fd00:10:96::1", 1);
  ASSERT_OK_AND_ASSIGN(ApiConfig v6, resolveApiConfig("", token_, ca_));
  EXPECT_EQ(v6.server, "https://[fd00:10:96::1]:443");
}

TEST_F(ApiConfigTest, MissingPiecesAreNamed) {
  auto noServer = resolveApiConfig("", token_, ca_);
  ASSERT_FALSE(noServer.ok());
  EXPECT_NE(noServer.error().message().find("KUBERNETES_SERVICE_HOST"), std::string::npos);
  auto noToken = resolveApiConfig("https://api.example:6443", dir_.path() + "/none", ca_);
  ASSERT_FALSE(noToken.ok());
  EXPECT_NE(noToken.error().message().find("--kube-token-file"), std::string::npos);
  auto noCa = resolveApiConfig("https://api.example:6443", token_, dir_.path() + "/none");
  ASSERT_FALSE(noCa.ok());
  EXPECT_NE(noCa.error().message().find("--kube-ca-file"), std::string::npos);
}

TEST_F(ApiConfigTest, PlainHttpOnlyToLoopback) {
  ASSERT_OK_AND_ASSIGN(ApiConfig local, resolveApiConfig("http://127.0.0.1:8001/", token_, ""));
  EXPECT_EQ(local.server, "http://127.0.0.1:8001");
  EXPECT_EQ(local.caFile, "");
  EXPECT_TRUE(resolveApiConfig("http://[::1]:8001", token_, "").ok());
  EXPECT_TRUE(resolveApiConfig("http://localhost:8001", token_, "").ok());
  for (const char* remote : {"http://10.96.0.1", "http://localhost.evil.example:80",
                             "http://127.0.0.1.evil.example", "ftp://127.0.0.1"}) {
    auto refused = resolveApiConfig(remote, token_, "");
    EXPECT_FALSE(refused.ok()) << remote;
  }
}

TEST(ApiPathsTest, ListAndWatchAskForThisNodesPodsFromAResourceVersion) {
  EXPECT_EQ(listPodsPath("node-a"), "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a");
  EXPECT_EQ(watchPodsPath("node-a", "48213", 120),
            "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a&watch=1&allowWatchBookmarks=true"
            "&resourceVersion=48213&timeoutSeconds=120");
  EXPECT_EQ(queryEscape("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
}

}  // namespace
}  // namespace egressd::kubernetes
