#include "environment.h"

#include <dirent.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "cgroup.h"
#include "common/fs.h"
#include "host_features.h"
#include "names.h"
#include "netns.h"
#include "process.h"
#include "temp_dir.h"

namespace egressd::test {
namespace {

std::vector<std::string> staleEntries(const std::string& dir, std::string_view prefix) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) {
    return out;
  }
  while (struct dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name.starts_with(prefix) && isStale(name)) {
      out.push_back(name);
    }
  }
  ::closedir(d);
  return out;
}

}  // namespace

std::vector<std::string> cleanupStaleLeftovers() {
  std::vector<std::string> removed;
  auto note = [&](const std::string& what, const Status& st) {
    removed.push_back(what + (st.ok() ? "" : " (failed: " + st.error().message() + ")"));
  };
  // Pins first: they hold the links that keep programs attached to the old cgroups.
  if (ensureBpffs().ok()) {
    for (const auto& name : staleEntries(kBpffsRoot, kTestPrefix)) {
      std::error_code ec;
      std::filesystem::remove_all(std::string(kBpffsRoot) + "/" + name, ec);
      note("pin dir " + name, ec ? Status(Error(ec.value(), ec.message())) : okStatus());
    }
  }
  if (auto root = cgroup2Root(); root.ok()) {
    for (const auto& name : staleEntries(*root, kTestPrefix)) {
      note("cgroup " + name, removeCgroupTree(*root + "/" + name));
    }
  }
  for (const auto& name : staleEntries("/var/run/netns", kTestPrefix)) {
    note("netns " + name, deleteNetns(name));
  }
  for (const auto& name : staleEntries("/sys/class/net", kVethPrefix)) {
    note("veth " + name, runChecked({"ip", "link", "del", "dev", name}));
  }
  for (const auto& name : staleEntries("/tmp", kTestPrefix)) {
    std::error_code ec;
    std::filesystem::remove_all("/tmp/" + name, ec);
    note("temp dir " + name, okStatus());
  }
  return removed;
}

void SuiteEnvironment::SetUp() {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "e2e tests need root (cgroups, netns, BPF)";
  }
  // Without these no e2e test can load or attach egressd's programs (the BPF object
  // carries CO-RE relocations, which libbpf resolves against the kernel's BTF).
  EGRESSD_SKIP_UNLESS_HOST_FEATURE(host::kKernelVersion);
  EGRESSD_SKIP_UNLESS_HOST_FEATURE(host::kCgroup2);
  EGRESSD_SKIP_UNLESS_HOST_FEATURE(host::kBtfVmlinux);
  auto root = cgroup2Root();
  ASSERT_TRUE(root.ok()) << root.error().message();
  auto bpffs = ensureBpffs();
  ASSERT_TRUE(bpffs.ok()) << bpffs.error().message();
  for (const auto& r : cleanupStaleLeftovers()) {
    std::fprintf(stderr, "[egressd-test] removed stale %s\n", r.c_str());
  }
}

}  // namespace egressd::test
