// Files egressd publishes for a sandbox under the run directory (default /run/egressd):
// the interception CA certificate to mount or install in the container, and a bundle of
// the system's trust store plus that CA for tools whose variable replaces the store.
// The CA's private key is never among them: it lives only in egressd's memory.
#pragma once

#include <string>

#include "common/result.h"

namespace egressd::daemon {

inline constexpr const char* kDefaultRunDir = "/run/egressd";
// `egressd daemon`'s audit log, under its state dir, when --audit-log is not given.
inline constexpr const char* kDefaultAuditFile = "audit.jsonl";
// Debian/Ubuntu's bundle; the system store egressd appends the sandbox CA to.
inline constexpr const char* kSystemCaBundle = "/etc/ssl/certs/ca-certificates.crt";

struct SandboxCaFiles {
  std::string certificate;  // <runDir>/sandboxes/<id>/ca.crt
  std::string bundle;       // <runDir>/sandboxes/<id>/ca-bundle.crt
};

SandboxCaFiles sandboxCaFiles(const std::string& runDir, const std::string& id);

// Writes both files atomically (0644; directories 0755). A missing system bundle leaves
// the bundle with the sandbox CA only.
Result<SandboxCaFiles> publishSandboxCa(const std::string& runDir, const std::string& id,
                                        const std::string& caPem);

// Removes the sandbox's directory and what egressd put in it.
void removeSandboxFiles(const std::string& runDir, const std::string& id);

}  // namespace egressd::daemon
