// main() of every e2e binary: not root -> exit 77 (CTest "Skipped", with the reason on
// stderr; never a silent pass); otherwise GTest with the suite environment installed, and
// 77 again when it skipped every test.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>

#include "environment.h"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (::geteuid() != 0) {
    std::fprintf(stderr, "SKIPPED: egressd e2e tests need root (cgroups, netns, BPF)\n");
    return egressd::test::kSkipExitCode;
  }
  ::testing::AddGlobalTestEnvironment(new egressd::test::SuiteEnvironment());
  int rc = RUN_ALL_TESTS();
  // Every test skipped (a host feature the whole binary needs is missing, reasons above):
  // CTest shows "Skipped", not "Passed".
  const ::testing::UnitTest& unit = *::testing::UnitTest::GetInstance();
  if (rc == 0 && unit.test_to_run_count() > 0 &&
      unit.skipped_test_count() == unit.test_to_run_count()) {
    return egressd::test::kSkipExitCode;
  }
  return rc;
}
