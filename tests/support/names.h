// Names of everything the tests create on the host: cgroups, netns, veths, bpffs pin dirs.
// All of them embed the creating test process's pid, so a stale-leftover sweep can tell
// a crashed run's objects (pid gone) from a concurrently running suite's (pid alive).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

namespace egressd::test {

// Prefix of cgroups, netns names and pin dirs: "egressd-test-<pid>-<n>".
inline constexpr std::string_view kTestPrefix = "egressd-test-";
// Prefix of veth names: "egt<pid>x<n><suffix>" (IFNAMSIZ is 16 incl. NUL).
inline constexpr std::string_view kVethPrefix = "egt";

// "egressd-test-<pid>-<n>" with a per-process counter n.
std::string uniqueName();
// "egt<pid>x<n>" (the caller appends a one-letter side suffix).
std::string uniqueVethBase();
// The pid embedded in a name produced above, if it parses.
std::optional<pid_t> ownerPidOf(std::string_view name);
// True when `name` was made by a test process that no longer exists.
bool isStale(std::string_view name);

}  // namespace egressd::test
