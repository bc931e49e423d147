#include "tls/certificate_authority.h"

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"

namespace egressd::tls {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using Clock = std::chrono::system_clock;

std::string serialHex(X509* cert) {
  BignumPtr bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr));
  char* hex = BN_bn2hex(bn.get());
  std::string out(hex);
  OPENSSL_free(hex);
  return out;
}

std::string nameEntry(X509_NAME* name, int nid) {
  char buf[256] = {};
  const int n = X509_NAME_get_text_by_NID(name, nid, buf, sizeof(buf));
  return n < 0 ? std::string() : std::string(buf, static_cast<size_t>(n));
}

// Seconds from now to `t` (negative: in the past).
long secondsFromNow(const ASN1_TIME* t) {
  int days = 0;
  int seconds = 0;
  EXPECT_EQ(ASN1_TIME_diff(&days, &seconds, nullptr, t), 1);
  return days * 86400L + seconds;
}

// X509_verify_cert of `leaf` against a store holding only `root`: X509_V_OK or the error.
// `purpose` 0: chain and signatures only.
int verifyAgainst(X509* leaf, X509* root, int purpose = X509_PURPOSE_SSL_SERVER) {
  X509StorePtr store(X509_STORE_new());
  EXPECT_EQ(X509_STORE_add_cert(store.get(), root), 1);
  X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  EXPECT_EQ(X509_STORE_CTX_init(ctx.get(), store.get(), leaf, nullptr), 1);
  if (purpose != 0) {
    X509_STORE_CTX_set_purpose(ctx.get(), purpose);
  }
  if (X509_verify_cert(ctx.get()) == 1) {
    return X509_V_OK;
  }
  return X509_STORE_CTX_get_error(ctx.get());
}

struct Sans {
  std::vector<std::string> dns;
  std::vector<std::string> ipBytes;
};

Sans subjectAltNames(X509* cert) {
  Sans out;
  GeneralNamesPtr names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  for (int i = 0; names && i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names.get(), i);
    const ASN1_STRING* s = gn->type == GEN_DNS ? gn->d.dNSName : gn->d.iPAddress;
    std::string value(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                      static_cast<size_t>(ASN1_STRING_length(s)));
    (gn->type == GEN_DNS ? out.dns : out.ipBytes).push_back(value);
  }
  return out;
}

bool extensionCritical(X509* cert, int nid) {
  const int index = X509_get_ext_by_NID(cert, nid, -1);
  return index >= 0 && X509_EXTENSION_get_critical(X509_get_ext(cert, index)) == 1;
}

std::shared_ptr<CertificateAuthority> makeCa(const std::string& id) {
  auto ca = CertificateAuthority::create(id);
  if (!ca.ok()) {
    ADD_FAILURE() << ca.error().message();
    return nullptr;
  }
  return std::move(ca).value();
}

TEST(CertificateAuthority, CaCertificateShape) {
  ASSERT_OK_AND_ASSIGN(auto ca, CertificateAuthority::create("sb-1"));
  X509* cert = ca->certificate();
  ASSERT_NE(cert, nullptr);
  EXPECT_EQ(nameEntry(X509_get_subject_name(cert), NID_commonName), "egressd sandbox sb-1 CA");
  EXPECT_EQ(nameEntry(X509_get_subject_name(cert), NID_organizationName), "egressd");
  EXPECT_EQ(X509_NAME_cmp(X509_get_subject_name(cert), X509_get_issuer_name(cert)), 0);
  EXPECT_EQ(X509_check_ca(cert), 1);
  EXPECT_TRUE(extensionCritical(cert, NID_basic_constraints));
  EXPECT_EQ(X509_get_pathlen(cert), 0);
  EXPECT_TRUE(extensionCritical(cert, NID_key_usage));
  EXPECT_EQ(X509_get_key_usage(cert), static_cast<uint32_t>(KU_KEY_CERT_SIGN | KU_CRL_SIGN));
  ASSERT_NE(X509_get0_subject_key_id(cert), nullptr);
  EXPECT_EQ(ASN1_STRING_length(X509_get0_subject_key_id(cert)), 20);
  EXPECT_EQ(X509_get_version(cert), X509_VERSION_3);
  // ECDSA P-256, signed with SHA-256; the self-signature verifies.
  EVP_PKEY* pub = X509_get0_pubkey(cert);
  ASSERT_NE(pub, nullptr);
  EXPECT_EQ(EVP_PKEY_get_base_id(pub), EVP_PKEY_EC);
  char group[64] = {};
  ASSERT_EQ(EVP_PKEY_get_group_name(pub, group, sizeof(group), nullptr), 1);
  EXPECT_STREQ(group, "prime256v1");
  EXPECT_EQ(X509_get_signature_nid(cert), NID_ecdsa_with_SHA256);
  EXPECT_EQ(X509_verify(cert, pub), 1);
  EXPECT_EQ(verifyAgainst(cert, cert, 0), X509_V_OK);
  // A CA, not a server certificate.
  EXPECT_EQ(verifyAgainst(cert, cert), X509_V_ERR_INVALID_PURPOSE);
  // Validity now-1h .. now+365d (a few seconds of slack for the test's own run time).
  EXPECT_NEAR(secondsFromNow(X509_get0_notBefore(cert)), -3600, 5);
  EXPECT_NEAR(secondsFromNow(X509_get0_notAfter(cert)), 365L * 86400, 5);
  // 128 random bits: at least 15 significant bytes nearly always, never more than 16.
  const std::string serial = serialHex(cert);
  EXPECT_LE(serial.size(), 32u);
  EXPECT_GE(serial.size(), 26u);
}

