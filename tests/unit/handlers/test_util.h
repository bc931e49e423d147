// Helpers shared by the handler unit tests: requests, policies compiled from inline YAML,
// secret resolvers that count their calls, and a temporary directory that removes itself.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "handlers/handler.h"
#include "http/message.h"
#include "policy/policy.h"

namespace egressd::handlers::testing {

inline constexpr const char* kSource = "p.yaml";

inline http::RequestHead request(std::string method, std::string path,
                                 std::vector<http::Header> headers = {}) {
  http::RequestHead head;
  head.method = std::move(method);
  head.target = path;
  head.path = std::move(path);
  head.host = "api.test";
  head.headers = std::move(headers);
  head.headers.insert(head.headers.begin(), http::Header{"Host", "api.test"});
  return head;
}

inline policy::Policy parsePolicyOk(const std::string& yaml) {
  auto policy = policy::parsePolicy("name: t\n" + yaml, kSource);
  EXPECT_TRUE(policy.ok()) << policy.error().message();
  return policy.ok() ? std::move(policy).value() : policy::Policy{};
}

// Compiles `yaml` (after a "name: t" line, so the YAML given starts at line 2).
inline std::shared_ptr<const HandlerSet> compileOk(const std::string& yaml) {
  auto set = HandlerSet::compile(parsePolicyOk(yaml));
  EXPECT_TRUE(set.ok()) << set.error().message();
  return set.ok() ? *set : nullptr;
}

// The compile error message; "" when it compiled (which no expectation matches).
inline std::string compileError(const std::string& yaml) {
  auto set = HandlerSet::compile(parsePolicyOk(yaml));
  EXPECT_FALSE(set.ok()) << "compiled:\n" << yaml;
  if (set.ok()) {
    return "";
  }
  EXPECT_EQ(set.error().code(), EINVAL);
  return set.error().message();
}

// A resolver over a fixed map that records every name it was asked for.
struct FakeSecrets {
  std::map<std::string, std::string, std::less<>> values;
  std::vector<std::string> asked;

  SecretResolver resolver() {
    return [this](std::string_view name) -> Result<std::string> {
      asked.emplace_back(name);
      auto it = values.find(name);
      if (it == values.end()) {
        return Error(ENOENT, "no fake source for " + std::string(name));
      }
      return it->second;
    };
  }
};

class TempDir {
 public:
  TempDir() {
    char path[] = "/tmp/egressd-handlers-test-XXXXXX";
    const char* made = ::mkdtemp(path);
    EXPECT_NE(made, nullptr);
    path_ = made != nullptr ? made : "";
  }
  ~TempDir() {
    std::error_code ignored;
    if (!path_.empty()) {
      std::filesystem::remove_all(path_, ignored);
    }
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string file(std::string_view name) const { return path_ + "/" + std::string(name); }

 private:
  std::string path_;
};

}  // namespace egressd::handlers::testing
