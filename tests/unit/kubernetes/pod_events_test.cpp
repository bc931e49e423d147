// PodList and watch-event parsing on answers recorded as the API server writes them.
#include "kubernetes/pod_events.h"

#include <gtest/gtest.h>

#include <sstream>

#include "common/fs.h"
#include "test_util.h"

namespace egressd::kubernetes {
namespace {

std::string record(const std::string& name) {
  auto text = readFile(std::string(EGRESSD_KUBE_DATA_DIR) + "/" + name);
  EXPECT_TRUE(text.ok()) << name;
  return text.ok() ? *text : "";
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) {
      out.push_back(line);
    }
  }
  return out;
}

TEST(PodEventsTest, PodListGivesEveryPodAndTheResourceVersionToWatchFrom) {
  ASSERT_OK_AND_ASSIGN(PodList list, parsePodList(record("pod_list.json")));
  EXPECT_EQ(list.resourceVersion, "48213");
  ASSERT_EQ(list.pods.size(), 3U);
  const PodRecord& web = list.pods[0];
  EXPECT_EQ(web.key(), "shop/web-0");
  EXPECT_EQ(web.uid, "6f1c2d3e-8a9b-4c5d-9e0f-1a2b3c4d5e6f");
  EXPECT_EQ(web.nodeName, "node-a");
  EXPECT_EQ(web.phase, "Running");
  EXPECT_EQ(web.qosClass, "Burstable");
  EXPECT_EQ(web.resourceVersion, "48190");
  EXPECT_FALSE(web.terminating);
  EXPECT_EQ(web.annotations.at("egressd.io/policy"), "shop-web");
  EXPECT_EQ(web.annotations.at("egressd.io/params-tenant"), "acme");
  EXPECT_EQ(web.annotations.size(), 4U);
  EXPECT_EQ(list.pods[1].phase, "Succeeded");
  EXPECT_EQ(list.pods[1].qosClass, "BestEffort");
  EXPECT_TRUE(list.pods[2].annotations.empty());
}

TEST(PodEventsTest, WatchStreamAddedModifiedBookmarkDeleted) {
  const std::vector<std::string> stream = lines(record("watch_events.jsonl"));
  ASSERT_EQ(stream.size(), 4U);
  ASSERT_OK_AND_ASSIGN(WatchEvent added, parseWatchEvent(stream[0]));
  EXPECT_EQ(added.type, WatchEventType::kAdded);
  EXPECT_EQ(added.pod.key(), "shop/api-7f9d5c-hx2lp");
  EXPECT_EQ(added.pod.phase, "Pending");
  EXPECT_EQ(added.pod.qosClass, "Guaranteed");
  EXPECT_EQ(added.pod.resourceVersion, "48230");

  ASSERT_OK_AND_ASSIGN(WatchEvent modified, parseWatchEvent(stream[1]));
  EXPECT_EQ(modified.type, WatchEventType::kModified);
  EXPECT_EQ(modified.pod.uid, added.pod.uid);
  EXPECT_EQ(modified.pod.phase, "Running");

  ASSERT_OK_AND_ASSIGN(WatchEvent bookmark, parseWatchEvent(stream[2]));
  EXPECT_EQ(bookmark.type, WatchEventType::kBookmark);
  EXPECT_EQ(bookmark.pod.resourceVersion, "48301");

  ASSERT_OK_AND_ASSIGN(WatchEvent deleted, parseWatchEvent(stream[3]));
  EXPECT_EQ(deleted.type, WatchEventType::kDeleted);
  EXPECT_EQ(deleted.pod.uid, added.pod.uid);
  EXPECT_TRUE(deleted.pod.terminating);
  EXPECT_EQ(deleted.pod.resourceVersion, "48344");
}

TEST(PodEventsTest, GoneIsAnErrorEventWithCode410) {
  const std::vector<std::string> stream = lines(record("watch_gone.jsonl"));
  ASSERT_EQ(stream.size(), 1U);
  ASSERT_OK_AND_ASSIGN(WatchEvent gone, parseWatchEvent(stream[0]));
  EXPECT_EQ(gone.type, WatchEventType::kError);
  EXPECT_EQ(gone.status.code, 410);
  EXPECT_EQ(gone.status.reason, "Expired");
  EXPECT_EQ(gone.status.message, "too old resource version: 48213 (48650)");

  const ApiStatus answer = parseApiStatus(record("status_410.json"), 410);
  EXPECT_EQ(answer.code, 410);
  EXPECT_EQ(answer.reason, "Expired");
  // Not a Status (a proxy's HTML page): the HTTP code and the text.
  const ApiStatus html = parseApiStatus("<html>bad gateway</html>", 502);
  EXPECT_EQ(html.code, 502);
  EXPECT_EQ(html.message, "<html>bad gateway</html>");
}

TEST(PodEventsTest, MalformedDocumentsAreRefusedWithAReason) {
  EXPECT_FALSE(parsePodList("not json").ok());
  EXPECT_FALSE(parsePodList(R"({"kind":"ServiceList","metadata":{"resourceVersion":"1"}})").ok());
  auto noVersion = parsePodList(R"({"kind":"PodList","metadata":{},"items":[]})");
  ASSERT_FALSE(noVersion.ok());
  EXPECT_NE(noVersion.error().message().find("resourceVersion"), std::string::npos);
  ASSERT_OK_AND_ASSIGN(
      PodList empty,
      parsePodList(R"({"kind":"PodList","metadata":{"resourceVersion":"7"},"items":null})"));
  EXPECT_TRUE(empty.pods.empty());
  auto noUid = parseWatchEvent(
      R"({"type":"ADDED","object":{"kind":"Pod","metadata":{"name":"a","namespace":"b"}}})");
  ASSERT_FALSE(noUid.ok());
  EXPECT_NE(noUid.error().message().find("metadata.uid"), std::string::npos);
  EXPECT_FALSE(parseWatchEvent(R"({"type":"WHATEVER","object":{}})").ok());
  EXPECT_FALSE(parseWatchEvent(R"({"type":"ADDED","object":{"kind":"Node"}})").ok());
  EXPECT_FALSE(
      parseWatchEvent(R"({"type":"BOOKMARK","object":{"kind":"Pod","metadata":{}}})").ok());
}

}  // namespace
}  // namespace egressd::kubernetes
