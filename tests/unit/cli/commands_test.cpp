// egressctl's argv -> (method, path, body) mapping, usage errors and human rendering,
// with fake env, files and stdin.
#include "cli/commands.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

namespace egressd::cli {
namespace {

using nlohmann::json;

struct FakeInputs {
  std::map<std::string, std::string> env;
  std::map<std::string, std::string> files;
  std::string stdinText;
  int stdinReads = 0;

  Inputs inputs() {
    Inputs in;
    in.env = [this](const std::string& name) -> std::optional<std::string> {
      auto it = env.find(name);
      return it == env.end() ? std::nullopt : std::optional<std::string>(it->second);
    };
    in.readFile = [this](const std::string& path) -> Result<std::string> {
      auto it = files.find(path);
      if (it == files.end()) {
        return Error(ENOENT, "open " + path + ": No such file or directory");
      }
      return it->second;
    };
    in.readStdin = [this]() -> Result<std::string> {
      ++stdinReads;
      return stdinText;
    };
    return in;
  }
};

class CliTest : public ::testing::Test {
 protected:
  Command parse(const std::vector<std::string>& args) {
    auto command = parseCommand(args, fake_.inputs());
    if (!command.ok()) {
      ADD_FAILURE() << "parse failed: " << command.error().message();
      return Command();
    }
    return std::move(command).value();
  }
  // The usage error's message; fails the test when parsing succeeds.
  std::string usageError(const std::vector<std::string>& args) {
    auto command = parseCommand(args, fake_.inputs());
    if (command.ok()) {
      ADD_FAILURE() << "expected a usage error";
      return "";
    }
    EXPECT_EQ(exitCodeFor(command.error()), kExitUsage) << command.error().message();
    return command.error().message();
  }
  void expectRequest(const std::vector<std::string>& args, const std::string& method,
                     const std::string& path, const json& body = nullptr) {
    Command c = parse(args);
    EXPECT_EQ(c.kind, Command::Kind::kApi);
    EXPECT_EQ(c.method, method);
    EXPECT_EQ(c.path, path);
    EXPECT_EQ(c.body, body) << c.body.dump();
  }

