#include "tls/contexts.h"

#include <openssl/err.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "common/ip_address.h"

namespace egressd::tls {
namespace {

constexpr char kGroups[] = "X25519:P-256";
// The session id context binds cached sessions and tickets to this kind of server.
constexpr unsigned char kSessionIdContext[] = "egressd-intercept";
// ALPN wire format (RFC 7301 3.1): length-prefixed names.
constexpr unsigned char kAlpnOffer[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
static_assert(sizeof(kAlpnOffer) == 1 + kAlpnHttp11.size());
// h2 first: the server's preference decides (SSL_select_next_proto walks our list).
constexpr unsigned char kAlpnOfferH2[] = {2, 'h', '2', 8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
static_assert(sizeof(kAlpnOfferH2) == 2 + kAlpnH2.size() + kAlpnHttp11.size());

// The per-connection mark allowHttp2() sets: the address of this object in the SSL's ex data.
int http2ExIndex() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}
constexpr char kHttp2Allowed = 1;

Error openSslError(const std::string& what) {
  std::string reason = drainOpenSslErrors();
  if (reason.empty()) {
    reason = "unknown OpenSSL error";
  }
  return Error(EIO, what + ": " + reason);
}

// Selects http/1.1 from the client's list; a list without it is a fatal
// no_application_protocol alert (RFC 7301 3.2). Not called when the client sent no ALPN.
int selectAlpn(SSL* ssl, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
               unsigned int inlen, void* /*arg*/) {
  unsigned char* selected = nullptr;
  unsigned char selectedLength = 0;
  const bool h2 = SSL_get_ex_data(ssl, http2ExIndex()) == &kHttp2Allowed;
  const unsigned char* offer = h2 ? kAlpnOfferH2 : kAlpnOffer;
  const unsigned int offerLength = h2 ? sizeof(kAlpnOfferH2) : sizeof(kAlpnOffer);
  if (SSL_select_next_proto(&selected, &selectedLength, offer, offerLength, in, inlen) !=
      OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  *out = selected;
  *outlen = selectedLength;
  return SSL_TLSEXT_ERR_OK;
}

// Acknowledges SNI: the leaf was chosen for it before the handshake (useLeaf). With the
// name acknowledged OpenSSL records it in the session, which resumption checks.
int acceptServerName(SSL* /*ssl*/, int* /*alert*/, void* /*arg*/) {
  return SSL_TLSEXT_ERR_OK;
}

Status setProtocolRange(SSL_CTX* ctx, const std::string& what) {
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
      SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1) {
    return openSslError(what + ": setting TLS 1.2..1.3");
  }
  return okStatus();
}

}  // namespace

Result<SslCtxPtr> makeInterceptionServerContext() {
  const std::string what = "creating the TLS interception context";
  ERR_clear_error();
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) {
    return openSslError(what);
  }
  EGRESSD_TRY(setProtocolRange(ctx.get(), what));
  if (SSL_CTX_set1_groups_list(ctx.get(), kGroups) != 1) {
    return openSslError(what + ": setting groups " + kGroups);
  }
  SSL_CTX_set_options(
      ctx.get(), SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_clear_options(ctx.get(), SSL_OP_NO_TICKET);
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_SERVER);
  if (SSL_CTX_set_session_id_context(ctx.get(), kSessionIdContext, sizeof(kSessionIdContext) - 1) !=
      1) {
    return openSslError(what + ": setting the session id context");
  }
  // An idle connection keeps no record buffers (about 34 KiB each otherwise).
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_alpn_select_cb(ctx.get(), selectAlpn, nullptr);
  SSL_CTX_set_tlsext_servername_callback(ctx.get(), acceptServerName);
  return ctx;
}

void allowHttp2(SSL* ssl) {
  SSL_set_ex_data(ssl, http2ExIndex(), const_cast<char*>(&kHttp2Allowed));
}

std::string_view selectedAlpn(const SSL* ssl) {
  const unsigned char* data = nullptr;
  unsigned int length = 0;
  SSL_get0_alpn_selected(ssl, &data, &length);
  return data == nullptr ? std::string_view()
                         : std::string_view(reinterpret_cast<const char*>(data), length);
}

Result<SslCtxPtr> makeUpstreamClientContext(const std::string& extraCaFile, bool offerHttp2) {
  const std::string what = "creating the upstream TLS context";
  ERR_clear_error();
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) {
    return openSslError(what);
  }
  EGRESSD_TRY(setProtocolRange(ctx.get(), what));
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  if (SSL_CTX_set_default_verify_paths(ctx.get()) != 1) {
    return openSslError(what + ": loading the system trust store");
  }
  if (!extraCaFile.empty()) {
    const std::string fileWhat = "upstream CA file " + extraCaFile;
    // OpenSSL's text for a missing file is vague ("system library"); say it plainly.
    if (std::ifstream probe(extraCaFile); !probe) {
      return lastSystemError(fileWhat);
    }
    if (SSL_CTX_load_verify_locations(ctx.get(), extraCaFile.c_str(), nullptr) != 1) {
      const Error error = openSslError(fileWhat);
      return Error(EINVAL, error.message());
    }
  }
  if ((offerHttp2 ? SSL_CTX_set_alpn_protos(ctx.get(), kAlpnOfferH2, sizeof(kAlpnOfferH2))
                  : SSL_CTX_set_alpn_protos(ctx.get(), kAlpnOffer, sizeof(kAlpnOffer))) != 0) {
    return openSslError(what + ": setting ALPN");
  }
  // Client sessions are announced to SSL_CTX_sess_set_new_cb (the caller keeps them per
  // upstream); OpenSSL never looks a client session up by itself, so no internal store.
  SSL_CTX_set_session_cache_mode(ctx.get(),
                                 SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  return ctx;
}

Status prepareUpstreamSsl(SSL* ssl, const std::string& nameOrIp) {
  const std::string what = "preparing upstream TLS for " + nameOrIp;
  ERR_clear_error();
  if (nameOrIp.empty()) {
    return Error(EINVAL, what + ": empty name");
  }
  if (const std::optional<IpAddress> ip = IpAddress::parse(nameOrIp)) {
    // RFC 6066 3: literal IP addresses are not permitted in SNI.
    if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), ip->toString().c_str()) != 1) {
      return openSslError(what + ": setting the expected IP");
    }
    return okStatus();
  }
  if (SSL_set_tlsext_host_name(ssl, nameOrIp.c_str()) != 1) {
    return openSslError(what + ": setting SNI");
  }
  SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  if (SSL_set1_host(ssl, nameOrIp.c_str()) != 1) {
    return openSslError(what + ": setting the expected host name");
  }
  return okStatus();
}

Status useLeaf(SSL* ssl, const Leaf& leaf) {
  ERR_clear_error();
  if (SSL_use_certificate(ssl, leaf.certificate.get()) != 1 ||
      SSL_use_PrivateKey(ssl, leaf.key.get()) != 1) {
    return openSslError("presenting the intercepted leaf certificate");
  }
  return okStatus();
}

std::string upstreamFailureText(SSL* ssl) {
  const long verify = SSL_get_verify_result(ssl);
  if (verify != X509_V_OK) {
    ERR_clear_error();
    return X509_verify_cert_error_string(verify);
  }
  std::string errors = drainOpenSslErrors();
  if (errors.empty()) {
    return "TLS handshake failed";
  }
  return errors;
}

}  // namespace egressd::tls
