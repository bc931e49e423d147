// Helpers shared by the policy unit tests: parse inline YAML and get either the policy or
// the exact error text, with the failure's message in the assertion output.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "policy/policy.h"

namespace egressd::policy::testing {

inline constexpr const char* kSource = "t.yaml";

inline Policy parseOk(std::string_view yaml) {
  auto policy = parsePolicy(yaml, kSource);
  EXPECT_TRUE(policy.ok()) << policy.error().message();
  if (!policy.ok()) {
    return Policy{};
  }
  return std::move(policy).value();
}

// The full error message; "" (which no expectation matches) when parsing succeeded.
inline std::string parseError(std::string_view yaml) {
  auto policy = parsePolicy(yaml, kSource);
  EXPECT_FALSE(policy.ok()) << "unexpectedly parsed:\n" << yaml;
  if (policy.ok()) {
    return "";
  }
  EXPECT_EQ(policy.error().code(), EINVAL);
  return policy.error().message();
}

}  // namespace egressd::policy::testing
