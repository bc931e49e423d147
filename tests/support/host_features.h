// Test-side use of the host feature probes (userspace/host/features.h): one cached probe
// result per feature per process, and a skip that names the missing feature.
//
//   EGRESSD_SKIP_UNLESS_HOST_FEATURE(host::kIoUring);   // in a TEST body
//
// skips with "needs host feature io_uring: missing (kernel.io_uring_disabled=2: …)". Use
// it only for the part of a test that cannot run without the feature: assert everything
// else first (never a silent pass).
#pragma once

#include <gtest/gtest.h>

#include <string_view>

#include "host/features.h"

namespace egressd::test {

// Probes once per process and remembers the result (thread-safe).
const host::Feature& hostFeature(std::string_view name);

}  // namespace egressd::test

#define EGRESSD_SKIP_UNLESS_HOST_FEATURE(name)                                          \
  do {                                                                                  \
    const ::egressd::host::Feature& skip_feature_ = ::egressd::test::hostFeature(name); \
    if (!skip_feature_.ok()) {                                                          \
      GTEST_SKIP() << "needs host feature " << skip_feature_.describe();                \
    }                                                                                   \
  } while (0)
