#include "tls/contexts.h"

#include <openssl/err.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <string>

#include "test_util.h"
#include "tls/client_hello.h"

namespace egressd::tls {
namespace {

using ::testing::HasSubstr;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// A file in a fresh temp directory, removed with it.
class TempFile {
 public:
  TempFile(const std::string& name, const std::string& content) {
    std::string dir = (std::filesystem::temp_directory_path() / "egressd-tls-test-XXXXXX").string();
    if (mkdtemp(dir.data()) == nullptr) {
      throw std::runtime_error("mkdtemp failed");
    }
    dir_ = dir;
    path_ = dir_ + "/" + name;
    std::ofstream(path_, std::ios::binary) << content;
  }
  ~TempFile() {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string dir_;
  std::string path_;
};

struct Handshake {
  bool clientOk = false;
  bool serverOk = false;
  std::string clientError;  // upstreamFailureText on failure
  std::string serverError;  // drained OpenSSL errors on failure
};

// Runs both sides of a handshake over an in-memory BIO pair until each finished or failed.
// Errors are taken right after the failing step: the OpenSSL error queue is per thread, and
// both sides share this one.
Handshake runHandshake(SSL* client, SSL* server) {
  BIO* clientBio = nullptr;
  BIO* serverBio = nullptr;
  EXPECT_EQ(BIO_new_bio_pair(&clientBio, 0, &serverBio, 0), 1);
  SSL_set_bio(client, clientBio, clientBio);
  SSL_set_bio(server, serverBio, serverBio);
  SSL_set_connect_state(client);
  SSL_set_accept_state(server);
  Handshake h;
  bool clientDone = false;
  bool serverDone = false;
  ERR_clear_error();
  for (int round = 0; round < 50 && !(clientDone && serverDone); ++round) {
    if (!clientDone) {
      const int rc = SSL_do_handshake(client);
      const int err = SSL_get_error(client, rc);
      if (rc == 1) {
        clientDone = h.clientOk = true;
      } else if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
        clientDone = true;
        h.clientError = upstreamFailureText(client);
      }
    }
    if (!serverDone) {
      const int rc = SSL_do_handshake(server);
      const int err = SSL_get_error(server, rc);
      if (rc == 1) {
        serverDone = h.serverOk = true;
      } else if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
        serverDone = true;
        h.serverError = drainOpenSslErrors();
      }
    }
  }
  ERR_clear_error();
  return h;
}

std::string selectedAlpn(SSL* ssl) {
  const unsigned char* data = nullptr;
  unsigned int length = 0;
  SSL_get0_alpn_selected(ssl, &data, &length);
  return std::string(reinterpret_cast<const char*>(data), length);
}

class ContextsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(ca_, CertificateAuthority::create("ctx-test"));
    caFile_ = std::make_unique<TempFile>("ca.crt", ca_->certificatePem());
    ASSERT_OK_AND_ASSIGN(serverCtx_, makeInterceptionServerContext());
    ASSERT_OK_AND_ASSIGN(clientCtx_, makeUpstreamClientContext(caFile_->path()));
  }

  // A server SSL presenting a leaf for `leafName`, a client SSL expecting `expected`.
  void makePair(const std::string& leafName, const std::string& expected,
                SSL_CTX* clientCtx = nullptr) {
    server_.reset(SSL_new(serverCtx_.get()));
    client_.reset(SSL_new(clientCtx != nullptr ? clientCtx : clientCtx_.get()));
    ASSERT_TRUE(server_ && client_);
    auto leaf = ca_->mintLeaf(leafName);
    ASSERT_OK(leaf);
    ASSERT_OK(useLeaf(server_.get(), **leaf));
    ASSERT_OK(prepareUpstreamSsl(client_.get(), expected));
  }

  std::shared_ptr<CertificateAuthority> ca_;
  std::unique_ptr<TempFile> caFile_;
  SslCtxPtr serverCtx_;
  SslCtxPtr clientCtx_;
  SslPtr server_;
  SslPtr client_;
};

TEST_F(ContextsTest, InterceptedHandshakeVerifiesAndSelectsHttp11) {
  makePair("api.test", "api.test");
  const Handshake h = runHandshake(client_.get(), server_.get());
  ASSERT_TRUE(h.clientOk) << h.clientError;
  ASSERT_TRUE(h.serverOk) << h.serverError;
  EXPECT_EQ(SSL_get_verify_result(client_.get()), X509_V_OK);
  EXPECT_EQ(selectedAlpn(client_.get()), kAlpnHttp11);
  EXPECT_EQ(selectedAlpn(server_.get()), kAlpnHttp11);
  EXPECT_EQ(SSL_version(client_.get()), TLS1_3_VERSION);
  const char* sni = SSL_get_servername(server_.get(), TLSEXT_NAMETYPE_host_name);
  ASSERT_NE(sni, nullptr);
  EXPECT_STREQ(sni, "api.test");
  // Application data flows.
  ASSERT_EQ(SSL_write(client_.get(), "ping", 4), 4);
  char buf[8] = {};
  ASSERT_EQ(SSL_read(server_.get(), buf, sizeof(buf)), 4);
  EXPECT_EQ(std::string(buf, 4), "ping");
}

