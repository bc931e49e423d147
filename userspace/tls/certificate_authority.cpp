#include "tls/certificate_authority.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <optional>

#include "common/ip_address.h"

namespace egressd::tls {
namespace {

using Clock = std::chrono::system_clock;

constexpr long kBackdateSeconds = 3600;  // tolerate clients whose clock runs a little behind
constexpr long kCaValiditySeconds = 365L * 24 * 3600;
constexpr size_t kMaxCommonNameBytes = 64;  // ub_common_name, RFC 5280 appendix A.1
constexpr size_t kMaxDnsNameBytes = 253;

Error openSslError(const std::string& what) {
  std::string reason = drainOpenSslErrors();
  if (reason.empty()) {
    reason = "unknown OpenSSL error";
  }
  return Error(EIO, what + ": " + reason);
}

EvpPkeyPtr newP256Key() {
  return EvpPkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
}

// A random positive 128-bit serial (RFC 5280 4.1.2.2: positive, at most 20 octets).
bool setRandomSerial(X509* cert) {
  unsigned char bytes[16];
  do {
    if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
      return false;
    }
  } while (std::all_of(std::begin(bytes), std::end(bytes), [](unsigned char b) { return b == 0; }));
  BignumPtr bn(BN_bin2bn(bytes, sizeof(bytes), nullptr));
  if (!bn) {
    return false;
  }
  Asn1IntegerPtr serial(BN_to_ASN1_INTEGER(bn.get(), nullptr));
  return serial && X509_set_serialNumber(cert, serial.get()) == 1;
}

bool setValidity(X509* cert, std::time_t notBefore, std::time_t notAfter) {
  return ASN1_TIME_set(X509_getm_notBefore(cert), notBefore) != nullptr &&
         ASN1_TIME_set(X509_getm_notAfter(cert), notAfter) != nullptr;
}

bool addNameEntry(X509_NAME* name, const char* field, const std::string& value) {
  return X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                                    reinterpret_cast<const unsigned char*>(value.c_str()),
                                    static_cast<int>(value.size()), -1, 0) == 1;
}

// One extension from OpenSSL's config syntax. Only for fixed values written here: names
// from the network go through typed GENERAL_NAMEs (no config parsing of untrusted text).
bool addConfExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509ExtensionPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
  return ext && X509_add_ext(cert, ext.get(), -1) == 1;
}

bool addSubjectAltName(X509* cert, const std::string& name, const std::optional<IpAddress>& ip) {
  GeneralNamesPtr names(sk_GENERAL_NAME_new_null());
  std::unique_ptr<GENERAL_NAME, detail::OpenSslDeleter<GENERAL_NAME_free>> entry(
      GENERAL_NAME_new());
  if (!names || !entry) {
    return false;
  }
  if (ip) {
    ASN1_OCTET_STRING* octets = ASN1_OCTET_STRING_new();
    const int length = ip->isV4() ? 4 : 16;
    if (octets == nullptr || ASN1_OCTET_STRING_set(octets, ip->bytes.data(), length) != 1) {
      ASN1_OCTET_STRING_free(octets);
      return false;
    }
    GENERAL_NAME_set0_value(entry.get(), GEN_IPADD, octets);
  } else {
    ASN1_IA5STRING* dns = ASN1_IA5STRING_new();
    if (dns == nullptr || ASN1_STRING_set(dns, name.data(), static_cast<int>(name.size())) != 1) {
      ASN1_IA5STRING_free(dns);
      return false;
    }
    GENERAL_NAME_set0_value(entry.get(), GEN_DNS, dns);
  }
  if (sk_GENERAL_NAME_push(names.get(), entry.get()) == 0) {
    return false;
  }
  (void)entry.release();  // owned by `names` now
  return X509_add1_ext_i2d(cert, NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT) == 1;
}

std::string caCommonName(const std::string& sandboxId) {
  static const std::string kPrefix = "egressd sandbox ";
  static const std::string kSuffix = " CA";
  const size_t room = kMaxCommonNameBytes - kPrefix.size() - kSuffix.size();
  std::string id = sandboxId;
  if (id.size() > room) {
    id = id.substr(0, room - 3) + "...";
  }
  return kPrefix + id + kSuffix;
}

}  // namespace

Result<std::shared_ptr<CertificateAuthority>> CertificateAuthority::create(
    const std::string& sandboxId) {
  const std::string what = "creating the interception CA of sandbox " + sandboxId;
  ERR_clear_error();
  std::shared_ptr<CertificateAuthority> ca(new CertificateAuthority());
  ca->key_ = newP256Key();
  EvpPkeyPtr leafKey = newP256Key();
  if (!ca->key_ || !leafKey) {
    return openSslError(what + ": generating P-256 keys");
  }
  ca->leafKey_ = std::shared_ptr<EVP_PKEY>(leafKey.release(), EVP_PKEY_free);

  X509Ptr cert(X509_new());
  if (!cert) {
    return openSslError(what);
  }
  const std::time_t now = Clock::to_time_t(Clock::now());
  X509_NAME* subject = X509_get_subject_name(cert.get());
  if (X509_set_version(cert.get(), X509_VERSION_3) != 1 || !setRandomSerial(cert.get()) ||
      !setValidity(cert.get(), now - kBackdateSeconds, now + kCaValiditySeconds) ||
      !addNameEntry(subject, "CN", caCommonName(sandboxId)) ||
      !addNameEntry(subject, "O", "egressd") || X509_set_issuer_name(cert.get(), subject) != 1 ||
      X509_set_pubkey(cert.get(), ca->key_.get()) != 1) {
    return openSslError(what);
  }
  if (!addConfExtension(cert.get(), cert.get(), NID_basic_constraints,
                        "critical,CA:TRUE,pathlen:0") ||
      !addConfExtension(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign") ||
      !addConfExtension(cert.get(), cert.get(), NID_subject_key_identifier, "hash")) {
    return openSslError(what + ": adding extensions");
  }
  if (X509_sign(cert.get(), ca->key_.get(), EVP_sha256()) <= 0) {
    return openSslError(what + ": signing");
  }
  // Computes the cached extension data now, before the certificate is shared by threads.
  X509_check_purpose(cert.get(), -1, 0);

  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert.get()) != 1) {
    return openSslError(what + ": writing PEM");
  }
  char* pem = nullptr;
  const long pemLength = BIO_get_mem_data(bio.get(), &pem);
  ca->pem_.assign(pem, static_cast<size_t>(pemLength));
  ca->certificate_ = std::move(cert);
  return ca;
}

