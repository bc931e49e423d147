// The SSL_CTX factories of the proxy's two TLS sides, and the per-connection steps on them.
// Intercepted side: the sandbox's client talks to us with a leaf of the sandbox CA.
// Upstream side: we talk to the real server and verify it (system store + an extra bundle),
// never falling back to unverified TLS.
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"
#include "tls/certificate_authority.h"
#include "tls/openssl_ptr.h"

namespace egressd::tls {

inline constexpr std::string_view kAlpnHttp11 = "http/1.1";
inline constexpr std::string_view kAlpnH2 = "h2";

// Server side of intercepted connections (certificate set per connection with useLeaf).
// TLS 1.2..1.3, ECDHE groups X25519:P-256, session tickets on (resumption works), ALPN
// select callback: "h2" when offered and allowHttp2() was called on the connection, else
// "http/1.1" when offered; nothing acceptable offered -> fatal no_application_protocol; no
// ALPN extension -> proceed without ALPN (HTTP/1.1).
Result<SslCtxPtr> makeInterceptionServerContext();
// Lets this accepted connection's ALPN select h2 (the sandbox's policy has http.http2).
void allowHttp2(SSL* ssl);
// The protocol ALPN selected on a connection after its handshake ("" when none).
std::string_view selectedAlpn(const SSL* ssl);
// Upstream client side: verify peer against the system default trust store plus
// `extraCaFile` (PEM bundle, "" = none; unreadable/invalid file -> Error naming the file and
// OpenSSL's reason). TLS 1.2+, ALPN offers only http/1.1 (h2 and http/1.1 with
// `offerHttp2`, for the upstreams of HTTP/2 sessions), client session cache on
// (SSL_SESS_CACHE_CLIENT without OpenSSL's internal store: new sessions reach
// SSL_CTX_sess_set_new_cb, resume with SSL_set_session). Note: an SSL freed without
// SSL_shutdown() marks its session non-resumable (OpenSSL's ssl_clear_bad_session).
Result<SslCtxPtr> makeUpstreamClientContext(const std::string& extraCaFile,
                                            bool offerHttp2 = false);
// Per upstream connection: SNI = name (not for IP literals) and the certificate must match
// the name (SSL_set1_host) or the IP (X509_VERIFY_PARAM_set1_ip_asc).
Status prepareUpstreamSsl(SSL* ssl, const std::string& nameOrIp);
// Presents leaf + key on an accepted connection's SSL.
Status useLeaf(SSL* ssl, const Leaf& leaf);
// After a failed upstream handshake: OpenSSL's verify text ("certificate has expired",
// "Hostname mismatch", ...) if verification failed, else the drained OpenSSL error text.
std::string upstreamFailureText(SSL* ssl);

}  // namespace egressd::tls
