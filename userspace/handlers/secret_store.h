// Secret values egressd injects into requests (docs/design.md "Vocabulary", secret): set through
// the control API, or read from the files and environment variables a policy's `secrets:` names.
//
// Values never leave this class except through get(): no error message, log line or
// exception text ever contains one. Thread-safe: get() runs on proxy threads while the API
// thread sets and removes values.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "policy/policy.h"

namespace egressd::handlers {

inline constexpr size_t kMaxSecretBytes = 8192;

// "NAME" or "NAME/SANDBOX_ID": [A-Za-z0-9_]+ optionally followed by "/" and
// [A-Za-z0-9_.-]{1,63} (not "." or "..").
bool isSecretName(std::string_view name);

class SecretStore {
 public:
  // value: non-empty, no CR/LF/NUL, at most 8 KiB. Errors (EINVAL) name the secret, never
  // the value.
  Status set(const std::string& name, std::string value);
  bool remove(const std::string& name);

  // `name` for `sandbox`, given the sandbox policy's sources:
  //  1. an API value of exactly `name`;
  //  2. the policy source of BASE, for "BASE" and "BASE/SB" alike; in a file path
  //     "${sandbox}" stands for SB ("BASE/SB") or else `sandbox`. A file is read again when
  //     its identity (dev, inode, size, mtime, ctime) changed since the last read, so rotation
  //     by rewriting in place and by renaming over both take effect on the next request; one
  //     trailing "\n" or "\r\n" is removed. env: the daemon's environment.
  // Errors (ENOENT when there is nothing to be had, else EINVAL/errno) name the secret and its
  // source (path or variable), never the content.
  Result<std::string> get(std::string_view name, std::string_view sandbox,
                          const std::map<std::string, policy::SecretSource>& policySources) const;

  std::vector<std::string> apiNames() const;             // sorted
  std::map<std::string, std::string> apiValues() const;  // for the opt-in state file

  // How many times a secret file was actually read (not served from the cache): lets tests
  // and metrics see that unchanged files are not re-read on every request.
  uint64_t fileReads() const { return fileReads_.load(std::memory_order_relaxed); }

 private:
  struct FileIdentity {
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = 0;
    int64_t mtimeNs = 0;
    int64_t ctimeNs = 0;
    bool operator==(const FileIdentity&) const = default;
  };
  struct CachedFile {
    FileIdentity identity;
    int64_t readAtNs = 0;  // CLOCK_REALTIME when the content was read
    std::string value;
  };

  Result<std::string> readFileSecret(const std::string& name, const std::string& path) const;

  mutable std::shared_mutex apiMutex_;
  std::map<std::string, std::string, std::less<>> api_;

  mutable std::mutex filesMutex_;
  mutable std::map<std::string, CachedFile> files_;  // by resolved path
  mutable std::atomic<uint64_t> fileReads_{0};
};

}  // namespace egressd::handlers
