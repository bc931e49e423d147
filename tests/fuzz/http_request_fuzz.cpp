// libFuzzer target: the request parser's properties (see http_fuzz.h).
#include <cstddef>
#include <cstdint>

#include "http_fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  egressd::http::fuzz::checkRequestParser(data, size);
  return 0;
}
