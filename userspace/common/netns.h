// NetnsGuard: moves the calling thread into a network namespace for one scope and back.
// setns(2) affects only the calling thread, so sockets opened inside the scope live in
// that namespace while the rest of the process stays where it was.
#pragma once

#include <string>

#include "common/result.h"
#include "common/unique_fd.h"

namespace egressd {

class NetnsGuard {
 public:
  // An empty path means "stay in the current namespace" (the guard does nothing).
  static Result<NetnsGuard> enter(const std::string& netnsPath);
  ~NetnsGuard();
  NetnsGuard(NetnsGuard&& other) noexcept = default;
  NetnsGuard& operator=(NetnsGuard&&) = delete;
  NetnsGuard(const NetnsGuard&) = delete;
  NetnsGuard& operator=(const NetnsGuard&) = delete;

 private:
  NetnsGuard() = default;
  UniqueFd original_;
};

}  // namespace egressd
