// libFuzzer target: the ClientHello parser's properties (see client_hello_check.h).
#include <cstddef>
#include <cstdint>

#include "client_hello_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  egressd::tls::fuzz::checkClientHelloParser(data, size);
  return 0;
}
