// ScopeGuard: runs a cleanup on scope exit unless dismissed (for multi-step setups
// that must undo their earlier steps when a later one fails).
#pragma once

#include <functional>
#include <utility>

namespace egressd {

class ScopeGuard {
 public:
  explicit ScopeGuard(std::function<void()> fn) : fn_(std::move(fn)) {}
  ~ScopeGuard() {
    if (fn_) {
      fn_();
    }
  }
  ScopeGuard(const ScopeGuard&) = delete;
  ScopeGuard& operator=(const ScopeGuard&) = delete;
  void dismiss() { fn_ = nullptr; }

 private:
  std::function<void()> fn_;
};

}  // namespace egressd
