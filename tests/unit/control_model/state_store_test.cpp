// The state file: a save/load round trip, a first start, and files that are not a state.
#include "control_model/state_store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "common/fs.h"
#include "temp_dir.h"

namespace egressd::control_model {
namespace {

DaemonState sampleState() {
  DaemonState state;
  state.apiPolicies["web"] = "name: web\nallowedHosts: [\"a.example\"]\n";
  StoredSandbox sb;
  sb.id = "sb1";
  sb.policyName = "web";
  sb.cgroupPath = "/sys/fs/cgroup/egressd/sb1";
  sb.createdCgroup = true;
  sb.netns = "/run/netns/sb1";
  sb.overrides.allowedHosts.added = {"b.example"};
  sb.overrides.deniedHosts.set = std::vector<std::string>{"10.0.0.0/8"};
  sb.overrides.outboundByHost["api.example.com"] = {"auth", {{"token", "t"}}};
  sb.overrides.outbound = policy::HandlerRef{"readOnly", nlohmann::json::object()};
  state.sandboxes.push_back(sb);
  StoredSandbox plain;
  plain.id = "sb2";
  plain.policyName = "other";
  plain.cgroupPath = "/sys/fs/cgroup/mine";
  plain.owner = "kubernetes-pod/6f1c2d3e-8a9b-4c5d-9e0f-1a2b3c4d5e6f";
  state.sandboxes.push_back(plain);
  state.secretNames = {"TOKEN", "LOST"};
  return state;
}

TEST(StateStoreTest, FirstStartHasNoState) {
  test::TempDir dir = test::TempDir::createOrThrow();
  StateStore store(dir.path(), StateFormat{});
  EXPECT_EQ(store.path(), dir.path() + "/state.json");
  auto loaded = store.load();
  ASSERT_TRUE(loaded.ok()) << loaded.error().message();
  EXPECT_FALSE(loaded->has_value());
}

TEST(StateStoreTest, RoundTripKeepsEverythingAndTheFileIsPrivate) {
  test::TempDir dir = test::TempDir::createOrThrow();
  StateStore store(dir.path(), StateFormat{.secretValues = true});
  DaemonState state = sampleState();
  state.secretValues = std::map<std::string, std::string>{{"TOKEN", "s3cret"}};
  ASSERT_TRUE(store.save(state).ok());

  struct stat st {};
  ASSERT_EQ(::stat(store.path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600U);

  auto loaded = store.load();
  ASSERT_TRUE(loaded.ok()) << loaded.error().message();
  ASSERT_TRUE(loaded->has_value());
  const DaemonState& back = **loaded;
  EXPECT_EQ(back.apiPolicies, state.apiPolicies);
  EXPECT_EQ(back.secretNames, state.secretNames);
  ASSERT_TRUE(back.secretValues.has_value());
  EXPECT_EQ(back.secretValues->at("TOKEN"), "s3cret");
  ASSERT_EQ(back.sandboxes.size(), 2U);
  const StoredSandbox& sb = back.sandboxes[0];
  EXPECT_EQ(sb.id, "sb1");
  EXPECT_EQ(sb.policyName, "web");
  EXPECT_EQ(sb.cgroupPath, "/sys/fs/cgroup/egressd/sb1");
  EXPECT_TRUE(sb.createdCgroup);
  EXPECT_EQ(sb.netns, "/run/netns/sb1");
  EXPECT_EQ(sb.overrides.toJson(), state.sandboxes[0].overrides.toJson());
  EXPECT_FALSE(back.sandboxes[1].createdCgroup);
  EXPECT_EQ(back.sandboxes[1].netns, "");
  // The owner is kept (the pod watcher's sandboxes), and absent means an operator's.
  EXPECT_EQ(sb.owner, "");
  EXPECT_FALSE(stateToJson(back)["sandboxes"][0].contains("owner"));
  EXPECT_EQ(back.sandboxes[1].owner, "kubernetes-pod/6f1c2d3e-8a9b-4c5d-9e0f-1a2b3c4d5e6f");
  // The same state writes the same file.
  EXPECT_EQ(stateToJson(back), stateToJson(state));
}

TEST(StateStoreTest, SecretValuesAreReadOnlyWhenKeptAndOnlyForStoredNames) {
  test::TempDir dir = test::TempDir::createOrThrow();
  ASSERT_TRUE(dir.writeFile("state.json", R"({"secrets": {"names": ["A", "B"],
                                              "values": {"A": "a", "C": "c", "D": 5}}})")
                  .ok());
  auto kept = StateStore(dir.path(), StateFormat{.secretValues = true}).load();
  ASSERT_TRUE(kept.ok()) << kept.error().message();
  ASSERT_TRUE((*kept)->secretValues.has_value());
  EXPECT_EQ(*(*kept)->secretValues, (std::map<std::string, std::string>{{"A", "a"}}));
  EXPECT_EQ((*kept)->secretNames, (std::vector<std::string>{"A", "B"}));

