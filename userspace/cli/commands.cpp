#include "cli/commands.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <iostream>
#include <iterator>
#include <map>
#include <set>
#include <sstream>

#include "common/fs.h"
#include "control/api.h"

namespace egressd::cli {

namespace {

using control::percentEncode;
using nlohmann::json;

Error usage(const std::string& message) {
  return Error(kExitUsage, message);
}

// Options that take a value, by long name; short aliases map onto them.
const std::set<std::string>& valueOptions() {
  static const std::set<std::string> kOptions = {"socket",    "pin-root", "sandbox", "policy",
                                                 "cgroup",    "netns",    "params",  "value",
                                                 "from-file", "lines"};
  return kOptions;
}
const std::set<std::string>& flagOptions() {
  static const std::set<std::string> kFlags = {"json", "create-cgroup", "help"};
  return kFlags;
}
const std::map<std::string, std::string>& shortOptions() {
  static const std::map<std::string, std::string> kShort = {
      {"-s", "sandbox"}, {"-n", "lines"}, {"-h", "help"}};
  return kShort;
}

struct Args {
  std::vector<std::string> positionals;
  std::map<std::string, std::string> options;  // flags map to ""
};

Result<Args> tokenize(const std::vector<std::string>& args) {
  Args out;
  bool optionsEnded = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (optionsEnded || arg == "-" || !arg.starts_with('-')) {
      out.positionals.push_back(arg);
      continue;
    }
    if (arg == "--") {
      optionsEnded = true;
      continue;
    }
    std::string name;
    std::optional<std::string> inlineValue;
    if (arg.starts_with("--")) {
      name = arg.substr(2);
      size_t eq = name.find('=');
      if (eq != std::string::npos) {
        inlineValue = name.substr(eq + 1);
        name.resize(eq);
      }
    } else {
      auto it = shortOptions().find(arg.substr(0, 2));
      if (it == shortOptions().end()) {
        return usage("unknown option " + arg);
      }
      name = it->second;
      if (arg.size() > 2) {
        inlineValue = arg.substr(2);  // "-n20"
      }
    }
    if (flagOptions().contains(name)) {
      if (inlineValue) {
        return usage("option --" + name + " takes no value");
      }
      out.options[name] = "";
    } else if (valueOptions().contains(name)) {
      if (!inlineValue) {
        if (i + 1 >= args.size()) {
          return usage("option --" + name + " needs a value");
        }
        inlineValue = args[++i];
      }
      out.options[name] = *inlineValue;
    } else {
      return usage("unknown option " + arg);
    }
  }
  return out;
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

// What each verb takes: positional count (min, max; max -1 = any) and its own options.
struct VerbSpec {
  size_t minArgs;
  long maxArgs;
  std::set<std::string> options;
  bool perSandbox = false;
  std::string synopsis;
};

const std::map<std::string, VerbSpec>& verbs() {
  static const std::map<std::string, VerbSpec> kVerbs = {
      {"status", {0, 0, {}, false, "status"}},
      {"maps", {0, 0, {}, false, "maps"}},
      {"sandbox create",
       {1,
        1,
        {"policy", "cgroup", "create-cgroup", "netns"},
        false,
        "sandbox create ID --policy NAME [--cgroup PATH | --create-cgroup] [--netns PATH]"}},
      {"sandbox list", {0, 0, {}, false, "sandbox list"}},
      {"sandbox show", {1, 1, {}, false, "sandbox show ID"}},
      {"sandbox delete", {1, 1, {}, false, "sandbox delete ID"}},
      {"set-allowed-hosts", {0, -1, {}, true, "set-allowed-hosts -s ID [HOST...]"}},
      {"set-denied-hosts", {0, -1, {}, true, "set-denied-hosts -s ID [HOST...]"}},
      {"allow-host", {1, 1, {}, true, "allow-host -s ID HOST"}},
      {"deny-host", {1, 1, {}, true, "deny-host -s ID HOST"}},
      {"remove-allowed-host", {1, 1, {}, true, "remove-allowed-host -s ID HOST"}},
      {"remove-denied-host", {1, 1, {}, true, "remove-denied-host -s ID HOST"}},
      {"set-outbound-by-host",
       {2, 2, {"params"}, true, "set-outbound-by-host -s ID HOST HANDLER [--params JSON]"}},
      {"remove-outbound-by-host", {1, 1, {}, true, "remove-outbound-by-host -s ID HOST"}},
      {"set-outbound-by-hosts",
       {1,
        1,
        {},
        true,
        "set-outbound-by-hosts -s ID JSON|@FILE   ({\"host\": \"handler\"} or "
        "{\"host\": {\"handler\": ..., \"params\": {...}}})"}},
      {"set-outbound-handler",
       {1, 1, {"params"}, true, "set-outbound-handler -s ID HANDLER [--params JSON]"}},
      {"remove-outbound-handler", {0, 0, {}, true, "remove-outbound-handler -s ID"}},
      {"secret set",
       {1,
        1,
        {"value", "from-file"},
        false,
        "secret set NAME [--value V | --from-file F]   (default: value from stdin)"}},
      {"secret rm", {1, 1, {}, false, "secret rm NAME"}},
      {"secret list", {0, 0, {}, false, "secret list"}},
      {"policy apply", {1, 1, {}, false, "policy apply FILE"}},
      {"policy validate", {1, 1, {}, false, "policy validate FILE"}},
      {"policy show", {0, 1, {}, false, "policy show [NAME]"}},
      {"policy reload", {0, 0, {}, false, "policy reload"}},
      {"audit tail", {0, 0, {"lines", "sandbox"}, false, "audit tail [-n N] [--sandbox ID]"}},
  };
  return kVerbs;
}

const std::set<std::string>& groups() {
  static const std::set<std::string> kGroups = {"sandbox", "secret", "policy", "audit"};
  return kGroups;
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

// --- rendering helpers -------------------------------------------------------------------

std::string str(const json& object, const char* key, const std::string& fallback = "") {
  if (!object.is_object()) {
    return fallback;
  }
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) {
    return fallback;
  }
  if (it->is_string()) {
    return it->get<std::string>();
  }
  return it->dump();
}

const json& member(const json& object, const char* key) {
  static const json kNull;
  if (!object.is_object()) {
    return kNull;
  }
  auto it = object.find(key);
  return it == object.end() ? kNull : *it;
}

std::string joinList(const json& list, const std::string& empty = "(none)") {
  if (!list.is_array() || list.empty()) {
    return empty;
  }
  std::string out;
  for (const json& item : list) {
    out += (out.empty() ? "" : ", ") + (item.is_string() ? item.get<std::string>() : item.dump());
  }
  return out;
}

std::string paramsSuffix(const json& params) {
  if (!params.is_object() || params.empty()) {
    return "";
  }
  return " " + params.dump();
}

std::string fromSuffix(const json& entry) {
  const std::string from = str(entry, "from");
  return from.empty() || from == "instance" ? "" : " (from " + from + ")";
}

std::string table(const std::vector<std::string>& header,
                  const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths(header.size(), 0);
  auto measure = [&](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size() && i < widths.size(); ++i) {
      widths[i] = std::max(widths[i], row[i].size());
    }
  };
  measure(header);
  for (const auto& row : rows) {
    measure(row);
  }
  std::string out;
  auto line = [&](const std::vector<std::string>& row) {
    std::string text;
    for (size_t i = 0; i < row.size(); ++i) {
      text += row[i];
      if (i + 1 < row.size()) {
        text += std::string(widths[i] - row[i].size() + 2, ' ');
      }
    }
    out += text + "\n";
  };
  line(header);
  for (const auto& row : rows) {
    line(row);
  }
  return out;
}

std::string overrideSummary(const char* name, const json& hosts) {
  std::string parts;
  if (member(hosts, "set").is_array()) {
    parts += " set to [" + joinList(member(hosts, "set"), "") + "]";
  }
  for (const json& added : member(hosts, "added")) {
    parts += " +" + (added.is_string() ? added.get<std::string>() : added.dump());
  }
  for (const json& removed : member(hosts, "removed")) {
    parts += " -" + (removed.is_string() ? removed.get<std::string>() : removed.dump());
  }
  return parts.empty() ? "" : std::string(name) + parts;
}

std::string handlerLines(const json& effective) {
  std::vector<std::string> lines;
  for (const json& entry : member(effective, "outboundByHost")) {
    lines.push_back(str(entry, "host") + " -> " + str(entry, "handler") +
                    paramsSuffix(member(entry, "params")) + fromSuffix(entry));
  }
  const json& outbound = member(effective, "outbound");
  if (outbound.is_object()) {
    lines.push_back("any other host -> " + str(outbound, "handler") +
                    paramsSuffix(member(outbound, "params")) + fromSuffix(outbound));
  }
  if (lines.empty()) {
    return "(none)\n";
  }
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    out += (i == 0 ? "" : std::string(20, ' ')) + lines[i] + "\n";
  }
  return out;
}

