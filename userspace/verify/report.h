// How `egressd verify` prints its results: a human table (host checks, then the battery's
// case -> expected -> observed) or one JSON document (--json), and the exit code.
#pragma once

#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "verify/battery.h"
#include "verify/host_checks.h"

namespace egressd::verify {

// Exit codes (docs/verify.md).
inline constexpr int kExitClean = 0;
inline constexpr int kExitHole = 1;          // a case got through, or a host check FAILed
inline constexpr int kExitBadPolicy = 2;     // --policy could not be loaded
inline constexpr int kExitInconclusive = 3;  // the battery could not run or a control failed
inline constexpr int kExitInterrupted = 130;

struct VerifyResult {
  std::vector<Check> checks;
  std::optional<BatteryReport> battery;
  std::string batteryError;  // why the battery did not run
  double seconds = 0;
  std::string buildNote;  // e.g. a weakened build's warning
};

int exitCodeOf(const VerifyResult& r);
// "tcp-denied (root), quic (nobody)": the cases that got through.
std::string holesSummary(const VerifyResult& r);
void printTable(std::ostream& out, const VerifyResult& r);
void printJson(std::ostream& out, const VerifyResult& r);

}  // namespace egressd::verify
