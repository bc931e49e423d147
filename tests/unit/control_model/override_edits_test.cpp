// The pure edits of a sandbox's instance overrides, and what each refuses.
#include "control_model/override_edits.h"

#include <gtest/gtest.h>

namespace egressd::control_model {
namespace {

policy::HostList hostList(const std::vector<std::string>& texts) {
  auto list = policy::makeHostList(texts, "test");
  if (!list.ok()) {
    throw std::runtime_error(list.error().message());
  }
  list->present = true;
  return std::move(*list);
}

std::vector<std::string> inForce(const policy::HostList& base, const policy::HostListOverride& o) {
  return policy::effectiveHostList(base, o);
}

TEST(HostListEditTest, SetReplacesTheListAndForgetsEarlierEdits) {
  policy::InstanceOverrides o;
  o.allowedHosts.added = {"b.example"};
  o.allowedHosts.removed = {"c.example"};
  ASSERT_TRUE(setHostList(o, HostListKind::kAllowed, {"a.example", "10.0.0.0/8"}).ok());
  ASSERT_TRUE(o.allowedHosts.set.has_value());
  EXPECT_EQ(*o.allowedHosts.set, (std::vector<std::string>{"a.example", "10.0.0.0/8"}));
  EXPECT_TRUE(o.allowedHosts.added.empty());
  EXPECT_TRUE(o.allowedHosts.removed.empty());
  EXPECT_TRUE(o.deniedHosts.empty());
}

TEST(HostListEditTest, BadEntryIsRefusedAndNothingChanges) {
  policy::InstanceOverrides o;
  o.deniedHosts.added = {"keep.example"};
  auto bad = setHostList(o, HostListKind::kDenied, {"ok.example", "a..b"});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), EINVAL);
  EXPECT_EQ(bad.error().message().rfind("deniedHosts entry \"a..b\": ", 0), 0U)
      << bad.error().message();
  EXPECT_FALSE(o.deniedHosts.set.has_value());
  EXPECT_EQ(o.deniedHosts.added, (std::vector<std::string>{"keep.example"}));

  auto badAdd = addHostEntry(o, HostListKind::kAllowed, "a..b");
  ASSERT_FALSE(badAdd.ok());
  EXPECT_EQ(badAdd.error().code(), EINVAL);
  EXPECT_EQ(badAdd.error().message().rfind("allowedHosts entry \"a..b\": ", 0), 0U);
  EXPECT_TRUE(o.allowedHosts.empty());
}

TEST(HostListEditTest, AddIsOnceAndUndoesARemoval) {
  policy::InstanceOverrides o;
  o.allowedHosts.removed = {"a.example"};
  ASSERT_TRUE(addHostEntry(o, HostListKind::kAllowed, "A.example.").ok());
  ASSERT_TRUE(addHostEntry(o, HostListKind::kAllowed, "a.example").ok());
  EXPECT_EQ(o.allowedHosts.added, (std::vector<std::string>{"a.example"}));
  EXPECT_TRUE(o.allowedHosts.removed.empty());
}

TEST(HostListEditTest, RemovingAPolicyEntryRecordsTheRemoval) {
  const policy::HostList base = hostList({"a.example", "b.example"});
  policy::InstanceOverrides o;
  ASSERT_TRUE(removeHostEntry(o, HostListKind::kAllowed, "b.example", base, "sb").ok());
  EXPECT_EQ(o.allowedHosts.removed, (std::vector<std::string>{"b.example"}));
  EXPECT_EQ(inForce(base, o.allowedHosts), (std::vector<std::string>{"a.example"}));
}

TEST(HostListEditTest, RemovingAnAddedEntryDropsTheAddition) {
  const policy::HostList base = hostList({"a.example"});
  policy::InstanceOverrides o;
  ASSERT_TRUE(addHostEntry(o, HostListKind::kDenied, "10.1.0.0/16").ok());
  ASSERT_TRUE(removeHostEntry(o, HostListKind::kDenied, "10.1.0.0/16", base, "sb").ok());
  EXPECT_TRUE(o.deniedHosts.added.empty());
  // Without a set list the removal is also recorded, so the entry stays gone whether it
  // came from the instance or (after a reload) from the policy.
  EXPECT_EQ(o.deniedHosts.removed, (std::vector<std::string>{"10.1.0.0/16"}));
  EXPECT_EQ(inForce(base, o.deniedHosts), (std::vector<std::string>{"a.example"}));
}