std::string renderDetail(const json& body) {
  const json& effective = member(body, "effective");
  const json& overrides = member(body, "overrides");
  const json& counters = member(body, "counters");
  std::ostringstream out;
  auto row = [&](const std::string& label, const std::string& value) {
    out << "  " << label << std::string(label.size() < 18 ? 18 - label.size() : 1, ' ') << value
        << "\n";
  };
  out << "sandbox " << str(body, "id") << "\n";
  row("policy:", str(body, "policy"));
  const bool created =
      member(body, "createdCgroup").is_boolean() && member(body, "createdCgroup").get<bool>();
  row("cgroup:", str(body, "cgroup") + (created ? " (created by egressd)" : ""));
  row("netns:", str(body, "netns").empty() ? "(host)" : str(body, "netns"));
  row("proxy port:", str(body, "proxyPort", "-"));
  row("resolver port:", str(body, "dnsPort", "-"));
  row("CA certificate:", str(body, "caCert", "-"));
  if (!str(body, "caBundle").empty()) {
    row("CA bundle:", str(body, "caBundle"));
  }
  const json& internet = member(effective, "enableInternet");
  row("internet:", internet.is_boolean() && internet.get<bool>() ? "enabled" : "disabled");
  const json& intercept = member(effective, "interceptHttps");
  row("intercept HTTPS:", intercept.is_boolean() && intercept.get<bool>() ? "yes" : "no");
  row("allowed hosts:", joinList(member(effective, "allowedHosts")));
  row("denied hosts:", joinList(member(effective, "deniedHosts")));
  out << "  handlers:" << std::string(9, ' ') << handlerLines(effective);
  std::vector<std::string> changed;
  for (const char* name : {"allowedHosts", "deniedHosts"}) {
    std::string summary = overrideSummary(name, member(overrides, name));
    if (!summary.empty()) {
      changed.push_back(summary);
    }
  }
  const json& byHost = member(overrides, "outboundByHost");
  if (byHost.is_object() && !byHost.empty()) {
    std::string hosts;
    for (const auto& [host, entry] : byHost.items()) {
      hosts += (hosts.empty() ? "" : ", ") + host + " -> " + str(entry, "handler");
    }
    changed.push_back("outboundByHost " + hosts);
  }
  if (member(overrides, "outbound").is_object()) {
    changed.push_back("outbound " + str(member(overrides, "outbound"), "handler"));
  }
  std::string changes;
  for (const std::string& change : changed) {
    changes += (changes.empty() ? "" : "; ") + change;
  }
  row("overrides:", changes.empty() ? "(none: the policy as is)" : changes);
  row("connections:", str(counters, "openConnections", "0") + " open");
  std::string kernel;
  const json& kernelCounters = member(counters, "kernel");
  if (kernelCounters.is_object()) {
    for (const auto& [name, value] : kernelCounters.items()) {
      kernel += (kernel.empty() ? "" : " ") + name + "=" + value.dump();
    }
  }
  row("kernel counters:", kernel.empty() ? "(none yet)" : kernel);
  // Name-based allow rules: the addresses the sandbox's DNS answers put in the kernel.
  const json& names = member(body, "nameRuleEntries");
  if (names.is_array() && !names.empty()) {
    bool first = true;
    for (const json& e : names) {
      const std::string port = str(e, "port", "0") == "0" ? "*" : str(e, "port");
      row(first ? "name rules:" : "", str(e, "name") + " -> " + str(e, "address") + " " +
                                          str(e, "protocol") + "/" + port + " (" + str(e, "rule") +
                                          ", expires in " + str(e, "expiresInSeconds") + " s)");
      first = false;
    }
  } else {
    row("name rules:", "(none live)");
  }
  for (const json& warning : member(body, "warnings")) {
    out << "  warning: " << (warning.is_string() ? warning.get<std::string>() : warning.dump())
        << "\n";
  }
  return out.str();
}

