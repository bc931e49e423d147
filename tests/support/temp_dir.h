// Scratch directories and bpffs pin roots owned by one test, removed recursively on
// destruction (rm -rf is fine on bpffs: unlinking a pin drops that reference).
#pragma once

#include <string>

#include "common/result.h"

namespace egressd::test {

class TempDir {
 public:
  // mkdtemp("/tmp/egressd-test-<pid>-<n>-XXXXXX").
  static Result<TempDir> create();
  // create() for tests that cannot go on without one: a failure throws std::runtime_error
  // with the reason, which GoogleTest reports as the test's failure.
  static TempDir createOrThrow();
  TempDir(TempDir&& other) noexcept;
  TempDir& operator=(TempDir&&) = delete;
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir();

  const std::string& path() const { return path_; }
  // Writes `content` to path()/name and returns the full path.
  Result<std::string> writeFile(const std::string& name, const std::string& content) const;

 private:
  explicit TempDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

inline constexpr const char* kBpffsRoot = "/sys/fs/bpf";

// Mounts bpffs at /sys/fs/bpf unless it already is (as egressd itself would).
Status ensureBpffs();

// /sys/fs/bpf/egressd-test-<pid>-<n>; created lazily by egressd, removed here.
class PinRoot {
 public:
  PinRoot();
  PinRoot(PinRoot&& other) noexcept;
  PinRoot& operator=(PinRoot&&) = delete;
  PinRoot(const PinRoot&) = delete;
  PinRoot& operator=(const PinRoot&) = delete;
  ~PinRoot();

  const std::string& path() const { return path_; }
  void remove();

 private:
  std::string path_;
};

}  // namespace egressd::test