TEST_F(ContextsTest, Tls12ClientIsServedToo) {
  makePair("old.test", "old.test");
  ASSERT_EQ(SSL_set_max_proto_version(client_.get(), TLS1_2_VERSION), 1);
  const Handshake h = runHandshake(client_.get(), server_.get());
  ASSERT_TRUE(h.clientOk) << h.clientError;
  EXPECT_EQ(SSL_version(server_.get()), TLS1_2_VERSION);
  EXPECT_EQ(selectedAlpn(server_.get()), kAlpnHttp11);
  EXPECT_THAT(SSL_get_cipher_name(server_.get()), HasSubstr("ECDHE-ECDSA"));
}

TEST_F(ContextsTest, WrongNameFailsWithHostnameMismatch) {
  makePair("api.test", "other.test");
  const Handshake h = runHandshake(client_.get(), server_.get());
  EXPECT_FALSE(h.clientOk);
  EXPECT_FALSE(h.serverOk);
  EXPECT_EQ(SSL_get_verify_result(client_.get()), X509_V_ERR_HOSTNAME_MISMATCH);
  EXPECT_THAT(lower(h.clientError), HasSubstr("hostname mismatch"));
}

TEST_F(ContextsTest, PartialWildcardsAreNotAccepted) {
  makePair("*.example.test", "api.example.test");
  const Handshake whole = runHandshake(client_.get(), server_.get());
  EXPECT_TRUE(whole.clientOk) << whole.clientError;
  makePair("a*.example.test", "api.example.test");
  const Handshake partial = runHandshake(client_.get(), server_.get());
  EXPECT_FALSE(partial.clientOk);
  EXPECT_THAT(lower(partial.clientError), HasSubstr("hostname mismatch"));
}

TEST_F(ContextsTest, UntrustedIssuerFails) {
  ASSERT_OK_AND_ASSIGN(SslCtxPtr systemOnly, makeUpstreamClientContext(""));
  makePair("api.test", "api.test", systemOnly.get());
  const Handshake h = runHandshake(client_.get(), server_.get());
  EXPECT_FALSE(h.clientOk);
  EXPECT_EQ(h.clientError, "unable to get local issuer certificate");
}

TEST_F(ContextsTest, IpLiteralsAreMatchedAgainstIpSansWithoutSni) {
  makePair("198.18.3.3", "198.18.3.3");
  Handshake h = runHandshake(client_.get(), server_.get());
  ASSERT_TRUE(h.clientOk) << h.clientError;
  EXPECT_EQ(SSL_get_servername(server_.get(), TLSEXT_NAMETYPE_host_name), nullptr);

  makePair("198.18.3.3", "198.18.3.4");
  h = runHandshake(client_.get(), server_.get());
  EXPECT_FALSE(h.clientOk);
  EXPECT_EQ(SSL_get_verify_result(client_.get()), X509_V_ERR_IP_ADDRESS_MISMATCH);
  EXPECT_THAT(lower(h.clientError), HasSubstr("ip address mismatch"));

  makePair("2001:db8::1", "2001:db8::1");
  h = runHandshake(client_.get(), server_.get());
  EXPECT_TRUE(h.clientOk) << h.clientError;
}

TEST_F(ContextsTest, AlpnWithoutHttp11IsRefused) {
  makePair("h2.test", "h2.test");
  static constexpr unsigned char kH2Only[] = {2, 'h', '2'};
  ASSERT_EQ(SSL_set_alpn_protos(client_.get(), kH2Only, sizeof(kH2Only)), 0);
  const Handshake h = runHandshake(client_.get(), server_.get());
  EXPECT_FALSE(h.serverOk);
  EXPECT_FALSE(h.clientOk);
  EXPECT_THAT(h.serverError, HasSubstr("no application protocol"));
  EXPECT_THAT(h.clientError, HasSubstr("alert no application protocol"));
}

TEST_F(ContextsTest, Http11AmongOthersIsSelected) {
  makePair("mixed.test", "mixed.test");
  static constexpr unsigned char kOffer[] = {2,   'h', '2', 8,   'h', 't',
                                             't', 'p', '/', '1', '.', '1'};
  ASSERT_EQ(SSL_set_alpn_protos(client_.get(), kOffer, sizeof(kOffer)), 0);
  const Handshake h = runHandshake(client_.get(), server_.get());
  ASSERT_TRUE(h.serverOk) << h.serverError;
  EXPECT_EQ(selectedAlpn(server_.get()), kAlpnHttp11);
}

TEST_F(ContextsTest, NoAlpnProceedsWithoutAlpn) {
  makePair("plain.test", "plain.test");
  ASSERT_EQ(SSL_set_alpn_protos(client_.get(), nullptr, 0), 0);
  const Handshake h = runHandshake(client_.get(), server_.get());
  ASSERT_TRUE(h.serverOk) << h.serverError;
  ASSERT_TRUE(h.clientOk) << h.clientError;
  EXPECT_EQ(selectedAlpn(server_.get()), "");
}