TEST(CertificateAuthority, PemIsTheCertificateAndOnlyThat) {
  ASSERT_OK_AND_ASSIGN(auto ca, CertificateAuthority::create("pem"));
  const std::string& pem = ca->certificatePem();
  EXPECT_THAT(pem, HasSubstr("-----BEGIN CERTIFICATE-----"));
  EXPECT_THAT(pem, Not(HasSubstr("PRIVATE KEY")));
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  X509Ptr parsed(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  ASSERT_TRUE(parsed);
  EXPECT_EQ(X509_cmp(parsed.get(), ca->certificate()), 0);
  EXPECT_EQ(X509_check_ca(parsed.get()), 1);
  // Exactly one PEM block.
  EXPECT_EQ(pem.find("-----BEGIN"), pem.rfind("-----BEGIN"));
}

TEST(CertificateAuthority, TwoCasDiffer) {
  auto a = makeCa("same-id");
  auto b = makeCa("same-id");
  ASSERT_TRUE(a && b);
  EXPECT_NE(a->certificatePem(), b->certificatePem());
  EXPECT_NE(serialHex(a->certificate()), serialHex(b->certificate()));
  EXPECT_NE(EVP_PKEY_eq(X509_get0_pubkey(a->certificate()), X509_get0_pubkey(b->certificate())), 1);
  EXPECT_NE(verifyAgainst(a->certificate(), b->certificate(), 0), X509_V_OK);
}

TEST(CertificateAuthority, LongSandboxIdStillMakesAValidCn) {
  ASSERT_OK_AND_ASSIGN(auto ca, CertificateAuthority::create(std::string(100, 'x')));
  const std::string cn = nameEntry(X509_get_subject_name(ca->certificate()), NID_commonName);
  EXPECT_LE(cn.size(), 64u);
  EXPECT_EQ(cn.rfind("egressd sandbox xxx", 0), 0u);
}

TEST(CertificateAuthority, DnsLeafVerifiesAgainstItsCaOnly) {
  auto ca = makeCa("leaf");
  auto other = makeCa("other");
  ASSERT_TRUE(ca && other);
  ASSERT_OK_AND_ASSIGN(auto leaf, ca->mintLeaf("api.example.com"));
  X509* cert = leaf->certificate.get();
  EXPECT_EQ(verifyAgainst(cert, ca->certificate()), X509_V_OK);
  EXPECT_EQ(verifyAgainst(cert, other->certificate()),
            X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
  EXPECT_EQ(X509_check_host(cert, "api.example.com", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_host(cert, "API.Example.COM", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_host(cert, "other.example.com", 0, 0, nullptr), 0);
  EXPECT_EQ(X509_check_ip_asc(cert, "198.18.3.3", 0), 0);
  const Sans sans = subjectAltNames(cert);
  EXPECT_EQ(sans.dns, std::vector<std::string>{"api.example.com"});
  EXPECT_TRUE(sans.ipBytes.empty());
  EXPECT_EQ(nameEntry(X509_get_subject_name(cert), NID_commonName), "api.example.com");
  EXPECT_EQ(X509_NAME_cmp(X509_get_issuer_name(cert), X509_get_subject_name(ca->certificate())), 0);
}

TEST(CertificateAuthority, LeafExtensionsAndValidity) {
  auto ca = makeCa("ext");
  ASSERT_TRUE(ca);
  const auto before = Clock::now();
  ASSERT_OK_AND_ASSIGN(auto leaf, ca->mintLeaf("ext.test"));
  X509* cert = leaf->certificate.get();
  EXPECT_EQ(X509_check_ca(cert), 0);
  EXPECT_TRUE(extensionCritical(cert, NID_key_usage));
  EXPECT_EQ(X509_get_key_usage(cert), static_cast<uint32_t>(KU_DIGITAL_SIGNATURE));
  EXPECT_EQ(X509_get_extended_key_usage(cert), static_cast<uint32_t>(XKU_SSL_SERVER));
  ASSERT_NE(X509_get0_subject_key_id(cert), nullptr);
  ASSERT_NE(X509_get0_authority_key_id(cert), nullptr);
  EXPECT_EQ(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(cert),
                                  X509_get0_subject_key_id(ca->certificate())),
            0);
  EXPECT_EQ(X509_get_signature_nid(cert), NID_ecdsa_with_SHA256);
  EXPECT_EQ(X509_verify(cert, X509_get0_pubkey(ca->certificate())), 1);
  EXPECT_NEAR(secondsFromNow(X509_get0_notBefore(cert)), -3600, 5);
  EXPECT_NEAR(secondsFromNow(X509_get0_notAfter(cert)), 24 * 3600, 5);
  // Leaf::notAfter is the certificate's notAfter.
  const auto expected = before + CertificateAuthority::kLeafValidity;
  EXPECT_LE(std::chrono::abs(leaf->notAfter - expected), std::chrono::seconds(5));
  // The key presented with it is the certificate's key.
  EXPECT_EQ(X509_check_private_key(cert, leaf->key.get()), 1);
}

TEST(CertificateAuthority, IpLeavesCarryIpSans) {
  auto ca = makeCa("ip");
  ASSERT_TRUE(ca);
  ASSERT_OK_AND_ASSIGN(auto v4, ca->mintLeaf("198.18.3.3"));
  EXPECT_EQ(X509_check_ip_asc(v4->certificate.get(), "198.18.3.3", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(v4->certificate.get(), "198.18.3.4", 0), 0);
  const Sans sans = subjectAltNames(v4->certificate.get());
  EXPECT_TRUE(sans.dns.empty());
  EXPECT_EQ(sans.ipBytes, std::vector<std::string>{std::string("\xc6\x12\x03\x03", 4)});
  EXPECT_EQ(verifyAgainst(v4->certificate.get(), ca->certificate()), X509_V_OK);

  ASSERT_OK_AND_ASSIGN(auto v6, ca->mintLeaf("2001:db8::1"));
  EXPECT_EQ(X509_check_ip_asc(v6->certificate.get(), "2001:db8::1", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(v6->certificate.get(), "2001:db8:0:0::1", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(v6->certificate.get(), "2001:db8::2", 0), 0);
  EXPECT_EQ(subjectAltNames(v6->certificate.get()).ipBytes.at(0).size(), 16u);
}

TEST(CertificateAuthority, LeavesShareTheKeyNotTheSerial) {
  auto ca = makeCa("share");
  ASSERT_TRUE(ca);
  ASSERT_OK_AND_ASSIGN(auto a, ca->mintLeaf("a.test"));
  ASSERT_OK_AND_ASSIGN(auto b, ca->mintLeaf("a.test"));
  EXPECT_EQ(a->key.get(), b->key.get());
  EXPECT_NE(serialHex(a->certificate.get()), serialHex(b->certificate.get()));
  // The leaf key is not the CA key.
  EXPECT_NE(EVP_PKEY_eq(a->key.get(), X509_get0_pubkey(ca->certificate())), 1);
}

TEST(CertificateAuthority, NamesAreNeverParsedAsConfig) {
  auto ca = makeCa("inject");
  ASSERT_TRUE(ca);
  ASSERT_OK_AND_ASSIGN(auto leaf, ca->mintLeaf("a.test,DNS:evil.test"));
  const Sans sans = subjectAltNames(leaf->certificate.get());
  EXPECT_EQ(sans.dns, std::vector<std::string>{"a.test,DNS:evil.test"});
  EXPECT_EQ(X509_check_host(leaf->certificate.get(), "evil.test", 0, 0, nullptr), 0);
}

TEST(CertificateAuthority, LongNameHasSanButNoCn) {
  auto ca = makeCa("long");
  ASSERT_TRUE(ca);
  const std::string name = std::string(60, 'a') + "." + std::string(60, 'b') + ".test";
  ASSERT_OK_AND_ASSIGN(auto leaf, ca->mintLeaf(name));
  EXPECT_EQ(nameEntry(X509_get_subject_name(leaf->certificate.get()), NID_commonName), "");
  EXPECT_EQ(X509_check_host(leaf->certificate.get(), name.c_str(), name.size(), 0, nullptr), 1);
}

TEST(CertificateAuthority, RejectsBadNames) {
  auto ca = makeCa("bad");
  ASSERT_TRUE(ca);
  for (const std::string& bad : {std::string(), std::string("a b.test"), std::string("a\nb"),
                                 std::string(254, 'a'), std::string("caf\xc3\xa9.test")}) {
    auto leaf = ca->mintLeaf(bad);
    ASSERT_FALSE(leaf.ok()) << bad;
    EXPECT_EQ(leaf.error().code(), EINVAL);
    EXPECT_THAT(leaf.error().message(), HasSubstr("minting a certificate for"));
  }
}

TEST(LeafCache, HitReturnsTheSameLeaf) {
  LeafCache cache(makeCa("cache"));
  bool hit = true;
  ASSERT_OK_AND_ASSIGN(auto first, cache.get("a.test", &hit));
  EXPECT_FALSE(hit);
  ASSERT_OK_AND_ASSIGN(auto second, cache.get("a.test", &hit));
  EXPECT_TRUE(hit);
  EXPECT_EQ(first.get(), second.get());
  EXPECT_EQ(serialHex(first->certificate.get()), serialHex(second->certificate.get()));
  EXPECT_EQ(cache.size(), 1u);
  ASSERT_OK_AND_ASSIGN(auto other, cache.get("b.test", &hit));
  EXPECT_FALSE(hit);
  EXPECT_NE(other.get(), first.get());
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(X509_cmp(cache.authority().certificate(), cache.authority().certificate()), 0);
  ASSERT_OK(cache.get("a.test"));  // wasHit may be null
}

TEST(LeafCache, EvictsTheLeastRecentlyUsed) {
  LeafCache cache(makeCa("lru"), 2);
  bool hit = false;
  ASSERT_OK_AND_ASSIGN(auto a, cache.get("a.test"));
  ASSERT_OK_AND_ASSIGN(auto b, cache.get("b.test"));
  ASSERT_OK(cache.get("a.test", &hit));  // a is now the most recent
  EXPECT_TRUE(hit);
  ASSERT_OK(cache.get("c.test", &hit));  // evicts b
  EXPECT_FALSE(hit);
  EXPECT_EQ(cache.size(), 2u);
  ASSERT_OK_AND_ASSIGN(auto a2, cache.get("a.test", &hit));
  EXPECT_TRUE(hit);
  EXPECT_EQ(a2.get(), a.get());
  ASSERT_OK_AND_ASSIGN(auto b2, cache.get("b.test", &hit));
  EXPECT_FALSE(hit);
  EXPECT_NE(serialHex(b2->certificate.get()), serialHex(b->certificate.get()));
  EXPECT_EQ(cache.size(), 2u);
}

TEST(LeafCache, RemintsALeafWithLessThanAnHourLeft) {
  LeafCache cache(makeCa("remint"));
  ASSERT_OK_AND_ASSIGN(auto first, cache.get("r.test"));
  const auto minted = Clock::now();
  bool hit = false;
  cache.setClockForTest([&] { return minted + std::chrono::hours(22); });
  ASSERT_OK_AND_ASSIGN(auto still, cache.get("r.test", &hit));
  EXPECT_TRUE(hit);
  EXPECT_EQ(still.get(), first.get());
  cache.setClockForTest([&] { return minted + std::chrono::minutes(23 * 60 + 30); });
  ASSERT_OK_AND_ASSIGN(auto fresh, cache.get("r.test", &hit));
  EXPECT_FALSE(hit);
  EXPECT_NE(fresh.get(), first.get());
  EXPECT_EQ(cache.size(), 1u);
}

TEST(LeafCache, ErrorsAreNotCached) {
  LeafCache cache(makeCa("err"));
  auto bad = cache.get("bad name");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), EINVAL);
  EXPECT_EQ(cache.size(), 0u);
}

TEST(LeafCache, ConcurrentGetsAgreeOnOneLeafPerName) {
  LeafCache cache(makeCa("threads"));
  constexpr int kThreads = 4;
  constexpr int kGets = 300;
  constexpr int kNames = 10;
  std::atomic<int> misses{0};
  std::atomic<int> failures{0};
  std::vector<std::map<std::string, std::set<const Leaf*>>> seen(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kGets; ++i) {
        const std::string name = "n" + std::to_string((i * 7 + t) % kNames) + ".test";
        bool hit = false;
        auto leaf = cache.get(name, &hit);
        if (!leaf.ok()) {
          ++failures;
          continue;
        }
        misses += hit ? 0 : 1;
        seen[t][name].insert(leaf->get());
      }
    });
  }
  for (auto& thread : threads) {
    thread.join();
  }
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(misses.load(), kNames);
  EXPECT_EQ(cache.size(), static_cast<size_t>(kNames));
  std::map<std::string, std::set<const Leaf*>> all;
  for (const auto& perThread : seen) {
    for (const auto& [name, leaves] : perThread) {
      all[name].insert(leaves.begin(), leaves.end());
    }
  }
  ASSERT_EQ(all.size(), static_cast<size_t>(kNames));
  for (const auto& [name, leaves] : all) {
    EXPECT_EQ(leaves.size(), 1u) << name;
  }
}

}  // namespace
}  // namespace egressd::tls
