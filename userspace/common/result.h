// Result<T>: a value or an Error with context. C++20 has no std::expected and Debian 12
// ships no tl-expected, so this is the project's small equivalent (katran's SystemMaybe
// shape). Errors carry an errno-style code and a message that already names the object
// (file, sandbox, map, path) and, via errnoText(), the system's explanation.
#pragma once

#include <cerrno>
#include <cstring>
#include <string>
#include <system_error>
#include <utility>
#include <variant>

namespace egressd {

class Error {
 public:
  Error(int code, std::string message) : code_(code), message_(std::move(message)) {}

  int code() const { return code_; }
  const std::string& message() const { return message_; }

  // Prepends outer context: "loading policy p.yaml: <inner message>".
  Error wrap(const std::string& context) const& { return Error(code_, context + ": " + message_); }
  Error wrap(const std::string& context) && {
    return Error(code_, context + ": " + std::move(message_));
  }

 private:
  int code_;
  std::string message_;
};

// "what: <strerror(err)>" — the canonical form for system call failures.
inline Error systemError(int err, const std::string& what) {
  return Error(err, what + ": " + std::generic_category().message(err));
}
inline Error lastSystemError(const std::string& what) {
  return systemError(errno, what);
}

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const& { return std::get<Error>(v_); }
  Error&& error() && { return std::get<Error>(std::move(v_)); }

 private:
  std::variant<T, Error> v_;
};

// Result<void>: success carries nothing.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), failed_(true) {}  // NOLINT

  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  const Error& error() const& { return error_; }
  Error&& error() && { return std::move(error_); }

 private:
  Error error_{0, ""};
  bool failed_ = false;
};

using Status = Result<void>;
inline Status okStatus() {
  return Status();
}

}  // namespace egressd

// Propagates an error from an expression returning Result/Status, optionally wrapped.
#define EGRESSD_TRY(expr)                            \
  do {                                               \
    auto egressd_try_status_ = (expr);               \
    if (!egressd_try_status_.ok()) {                 \
      return std::move(egressd_try_status_).error(); \
    }                                                \
  } while (0)