TEST_F(ContextsTest, SessionTicketsResume) {
  makePair("resume.test", "resume.test");
  ASSERT_TRUE(runHandshake(client_.get(), server_.get()).clientOk);
  // TLS 1.3 tickets arrive after the handshake: let the client read them.
  ASSERT_EQ(SSL_write(server_.get(), "x", 1), 1);
  char buf[4];
  ASSERT_EQ(SSL_read(client_.get(), buf, sizeof(buf)), 1);
  SSL_SESSION* session = SSL_get1_session(client_.get());
  ASSERT_NE(session, nullptr);
  EXPECT_EQ(SSL_SESSION_is_resumable(session), 1);
  // A connection freed without close_notify makes OpenSSL retire its session; close cleanly.
  SSL_shutdown(client_.get());

  makePair("resume.test", "resume.test");
  ASSERT_EQ(SSL_set_session(client_.get(), session), 1);
  SSL_SESSION_free(session);
  const Handshake h = runHandshake(client_.get(), server_.get());
  ASSERT_TRUE(h.clientOk) << h.clientError;
  EXPECT_EQ(SSL_session_reused(client_.get()), 1);
  EXPECT_EQ(SSL_get_verify_result(client_.get()), X509_V_OK);
}

TEST_F(ContextsTest, UpstreamHelloOffersOnlyHttp11AndTheName) {
  SslPtr client(SSL_new(clientCtx_.get()));
  ASSERT_OK(prepareUpstreamSsl(client.get(), "sni.test"));
  BIO* in = BIO_new(BIO_s_mem());
  BIO* out = BIO_new(BIO_s_mem());
  SSL_set_bio(client.get(), in, out);
  SSL_set_connect_state(client.get());
  ASSERT_NE(SSL_do_handshake(client.get()), 1);
  char* data = nullptr;
  const long size = BIO_get_mem_data(out, &data);
  const ClientHelloParse p = parseClientHello(std::string_view(data, static_cast<size_t>(size)));
  ASSERT_EQ(p.status, ClientHelloParse::Status::kComplete) << p.error;
  EXPECT_EQ(p.hello.serverName, "sni.test");
  EXPECT_EQ(p.hello.alpn, std::vector<std::string>{"http/1.1"});
  EXPECT_TRUE(p.hello.offersTls13);
}

TEST(UpstreamClientContext, MissingCaFileIsNamed) {
  const std::string path = "/nonexistent/egressd-test/ca.pem";
  auto ctx = makeUpstreamClientContext(path);
  ASSERT_FALSE(ctx.ok());
  EXPECT_THAT(ctx.error().message(), HasSubstr(path));
  EXPECT_THAT(ctx.error().message(), HasSubstr("No such file or directory"));
  EXPECT_EQ(ctx.error().code(), ENOENT);
}

TEST(UpstreamClientContext, InvalidCaFileIsNamedWithOpenSslsReason) {
  TempFile garbage("garbage.pem", "this is not a certificate\n");
  auto ctx = makeUpstreamClientContext(garbage.path());
  ASSERT_FALSE(ctx.ok());
  EXPECT_THAT(ctx.error().message(), HasSubstr(garbage.path()));
  EXPECT_THAT(ctx.error().message(), HasSubstr("error:"));
  // The queue was drained into the message.
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(UpstreamClientContext, BundleWithSeveralCasTrustsEach) {
  ASSERT_OK_AND_ASSIGN(auto a, CertificateAuthority::create("a"));
  ASSERT_OK_AND_ASSIGN(auto b, CertificateAuthority::create("b"));
  TempFile bundle("bundle.pem", a->certificatePem() + b->certificatePem());
  ASSERT_OK_AND_ASSIGN(SslCtxPtr clientCtx, makeUpstreamClientContext(bundle.path()));
  ASSERT_OK_AND_ASSIGN(SslCtxPtr serverCtx, makeInterceptionServerContext());
  for (const auto& ca : {a, b}) {
    SslPtr server(SSL_new(serverCtx.get()));
    SslPtr client(SSL_new(clientCtx.get()));
    ASSERT_OK_AND_ASSIGN(auto leaf, ca->mintLeaf("bundle.test"));
    ASSERT_OK(useLeaf(server.get(), *leaf));
    ASSERT_OK(prepareUpstreamSsl(client.get(), "bundle.test"));
    const Handshake h = runHandshake(client.get(), server.get());
    EXPECT_TRUE(h.clientOk) << h.clientError;
  }
}

TEST(PrepareUpstreamSsl, RejectsEmptyName) {
  ASSERT_OK_AND_ASSIGN(SslCtxPtr ctx, makeUpstreamClientContext(""));
  SslPtr ssl(SSL_new(ctx.get()));
  EXPECT_FALSE(prepareUpstreamSsl(ssl.get(), "").ok());
}

}  // namespace
}  // namespace egressd::tls