std::string renderAuditRecord(const json& record) {
  std::string line = str(record, "time") + " " + str(record, "sandbox", "-") + " " +
                     str(record, "layer", "-") + " " + str(record, "decision", "-");
  const std::string host = str(record, "host");
  const std::string method = str(record, "method");
  if (!method.empty() || !host.empty()) {
    line += " " + (method.empty() ? std::string() : method + " ") + host + str(record, "path");
  } else if (!str(record, "orig_dst").empty()) {
    line += " " + str(record, "protocol") + " " + str(record, "orig_dst");
  }
  if (member(record, "status").is_number() && member(record, "status").get<long>() != 0) {
    line += " -> " + str(record, "status");
  }
  if (!str(record, "reason").empty()) {
    line += " reason=" + str(record, "reason");
  }
  if (!str(record, "rule").empty()) {
    line += " rule=\"" + str(record, "rule") + "\"";
  }
  if (!str(record, "handler").empty()) {
    line += " handler=" + str(record, "handler");
  }
  return line + "\n";
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
  // Listed in the order an operator meets them, not alphabetically.
  const char* order[] = {"status",
                         "maps",
                         "sandbox create",
                         "sandbox list",
                         "sandbox show",
                         "sandbox delete",
                         "allow-host",
                         "deny-host",
                         "remove-allowed-host",
                         "remove-denied-host",
                         "set-allowed-hosts",
                         "set-denied-hosts",
                         "set-outbound-by-host",
                         "remove-outbound-by-host",
                         "set-outbound-by-hosts",
                         "set-outbound-handler",
                         "remove-outbound-handler",
                         "secret set",
                         "secret rm",
                         "secret list",
                         "policy apply",
                         "policy validate",
                         "policy show",
                         "policy reload",
                         "audit tail"};
  for (const char* verb : order) {
    out += "  " + verbs().at(verb).synopsis + "\n";
  }
  out +=
      "\n"
      "options:\n"
      "  --socket PATH     control socket (env EGRESSD_SOCKET; default " +
      std::string(control::kDefaultSocket) +
      ")\n"
      "  -s, --sandbox ID  the sandbox of a per-sandbox verb (env EGRESSD_SANDBOX)\n"
      "  --json            print the API's JSON answer (one line)\n"
      "  --pin-root DIR    bpffs directory of egressd's pins (status, maps)\n"
      "  -h, --help        this text\n"
      "exit status: 0 ok, 1 API or connection error, 64 usage error\n";
  return out;
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
    return it->second;
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
  if (a.positionals.empty()) {
    return usage("no verb given");
  }
  std::string verb = a.positionals[0];
  size_t consumed = 1;
  if (groups().contains(verb)) {
    if (a.positionals.size() < 2) {
      return usage("'" + verb + "' needs a sub-command");
    }
    verb += " " + a.positionals[1];
    consumed = 2;
  }
  auto specIt = verbs().find(verb);
  if (specIt == verbs().end()) {
    return usage("unknown verb '" + verb + "'");
  }
  const VerbSpec& spec = specIt->second;
  const std::vector<std::string> pos(a.positionals.begin() + static_cast<long>(consumed),
                                     a.positionals.end());
  if (pos.size() < spec.minArgs ||
      (spec.maxArgs >= 0 && pos.size() > static_cast<size_t>(spec.maxArgs))) {
    return usage((pos.size() < spec.minArgs ? "missing arguments" : "too many arguments") +
                 std::string(" for '") + verb + "'; usage: egressctl " + spec.synopsis);
  }
  static const std::set<std::string> kGlobal = {"socket", "json", "pin-root", "help"};
  for (const auto& [name, value] : a.options) {
    const bool allowed = kGlobal.contains(name) || spec.options.contains(name) ||
                         (spec.perSandbox && name == "sandbox");
    if (!allowed) {
      return usage("option --" + name + " does not apply to '" + verb + "'; usage: egressctl " +
                   spec.synopsis);
    }
  }
  command.verb = verb;
  if (spec.perSandbox) {
    if (auto id = option("sandbox")) {
      command.sandbox = *id;
    } else if (auto env = inputs.env("EGRESSD_SANDBOX")) {
      command.sandbox = *env;
    }
    if (command.sandbox.empty()) {
      return usage("'" + verb + "' needs a sandbox: -s ID (or set EGRESSD_SANDBOX)");
    }
  }
  std::optional<json> params;
  if (auto text = option("params")) {
    auto parsed = parseJsonObject(*text, "--params");
    if (!parsed.ok()) {
      return std::move(parsed).error();
    }
    params = std::move(parsed).value();
  }

  command.kind = Command::Kind::kApi;
  const std::string sb = command.sandbox.empty() ? "" : sandboxPath(command.sandbox);
  auto request = [&](std::string method, std::string path, json body = nullptr) {
    command.method = std::move(method);
    command.path = std::move(path);
    command.body = std::move(body);
  };
  auto handlerBody = [&](const std::string& handler) {
    json body = {{"handler", handler}};
    if (params) {
      body["params"] = *params;
    }
    return body;
  };

  if (verb == "status") {
    command.kind = Command::Kind::kStatus;
    request("GET", "/v1/status");
  } else if (verb == "maps") {
    command.kind = Command::Kind::kMaps;
  } else if (verb == "sandbox create") {
    auto policy = option("policy");
    if (!policy || policy->empty()) {
      return usage("'sandbox create' needs --policy NAME; usage: egressctl " + spec.synopsis);
    }
    if (option("cgroup") && option("create-cgroup")) {
      return usage("give either --cgroup PATH or --create-cgroup, not both");
    }
    command.subject = pos[0];
    json body = {{"id", pos[0]}, {"policy", *policy}};
    if (auto cgroup = option("cgroup")) {
      body["cgroup"] = *cgroup;
    }
    if (option("create-cgroup")) {
      body["createCgroup"] = true;
    }
    if (auto netns = option("netns")) {
      body["netns"] = *netns;
    }
    request("POST", "/v1/sandboxes", std::move(body));
  } else if (verb == "sandbox list") {
    request("GET", "/v1/sandboxes");
  } else if (verb == "sandbox show") {
    command.subject = pos[0];
    request("GET", sandboxPath(pos[0]));
  } else if (verb == "sandbox delete") {
    command.subject = pos[0];
    request("DELETE", sandboxPath(pos[0]));
  } else if (verb == "set-allowed-hosts" || verb == "set-denied-hosts") {
    const char* list = verb == "set-allowed-hosts" ? "/allowed-hosts" : "/denied-hosts";
    request("PUT", sb + list, {{"hosts", pos}});
  } else if (verb == "allow-host") {
    command.subject = pos[0];
    request("POST", sb + "/allowed-hosts", {{"host", pos[0]}});
  } else if (verb == "deny-host") {
    command.subject = pos[0];
    request("POST", sb + "/denied-hosts", {{"host", pos[0]}});
  } else if (verb == "remove-allowed-host") {
    command.subject = pos[0];
    request("DELETE", sb + "/allowed-hosts/" + percentEncode(pos[0]));
  } else if (verb == "remove-denied-host") {
    command.subject = pos[0];
    request("DELETE", sb + "/denied-hosts/" + percentEncode(pos[0]));
  } else if (verb == "set-outbound-by-host") {
    command.subject = pos[0];
    request("PUT", sb + "/outbound-by-host/" + percentEncode(pos[0]), handlerBody(pos[1]));
  } else if (verb == "remove-outbound-by-host") {
    command.subject = pos[0];
    request("DELETE", sb + "/outbound-by-host/" + percentEncode(pos[0]));
  } else if (verb == "set-outbound-by-hosts") {
    std::string text = pos[0];
    std::string what = "the handler map";
    if (text.starts_with('@')) {
      what = text.substr(1);
      auto file = readInputFile(inputs, text.substr(1), "handler map file " + what);
      if (!file.ok()) {
        return std::move(file).error();
      }
      text = std::move(file).value();
    }
    auto byHost = parseJsonObject(text, what);
    if (!byHost.ok()) {
      return std::move(byHost).error();
    }
    for (const auto& [host, entry] : byHost->items()) {
      if (!entry.is_string() && !(entry.is_object() && entry.contains("handler"))) {
        return usage(what + ": host '" + host +
                     "' must map to a handler name or to {\"handler\": NAME, \"params\": {...}}");
      }
    }
    request("PUT", sb + "/outbound-by-host", {{"byHost", *byHost}});
  } else if (verb == "set-outbound-handler") {
    command.subject = pos[0];
    request("PUT", sb + "/outbound", handlerBody(pos[0]));
  } else if (verb == "remove-outbound-handler") {
    request("DELETE", sb + "/outbound");
  } else if (verb == "secret set") {
    command.subject = pos[0];
    auto value = option("value");
    auto fromFile = option("from-file");
    std::string secret;
    if (value && fromFile) {
      return usage("give either --value or --from-file, not both");
    }
    if (value) {
      secret = *value;
    } else if (fromFile) {
      auto file = readInputFile(inputs, *fromFile, "secret file");
      if (!file.ok()) {
        return std::move(file).error();
      }
      secret = stripOneNewline(std::move(file).value());
    } else {
      auto in = inputs.readStdin();
      if (!in.ok()) {
        return Error(EIO, in.error().message());
      }
      secret = stripOneNewline(std::move(in).value());
    }
    request("PUT", secretPath(pos[0]), {{"value", secret}});
  } else if (verb == "secret rm") {
    command.subject = pos[0];
    request("DELETE", secretPath(pos[0]));
  } else if (verb == "secret list") {
    request("GET", "/v1/secrets");
  } else if (verb == "policy apply" || verb == "policy validate") {
    command.subject = pos[0];
    auto file = readInputFile(inputs, pos[0], "policy file");
    if (!file.ok()) {
      return std::move(file).error();
    }
    request("POST", verb == "policy apply" ? "/v1/policies" : "/v1/policies/validate",
            {{"yaml", *file}, {"source", pos[0]}});
  } else if (verb == "policy show") {
    if (pos.empty()) {
      request("GET", "/v1/policies");
    } else {
      command.subject = pos[0];
      request("GET", "/v1/policies/" + percentEncode(pos[0]));
    }
  } else if (verb == "policy reload") {
    request("POST", "/v1/reload");
  } else if (verb == "audit tail") {
    std::string query;
    if (auto lines = option("lines")) {
      unsigned long n = 0;
      auto [end, ec] = std::from_chars(lines->data(), lines->data() + lines->size(), n);
      if (lines->empty() || ec != std::errc() || end != lines->data() + lines->size() || n == 0) {
        return usage("-n wants a positive number of lines, not '" + *lines + "'");
      }
      query += "lines=" + std::to_string(n);
    }
    if (auto id = option("sandbox")) {
      command.sandbox = *id;
      query += (query.empty() ? "" : "&") + std::string("sandbox=") + percentEncode(*id);
    }
    request("GET", "/v1/audit" + (query.empty() ? "" : "?" + query));
  }
  return command;
}