const std::string& CertificateAuthority::certificatePem() const {
  return pem_;
}

X509* CertificateAuthority::certificate() const {
  return certificate_.get();
}

Result<std::shared_ptr<const Leaf>> CertificateAuthority::mintLeaf(
    const std::string& nameOrIp) const {
  const std::string what = "minting a certificate for " + nameOrIp;
  if (nameOrIp.empty() || nameOrIp.size() > kMaxDnsNameBytes + 2) {
    return Error(EINVAL,
                 what + ": name must be 1.." + std::to_string(kMaxDnsNameBytes) + " characters");
  }
  for (char ch : nameOrIp) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x21 || c > 0x7e) {
      return Error(EINVAL, what + ": name is not printable ASCII");
    }
  }
  const std::optional<IpAddress> ip = IpAddress::parse(nameOrIp);
  if (!ip && nameOrIp.size() > kMaxDnsNameBytes) {
    return Error(EINVAL, what + ": DNS name longer than " + std::to_string(kMaxDnsNameBytes));
  }
  const std::string name = ip ? ip->toString() : nameOrIp;

  ERR_clear_error();
  X509Ptr cert(X509_new());
  if (!cert) {
    return openSslError(what);
  }
  const std::time_t now = Clock::to_time_t(Clock::now());
  const std::time_t notAfter =
      now + std::chrono::duration_cast<std::chrono::seconds>(kLeafValidity).count();
  X509_NAME* subject = X509_get_subject_name(cert.get());
  if (X509_set_version(cert.get(), X509_VERSION_3) != 1 || !setRandomSerial(cert.get()) ||
      !setValidity(cert.get(), now - kBackdateSeconds, notAfter) ||
      (name.size() <= kMaxCommonNameBytes && !addNameEntry(subject, "CN", name)) ||
      X509_set_issuer_name(cert.get(), X509_get_subject_name(certificate_.get())) != 1 ||
      X509_set_pubkey(cert.get(), leafKey_.get()) != 1) {
    return openSslError(what);
  }
  if (!addSubjectAltName(cert.get(), name, ip) ||
      !addConfExtension(cert.get(), certificate_.get(), NID_basic_constraints,
                        "critical,CA:FALSE") ||
      !addConfExtension(cert.get(), certificate_.get(), NID_key_usage,
                        "critical,digitalSignature") ||
      !addConfExtension(cert.get(), certificate_.get(), NID_ext_key_usage, "serverAuth") ||
      !addConfExtension(cert.get(), certificate_.get(), NID_subject_key_identifier, "hash") ||
      !addConfExtension(cert.get(), certificate_.get(), NID_authority_key_identifier,
                        "keyid:always")) {
    return openSslError(what + ": adding extensions");
  }
  if (X509_sign(cert.get(), key_.get(), EVP_sha256()) <= 0) {
    return openSslError(what + ": signing");
  }
  X509_check_purpose(cert.get(), -1, 0);

  auto leaf = std::make_shared<Leaf>();
  leaf->certificate = std::move(cert);
  leaf->key = leafKey_;
  leaf->notAfter = Clock::from_time_t(notAfter);
  return std::shared_ptr<const Leaf>(std::move(leaf));
}

LeafCache::LeafCache(std::shared_ptr<const CertificateAuthority> ca, size_t capacity)
    : ca_(std::move(ca)), capacity_(std::max<size_t>(capacity, 1)) {}

Result<std::shared_ptr<const Leaf>> LeafCache::get(const std::string& nameOrIp, bool* wasHit) {
  if (wasHit != nullptr) {
    *wasHit = false;
  }
  // Minting happens under the lock: one name is minted once even when many connections
  // for it arrive together (so all of them see the same certificate).
  std::lock_guard<std::mutex> lock(mutex_);
  const auto now = clock_ ? clock_() : Clock::now();
  if (auto it = index_.find(nameOrIp); it != index_.end()) {
    const std::shared_ptr<const Leaf>& cached = it->second->second;
    if (cached->notAfter - now >= kRemintBefore) {
      lru_.splice(lru_.begin(), lru_, it->second);
      if (wasHit != nullptr) {
        *wasHit = true;
      }
      return cached;
    }
    lru_.erase(it->second);
    index_.erase(it);
  }
  auto minted = ca_->mintLeaf(nameOrIp);
  if (!minted.ok()) {
    return std::move(minted).error();
  }
  lru_.emplace_front(nameOrIp, minted.value());
  index_[nameOrIp] = lru_.begin();
  while (lru_.size() > capacity_) {
    index_.erase(lru_.back().first);
    lru_.pop_back();
  }
  return std::move(minted).value();
}

size_t LeafCache::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return lru_.size();
}

const CertificateAuthority& LeafCache::authority() const {
  return *ca_;
}

void LeafCache::setClockForTest(std::function<Clock::time_point()> clock) {
  std::lock_guard<std::mutex> lock(mutex_);
  clock_ = std::move(clock);
}

}  // namespace egressd::tls
