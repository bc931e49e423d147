#include "names.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <fstream>
#include <iterator>

namespace egressd::test {
namespace {

std::atomic<unsigned> gCounter{0};

}  // namespace

std::string uniqueName() {
  return std::string(kTestPrefix) + std::to_string(::getpid()) + "-" +
         std::to_string(gCounter.fetch_add(1));
}

std::string uniqueVethBase() {
  return std::string(kVethPrefix) + std::to_string(::getpid()) + "x" +
         std::to_string(gCounter.fetch_add(1));
}

std::optional<pid_t> ownerPidOf(std::string_view name) {
  std::string_view rest;
  if (name.starts_with(kTestPrefix)) {
    rest = name.substr(kTestPrefix.size());
  } else if (name.starts_with(kVethPrefix)) {
    rest = name.substr(kVethPrefix.size());
  } else {
    return std::nullopt;
  }
  pid_t pid = 0;
  auto [ptr, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), pid);
  if (ec != std::errc() || ptr == rest.data() || pid <= 0) {
    return std::nullopt;
  }
  return pid;
}

bool isStale(std::string_view name) {
  auto pid = ownerPidOf(name);
  if (!pid) {
    return false;
  }
  if (*pid == ::getpid()) {
    return false;
  }
  if (::kill(*pid, 0) != 0) {
    return errno == ESRCH;
  }
  // A crashed test whose parent has not reaped it yet is a zombie: as good as gone.
  std::ifstream stat("/proc/" + std::to_string(*pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  auto paren = text.rfind(')');
  return paren != std::string::npos && paren + 2 < text.size() &&
         (text[paren + 2] == 'Z' || text[paren + 2] == 'X');
}

}  // namespace egressd::test