  FakeInputs fake_;
};

TEST_F(CliTest, SandboxVerbs) {
  expectRequest({"sandbox", "create", "sb1", "--policy", "agent", "--cgroup", "/sys/fs/cgroup/x"},
                "POST", "/v1/sandboxes",
                {{"id", "sb1"}, {"policy", "agent"}, {"cgroup", "/sys/fs/cgroup/x"}});
  expectRequest(
      {"sandbox", "create", "sb1", "--policy=agent", "--create-cgroup", "--netns", "/run/netns/n1"},
      "POST", "/v1/sandboxes",
      {{"id", "sb1"}, {"policy", "agent"}, {"createCgroup", true}, {"netns", "/run/netns/n1"}});
  expectRequest({"sandbox", "create", "sb1", "--policy", "agent", "--pid", "4242"}, "POST",
                "/v1/sandboxes", {{"id", "sb1"}, {"policy", "agent"}, {"pid", 4242}});
  expectRequest({"sandbox", "create", "sb1", "--policy", "agent", "--container", "0123456789ab"},
                "POST", "/v1/sandboxes",
                {{"id", "sb1"}, {"policy", "agent"}, {"container", "0123456789ab"}});
  expectRequest({"sandbox", "list"}, "GET", "/v1/sandboxes");
  expectRequest({"sandbox", "show", "sb1"}, "GET", "/v1/sandboxes/sb1");
  expectRequest({"sandbox", "delete", "a b"}, "DELETE", "/v1/sandboxes/a%20b");
}

TEST_F(CliTest, HostListVerbs) {
  expectRequest({"-s", "sb1", "set-allowed-hosts", "a.test", "*.b.test"}, "PUT",
                "/v1/sandboxes/sb1/allowed-hosts", {{"hosts", {"a.test", "*.b.test"}}});
  // Zero hosts is a valid list: nothing allowed.
  expectRequest({"set-allowed-hosts", "--sandbox", "sb1"}, "PUT", "/v1/sandboxes/sb1/allowed-hosts",
                {{"hosts", json::array()}});
  expectRequest({"set-denied-hosts", "-ssb1", "x.test"}, "PUT", "/v1/sandboxes/sb1/denied-hosts",
                {{"hosts", {"x.test"}}});
  expectRequest({"allow-host", "-s", "sb1", "a.test"}, "POST", "/v1/sandboxes/sb1/allowed-hosts",
                {{"host", "a.test"}});
  expectRequest({"deny-host", "-s", "sb1", "*.evil.example"}, "POST",
                "/v1/sandboxes/sb1/denied-hosts", {{"host", "*.evil.example"}});
  expectRequest({"remove-allowed-host", "-s", "sb1", "*.a.test"}, "DELETE",
                "/v1/sandboxes/sb1/allowed-hosts/%2A.a.test");
  expectRequest({"remove-denied-host", "-s", "sb1", "x.test"}, "DELETE",
                "/v1/sandboxes/sb1/denied-hosts/x.test");
}

TEST_F(CliTest, HandlerVerbs) {
  expectRequest({"-s", "sb1", "set-outbound-by-host", "api.test", "gh"}, "PUT",
                "/v1/sandboxes/sb1/outbound-by-host/api.test", {{"handler", "gh"}});
  expectRequest(
      {"-s", "sb1", "set-outbound-by-host", "api.test", "gh", "--params", R"({"org": "egressd"})"},
      "PUT", "/v1/sandboxes/sb1/outbound-by-host/api.test",
      {{"handler", "gh"}, {"params", {{"org", "egressd"}}}});
  expectRequest({"-s", "sb1", "remove-outbound-by-host", "api.test"}, "DELETE",
                "/v1/sandboxes/sb1/outbound-by-host/api.test");
  expectRequest({"-s", "sb1", "set-outbound-handler", "noHttp"}, "PUT",
                "/v1/sandboxes/sb1/outbound", {{"handler", "noHttp"}});
  expectRequest({"-s", "sb1", "set-outbound-handler", "kv", "--params", "{}"}, "PUT",
                "/v1/sandboxes/sb1/outbound", {{"handler", "kv"}, {"params", json::object()}});
  expectRequest({"-s", "sb1", "remove-outbound-handler"}, "DELETE", "/v1/sandboxes/sb1/outbound");
  const json byHost = {{"a.test", "gh"}, {"b.test", {{"handler", "kv"}, {"params", {{"k", 1}}}}}};
  expectRequest({"-s", "sb1", "set-outbound-by-hosts", byHost.dump()}, "PUT",
                "/v1/sandboxes/sb1/outbound-by-host", {{"byHost", byHost}});
  fake_.files["/etc/by-host.json"] = byHost.dump(2);
  expectRequest({"-s", "sb1", "set-outbound-by-hosts", "@/etc/by-host.json"}, "PUT",
                "/v1/sandboxes/sb1/outbound-by-host", {{"byHost", byHost}});
}

TEST_F(CliTest, ParamsMustBeAJsonObject) {
  EXPECT_NE(usageError({"-s", "sb1", "set-outbound-handler", "h", "--params", "{nope"})
                .find("--params is not valid JSON"),
            std::string::npos);
  EXPECT_NE(usageError({"-s", "sb1", "set-outbound-handler", "h", "--params", "[1,2]"})
                .find("--params must be a JSON object"),
            std::string::npos);
  EXPECT_NE(usageError({"-s", "sb1", "set-outbound-by-host", "a", "h", "--params", "\"x\""})
                .find("must be a JSON object"),
            std::string::npos);
  usageError({"-s", "sb1", "set-outbound-by-hosts", "[]"});
  usageError({"-s", "sb1", "set-outbound-by-hosts", R"({"a.test": 5})"});
  // --params only where a handler is set.
  usageError({"-s", "sb1", "allow-host", "a.test", "--params", "{}"});
}

TEST_F(CliTest, SandboxFromEnvironmentAndMissing) {
  fake_.env["EGRESSD_SANDBOX"] = "envsb";
  expectRequest({"allow-host", "a.test"}, "POST", "/v1/sandboxes/envsb/allowed-hosts",
                {{"host", "a.test"}});
  // The option wins over the environment.
  expectRequest({"allow-host", "-s", "opt", "a.test"}, "POST", "/v1/sandboxes/opt/allowed-hosts",
                {{"host", "a.test"}});
  Command c = parse({"allow-host", "a.test"});
  EXPECT_EQ(c.sandbox, "envsb");
  fake_.env.clear();
  EXPECT_NE(usageError({"allow-host", "a.test"}).find("needs a sandbox"), std::string::npos);
  EXPECT_NE(usageError({"remove-outbound-handler"}).find("EGRESSD_SANDBOX"), std::string::npos);
  // Verbs that are not per-sandbox do not take -s.
  usageError({"secret", "list", "-s", "sb1"});
}

TEST_F(CliTest, SocketSelection) {
  EXPECT_EQ(parse({"sandbox", "list"}).socket, "/run/egressd/egressd.sock");
  fake_.env["EGRESSD_SOCKET"] = "/tmp/env.sock";
  EXPECT_EQ(parse({"sandbox", "list"}).socket, "/tmp/env.sock");
  EXPECT_EQ(parse({"--socket", "/tmp/opt.sock", "sandbox", "list"}).socket, "/tmp/opt.sock");
  EXPECT_EQ(parse({"sandbox", "list", "--socket=/tmp/eq.sock"}).socket, "/tmp/eq.sock");
  EXPECT_TRUE(parse({"--json", "sandbox", "list"}).json);
  EXPECT_FALSE(parse({"sandbox", "list"}).json);
}

TEST_F(CliTest, SecretVerbs) {
  fake_.stdinText = "s3cr3t\n";
  expectRequest({"secret", "set", "API_KEY"}, "PUT", "/v1/secrets/API_KEY", {{"value", "s3cr3t"}});
  EXPECT_EQ(fake_.stdinReads, 1);
  // Only one trailing newline goes; other whitespace is part of the value.
  fake_.stdinText = " two lines\nand more\n\n";
  expectRequest({"secret", "set", "API_KEY/sbA"}, "PUT", "/v1/secrets/API_KEY/sbA",
                {{"value", " two lines\nand more\n"}});
  fake_.stdinText = "no-newline";
  expectRequest({"secret", "set", "X"}, "PUT", "/v1/secrets/X", {{"value", "no-newline"}});
  // --value and --from-file do not touch stdin.
  const int reads = fake_.stdinReads;
  expectRequest({"secret", "set", "X", "--value", "v\n"}, "PUT", "/v1/secrets/X",
                {{"value", "v\n"}});
  fake_.files["/run/tok"] = "from-file\n";
  expectRequest({"secret", "set", "a b/c", "--from-file", "/run/tok"}, "PUT", "/v1/secrets/a%20b/c",
                {{"value", "from-file"}});
  EXPECT_EQ(fake_.stdinReads, reads);
  usageError({"secret", "set", "X", "--value", "a", "--from-file", "/run/tok"});
  // An unreadable file is not a usage error (exit 1), and names the file.
  auto missing = parseCommand({"secret", "set", "X", "--from-file", "/nope"}, fake_.inputs());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(exitCodeFor(missing.error()), kExitFailure);
  EXPECT_NE(missing.error().message().find("/nope"), std::string::npos);

  expectRequest({"secret", "rm", "API_KEY/sbA"}, "DELETE", "/v1/secrets/API_KEY/sbA");
  expectRequest({"secret", "list"}, "GET", "/v1/secrets");
}

TEST_F(CliTest, PolicyVerbs) {
  fake_.files["p.yaml"] = "name: agent\nenableInternet: false\n";
  expectRequest({"policy", "apply", "p.yaml"}, "POST", "/v1/policies",
                {{"yaml", "name: agent\nenableInternet: false\n"}, {"source", "p.yaml"}});
  expectRequest({"policy", "validate", "p.yaml"}, "POST", "/v1/policies/validate",
                {{"yaml", "name: agent\nenableInternet: false\n"}, {"source", "p.yaml"}});
  expectRequest({"policy", "show"}, "GET", "/v1/policies");
  expectRequest({"policy", "show", "agent"}, "GET", "/v1/policies/agent");
  expectRequest({"policy", "reload"}, "POST", "/v1/reload");
  auto missing = parseCommand({"policy", "apply", "absent.yaml"}, fake_.inputs());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(exitCodeFor(missing.error()), kExitFailure);
  EXPECT_NE(missing.error().message().find("absent.yaml"), std::string::npos);
}

TEST_F(CliTest, AuditTail) {
  expectRequest({"audit", "tail"}, "GET", "/v1/audit");
  expectRequest({"audit", "tail", "-n", "20"}, "GET", "/v1/audit?lines=20");
  expectRequest({"audit", "tail", "-n5", "--sandbox", "sb/1"}, "GET",
                "/v1/audit?lines=5&sandbox=sb%2F1");
  expectRequest({"audit", "tail", "-s", "sb1"}, "GET", "/v1/audit?sandbox=sb1");
  // The environment's sandbox does not silently filter the audit log.
  fake_.env["EGRESSD_SANDBOX"] = "envsb";
  expectRequest({"audit", "tail"}, "GET", "/v1/audit");
  usageError({"audit", "tail", "-n", "0"});
  usageError({"audit", "tail", "-n", "ten"});
  usageError({"audit", "tail", "-n"});
  Command filtered = parse({"audit", "tail", "-f", "--layer", "proxy", "--decision", "deny"});
  EXPECT_TRUE(filtered.follow);
  EXPECT_EQ(filtered.path, "/v1/audit?layer=proxy&decision=deny");
  EXPECT_FALSE(parse({"audit", "tail"}).follow);
  EXPECT_NE(usageError({"audit", "tail", "--layer", "tcp"}).find("kernel|proxy|dns|control"),
            std::string::npos);
  usageError({"audit", "tail", "--decision", "maybe"});
  // Following: the filters stay, the line count goes, the offset moves on.
  EXPECT_EQ(auditFollowPath("/v1/audit?lines=5&sandbox=sb%2F1&layer=dns", 1234),
            "/v1/audit?sandbox=sb%2F1&layer=dns&after=1234");
  EXPECT_EQ(auditFollowPath("/v1/audit", 0), "/v1/audit?after=0");
  EXPECT_EQ(auditFollowPath("/v1/audit?decision=deny&after=10", 20),
            "/v1/audit?decision=deny&after=20");
}

TEST_F(CliTest, RunInASandbox) {
  Command run = parse({"run", "-s", "sb1", "--user", "nobody", "--env", "A=1", "--env", "B", "--",
                       "curl", "-s", "http://x.test/"});
  EXPECT_EQ(run.kind, Command::Kind::kRun);
  EXPECT_EQ(run.sandbox, "sb1");
  EXPECT_EQ(run.method, "GET");
  EXPECT_EQ(run.path, "/v1/sandboxes/sb1/spawn");
  ASSERT_TRUE(run.run.has_value());
  // Options after "--" belong to the command, not to egressctl.
  EXPECT_EQ(run.run->argv, (std::vector<std::string>{"curl", "-s", "http://x.test/"}));
  EXPECT_EQ(run.run->user, "nobody");
  EXPECT_EQ(run.run->env, (std::vector<std::string>{"A=1", "B"}));
  EXPECT_FALSE(run.run->deleteAfter);
  fake_.env["EGRESSD_SANDBOX"] = "envsb";
  EXPECT_EQ(parse({"run", "--", "true"}).sandbox, "envsb");
  EXPECT_NE(usageError({"run", "-s", "sb1"}).find("needs a command after --"), std::string::npos);
  usageError({"run", "-s", "sb1", "--policy", "p", "--", "true"});
  // One-shot: create, run, delete.
  Command once = parse({"sandbox", "create", "r1", "--policy", "agent", "--create-cgroup", "--run",
                        "--", "sh", "-c", "exit 3"});
  EXPECT_EQ(once.kind, Command::Kind::kApi);
  EXPECT_EQ(once.method, "POST");
  EXPECT_EQ(once.body, json({{"id", "r1"}, {"policy", "agent"}, {"createCgroup", true}}));
  ASSERT_TRUE(once.run.has_value());
  EXPECT_TRUE(once.run->deleteAfter);
  EXPECT_EQ(once.sandbox, "r1");
  EXPECT_EQ(once.run->argv, (std::vector<std::string>{"sh", "-c", "exit 3"}));
  EXPECT_NE(usageError({"sandbox", "create", "r1", "--policy", "a", "--", "true"}).find("--run"),
            std::string::npos);
  EXPECT_NE(usageError({"sandbox", "create", "r1", "--policy", "a", "--user", "x"}).find("--run"),
            std::string::npos);
  usageError({"sandbox", "create", "r1", "--policy", "a", "--run"});
}

TEST_F(CliTest, VersionAndCompletionVerbs) {
  EXPECT_EQ(parse({"--version"}).kind, Command::Kind::kVersion);
  Command bash = parse({"completion", "bash"});
  EXPECT_EQ(bash.kind, Command::Kind::kCompletion);
  EXPECT_EQ(bash.subject, "bash");
  usageError({"completion", "fish"});
  Command ids = parse({"__complete", "sandboxes"});
  EXPECT_EQ(ids.kind, Command::Kind::kCompleteIds);
  EXPECT_EQ(ids.path, "/v1/sandboxes");
  usageError({"__complete", "secrets"});
}

// The table is the one place a verb is defined: help lists every entry, each has a builder
// (or is local), and names are unique.
TEST(CliTable, EveryVerbIsInTheHelpOnce) {
  std::set<std::string> names;
  const std::string help = usageText();
  for (const Verb& verb : verbTable()) {
    EXPECT_TRUE(names.insert(verb.name).second) << verb.name;
    EXPECT_NE(help.find("  " + verb.synopsis + "\n"), std::string::npos) << verb.name;
    EXPECT_TRUE(verb.build || verb.kind == Command::Kind::kMaps) << verb.name;
    EXPECT_TRUE(verb.synopsis.starts_with(verb.name)) << verb.name;
    for (const std::string& option : verb.options) {
      bool known = false;
      for (const OptionInfo& info : optionTable()) {
        known = known || info.name == option;
      }
      EXPECT_TRUE(known) << verb.name << " --" << option;
    }
  }
}

TEST_F(CliTest, LocalVerbs) {
  Command status = parse({"status", "--json", "--pin-root", "/sys/fs/bpf/x"});
  EXPECT_EQ(status.kind, Command::Kind::kStatus);
  EXPECT_TRUE(status.json);
  EXPECT_EQ(status.pinRoot, "/sys/fs/bpf/x");
  EXPECT_EQ(status.method, "GET");
  EXPECT_EQ(status.path, "/v1/status");
  Command maps = parse({"maps"});
  EXPECT_EQ(maps.kind, Command::Kind::kMaps);
  EXPECT_EQ(parse({"--help"}).kind, Command::Kind::kHelp);
  EXPECT_EQ(parse({"help"}).kind, Command::Kind::kHelp);
  EXPECT_EQ(parse({"sandbox", "create", "-h"}).kind, Command::Kind::kHelp);
}

TEST_F(CliTest, UsageErrors) {
  EXPECT_NE(usageError({}).find("no verb"), std::string::npos);
  EXPECT_NE(usageError({"frobnicate"}).find("unknown verb 'frobnicate'"), std::string::npos);
  EXPECT_NE(usageError({"sandbox"}).find("sub-command"), std::string::npos);
  EXPECT_NE(usageError({"sandbox", "explode"}).find("unknown verb 'sandbox explode'"),
            std::string::npos);
  EXPECT_NE(usageError({"sandbox", "show"}).find("missing arguments"), std::string::npos);
  EXPECT_NE(usageError({"sandbox", "show", "a", "b"}).find("too many arguments"),
            std::string::npos);
  EXPECT_NE(usageError({"sandbox", "create", "sb1"}).find("--policy"), std::string::npos);
  usageError({"sandbox", "create", "sb1", "--policy", "p", "--cgroup", "/x", "--create-cgroup"});
  usageError({"sandbox", "create", "sb1", "--policy", "p", "--pid", "1", "--container", "abc"});
  usageError({"sandbox", "create", "sb1", "--policy", "p", "--pid", "1", "--cgroup", "/x"});
  EXPECT_NE(usageError({"sandbox", "create", "sb1", "--policy", "p", "--pid", "12x"})
                .find("--pid needs a process id, not '12x'"),
            std::string::npos);
  usageError({"sandbox", "create", "sb1", "--policy", "p", "--pid", "0"});
  EXPECT_NE(usageError({"sandbox", "create", "sb1", "--policy", "p", "--container", "abc",
                        "--netns", "/run/netns/x"})
                .find("--netns goes with --cgroup"),
            std::string::npos);
  EXPECT_NE(usageError({"sandbox", "list", "--bogus"}).find("unknown option --bogus"),
            std::string::npos);
  EXPECT_NE(usageError({"sandbox", "list", "--policy", "p"}).find("does not apply"),
            std::string::npos);
  EXPECT_NE(usageError({"sandbox", "list", "--socket"}).find("needs a value"), std::string::npos);
  usageError({"sandbox", "list", "--json=yes"});
  usageError({"-s", "sb1", "set-outbound-by-host", "only-host"});
  usageError({"-s", "sb1", "allow-host"});
  usageError({"-s", "sb1", "allow-host", "a", "b"});
  usageError({"maps", "extra"});
  // "--" ends options: a host that starts with '-' can still be named.
  expectRequest({"-s", "sb1", "allow-host", "--", "-odd.test"}, "POST",
                "/v1/sandboxes/sb1/allowed-hosts", {{"host", "-odd.test"}});
  EXPECT_NE(usageText().find("set-outbound-by-host -s ID HOST HANDLER [--params JSON]"),
            std::string::npos);
}

// --- rendering ----------------------------------------------------------------------------

const json kDetail = json::parse(R"({
  "id":"sb1","policy":"agent","cgroup":"/sys/fs/cgroup/egressd-test-x/sb1",
  "createdCgroup":true,"netns":"","caCert":"/run/egressd/sandboxes/sb1/ca.crt",
  "caBundle":"/run/egressd/sandboxes/sb1/ca-bundle.crt","proxyPort":40123,
  "overrides":{"allowedHosts":{"set":null,"added":["a.test"],"removed":[]},
               "deniedHosts":{"set":["x.test"],"added":[],"removed":[]},
               "outboundByHost":{"api.test":{"handler":"gh","params":{}}},
               "outbound":{"handler":"noHttp","params":{}}},
  "effective":{"enableInternet":false,"interceptHttps":false,"allowedHosts":["a.test","b.test"],
               "deniedHosts":["x.test"],
               "outboundByHost":[{"host":"api.test","handler":"gh","params":{},"from":"instance"},
                                 {"host":"kv.test","handler":"kv","params":{"k":1},"from":"policy"}],
               "outbound":{"handler":"noHttp","params":{},"from":"instance"}},
  "counters":{"openConnections":3,"kernel":{"denied_cidr":2},"closedSockets":1}})");

Command commandFor(const std::string& verb, const std::string& sandbox = "sb1",
                   const std::string& subject = "") {
  Command c;
  c.kind = Command::Kind::kApi;
  c.verb = verb;
  c.sandbox = sandbox;
  c.subject = subject;
  return c;
}

TEST(CliRender, SandboxDetail) {
  const std::string out = renderHuman(commandFor("sandbox show", ""), kDetail);
  for (const char* expected :
       {"sandbox sb1\n", "policy:", "agent", "(created by egressd)",
        "/run/egressd/sandboxes/sb1/ca.crt", "allowed hosts:    a.test, b.test",
        "denied hosts:     x.test", "api.test -> gh\n", "kv.test -> kv {\"k\":1} (from policy)",
        "any other host -> noHttp", "allowedHosts +a.test", "deniedHosts set to [x.test]", "3 open",
        "denied_cidr=2", "internet:         disabled"}) {
    EXPECT_NE(out.find(expected), std::string::npos) << "missing '" << expected << "' in\n" << out;
  }
}

TEST(CliRender, MutationsAreOneLine) {
  EXPECT_EQ(renderHuman(commandFor("allow-host"), kDetail),
            "sb1: allowedHosts now a.test, b.test\n");
  EXPECT_EQ(renderHuman(commandFor("set-denied-hosts"), kDetail), "sb1: deniedHosts now x.test\n");
  EXPECT_EQ(renderHuman(commandFor("set-outbound-by-host"), kDetail),
            "sb1: outboundByHost now api.test -> gh, kv.test -> kv (from policy)\n");
  EXPECT_EQ(renderHuman(commandFor("set-outbound-handler"), kDetail),
            "sb1: outbound handler now noHttp\n");
  json none = kDetail;
  none["effective"]["outbound"] = nullptr;
  none["effective"]["allowedHosts"] = json::array();
  EXPECT_EQ(renderHuman(commandFor("remove-outbound-handler"), none),
            "sb1: outbound handler now none\n");
  EXPECT_EQ(renderHuman(commandFor("set-allowed-hosts"), none), "sb1: allowedHosts now (none)\n");
}

TEST(CliRender, ListsAndOthers) {
  const std::string table =
      renderHuman(commandFor("sandbox list", ""),
                  json::parse(R"({"sandboxes":[{"id":"sb1","policy":"agent","cgroup":"/cg/sb1",
                       "openConnections":3},{"id":"longer-id","policy":"p","cgroup":"/cg/l",
                       "openConnections":0}]})"));
  EXPECT_EQ(table,
            "ID         POLICY  CONNECTIONS  CGROUP\n"
            "sb1        agent   3            /cg/sb1\n"
            "longer-id  p       0            /cg/l\n");
  EXPECT_EQ(renderHuman(commandFor("sandbox list", ""), json::parse(R"({"sandboxes":[]})")),
            "no sandboxes\n");
  EXPECT_EQ(renderHuman(commandFor("sandbox delete", "", "sb1"), {{"deleted", "sb1"}}),
            "deleted sandbox sb1\n");
  EXPECT_EQ(renderHuman(commandFor("secret set", "", "K"), {{"name", "K"}, {"persisted", false}}),
            "secret K set (in memory only: lost when egressd restarts)\n");
  const std::string secrets =
      renderHuman(commandFor("secret list", ""),
                  json::parse(R"({"secrets":[{"name":"API_KEY/sbA","source":"api"}]})"));
  EXPECT_NE(secrets.find("API_KEY/sbA  api"), std::string::npos) << secrets;
  const std::string applied =
      renderHuman(commandFor("policy apply", "", "p.yaml"),
                  json::parse(R"({"name":"agent","sandboxes":["sb1","sb2"],"warnings":["w1"]})"));
  EXPECT_EQ(applied, "policy agent applied; sandboxes using it: sb1, sb2\nwarning: w1\n");
  EXPECT_EQ(renderHuman(commandFor("policy validate", "", "p.yaml"),
                        json::parse(R"({"valid":true,"name":"agent","warnings":[]})")),
            "p.yaml: valid (policy agent)\n");
  EXPECT_EQ(
      renderHuman(commandFor("policy show", "", "agent"),
                  json::parse(R"({"name":"agent","source":"/etc/p.yaml","yaml":"name: agent"})")),
      "# policy agent from /etc/p.yaml\nname: agent\n");
  EXPECT_EQ(renderHuman(commandFor("policy reload", ""), {{"policies", {"a", "b"}}}),
            "reloaded 2 policies: a, b\n");
  const std::string audit =
      renderHuman(commandFor("audit tail", ""),
                  json::parse(R"({"records":[{"time":"2024-05-01T12:00:00.000001Z","sandbox":"sb1",
                       "layer":"proxy","decision":"deny","host":"x.test","method":"GET",
                       "path":"/a","status":403,"reason":"denied_host",
                       "rule":"deniedHosts[0] x.test","handler":"noHttp"}]})"));
  EXPECT_EQ(audit,
            "TIME                        SANDBOX        LAYER  DECISION WHAT\n"
            "2024-05-01T12:00:00.000001Z sb1            proxy  deny     GET x.test/a -> 403  "
            "denied_host rule=\"deniedHosts[0] x.test\" handler=noHttp\n");
  // Kernel and DNS records name what they are about too.
  EXPECT_EQ(renderAuditRecord(json::parse(R"({"time":"T","sandbox":"sb1","layer":"kernel",
                       "decision":"deny","protocol":"tcp","orig_dst":"10.0.0.1:80",
                       "reason":"denied_cidr"})")),
            "T                           sb1            kernel deny     tcp 10.0.0.1:80  "
            "denied_cidr\n");
  EXPECT_EQ(renderAuditRecord(json::parse(R"({"time":"T","sandbox":"a-very-long-sandbox-id",
                       "layer":"dns","decision":"deny","host":"x.test","query_type":"A",
                       "rcode":"NXDOMAIN","reason":"denied_name"})")),
            "T                           a-very-long-sandbox-id dns    deny     x.test A -> "
            "NXDOMAIN  denied_name\n");
  const std::string daemon = renderDaemonStatus(json::parse(
      R"({"version":"0.5.0","pinRoot":"/sys/fs/bpf/egressd","stateDir":"/var/lib/egressd",
          "socket":"/run/egressd/egressd.sock","persistSecrets":true,"sandboxes":2,"policies":1})"));
  EXPECT_NE(daemon.find("egressd 0.5.0 on /run/egressd/egressd.sock"), std::string::npos);
  EXPECT_NE(daemon.find("sandboxes: 2, policies: 1"), std::string::npos);
  EXPECT_NE(daemon.find("persisted"), std::string::npos);
  // Unexpected shapes never throw: the renderer degrades to placeholders.
  EXPECT_NO_THROW(renderHuman(commandFor("sandbox show"), json::array({1, 2})));
  EXPECT_NO_THROW(renderHuman(commandFor("audit tail"), {{"records", {1, "x"}}}));
}

}  // namespace
}  // namespace egressd::cli