  auto notKept = StateStore(dir.path(), StateFormat{}).load();
  ASSERT_TRUE(notKept.ok()) << notKept.error().message();
  EXPECT_FALSE((*notKept)->secretValues.has_value());
  EXPECT_EQ((*notKept)->secretNames, (std::vector<std::string>{"A", "B"}));
}

TEST(StateStoreTest, SecretValuesAreWrittenOnlyWhenKept) {
  const nlohmann::json j = stateToJson(sampleState());
  EXPECT_EQ(j["version"], kStateVersion);
  EXPECT_EQ(j["secrets"]["names"], (nlohmann::json{"TOKEN", "LOST"}));
  EXPECT_FALSE(j["secrets"].contains("values"));
  EXPECT_EQ(j["policies"]["web"]["yaml"], sampleState().apiPolicies["web"]);
}

TEST(StateStoreTest, SavingReplacesTheFileWhole) {
  test::TempDir dir = test::TempDir::createOrThrow();
  StateStore store(dir.path(), StateFormat{});
  ASSERT_TRUE(store.save(sampleState()).ok());
  ASSERT_TRUE(store.save(DaemonState{}).ok());
  auto loaded = store.load();
  ASSERT_TRUE(loaded.ok());
  ASSERT_TRUE(loaded->has_value());
  EXPECT_TRUE((*loaded)->sandboxes.empty());
  EXPECT_TRUE((*loaded)->apiPolicies.empty());
}

TEST(StateStoreTest, NotJsonIsAnErrorNamingTheFile) {
  test::TempDir dir = test::TempDir::createOrThrow();
  ASSERT_TRUE(dir.writeFile("state.json", "{ truncated").ok());
  auto loaded = StateStore(dir.path(), StateFormat{}).load();
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.error().code(), EINVAL);
  EXPECT_EQ(loaded.error().message(),
            dir.path() + "/state.json: not valid JSON; move it aside to start empty");

  ASSERT_TRUE(dir.writeFile("state.json", "[1, 2]").ok());
  auto array = StateStore(dir.path(), StateFormat{}).load();
  ASSERT_FALSE(array.ok());
  EXPECT_EQ(array.error().message(),
            dir.path() + "/state.json: not valid JSON; move it aside to start empty");
}

TEST(StateStoreTest, WrongContentIsAnErrorNamingTheFile) {
  test::TempDir dir = test::TempDir::createOrThrow();
  ASSERT_TRUE(dir.writeFile("state.json", R"({"sandboxes": [{"id": 7}]})").ok());
  auto loaded = StateStore(dir.path(), StateFormat{}).load();
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.error().code(), EINVAL);
  const std::string& message = loaded.error().message();
  EXPECT_EQ(message.rfind(dir.path() + "/state.json: unexpected content (", 0), 0U) << message;
  EXPECT_NE(message.find("); move it aside to start empty"), std::string::npos) << message;
}

TEST(StateStoreTest, BadOverridesNameTheSandbox) {
  test::TempDir dir = test::TempDir::createOrThrow();
  ASSERT_TRUE(
      dir.writeFile("state.json", R"({"sandboxes": [{"id": "sb9", "overrides": 5}]})").ok());
  auto loaded = StateStore(dir.path(), StateFormat{}).load();
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.error().code(), EINVAL);
  EXPECT_EQ(loaded.error().message(),
            dir.path() + "/state.json: sandbox sb9: overrides must be an object")
      << loaded.error().message();
}

TEST(StateStoreTest, UnwritableDirectoryIsAnError) {
  StateStore store("/nonexistent-egressd-test-dir", StateFormat{});
  auto saved = store.save(sampleState());
  ASSERT_FALSE(saved.ok());
  EXPECT_EQ(saved.error().code(), ENOENT);
  EXPECT_EQ(saved.error().message().rfind("saving daemon state: ", 0), 0U)
      << saved.error().message();
}

}  // namespace
}  // namespace egressd::control_model
