#include "verify/report.h"

#include <algorithm>
#include <iomanip>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

namespace egressd::verify {
namespace {

std::string pad(std::string s, size_t width) {
  if (s.size() < width) {
    s.resize(width, ' ');
  }
  return s;
}

}  // namespace

int exitCodeOf(const VerifyResult& r) {
  bool hole = std::any_of(r.checks.begin(), r.checks.end(),
                          [](const Check& c) { return c.level == Level::kFail; });
  bool controlFailed = false;
  if (r.battery) {
    for (const CaseRow& row : r.battery->rows) {
      hole = hole || row.verdict == Verdict::kHole;
      controlFailed =
          controlFailed || row.verdict == Verdict::kControlFailed || row.verdict == Verdict::kError;
    }
  }
  if (hole) {
    return kExitHole;
  }
  if (r.battery && r.battery->interrupted) {
    return kExitInterrupted;
  }
  if (!r.battery || controlFailed) {
    return kExitInconclusive;
  }
  return kExitClean;
}

std::string holesSummary(const VerifyResult& r) {
  std::string out;
  if (r.battery) {
    for (const CaseRow& row : r.battery->rows) {
      if (row.verdict == Verdict::kHole) {
        out += (out.empty() ? "" : ", ") + row.c.id + " (" + row.user + ")";
      }
    }
  }
  return out;
}

void printTable(std::ostream& out, const VerifyResult& r) {
  if (!r.buildNote.empty()) {
    out << "WARNING: " << r.buildNote << "\n\n";
  }
  out << "Host checks\n";
  size_t nameWidth = 0;
  for (const Check& c : r.checks) {
    nameWidth = std::max(nameWidth, c.name.size());
  }
  for (const Check& c : r.checks) {
    out << "  " << pad(std::string(levelName(c.level)), 5) << " " << pad(c.name, nameWidth) << "  "
        << c.detail << "\n";
    if (!c.advice.empty()) {
      out << "        " << pad("", nameWidth) << "  -> " << c.advice << "\n";
    }
  }
  out << "\n";
  if (!r.battery) {
    out << "Attack battery: NOT RUN: " << r.batteryError << "\n";
  } else {
    const BatteryReport& b = *r.battery;
    std::set<std::string> ids;
    std::set<std::string> users;
    for (const CaseRow& row : b.rows) {
      ids.insert(row.c.id);
      users.insert(row.user);
    }
    out << "Attack battery (" << b.policyName << "; " << ids.size() << " cases x " << users.size()
        << " users = " << b.rows.size() << " runs, from inside a throw-away sandbox)\n";
    size_t idWidth = 4;
    size_t expWidth = 8;
    for (const CaseRow& row : b.rows) {
      idWidth = std::max(idWidth, row.c.id.size());
      expWidth = std::max(expWidth, row.c.expectedText().size());
    }
    out << "  " << pad("VERDICT", 7) << " " << pad("CASE", idWidth) << " " << pad("USER", 6) << " "
        << pad("EXPECTED", expWidth) << " OBSERVED\n";
    for (const CaseRow& row : b.rows) {
      out << "  " << pad(std::string(verdictName(row.verdict)), 7) << " " << pad(row.c.id, idWidth)
          << " " << pad(row.user, 6) << " " << pad(row.c.expectedText(), expWidth) << " "
          << observedText(row.c, row.observed) << "\n";
    }
    if (b.interrupted) {
      out << "  (interrupted: the remaining cases did not run)\n";
    }
  }
  out << "\n";
  const int code = exitCodeOf(r);
  std::map<Level, int> levels;
  for (const Check& c : r.checks) {
    levels[c.level]++;
  }
  std::map<Verdict, int> verdicts;
  if (r.battery) {
    for (const CaseRow& row : r.battery->rows) {
      verdicts[row.verdict]++;
    }
  }
  out << "Summary: host " << levels[Level::kPass] << " pass, " << levels[Level::kWarn] << " warn, "
      << levels[Level::kFail] << " FAIL; battery " << verdicts[Verdict::kPass] << " pass, "
      << verdicts[Verdict::kHole] << " HOLE, " << verdicts[Verdict::kControlFailed]
      << " control failed, " << verdicts[Verdict::kError] << " error, " << verdicts[Verdict::kWarn]
      << " warn, " << verdicts[Verdict::kSkip] << " skipped; " << std::fixed << std::setprecision(1)
      << r.seconds << " s\n";
  switch (code) {
    case kExitClean:
      out << "RESULT: PASS - nothing got through\n";
      break;
    case kExitHole: {
      std::string holes = holesSummary(r);
      out << "RESULT: FAIL - " << (holes.empty() ? "a host check failed" : "got through: " + holes)
          << "\n";
      break;
    }
    case kExitInterrupted:
      out << "RESULT: INTERRUPTED\n";
      break;
    default:
      out << "RESULT: INCONCLUSIVE - the battery did not run completely or a control failed\n";
  }
}

void printJson(std::ostream& out, const VerifyResult& r) {
  nlohmann::json j;
  j["checks"] = nlohmann::json::array();
  for (const Check& c : r.checks) {
    j["checks"].push_back({{"name", c.name},
                           {"level", levelName(c.level)},
                           {"detail", c.detail},
                           {"advice", c.advice}});
  }
  if (r.battery) {
    nlohmann::json cases = nlohmann::json::array();
    for (const CaseRow& row : r.battery->rows) {
      cases.push_back({{"id", row.c.id},
                       {"user", row.user},
                       {"attempt", row.c.attempt},
                       {"expected", row.c.expectedText()},
                       {"observed", observedText(row.c, row.observed)},
                       {"reached", row.observed.reachedSinks},
                       {"verdict", verdictName(row.verdict)}});
    }
    j["battery"] = {{"policy", r.battery->policyName},
                    {"interrupted", r.battery->interrupted},
                    {"cases", cases}};
  } else {
    j["battery"] = {{"error", r.batteryError}};
  }
  if (!r.buildNote.empty()) {
    j["warning"] = r.buildNote;
  }
  j["seconds"] = r.seconds;
  j["exitCode"] = exitCodeOf(r);
  j["holes"] = holesSummary(r);
  out << j.dump(2) << "\n";
}

}  // namespace egressd::verify
