// A certificate authority for the HTTPS e2e tests, made with the openssl CLI in a TempDir
// (removed with it): a root CA ("egressd e2e test root CA", given to egressd as
// --upstream-ca-file) and server certificates it signs, plus one signed by a second CA that
// egressd is never told about. Keys are ECDSA P-256 (fast to make); every certificate the
// origins serve is the leaf alone (no chain), so an unknown issuer cannot be completed.
//
//   good       SAN = the given DNS names and IPs, valid now (30 days)
//   expired    the same SAN, notBefore 2020-01-01, notAfter 2020-02-01
//   wrongName  SAN = DNS:wrong.test only, valid now
//   untrusted  the good SAN, valid now, issued by "egressd e2e untrusted CA"
//
// Also: reading a certificate back (subject, issuer, SAN, SHA-256 fingerprint) and
// verifying one against a CA file, both through the openssl CLI.
#pragma once

#include <string>
#include <vector>

#include "common/result.h"
#include "temp_dir.h"

namespace egressd::test {

struct TestCaOptions {
  std::vector<std::string> dnsNames;  // SAN DNS entries of good/expired/untrusted
  std::vector<std::string> ips;       // SAN IP entries (IPv4 or IPv6 text)
};

struct TestCert {
  std::string certFile;  // PEM, the leaf alone
  std::string keyFile;   // PEM (PKCS#8 "PRIVATE KEY")
  std::string sha256;    // fingerprint of the DER, lowercase hex without separators
};

class TestCa {
 public:
  static Result<TestCa> create(const TestCaOptions& options);
  TestCa(TestCa&&) = default;

  const std::string& dir() const { return dir_.path(); }
  // The root CA certificate (PEM): what --upstream-ca-file gets.
  std::string caCertFile() const { return dir_.path() + "/ca.crt"; }
  // The CA egressd does not know; it issued `untrusted`.
  std::string otherCaCertFile() const { return dir_.path() + "/other-ca.crt"; }
  const TestCert& good() const { return good_; }
  const TestCert& expired() const { return expired_; }
  const TestCert& wrongName() const { return wrongName_; }
  const TestCert& untrusted() const { return untrusted_; }

 private:
  explicit TestCa(TempDir dir) : dir_(std::move(dir)) {}
  TempDir dir_;
  TestCert good_;
  TestCert expired_;
  TestCert wrongName_;
  TestCert untrusted_;
};

struct CertInfo {
  std::string subject;  // RFC 2253 ("CN=allowed.test")
  std::string issuer;   // RFC 2253
  std::string serial;   // hex, as openssl prints it
  std::string sha256;   // lowercase hex without separators
  std::string san;      // "DNS:allowed.test, IP Address:198.18.5.3" ("" when absent)
  std::string notAfter;
};

// Reads a PEM certificate (text, not a path).
Result<CertInfo> inspectCertPem(const std::string& pem);
// Reads a PEM certificate file.
Result<CertInfo> inspectCertFile(const std::string& path);
// `openssl verify -CAfile caFile` on a PEM leaf (text): ok, or the error with openssl's text.
Status verifyCertPem(const std::string& leafPem, const std::string& caFile);

}  // namespace egressd::test
