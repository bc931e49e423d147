#include "common/netns.h"

#include <fcntl.h>
#include <sched.h>

#include <cstdlib>

namespace egressd {

Result<NetnsGuard> NetnsGuard::enter(const std::string& netnsPath) {
  NetnsGuard guard;
  if (netnsPath.empty()) {
    return guard;
  }
  UniqueFd original(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
  if (!original) {
    return lastSystemError("open /proc/thread-self/ns/net");
  }
  UniqueFd target(::open(netnsPath.c_str(), O_RDONLY | O_CLOEXEC));
  if (!target) {
    return lastSystemError("open network namespace " + netnsPath);
  }
  if (::setns(target.get(), CLONE_NEWNET) != 0) {
    return lastSystemError("enter network namespace " + netnsPath);
  }
  guard.original_ = std::move(original);
  return guard;
}

NetnsGuard::~NetnsGuard() {
  if (original_ && ::setns(original_.get(), CLONE_NEWNET) != 0) {
    // Staying in the sandbox's namespace would make every later socket of this thread
    // land there: an invariant is broken, stop rather than go on.
    std::abort();
  }
}

}  // namespace egressd
