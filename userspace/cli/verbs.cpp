// egressctl's verbs, one entry each: arguments, options, synopsis, request builder and
// human renderer. Help and shell completion are generated from this table.
#include <algorithm>
#include <charconv>
#include <set>
#include <utility>

#include "cli/commands.h"
#include "cli/render.h"
#include "cli/verb_context.h"

namespace egressd::cli {

namespace {

using control::percentEncode;
using detail::parseJsonObject;
using detail::readInputFile;
using detail::sandboxPath;
using detail::secretPath;
using detail::stripOneNewline;
using detail::usage;
using nlohmann::json;
using render::member;
using render::str;

// --- the verbs ----------------------------------------------------------------------------

std::string sandboxRender(const Command& c, const json& body, const char* list) {
  return c.sandbox + ": " + list + " now " + render::joinList(member(body["effective"], list)) +
         "\n";
}

std::string outboundByHostRender(const Command& c, const json& body) {
  std::string list;
  for (const json& entry : member(member(body, "effective"), "outboundByHost")) {
    list += (list.empty() ? "" : ", ") + str(entry, "host") + " -> " + str(entry, "handler") +
            render::fromSuffix(entry);
  }
  return c.sandbox + ": outboundByHost now " + (list.empty() ? "(none)" : list) + "\n";
}

std::string outboundRender(const Command& c, const json& body) {
  const json& outbound = member(member(body, "effective"), "outbound");
  return c.sandbox + ": outbound handler now " +
         (outbound.is_object() ? str(outbound, "handler") + render::fromSuffix(outbound)
                               : std::string("none")) +
         "\n";
}

std::string warningsOf(const json& body) {
  std::string out;
  for (const json& warning : member(body, "warnings")) {
    out += "warning: " + (warning.is_string() ? warning.get<std::string>() : warning.dump()) + "\n";
  }
  return out;
}

Status runOptions(VerbContext& x, bool deleteAfter) {
  RunRequest run;
  run.argv = x.trailing;
  run.user = x.option("user").value_or("");
  run.env = x.all("env");
  run.envFiles = x.all("env-file");
  run.allowIoUring = x.flag("allow-io-uring");
  run.deleteAfter = deleteAfter;
  if (run.argv.empty()) {
    return usage("'" + x.verb.name + "' needs a command after --; usage: egressctl " +
                 x.verb.synopsis);
  }
  x.command.run = std::move(run);
  return okStatus();
}

std::vector<Verb> makeVerbs() {
  using K = Command::Kind;
  using V = ValueKind;
  auto hostVerb = [](const std::string& name, const std::string& method, const char* list) {
    Verb v{name, 1, 1, {}, true, name + " -s ID HOST"};
    v.build = [method, list](VerbContext& x) {
      x.command.subject = x.pos[0];
      const std::string base = x.sandboxPath() + "/" + list;
      if (method == "DELETE") {
        x.request(method, base + "/" + percentEncode(x.pos[0]));
      } else {
        x.request(method, base, {{"host", x.pos[0]}});
      }
      return okStatus();
    };
    const char* field = std::string(list) == "allowed-hosts" ? "allowedHosts" : "deniedHosts";
    v.render = [field](const Command& c, const json& b) { return sandboxRender(c, b, field); };
    return v;
  };
  std::vector<Verb> verbs;
  {
    Verb v{"status", 0, 0, {}, false, "status"};
    v.kind = K::kStatus;
    v.build = [](VerbContext& x) {
      x.request("GET", "/v1/status");
      return okStatus();
    };
    v.render = [](const Command&, const json& b) { return renderDaemonStatus(b); };
    verbs.push_back(v);
  }
  {
    Verb v{"maps", 0, 0, {}, false, "maps"};
    v.kind = K::kMaps;
    verbs.push_back(v);
  }
  {
    Verb v{"sandbox create",
           1,
           1,
           {"policy", "cgroup", "create-cgroup", "pid", "container", "netns", "run", "user", "env",
            "env-file", "allow-io-uring"},
           false,
           "sandbox create ID --policy NAME [--cgroup PATH [--netns PATH] | --create-cgroup | "
           "--pid PID | --container ID] [--run [RUN OPTIONS] -- CMD ARGS]"};
    v.takesCommand = true;
    v.build = [](VerbContext& x) -> Status {
      auto policy = x.option("policy");
      if (!policy || policy->empty()) {
        return usage("'sandbox create' needs --policy NAME; usage: egressctl " + x.verb.synopsis);
      }
      const int placements = static_cast<int>(x.option("cgroup").has_value()) +
                             static_cast<int>(x.flag("create-cgroup")) +
                             static_cast<int>(x.option("pid").has_value()) +
                             static_cast<int>(x.option("container").has_value());
      if (placements > 1) {
        return usage("give one of --cgroup PATH, --create-cgroup, --pid PID, --container ID");
      }
      if (x.option("netns") && (x.option("pid") || x.option("container"))) {
        return usage(
            "--netns goes with --cgroup: --pid and --container take the network "
            "namespace of the process or container");
      }
      if (x.flag("run")) {
        EGRESSD_TRY(runOptions(x, true));
        x.command.sandbox = x.pos[0];
      } else if (!x.trailing.empty()) {
        return usage("a command after -- needs --run (sandbox create ID ... --run -- CMD)");
      } else if (x.option("user") || !x.all("env").empty() || !x.all("env-file").empty() ||
                 x.flag("allow-io-uring")) {
        return usage("--user, --env, --env-file and --allow-io-uring go with --run");
      }
      x.command.subject = x.pos[0];
      json body = {{"id", x.pos[0]}, {"policy", *policy}};
      if (auto cgroup = x.option("cgroup")) {
        body["cgroup"] = *cgroup;
      }
      if (x.flag("create-cgroup")) {
        body["createCgroup"] = true;
      }
      // The pid is sent as typed and resolved by the daemon, which checks that it shares
      // egressctl's pid namespace (daemon/sandbox_target.h says why).
      if (auto pid = x.option("pid")) {
        int value = 0;
        const char* end = pid->data() + pid->size();
        auto [ptr, ec] = std::from_chars(pid->data(), end, value);
        if (ec != std::errc() || ptr != end || value <= 0) {
          return usage("--pid needs a process id, not '" + *pid + "'");
        }
        body["pid"] = value;
      }
      if (auto container = x.option("container")) {
        body["container"] = *container;
      }
      if (auto netns = x.option("netns")) {
        body["netns"] = *netns;
      }
      x.request("POST", "/v1/sandboxes", std::move(body));
      return okStatus();
    };
    v.render = [](const Command& c, const json& b) {
      return "created sandbox " + str(b, "id", c.subject) + "\n" + render::renderDetail(b);
    };
    verbs.push_back(v);
  }
  {
    Verb v{"sandbox list", 0, 0, {}, false, "sandbox list"};
    v.build = [](VerbContext& x) {
      x.request("GET", "/v1/sandboxes");
      return okStatus();
    };
    v.render = [](const Command&, const json& body) -> std::string {
      const json& list = member(body, "sandboxes");
      if (!list.is_array() || list.empty()) {
        return "no sandboxes\n";
      }
      std::vector<std::vector<std::string>> rows;
      for (const json& s : list) {
        rows.push_back(
            {str(s, "id"), str(s, "policy"), str(s, "openConnections", "0"), str(s, "cgroup")});
      }
      return render::table({"ID", "POLICY", "CONNECTIONS", "CGROUP"}, rows);
    };
    verbs.push_back(v);
  }
  {
    Verb v{"sandbox show", 1, 1, {}, false, "sandbox show ID"};
    v.args = V::kSandbox;
    v.build = [](VerbContext& x) {
      x.command.subject = x.pos[0];
      x.request("GET", sandboxPath(x.pos[0]));
      return okStatus();
    };
    v.render = [](const Command&, const json& b) { return render::renderDetail(b); };
    verbs.push_back(v);
  }
  {
    Verb v{"sandbox delete", 1, 1, {}, false, "sandbox delete ID"};
    v.args = V::kSandbox;
    v.build = [](VerbContext& x) {
      x.command.subject = x.pos[0];
      x.request("DELETE", sandboxPath(x.pos[0]));
      return okStatus();
    };
    v.render = [](const Command& c, const json& b) {
      return "deleted sandbox " + str(b, "deleted", c.subject) + "\n";
    };
    verbs.push_back(v);
  }
  {
    Verb v{
        "run", 0,
        0,     {"user", "env", "env-file", "allow-io-uring"},
        true,  "run -s ID [--user U] [--env NAME[=V]]... [--env-file F] -- CMD ARGS   (as root)"};
    v.kind = K::kRun;
    v.takesCommand = true;
    v.build = [](VerbContext& x) -> Status {
      EGRESSD_TRY(runOptions(x, false));
      x.request("GET", x.sandboxPath() + "/spawn");
      return okStatus();
    };
    verbs.push_back(v);
  }
  verbs.push_back(hostVerb("allow-host", "POST", "allowed-hosts"));
  verbs.push_back(hostVerb("deny-host", "POST", "denied-hosts"));
  verbs.push_back(hostVerb("remove-allowed-host", "DELETE", "allowed-hosts"));
  verbs.push_back(hostVerb("remove-denied-host", "DELETE", "denied-hosts"));
  for (const char* list : {"allowed", "denied"}) {
    const std::string name = std::string("set-") + list + "-hosts";
    Verb v{name, 0, -1, {}, true, name + " -s ID [HOST...]"};
    const std::string segment = std::string("/") + list + "-hosts";
    v.build = [segment](VerbContext& x) {
      x.request("PUT", x.sandboxPath() + segment, {{"hosts", x.pos}});
      return okStatus();
    };
    const char* field = std::string(list) == "allowed" ? "allowedHosts" : "deniedHosts";
    v.render = [field](const Command& c, const json& b) { return sandboxRender(c, b, field); };
    verbs.push_back(v);
  }
  {
    Verb v{"set-outbound-by-host",
           2,
           2,
           {"params"},
           true,
           "set-outbound-by-host -s ID HOST HANDLER [--params JSON]"};
    v.build = [](VerbContext& x) -> Status {
      x.command.subject = x.pos[0];
      auto body = x.handlerBody(x.pos[1]);
      if (!body.ok()) {
        return std::move(body).error();
      }
      x.request("PUT", x.sandboxPath() + "/outbound-by-host/" + percentEncode(x.pos[0]), *body);
      return okStatus();
    };
    v.render = outboundByHostRender;
    verbs.push_back(v);
  }
  {
    Verb v{"remove-outbound-by-host", 1, 1, {}, true, "remove-outbound-by-host -s ID HOST"};
    v.build = [](VerbContext& x) {
      x.command.subject = x.pos[0];
      x.request("DELETE", x.sandboxPath() + "/outbound-by-host/" + percentEncode(x.pos[0]));
      return okStatus();
    };
    v.render = outboundByHostRender;
    verbs.push_back(v);
  }
  {
    Verb v{"set-outbound-by-hosts",
           1,
           1,
           {},
           true,
           "set-outbound-by-hosts -s ID JSON|@FILE   ({\"host\": \"handler\"} or "
           "{\"host\": {\"handler\": ..., \"params\": {...}}})"};
    v.build = [](VerbContext& x) -> Status {
      std::string text = x.pos[0];
      std::string what = "the handler map";
      if (text.starts_with('@')) {
        what = text.substr(1);
        auto file = readInputFile(x.inputs, text.substr(1), "handler map file " + what);
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
      x.request("PUT", x.sandboxPath() + "/outbound-by-host", {{"byHost", *byHost}});
      return okStatus();
    };
    v.render = outboundByHostRender;
    verbs.push_back(v);
  }
  {
    Verb v{"set-outbound-handler",
           1,
           1,
           {"params"},
           true,
           "set-outbound-handler -s ID HANDLER [--params JSON]"};
    v.build = [](VerbContext& x) -> Status {
      x.command.subject = x.pos[0];
      auto body = x.handlerBody(x.pos[0]);
      if (!body.ok()) {
        return std::move(body).error();
      }
      x.request("PUT", x.sandboxPath() + "/outbound", *body);
      return okStatus();
    };
    v.render = outboundRender;
    verbs.push_back(v);
  }
  {
    Verb v{"remove-outbound-handler", 0, 0, {}, true, "remove-outbound-handler -s ID"};
    v.build = [](VerbContext& x) {
      x.request("DELETE", x.sandboxPath() + "/outbound");
      return okStatus();
    };
    v.render = outboundRender;
    verbs.push_back(v);
  }
  {
    Verb v{"secret set",
           1,
           1,
           {"value", "from-file"},
           false,
           "secret set NAME [--value V | --from-file F]   (default: value from stdin)"};
    v.build = [](VerbContext& x) -> Status {
      x.command.subject = x.pos[0];
      auto value = x.option("value");
      auto fromFile = x.option("from-file");
      std::string secret;
      if (value && fromFile) {
        return usage("give either --value or --from-file, not both");
      }
      if (value) {
        secret = *value;
      } else if (fromFile) {
        auto file = readInputFile(x.inputs, *fromFile, "secret file");
        if (!file.ok()) {
          return std::move(file).error();
        }
        secret = stripOneNewline(std::move(file).value());
      } else {
        auto in = x.inputs.readStdin();
        if (!in.ok()) {
          return Error(EIO, in.error().message());
        }
        secret = stripOneNewline(std::move(in).value());
      }
      x.request("PUT", secretPath(x.pos[0]), {{"value", secret}});
      return okStatus();
    };
    v.render = [](const Command& c, const json& body) {
      const json& persisted = member(body, "persisted");
      return "secret " + str(body, "name", c.subject) + " set" +
             (persisted.is_boolean() && persisted.get<bool>()
                  ? " (persisted)"
                  : " (in memory only: lost when egressd restarts)") +
             "\n";
    };
    verbs.push_back(v);
  }
  {
    Verb v{"secret rm", 1, 1, {}, false, "secret rm NAME"};
    v.build = [](VerbContext& x) {
      x.command.subject = x.pos[0];
      x.request("DELETE", secretPath(x.pos[0]));
      return okStatus();
    };
    v.render = [](const Command& c, const json& b) {
      return "secret " + str(b, "removed", c.subject) + " removed\n";
    };
    verbs.push_back(v);
  }
  {
    Verb v{"secret list", 0, 0, {}, false, "secret list"};
    v.build = [](VerbContext& x) {
      x.request("GET", "/v1/secrets");
      return okStatus();
    };
    v.render = [](const Command&, const json& body) -> std::string {
      const json& list = member(body, "secrets");
      if (!list.is_array() || list.empty()) {
        return "no secrets\n";
      }
      std::vector<std::vector<std::string>> rows;
      for (const json& s : list) {
        rows.push_back({str(s, "name"), str(s, "source")});
      }
      return render::table({"NAME", "SOURCE"}, rows);
    };
    verbs.push_back(v);
  }
  for (const char* sub : {"apply", "validate"}) {
    const std::string name = std::string("policy ") + sub;
    Verb v{name, 1, 1, {}, false, name + " FILE"};
    v.args = V::kFile;
    const bool apply = std::string(sub) == "apply";
    v.build = [apply](VerbContext& x) -> Status {
      x.command.subject = x.pos[0];
      auto file = readInputFile(x.inputs, x.pos[0], "policy file");
      if (!file.ok()) {
        return std::move(file).error();
      }
      x.request("POST", apply ? "/v1/policies" : "/v1/policies/validate",
                {{"yaml", *file}, {"source", x.pos[0]}});
      return okStatus();
    };
    v.render = [apply](const Command& c, const json& body) {
      return (apply ? "policy " + str(body, "name") + " applied; sandboxes using it: " +
                          render::joinList(member(body, "sandboxes")) + "\n"
                    : c.subject + ": valid (policy " + str(body, "name") + ")\n") +
             warningsOf(body);
    };
    verbs.push_back(v);
  }
  {
    Verb v{"policy show", 0, 1, {}, false, "policy show [NAME]"};
    v.args = V::kPolicy;
    v.build = [](VerbContext& x) {
      if (x.pos.empty()) {
        x.request("GET", "/v1/policies");
      } else {
        x.command.subject = x.pos[0];
        x.request("GET", "/v1/policies/" + percentEncode(x.pos[0]));
      }
      return okStatus();
    };
    v.render = [](const Command& c, const json& body) -> std::string {
      if (c.subject.empty()) {
        const json& list = member(body, "policies");
        if (!list.is_array() || list.empty()) {
          return "no policies\n";
        }
        std::vector<std::vector<std::string>> rows;
        for (const json& p : list) {
          rows.push_back({str(p, "name"), str(p, "source", "-"),
                          render::joinList(member(p, "sandboxes"), "-")});
        }
        return render::table({"NAME", "SOURCE", "SANDBOXES"}, rows);
      }
      // A YAML comment on top keeps the output a valid policy file.
      std::string yaml = str(body, "yaml");
      if (!yaml.empty() && !yaml.ends_with('\n')) {
        yaml += '\n';
      }
      return "# policy " + str(body, "name", c.subject) + " from " + str(body, "source", "(API)") +
             "\n" + yaml;
    };
    verbs.push_back(v);
  }
  {
    Verb v{"policy reload", 0, 0, {}, false, "policy reload"};
    v.build = [](VerbContext& x) {
      x.request("POST", "/v1/reload");
      return okStatus();
    };
    v.render = [](const Command&, const json& body) {
      const json& list = member(body, "policies");
      return "reloaded " + std::to_string(list.is_array() ? list.size() : 0) +
             " policies: " + render::joinList(list) + "\n";
    };
    verbs.push_back(v);
  }
  {
    Verb v{"audit tail",
           0,
           0,
           {"lines", "sandbox", "follow", "layer", "decision"},
           false,
           "audit tail [-f] [-n N] [--sandbox ID] [--layer kernel|proxy|dns|control] "
           "[--decision allow|deny|error|delete]"};
    v.build = [](VerbContext& x) -> Status {
      std::string query;
      auto add = [&](const std::string& key, const std::string& value) {
        query += (query.empty() ? "" : "&") + key + "=" + percentEncode(value);
      };
      if (auto lines = x.option("lines")) {
        unsigned long n = 0;
        auto [end, ec] = std::from_chars(lines->data(), lines->data() + lines->size(), n);
        if (lines->empty() || ec != std::errc() || end != lines->data() + lines->size() || n == 0) {
          return usage("-n wants a positive number of lines, not '" + *lines + "'");
        }
        add("lines", std::to_string(n));
      }
      if (auto id = x.option("sandbox")) {
        x.command.sandbox = *id;
        add("sandbox", *id);
      }
      for (const auto& [name, allowed] :
           {std::pair{"layer", std::vector<std::string>{"kernel", "proxy", "dns", "control"}},
            std::pair{"decision", std::vector<std::string>{"allow", "deny", "error", "delete"}}}) {
        if (auto value = x.option(name)) {
          if (std::find(allowed.begin(), allowed.end(), *value) == allowed.end()) {
            std::string list;
            for (const std::string& a : allowed) {
              list += (list.empty() ? "" : "|") + a;
            }
            return usage("--" + std::string(name) + " is " + list + ", not '" + *value + "'");
          }
          add(name, *value);
        }
      }
      x.command.follow = x.flag("follow");
      x.request("GET", "/v1/audit" + (query.empty() ? "" : "?" + query));
      return okStatus();
    };
    v.render = [](const Command&, const json& body) -> std::string {
      const json& records = member(body, "records");
      if (!records.is_array() || records.empty()) {
        return "no audit records\n";
      }
      std::string out = auditHeader();
      for (const json& record : records) {
        out += renderAuditRecord(record);
      }
      return out;
    };
    verbs.push_back(v);
  }
  {
    Verb v{"completion", 1,     1,
           {},           false, "completion bash|zsh   (source <(egressctl completion bash))"};
    v.kind = K::kCompletion;
    v.args = V::kShell;
    v.build = [](VerbContext& x) -> Status {
      if (x.pos[0] != "bash" && x.pos[0] != "zsh") {
        return usage("completion is for bash or zsh, not '" + x.pos[0] + "'");
      }
      x.command.subject = x.pos[0];
      return okStatus();
    };
    verbs.push_back(v);
  }
  return verbs;
}

}  // namespace

const std::vector<Verb>& verbTable() {
  static const std::vector<Verb> kVerbs = makeVerbs();
  return kVerbs;
}

const std::vector<std::string>& verbGroups() {
  static const std::vector<std::string> kGroups = {"sandbox", "secret", "policy", "audit"};
  return kGroups;
}

const std::vector<OptionInfo>& optionTable() {
  using V = ValueKind;
  static const std::vector<OptionInfo> kOptions = {
      {"socket", "", true, V::kFile},
      {"pin-root", "", true, V::kDir},
      {"json", "", false, V::kNone},
      {"help", "-h", false, V::kNone},
      {"version", "", false, V::kNone},
      {"sandbox", "-s", true, V::kSandbox},
      {"policy", "", true, V::kPolicy},
      {"cgroup", "", true, V::kDir},
      {"create-cgroup", "", false, V::kNone},
      {"netns", "", true, V::kFile},
      {"params", "", true, V::kNone},
      {"value", "", true, V::kNone},
      {"from-file", "", true, V::kFile},
      {"lines", "-n", true, V::kNone},
      {"follow", "-f", false, V::kNone},
      {"layer", "", true, V::kLayer},
      {"decision", "", true, V::kDecision},
      {"run", "", false, V::kNone},
      {"user", "", true, V::kUser},
      {"env", "", true, V::kNone, true},
      {"env-file", "", true, V::kFile, true},
      {"allow-io-uring", "", false, V::kNone},
      {"pid", "", true, V::kNone},
      {"container", "", true, V::kNone},
  };
  return kOptions;
}

const std::set<std::string>& globalOptions() {
  static const std::set<std::string> kGlobal = {"socket", "json", "pin-root", "help", "version"};
  return kGlobal;
}

}  // namespace egressd::cli