TEST(HostListEditTest, RemovingFromASetListEditsTheSetList) {
  const policy::HostList base = hostList({"a.example"});
  policy::InstanceOverrides o;
  ASSERT_TRUE(setHostList(o, HostListKind::kAllowed, {"x.example", "y.example"}).ok());
  ASSERT_TRUE(removeHostEntry(o, HostListKind::kAllowed, "x.example", base, "sb").ok());
  EXPECT_EQ(*o.allowedHosts.set, (std::vector<std::string>{"y.example"}));
  EXPECT_TRUE(o.allowedHosts.removed.empty());
}

TEST(HostListEditTest, RemovingWhatIsNotInForceIsNotFound) {
  const policy::HostList base = hostList({"a.example"});
  policy::InstanceOverrides o;
  auto absent = removeHostEntry(o, HostListKind::kAllowed, "z.example", base, "sb1");
  ASSERT_FALSE(absent.ok());
  EXPECT_EQ(absent.error().code(), ENOENT);
  EXPECT_EQ(absent.error().message(), "\"z.example\" is not in sandbox sb1's allowedHosts");
  EXPECT_TRUE(o.allowedHosts.empty());

  auto invalid = removeHostEntry(o, HostListKind::kDenied, "", base, "sb1");
  ASSERT_FALSE(invalid.ok());
  EXPECT_EQ(invalid.error().code(), EINVAL);
}

TEST(HandlerEditTest, PerHostHandlersAreKeyedByTheNormalizedHost) {
  policy::InstanceOverrides o;
  ASSERT_TRUE(setOutboundByHost(o, "API.Example.com.", {"auth", {{"token", "t"}}}).ok());
  ASSERT_EQ(o.outboundByHost.size(), 1U);
  EXPECT_EQ(o.outboundByHost.begin()->first, "api.example.com");
  EXPECT_EQ(o.outboundByHost.begin()->second.handler, "auth");

  ASSERT_TRUE(removeOutboundByHost(o, "api.example.com", "sb").ok());
  EXPECT_TRUE(o.outboundByHost.empty());
  auto again = removeOutboundByHost(o, "api.example.com", "sb");
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code(), ENOENT);
  EXPECT_EQ(again.error().message(), "sandbox sb has no instance handler for api.example.com");
}

TEST(HandlerEditTest, BadHostIsRefused) {
  policy::InstanceOverrides o;
  auto bad = setOutboundByHost(o, "a..b", {"auth", nlohmann::json::object()});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), EINVAL);
  EXPECT_EQ(bad.error().message().rfind("outboundByHost host \"a..b\": ", 0), 0U);
  EXPECT_TRUE(o.outboundByHost.empty());
}

TEST(HandlerEditTest, SetAllReplacesOrChangesNothing) {
  policy::InstanceOverrides o;
  ASSERT_TRUE(setOutboundByHost(o, "old.example", {"auth", nlohmann::json::object()}).ok());
  auto bad = setOutboundByHosts(o, {{"new.example", {"auth", nlohmann::json::object()}},
                                    {"a..b", {"auth", nlohmann::json::object()}}});
  ASSERT_FALSE(bad.ok());
  ASSERT_EQ(o.outboundByHost.count("old.example"), 1U);
  ASSERT_TRUE(
      setOutboundByHosts(o, {{"New.Example", {"readOnly", nlohmann::json::object()}}}).ok());
  ASSERT_EQ(o.outboundByHost.size(), 1U);
  EXPECT_EQ(o.outboundByHost.at("new.example").handler, "readOnly");
}

TEST(HandlerEditTest, CatchAllHandler) {
  policy::InstanceOverrides o;
  auto none = removeOutboundHandler(o, "sb");
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code(), ENOENT);
  EXPECT_EQ(none.error().message(), "sandbox sb has no instance catch-all handler");
  setOutboundHandler(o, {"readOnly", nlohmann::json::object()});
  ASSERT_TRUE(o.outbound.has_value());
  EXPECT_EQ(o.outbound->handler, "readOnly");
  ASSERT_TRUE(removeOutboundHandler(o, "sb").ok());
  EXPECT_FALSE(o.outbound.has_value());
}

}  // namespace
}  // namespace egressd::control_model
