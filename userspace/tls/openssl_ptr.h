// RAII for OpenSSL objects: one std::unique_ptr alias per type, each freeing with the
// type's own *_free function (never delete). Also the one place that turns OpenSSL's
// thread-local error queue into text for Error messages and audit lines.
#pragma once

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <string>

namespace egressd::tls {

namespace detail {
// A stateless deleter calling `Free` (a function, so the pointer stays one word wide).
template <auto Free>
struct OpenSslDeleter {
  template <typename T>
  void operator()(T* p) const {
    Free(p);
  }
};
}  // namespace detail

using X509Ptr = std::unique_ptr<X509, detail::OpenSslDeleter<X509_free>>;
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, detail::OpenSslDeleter<EVP_PKEY_free>>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, detail::OpenSslDeleter<SSL_CTX_free>>;
using SslPtr = std::unique_ptr<SSL, detail::OpenSslDeleter<SSL_free>>;
using BioPtr = std::unique_ptr<BIO, detail::OpenSslDeleter<BIO_free_all>>;
using X509StorePtr = std::unique_ptr<X509_STORE, detail::OpenSslDeleter<X509_STORE_free>>;
using X509StoreCtxPtr =
    std::unique_ptr<X509_STORE_CTX, detail::OpenSslDeleter<X509_STORE_CTX_free>>;
using X509ExtensionPtr =
    std::unique_ptr<X509_EXTENSION, detail::OpenSslDeleter<X509_EXTENSION_free>>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, detail::OpenSslDeleter<GENERAL_NAMES_free>>;
using BignumPtr = std::unique_ptr<BIGNUM, detail::OpenSslDeleter<BN_free>>;
using Asn1IntegerPtr = std::unique_ptr<ASN1_INTEGER, detail::OpenSslDeleter<ASN1_INTEGER_free>>;

// Drains OpenSSL's thread error queue into one line ("error:...; error:..."), "" if empty.
std::string drainOpenSslErrors();

}  // namespace egressd::tls
