// egressd's command line: its modes, the options each mode takes, and the help built from
// that one table. main.cpp parses with cxxopts, offering each mode only its own options, so
// `egressd run --socket S` is a usage error that names the mode's help instead of a flat
// list of every option. Pure and unit-tested (tests/unit/daemon/usage_test.cpp).
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace egressd::daemon {

enum class Mode { kRun, kDaemon, kServe, kApply, kDetach, kValidate, kVerify };

struct OptionSpec {
  enum class Type { kFlag, kString, kUnsigned, kStrings };
  const char* name;  // long name, without "--"
  Type type;
  const char* value;         // placeholder in help ("FILE"); nullptr for flags
  const char* defaultValue;  // "" = none shown
  const char* help;
  std::vector<Mode> modes;
};

struct ModeSpec {
  Mode mode;
  const char* name;      // "run"
  const char* synopsis;  // after "egressd "
  const char* summary;   // one line
};

const std::vector<ModeSpec>& modes();
const std::vector<OptionSpec>& options();
// The options `mode` accepts, in table order (--log-level and --help included).
std::vector<const OptionSpec*> optionsOf(Mode mode);
const ModeSpec& modeSpec(Mode mode);

// Which mode argv (without argv[0]) asks for. The first word names it; without one, the
// old single-sandbox form (`egressd --sandbox ID --cgroup C --policy F`) is serve and
// anything else is the daemon. nullopt: the first word is no mode (`error` says which).
struct ModeChoice {
  Mode mode = Mode::kDaemon;
  size_t consumed = 0;  // words taken by the mode name (0 or 1)
};
std::optional<ModeChoice> chooseMode(const std::vector<std::string>& args, std::string* error);

// `egressd --help`: every mode with its own options. `egressd MODE --help`: that mode only.
std::string overviewHelp();
std::string modeHelp(Mode mode);
// The one line after a usage error.
std::string seeHelp(Mode mode);
std::string versionText();

}  // namespace egressd::daemon
