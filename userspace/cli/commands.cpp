#include "cli/commands.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <iostream>
#include <iterator>
#include <utility>

#include "cli/render.h"
#include "cli/verb_context.h"
#include "common/fs.h"
#include "control/api.h"

namespace egressd::cli {

using control::percentEncode;
using nlohmann::json;
using render::member;
using render::str;

namespace detail {

Error usage(const std::string& message) {
  return Error(kExitUsage, message);
}

std::string sandboxPath(const std::string& id) {
  return "/v1/sandboxes/" + percentEncode(id);
}

// Secret names may hold '/' ("API_KEY/sb1"): encode each segment, keep the slashes ({name+}).
std::string secretPath(const std::string& name) {
  std::string out = "/v1/secrets/";
  size_t start = 0;
  for (;;) {
    size_t slash = name.find('/', start);
    out += percentEncode(std::string_view(name).substr(start, slash - start));
    if (slash == std::string::npos) {
      return out;
    }
    out += '/';
    start = slash + 1;
  }
}

Result<json> parseJsonObject(const std::string& text, const std::string& what) {
  json value = json::parse(text, nullptr, false);
  if (value.is_discarded()) {
    return usage(what + " is not valid JSON: " + text);
  }
  if (!value.is_object()) {
    return usage(what + " must be a JSON object ({...}), not " + text);
  }
  return value;
}

// One trailing newline is what `echo`, heredocs and editors add; the value is the rest.
std::string stripOneNewline(std::string text) {
  if (text.ends_with('\n')) {
    text.pop_back();
  }
  return text;
}

Result<std::string> readInputFile(const Inputs& inputs, const std::string& path,
                                  const std::string& what) {
  auto text = inputs.readFile(path);
  if (!text.ok()) {
    return Error(text.error().code() == kExitUsage ? EIO : text.error().code(),
                 "cannot read " + what + ": " + text.error().message());
  }
  return text;
}

}  // namespace detail

namespace {

using detail::usage;

const OptionInfo* findOption(const std::string& name) {
  for (const OptionInfo& o : optionTable()) {
    if (o.name == name) {
      return &o;
    }
  }
  return nullptr;
}

const OptionInfo* findShortOption(const std::string& shortName) {
  for (const OptionInfo& o : optionTable()) {
    if (!o.shortName.empty() && o.shortName == shortName) {
      return &o;
    }
  }
  return nullptr;
}

struct Args {
  std::vector<std::string> positionals;
  std::vector<std::string> trailing;                        // after "--"
  std::map<std::string, std::vector<std::string>> options;  // flags map to {""}
};

Result<Args> tokenize(const std::vector<std::string>& args) {
  Args out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--") {
      out.trailing.assign(args.begin() + static_cast<long>(i) + 1, args.end());
      break;
    }
    if (arg == "-" || !arg.starts_with('-')) {
      out.positionals.push_back(arg);
      continue;
    }
    const OptionInfo* option = nullptr;
    std::optional<std::string> inlineValue;
    if (arg.starts_with("--")) {
      std::string name = arg.substr(2);
      size_t eq = name.find('=');
      if (eq != std::string::npos) {
        inlineValue = name.substr(eq + 1);
        name.resize(eq);
      }
      option = findOption(name);
    } else {
      option = findShortOption(arg.substr(0, 2));
      if (option != nullptr && arg.size() > 2) {
        inlineValue = arg.substr(2);  // "-n20"
      }
    }
    if (option == nullptr) {
      return usage("unknown option " + arg);
    }
    if (!option->takesValue) {
      if (inlineValue) {
        return usage("option --" + option->name + " takes no value");
      }
      out.options[option->name] = {""};
      continue;
    }
    if (!inlineValue) {
      if (i + 1 >= args.size()) {
        return usage("option --" + option->name + " needs a value");
      }
      inlineValue = args[++i];
    }
    auto& values = out.options[option->name];
    if (!option->repeatable) {
      values.clear();  // the last one counts
    }
    values.push_back(*inlineValue);
  }
  return out;
}

}  // namespace

