// What the proxy refuses or rewrites in a request before it goes upstream, and what it hides
// in the response (docs/security.md "Requests"): pure helpers for http_session.cpp, so each
// rule is unit-tested on its own.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/message.h"

namespace egressd::proxy {

// Client headers never forwarded, whatever the policy says (fieldNameMatches() patterns):
// credentials for a proxy hop and anything that looks like egressd's own signalling.
inline const std::vector<std::string>& alwaysStrippedHeaders() {
  static const std::vector<std::string> names = {"Proxy-*", "X-Egressd-*"};
  return names;
}

// Client headers that claim where a request comes from; dropped (http.forwarded: strip) or
// replaced by egressd's own (http.forwarded: sandbox).
inline const std::vector<std::string>& forwardedHeaders() {
  static const std::vector<std::string> names = {"Forwarded",      "X-Forwarded-*", "X-Real-IP",
                                                 "True-Client-IP", "X-Client-IP",   "Client-IP"};
  return names;
}

// egressd's own Forwarded / X-Forwarded-For for a sandbox (http.forwarded: sandbox): the
// sandbox id as an RFC 7239 obfuscated node ("_" + id; ids are [A-Za-z0-9_.-]).
std::vector<http::Header> sandboxForwardedHeaders(std::string_view sandboxId);

// Every protocol the request's Upgrade headers name (all of them, each list element),
// lowercase, without "/version". Empty elements are skipped.
std::vector<std::string> upgradeProtocols(const std::vector<http::Header>& headers);

// The first protocol of `offered` that `allowed` (lowercase names) does not list.
std::optional<std::string> firstUnlisted(const std::vector<std::string>& offered,
                                         const std::vector<std::string>& allowed);

// TRACE and TRACK reflect the request, injected credentials included, back to the sandbox.
bool isTraceMethod(std::string_view method);

// Replaces every occurrence of each secret in a byte stream with '*' of the same length (so
// Content-Length and chunk sizes stay right), for the first `limit` bytes of a response.
// A secret split across two pushes is still found: push() keeps back the longest tail that
// could begin a secret, until the next push or flush().
class SecretRedactor {
 public:
  static constexpr uint64_t kDefaultLimit = 1024 * 1024;
  // Shorter values are not looked for: masking every "42" or "abc" in a response would
  // corrupt ordinary content, and a secret that short is no secret anyway.
  static constexpr size_t kMinSecretBytes = 6;

  SecretRedactor() = default;
  // Secrets under kMinSecretBytes are ignored; with none left the redactor is inactive.
  void reset(std::vector<std::string> secrets, uint64_t limit = kDefaultLimit);

  // Secrets to look for, and still within the limit: bytes must go through push().
  bool scanning() const { return !secrets_.empty() && seen_ < limit_; }
  // Bytes kept back from an earlier push(), waiting for the next one or flush().
  bool holding() const { return !pending_.empty(); }
  // Returns what may be sent now; valid until the next call.
  std::string_view push(std::string_view data);
  // push() that masks `data` where it lies and returns a view of it when nothing is kept
  // back from before (the usual case: no copy); else as push().
  std::string_view pushInPlace(char* data, size_t size);
  // Returns whatever is kept back; valid until the next call.
  std::string_view flush();
  uint64_t redactions() const { return redactions_; }
  // Masks every secret in `text` (a header value: whole, not a stream), within no limit.
  void maskField(std::string& text) {
    if (!secrets_.empty()) {
      mask(text.data(), text.size());
    }
  }

 private:
  std::vector<std::string> secrets_;
  uint64_t limit_ = 0;
  uint64_t seen_ = 0;
  uint64_t redactions_ = 0;
  std::string pending_;

  void mask(char* data, size_t size);
  size_t heldTail(std::string_view data) const;
  std::string out_;
};

}  // namespace egressd::proxy