std::string renderDaemonStatus(const json& status) {
  std::ostringstream out;
  out << "daemon: egressd " << str(status, "version", "(unknown version)") << " on "
      << str(status, "socket") << "\n";
  out << "  sandboxes: " << str(status, "sandboxes", "0")
      << ", policies: " << str(status, "policies", "0") << "\n";
  out << "  state dir: " << str(status, "stateDir", "-")
      << ", pin root: " << str(status, "pinRoot", "-") << "\n";
  const json& persist = member(status, "persistSecrets");
  out << "  API-set secrets: "
      << (persist.is_boolean() && persist.get<bool>() ? "persisted in the state dir"
                                                      : "in memory only (lost on restart)")
      << "\n";
  return out.str();
}

std::string renderHuman(const Command& command, const json& body) {
  const std::string& verb = command.verb;
  const std::string& sb = command.sandbox;
  const json& effective = member(body, "effective");
  if (verb == "status") {
    return renderDaemonStatus(body);
  }
  if (verb == "sandbox create") {
    return "created sandbox " + str(body, "id", command.subject) + "\n" + renderDetail(body);
  }
  if (verb == "sandbox show") {
    return renderDetail(body);
  }
  if (verb == "sandbox delete") {
    return "deleted sandbox " + str(body, "deleted", command.subject) + "\n";
  }
  if (verb == "sandbox list") {
    const json& list = member(body, "sandboxes");
    if (!list.is_array() || list.empty()) {
      return "no sandboxes\n";
    }
    std::vector<std::vector<std::string>> rows;
    for (const json& s : list) {
      rows.push_back(
          {str(s, "id"), str(s, "policy"), str(s, "openConnections", "0"), str(s, "cgroup")});
    }
    return table({"ID", "POLICY", "CONNECTIONS", "CGROUP"}, rows);
  }
  if (verb == "set-allowed-hosts" || verb == "allow-host" || verb == "remove-allowed-host") {
    return sb + ": allowedHosts now " + joinList(member(effective, "allowedHosts")) + "\n";
  }
  if (verb == "set-denied-hosts" || verb == "deny-host" || verb == "remove-denied-host") {
    return sb + ": deniedHosts now " + joinList(member(effective, "deniedHosts")) + "\n";
  }
  if (verb == "set-outbound-by-host" || verb == "remove-outbound-by-host" ||
      verb == "set-outbound-by-hosts") {
    std::string list;
    for (const json& entry : member(effective, "outboundByHost")) {
      list += (list.empty() ? "" : ", ") + str(entry, "host") + " -> " + str(entry, "handler") +
              fromSuffix(entry);
    }
    return sb + ": outboundByHost now " + (list.empty() ? "(none)" : list) + "\n";
  }
  if (verb == "set-outbound-handler" || verb == "remove-outbound-handler") {
    const json& outbound = member(effective, "outbound");
    return sb + ": outbound handler now " +
           (outbound.is_object() ? str(outbound, "handler") + fromSuffix(outbound)
                                 : std::string("none")) +
           "\n";
  }
  if (verb == "secret set") {
    const json& persisted = member(body, "persisted");
    return "secret " + str(body, "name", command.subject) + " set" +
           (persisted.is_boolean() && persisted.get<bool>()
                ? " (persisted)"
                : " (in memory only: lost when egressd restarts)") +
           "\n";
  }
  if (verb == "secret rm") {
    return "secret " + str(body, "removed", command.subject) + " removed\n";
  }
  if (verb == "secret list") {
    const json& list = member(body, "secrets");
    if (!list.is_array() || list.empty()) {
      return "no secrets\n";
    }
    std::vector<std::vector<std::string>> rows;
    for (const json& s : list) {
      rows.push_back({str(s, "name"), str(s, "source")});
    }
    return table({"NAME", "SOURCE"}, rows);
  }
  if (verb == "policy apply" || verb == "policy validate") {
    std::string out = verb == "policy apply"
                          ? "policy " + str(body, "name") + " applied; sandboxes using it: " +
                                joinList(member(body, "sandboxes")) + "\n"
                          : command.subject + ": valid (policy " + str(body, "name") + ")\n";
    for (const json& warning : member(body, "warnings")) {
      out +=
          "warning: " + (warning.is_string() ? warning.get<std::string>() : warning.dump()) + "\n";
    }
    return out;
  }
  if (verb == "policy show") {
    if (command.subject.empty()) {
      const json& list = member(body, "policies");
      if (!list.is_array() || list.empty()) {
        return "no policies\n";
      }
      std::vector<std::vector<std::string>> rows;
      for (const json& p : list) {
        rows.push_back(
            {str(p, "name"), str(p, "source", "-"), joinList(member(p, "sandboxes"), "-")});
      }
      return table({"NAME", "SOURCE", "SANDBOXES"}, rows);
    }
    // A YAML comment on top keeps the output a valid policy file.
    std::string yaml = str(body, "yaml");
    if (!yaml.empty() && !yaml.ends_with('\n')) {
      yaml += '\n';
    }
    return "# policy " + str(body, "name", command.subject) + " from " +
           str(body, "source", "(API)") + "\n" + yaml;
  }
  if (verb == "policy reload") {
    const json& list = member(body, "policies");
    return "reloaded " + std::to_string(list.is_array() ? list.size() : 0) +
           " policies: " + joinList(list) + "\n";
  }
  if (verb == "audit tail") {
    const json& records = member(body, "records");
    if (!records.is_array() || records.empty()) {
      return "no audit records\n";
    }
    std::string out;
    for (const json& record : records) {
      out += renderAuditRecord(record);
    }
    return out;
  }
  return body.dump(2) + "\n";
}

}  // namespace egressd::cli
