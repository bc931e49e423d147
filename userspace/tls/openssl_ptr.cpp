#include "tls/openssl_ptr.h"

#include <openssl/err.h>

namespace egressd::tls {

std::string drainOpenSslErrors() {
  std::string out;
  const char* data = nullptr;
  int flags = 0;
  while (const unsigned long code = ERR_get_error_all(nullptr, nullptr, nullptr, &data, &flags)) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof(buf));
    if (!out.empty()) {
      out += "; ";
    }
    out += buf;
    if ((flags & ERR_TXT_STRING) != 0 && data != nullptr && *data != '\0') {
      out += " (";
      out += data;
      out += ")";
    }
  }
  return out;
}

}  // namespace egressd::tls
