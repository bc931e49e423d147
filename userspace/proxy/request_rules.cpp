#include "proxy/request_rules.h"

#include <algorithm>

#include "common/ascii.h"

namespace egressd::proxy {

std::vector<http::Header> sandboxForwardedHeaders(std::string_view sandboxId) {
  const std::string id(sandboxId);
  return {http::Header{"Forwarded", "for=\"_" + id + "\""}, http::Header{"X-Forwarded-For", id}};
}

std::vector<std::string> upgradeProtocols(const std::vector<http::Header>& headers) {
  std::vector<std::string> out;
  for (const http::Header& header : headers) {
    if (!http::fieldNameMatches(header.name, "Upgrade")) {
      continue;
    }
    std::string_view rest = header.value;
    while (!rest.empty()) {
      const size_t comma = rest.find(',');
      std::string_view element = rest.substr(0, comma);
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      element = element.substr(0, element.find('/'));
      while (!element.empty() && (element.front() == ' ' || element.front() == '\t')) {
        element.remove_prefix(1);
      }
      while (!element.empty() && (element.back() == ' ' || element.back() == '\t')) {
        element.remove_suffix(1);
      }
      if (element.empty()) {
        continue;
      }
      out.push_back(toLowerAscii(element));
    }
  }
  return out;
}

std::optional<std::string> firstUnlisted(const std::vector<std::string>& offered,
                                         const std::vector<std::string>& allowed) {
  for (const std::string& name : offered) {
    if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
      return name;
    }
  }
  return std::nullopt;
}

bool isTraceMethod(std::string_view method) {
  return http::equalsIgnoreCase(method, "TRACE") || http::equalsIgnoreCase(method, "TRACK");
}

void SecretRedactor::reset(std::vector<std::string> secrets, uint64_t limit) {
  secrets.erase(std::remove_if(secrets.begin(), secrets.end(),
                               [](const std::string& s) { return s.size() < kMinSecretBytes; }),
                secrets.end());
  // Longest first, so a secret that contains another is masked whole.
  std::sort(secrets.begin(), secrets.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  secrets.erase(std::unique(secrets.begin(), secrets.end()), secrets.end());
  secrets_ = std::move(secrets);
  limit_ = limit;
  seen_ = 0;
  redactions_ = 0;
  pending_.clear();
  out_.clear();
}

void SecretRedactor::mask(char* data, size_t size) {
  const std::string_view text(data, size);
  for (const std::string& secret : secrets_) {
    for (size_t at = text.find(secret); at != std::string_view::npos;
         at = text.find(secret, at + secret.size())) {
      std::fill_n(data + at, secret.size(), '*');
      ++redactions_;
    }
  }
}

// The longest tail of `data` that is a proper prefix of some secret (0 past the limit).
size_t SecretRedactor::heldTail(std::string_view data) const {
  size_t hold = 0;
  if (seen_ >= limit_) {
    return 0;
  }
  for (const std::string& secret : secrets_) {
    const size_t most = std::min(secret.size() - 1, data.size());
    for (size_t n = most; n > hold; --n) {
      if (data.substr(data.size() - n) == std::string_view(secret).substr(0, n)) {
        hold = n;
        break;
      }
    }
  }
  return hold;
}

std::string_view SecretRedactor::push(std::string_view data) {
  out_.clear();
  if (!scanning()) {
    out_.swap(pending_);
    out_.append(data);
    return out_;
  }
  seen_ += data.size();
  pending_.append(data);
  mask(pending_.data(), pending_.size());
  const size_t hold = heldTail(pending_);
  out_.assign(pending_, 0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return out_;
}

std::string_view SecretRedactor::pushInPlace(char* data, size_t size) {
  if (!pending_.empty()) {
    return push(std::string_view(data, size));
  }
  if (!scanning()) {
    return std::string_view(data, size);
  }
  seen_ += size;
  mask(data, size);
  const size_t hold = heldTail(std::string_view(data, size));
  pending_.assign(data + size - hold, hold);
  return std::string_view(data, size - hold);
}

std::string_view SecretRedactor::flush() {
  out_.clear();
  out_.swap(pending_);
  return out_;
}

}  // namespace egressd::proxy