Inputs Inputs::system() {
  Inputs inputs;
  inputs.env = [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) {
      return std::nullopt;
    }
    return std::string(value);
  };
  inputs.readFile = [](const std::string& path) { return egressd::readFile(path); };
  inputs.readStdin = []() -> Result<std::string> {
    if (::isatty(STDIN_FILENO) == 1) {
      // Otherwise egressctl would just sit there, looking hung.
      std::cerr << "egressctl: type the secret value, then Ctrl-D\n";
    }
    std::string text((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    if (std::cin.bad()) {
      return Error(EIO, "cannot read standard input");
    }
    return text;
  };
  return inputs;
}

int exitCodeFor(const Error& error) {
  return error.code() == kExitUsage ? kExitUsage : kExitFailure;
}

std::string usageText() {
  std::string out =
      "usage: egressctl [--socket PATH] [--json] VERB [ARGS]\n"
      "\n"
      "verbs:\n";
  for (const Verb& verb : verbTable()) {
    out += "  " + verb.synopsis + "\n";
  }
  out +=
      "\n"
      "options:\n"
      "  --socket PATH     control socket (env EGRESSD_SOCKET; default " +
      std::string(control::kDefaultSocket) +
      ")\n"
      "  -s, --sandbox ID  the sandbox of a per-sandbox verb (env EGRESSD_SANDBOX)\n"
      "  --json            print the API's JSON answer (one line; audit tail -f: one per record)\n"
      "  --pin-root DIR    bpffs directory of egressd's pins (status, maps)\n"
      "  -h, --help        this text\n"
      "  --version         egressctl's version\n"
      "run options (run, sandbox create --run): --user NAME|UID[:GID], --env NAME[=VALUE]\n"
      "  (repeatable), --env-file FILE (repeatable), --allow-io-uring; the command gets\n"
      "  egressd run's hardening and its exit status is egressctl's\n"
      "exit status: 0 ok, 1 API or connection error, 64 usage error (run: the command's)\n";
  return out;
}

std::string usageHint() {
  return "see egressctl --help";
}

Result<Command> parseCommand(const std::vector<std::string>& args, const Inputs& inputs) {
  auto tokens = tokenize(args);
  if (!tokens.ok()) {
    return std::move(tokens).error();
  }
  Args& a = *tokens;
  Command command;
  auto option = [&](const char* name) -> std::optional<std::string> {
    auto it = a.options.find(name);
    if (it == a.options.end()) {
      return std::nullopt;
    }
    return it->second.back();
  };
  command.json = option("json").has_value();
  command.pinRoot = option("pin-root").value_or("");
  if (auto socket = option("socket")) {
    command.socket = *socket;
  } else if (auto env = inputs.env("EGRESSD_SOCKET"); env && !env->empty()) {
    command.socket = *env;
  } else {
    command.socket = control::kDefaultSocket;
  }
  if (option("help") || (!a.positionals.empty() && a.positionals[0] == "help")) {
    command.kind = Command::Kind::kHelp;
    return command;
  }
  if (option("version")) {
    command.kind = Command::Kind::kVersion;
    return command;
  }
  // Completion's helper: the ids it offers (not in the help; the scripts call it).
  if (!a.positionals.empty() && a.positionals[0] == "__complete") {
    if (a.positionals.size() != 2 ||
        (a.positionals[1] != "sandboxes" && a.positionals[1] != "policies")) {
      return usage("__complete sandboxes|policies");
    }
    command.kind = Command::Kind::kCompleteIds;
    command.subject = a.positionals[1];
    command.method = "GET";
    command.path = "/v1/" + a.positionals[1];
    return command;
  }
  if (a.positionals.empty()) {
    return usage("no verb given");
  }
  std::string name = a.positionals[0];
  size_t consumed = 1;
  const auto& groups = verbGroups();
  if (std::find(groups.begin(), groups.end(), name) != groups.end()) {
    if (a.positionals.size() < 2) {
      return usage("'" + name + "' needs a sub-command");
    }
    name += " " + a.positionals[1];
    consumed = 2;
  }
  const auto& verbs = verbTable();
  auto verbIt =
      std::find_if(verbs.begin(), verbs.end(), [&](const Verb& v) { return v.name == name; });
  if (verbIt == verbs.end()) {
    return usage("unknown verb '" + name + "'");
  }
  const Verb& verb = *verbIt;
  std::vector<std::string> pos(a.positionals.begin() + static_cast<long>(consumed),
                               a.positionals.end());
  if (!verb.takesCommand) {
    // "--" only ends options here: a host that starts with '-' can still be named.
    pos.insert(pos.end(), a.trailing.begin(), a.trailing.end());
    a.trailing.clear();
  }
  if (pos.size() < verb.minArgs ||
      (verb.maxArgs >= 0 && pos.size() > static_cast<size_t>(verb.maxArgs))) {
    return usage((pos.size() < verb.minArgs ? "missing arguments" : "too many arguments") +
                 std::string(" for '") + name + "'; usage: egressctl " + verb.synopsis);
  }
  for (const auto& [given, value] : a.options) {
    const bool allowed = globalOptions().contains(given) || verb.options.contains(given) ||
                         (verb.perSandbox && given == "sandbox");
    if (!allowed) {
      return usage("option --" + given + " does not apply to '" + name + "'; usage: egressctl " +
                   verb.synopsis);
    }
  }
  command.verb = name;
  command.kind = verb.kind;
  if (verb.perSandbox) {
    if (auto id = option("sandbox")) {
      command.sandbox = *id;
    } else if (auto env = inputs.env("EGRESSD_SANDBOX")) {
      command.sandbox = *env;
    }
    if (command.sandbox.empty()) {
      return usage("'" + name + "' needs a sandbox: -s ID (or set EGRESSD_SANDBOX)");
    }
  }
  if (verb.build) {
    VerbContext context{verb, command, pos, a.trailing, a.options, inputs};
    if (auto built = verb.build(context); !built.ok()) {
      return std::move(built).error();
    }
  }
  return command;
}

std::string auditFollowPath(const std::string& firstPath, uint64_t next) {
  std::string query;
  if (size_t q = firstPath.find('?'); q != std::string::npos) {
    size_t start = q + 1;
    while (start < firstPath.size()) {
      const size_t amp = std::min(firstPath.find('&', start), firstPath.size());
      const std::string pair = firstPath.substr(start, amp - start);
      if (!pair.empty() && !pair.starts_with("lines=") && !pair.starts_with("after=")) {
        query += pair + "&";
      }
      start = amp + 1;
    }
  }
  return "/v1/audit?" + query + "after=" + std::to_string(next);
}

std::string renderHuman(const Command& command, const json& body) {
  for (const Verb& verb : verbTable()) {
    if (verb.name == command.verb && verb.render) {
      return verb.render(command, body);
    }
  }
  return body.dump(2) + "\n";
}

}  // namespace egressd::cli
