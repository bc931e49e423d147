// Per-host handler selection: exact names beat globs, longer globs beat shorter ones, and the
// first of equals wins.
#include "handlers/host_binding.h"

#include <gtest/gtest.h>

namespace egressd::handlers {
namespace {

std::string picked(const std::vector<HostBinding>& bindings, std::string_view host) {
  const HostBinding* binding = pickByHost(bindings, host);
  return binding == nullptr ? "<none>" : binding->handler;
}

TEST(HostBindingTest, ExactBeatsAnyGlobWhateverTheOrder) {
  const std::vector<HostBinding> bindings = {
      {"*.github.com", "glob"}, {"*", "all"}, {"api.github.com", "exact"}};
  EXPECT_EQ(picked(bindings, "api.github.com"), "exact");
  EXPECT_EQ(picked(bindings, "raw.github.com"), "glob");
  EXPECT_EQ(picked(bindings, "example.org"), "all");
}

TEST(HostBindingTest, LongestGlobWins) {
  const std::vector<HostBinding> bindings = {
      {"*.com", "short"}, {"*.api.example.com", "long"}, {"*.example.com", "middle"}};
  EXPECT_EQ(picked(bindings, "v1.api.example.com"), "long");
  EXPECT_EQ(picked(bindings, "www.example.com"), "middle");
  EXPECT_EQ(picked(bindings, "other.com"), "short");
  EXPECT_EQ(picked(bindings, "example.org"), "<none>");
}

TEST(HostBindingTest, TiesGoToTheFirstAndParamsComeAlong) {
  const std::vector<HostBinding> bindings = {{"a*.test", "first", {{"n", 1}}},
                                             {"*b.test", "second", {{"n", 2}}}};
  const HostBinding* binding = pickByHost(bindings, "ab.test");
  ASSERT_NE(binding, nullptr);
  EXPECT_EQ(binding->handler, "first");
  EXPECT_EQ(binding->params["n"], 1);
  EXPECT_EQ(picked(bindings, "xb.test"), "second");
}

TEST(HostBindingTest, MatchingIsCaseInsensitiveAndEmptyListsPickNothing) {
  EXPECT_EQ(picked({{"api.test", "h"}}, "API.Test"), "h");
  EXPECT_EQ(picked({{"*.test", "g"}}, "X.TEST"), "g");
  EXPECT_EQ(picked({}, "api.test"), "<none>");
  EXPECT_EQ(picked({{"api.test", "h"}}, "api.test.evil"), "<none>");
}

}  // namespace
}  // namespace egressd::handlers
