// A sandbox's interception CA and the leaf certificates it mints for intercepted names.
// Everything lives in memory: the CA key and the (shared) leaf key are never returned by
// any API nor written anywhere; only the CA certificate leaves, as PEM, for the sandbox's
// trust store.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>

#include "common/result.h"
#include "tls/openssl_ptr.h"

namespace egressd::tls {

struct Leaf {
  X509Ptr certificate;
  std::shared_ptr<EVP_PKEY> key;  // shared by every leaf of one CA
  std::chrono::system_clock::time_point notAfter;
};

// A sandbox's interception CA: ECDSA P-256, created in memory; the private key never
// leaves the process (no API returns it, nothing writes it). Subject CN
// "egressd sandbox <id> CA", O=egressd; basicConstraints CA:TRUE critical (pathlen 0),
// keyUsage keyCertSign+cRLSign critical, SKI; random 128-bit serial; validity
// now-1h .. now+365d.
class CertificateAuthority {
 public:
  static Result<std::shared_ptr<CertificateAuthority>> create(const std::string& sandboxId);

  CertificateAuthority(const CertificateAuthority&) = delete;
  CertificateAuthority& operator=(const CertificateAuthority&) = delete;

  const std::string& certificatePem() const;
  X509* certificate() const;
  // A leaf for a DNS name (ASCII, already normalised) or an IP literal ("198.18.3.3",
  // "2001:db8::1"): SAN DNS:name or IP:addr, CN=name, EKU serverAuth, keyUsage
  // digitalSignature critical, AKI/SKI, random serial, validity now-1h .. now+kLeafValidity,
  // signed ECDSA-SHA256 by the CA. Leaf key: one ECDSA P-256 key per CA, made at create().
  // (CN is left out when the name is longer than X.509's 64-character limit; SAN carries it.)
  Result<std::shared_ptr<const Leaf>> mintLeaf(const std::string& nameOrIp) const;
  static constexpr std::chrono::hours kLeafValidity{24};

 private:
  CertificateAuthority() = default;

  X509Ptr certificate_;
  EvpPkeyPtr key_;
  std::shared_ptr<EVP_PKEY> leafKey_;
  std::string pem_;
};

// Thread-safe LRU of minted leaves by name. A leaf with less than 1 h left is re-minted.
class LeafCache {
 public:
  explicit LeafCache(std::shared_ptr<const CertificateAuthority> ca, size_t capacity = 1024);
  // hit: *wasHit = true (if non-null).
  Result<std::shared_ptr<const Leaf>> get(const std::string& nameOrIp, bool* wasHit = nullptr);
  size_t size() const;
  const CertificateAuthority& authority() const;

  static constexpr std::chrono::hours kRemintBefore{1};
  // Replaces the clock the cache judges "less than 1 h left" by (tests only).
  void setClockForTest(std::function<std::chrono::system_clock::time_point()> clock);

 private:
  using Entry = std::pair<std::string, std::shared_ptr<const Leaf>>;

  std::shared_ptr<const CertificateAuthority> ca_;
  size_t capacity_;
  mutable std::mutex mutex_;
  std::list<Entry> lru_;  // most recently used first
  std::unordered_map<std::string, std::list<Entry>::iterator> index_;
  std::function<std::chrono::system_clock::time_point()> clock_;  // empty: system_clock
};

}  // namespace egressd::tls
