// egressctl: the operator's view of egressd. `status` and `maps` read the pinned state
// directly (no daemon needed; status adds the daemon's own view when its socket answers);
// every other verb is one control-API request (cli/commands.h maps argv to it and renders
// the answer); `run` asks the daemon where a sandbox is and starts the command in it
// (cli/run.h); `audit tail -f` repeats its request from where the last answer ended.
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <chrono>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "bpf/abi.h"
#include "cli/commands.h"
#include "cli/completion.h"
#include "cli/run.h"
#include "common/fs.h"
#include "control/client.h"
#include "loader/enforcer.h"
#include "loader/maps.h"

namespace {

using egressd::loader::PinnedMaps;

nlohmann::json flagsJson(uint32_t flags) {
  nlohmann::json j = nlohmann::json::array();
  const std::pair<uint32_t, const char*> names[] = {
      {EGRESSD_SB_ACTIVE, "active"},          {EGRESSD_SB_ENABLE_INTERNET, "enableInternet"},
      {EGRESSD_SB_HAS_RESOLVER, "resolver"},  {EGRESSD_SB_HAS_PROXY, "proxy"},
      {EGRESSD_SB_ALLOW_PING, "ping"},        {EGRESSD_SB_ALLOW_RAW, "raw"},
      {EGRESSD_SB_ALLOW_OTHER_L4, "otherL4"}, {EGRESSD_SB_CAPS_WARNING, "capabilityWarning"}};
  for (const auto& [bit, name] : names) {
    if ((flags & bit) != 0U) {
      j.push_back(name);
    }
  }
  return j;
}

nlohmann::json sandboxJson(const std::string& pinRoot, const PinnedMaps& maps,
                           const egressd::loader::SandboxState& s) {
  const egressd_sandbox_config& c = s.config;
  std::string id(c.id, strnlen(c.id, sizeof(c.id)));
  nlohmann::json counters = nlohmann::json::object();
  uint64_t denied = 0;
  for (uint32_t r = 1; r < EGRESSD_REASON_MAX; ++r) {
    if (s.counters.by_reason[r] != 0) {
      counters[egressd::loader::reasonName(r)] = s.counters.by_reason[r];
      if (egressd::loader::reasonIsDeny(r)) {
        denied += s.counters.by_reason[r];
      }
    }
  }
  nlohmann::json ports = nlohmann::json::array();
  for (uint16_t p : c.proxied_ports) {
    if (p != 0) {
      ports.push_back(p);
    }
  }
  auto rules = maps.countRules(c.active_ruleset);
  nlohmann::json j = {
      {"id", id},
      {"slot", s.slot},
      {"cgroupId", c.cgroup_id},
      {"flags", flagsJson(c.flags)},
      {"capabilityWarning", (c.flags & EGRESSD_SB_CAPS_WARNING) != 0U},
      {"generation", c.generation_counter},
      {"rules", rules.ok() ? *rules : 0},
      {"proxyPorts", ports},
      {"counters", counters},
      {"denied", denied},
      {"links", egressd::loader::pinnedLinks(pinRoot, id)},
  };
  if ((c.flags & EGRESSD_SB_HAS_PROXY) != 0U) {
    j["proxyTarget"] = egressd::loader::formatAddr(c.proxy4) + ":" + std::to_string(c.proxy_port);
  }
  if ((c.flags & EGRESSD_SB_HAS_RESOLVER) != 0U) {
    j["resolver"] =
        egressd::loader::formatAddr(c.resolver6) + ":" + std::to_string(c.resolver_port);
  }
  return j;
}

// What the daemon says about itself, when it answers: egressctl status works without a
// daemon (egressd run, or a daemon that is down while enforcement stays pinned).
struct DaemonStatus {
  std::optional<nlohmann::json> body;  // the 2xx answer of GET /v1/status
  std::string problem;                 // why there is none
};

DaemonStatus queryDaemon(const egressd::cli::Command& command) {
  // Short timeout: this is an extra on top of the pinned state, not worth a 30 s hang.
  egressd::control::ControlClient client(command.socket, std::chrono::seconds(5));
  auto response = client.call(command.method, command.path);
  if (!response.ok()) {
    return {std::nullopt, response.error().message()};
  }
  if (!response->ok()) {
    return {std::nullopt, egressd::control::errorMessage(*response)};
  }
  return {response->body, ""};
}

void printDaemon(const DaemonStatus& daemon) {
  if (daemon.body) {
    std::cout << "\n" << egressd::cli::renderDaemonStatus(*daemon.body);
  } else {
    std::cout << "\ndaemon: not answering (" << daemon.problem << ")\n";
  }
}

int status(const std::string& pinRoot, bool json, const DaemonStatus& daemon) {
  if (!PinnedMaps::exist(pinRoot)) {
    if (json) {
      nlohmann::json out{{"pinRoot", pinRoot}, {"sandboxes", nlohmann::json::array()}};
      if (daemon.body) {
        out["daemon"] = *daemon.body;
      }
      std::cout << out << "\n";
    } else {
      std::cout << "egressd: nothing pinned under " << pinRoot << " (no sandbox armed)\n";
      printDaemon(daemon);
    }
    return 0;
  }
  auto maps = PinnedMaps::open(pinRoot);
  if (!maps.ok()) {
    std::cerr << "egressctl: " << maps.error().message() << "\n";
    return 1;
  }
  auto sandboxes = maps->listSandboxes();
  if (!sandboxes.ok()) {
    std::cerr << "egressctl: " << sandboxes.error().message() << "\n";
    return 1;
  }
  nlohmann::json list = nlohmann::json::array();
  for (const auto& s : *sandboxes) {
    list.push_back(sandboxJson(pinRoot, *maps, s));
  }
  if (json) {
    nlohmann::json out{{"pinRoot", pinRoot}, {"sandboxes", list}};
    if (daemon.body) {
      out["daemon"] = *daemon.body;
    }
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  std::cout << "pin root: " << pinRoot << "\n" << list.size() << " sandbox(es)\n";
  for (const auto& s : list) {
    std::cout << "\n"
              << s["id"].get<std::string>() << "  (slot " << s["slot"] << ", cgroup id "
              << s["cgroupId"] << ", generation " << s["generation"] << ")\n";
    std::cout << "  flags:    " << s["flags"].dump() << "\n";
    std::cout << "  rules:    " << s["rules"] << " map entries\n";
    std::cout << "  links:    " << s["links"].size() << " pinned\n";
    if (s.contains("proxyTarget")) {
      std::cout << "  proxy:    ports " << s["proxyPorts"].dump() << " -> "
                << s["proxyTarget"].get<std::string>() << "\n";
    }
    if (s.contains("resolver")) {
      std::cout << "  resolver: " << s["resolver"].get<std::string>() << "\n";
    }
    if (s["capabilityWarning"].get<bool>()) {
      std::cout << "  WARNING:  processes in this sandbox held CAP_NET_RAW/CAP_NET_ADMIN when "
                   "it was armed: packet/netlink sockets are not policed by cgroup hooks\n";
    }
    std::cout << "  counters:";
    if (s["counters"].empty()) {
      std::cout << " (none yet)";
    }
    for (const auto& [name, value] : s["counters"].items()) {
      std::cout << " " << name << "=" << value;
    }
    std::cout << "\n";
  }
  printDaemon(daemon);
  return 0;
}

int mapsCommand(const std::string& pinRoot, bool json) {
  nlohmann::json list = nlohmann::json::array();
  for (const std::string& name : PinnedMaps::names()) {
    std::string path = pinRoot + "/" + name;
    list.push_back({{"name", name}, {"path", path}, {"pinned", egressd::pathExists(path)}});
  }
  if (json) {
    std::cout << nlohmann::json{{"pinRoot", pinRoot}, {"maps", list}}.dump(2) << "\n";
    return 0;
  }
  std::cout << "Pinned maps (read with: bpftool map dump pinned PATH)\n";
  for (const auto& m : list) {
    std::cout << "  " << (m["pinned"].get<bool>() ? "" : "(missing) ")
              << m["path"].get<std::string>() << "\n";
  }
  std::cout << "Links per sandbox: " << pinRoot << "/links/<sandbox>/<program>"
            << " (bpftool link show)\n";
  return 0;
}

int apiCommand(const egressd::cli::Command& command) {
  egressd::control::ControlClient client(command.socket);
  auto response = client.call(command.method, command.path, command.body);
  if (!response.ok()) {
    std::cerr << "egressctl: " << response.error().message() << "\n";
    return egressd::cli::kExitFailure;
  }
  if (!response->ok()) {
    std::cerr << "egressctl: " << egressd::control::errorMessage(*response) << "\n";
    if (command.json) {
      std::cout << response->body.dump() << "\n";
    }
    return egressd::cli::kExitFailure;
  }
  if (command.run) {
    // sandbox create --run: stdout is the command's; say what was created on stderr.
    std::cerr << "egressctl: created sandbox " << command.sandbox << " (cgroup "
              << response->body.value("cgroup", "?") << ")\n";
    return egressd::cli::kExitOk;
  }
  if (command.json) {
    std::cout << response->body.dump() << "\n";
  } else {
    std::cout << egressd::cli::renderHuman(command, response->body);
  }
  return egressd::cli::kExitOk;
}

// sandbox create ID --run -- CMD: create, run, and delete the sandbox when the command ends.
int createAndRun(const egressd::cli::Command& command) {
  if (::geteuid() != 0) {
    // Checked before anything is created: runInSandbox would refuse after the create.
    std::cerr << "egressctl: --run needs root: it starts the command inside the new sandbox's "
                 "cgroup\n";
    return egressd::cli::kExitFailure;
  }
  if (int created = apiCommand(command); created != egressd::cli::kExitOk) {
    return created;
  }
  const int status = egressd::cli::runInSandbox(command, command.sandbox);
  egressd::control::ControlClient client(command.socket);
  auto deleted =
      client.call("DELETE", "/v1/sandboxes/" + egressd::control::percentEncode(command.sandbox));
  if (!deleted.ok() || !deleted->ok()) {
    std::cerr << "egressctl: deleting sandbox " << command.sandbox << ": "
              << (deleted.ok() ? egressd::control::errorMessage(*deleted)
                               : deleted.error().message())
              << "\n";
  }
  return status;
}

// audit tail -f: the last records, then every new one as it is written, until interrupted.
int followAudit(const egressd::cli::Command& command) {
  egressd::control::ControlClient client(command.socket);
  std::string path = command.path;
  bool first = true;
  for (;;) {
    auto response = client.call("GET", path);
    if (!response.ok()) {
      std::cerr << "egressctl: " << response.error().message() << "\n";
      return egressd::cli::kExitFailure;
    }
    if (!response->ok()) {
      std::cerr << "egressctl: " << egressd::control::errorMessage(*response) << "\n";
      return egressd::cli::kExitFailure;
    }
    const nlohmann::json& body = response->body;
    if (first && !command.json) {
      std::cout << egressd::cli::auditHeader();
    }
    first = false;
    if (body.contains("records") && body["records"].is_array()) {
      for (const nlohmann::json& record : body["records"]) {
        std::cout << (command.json ? record.dump() + "\n"
                                   : egressd::cli::renderAuditRecord(record));
      }
    }
    std::cout.flush();
    const uint64_t next = body.value("next", uint64_t{0});
    path = egressd::cli::auditFollowPath(command.path, next);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
}

// The ids completion offers; silent when the daemon does not answer.
int completeIds(const egressd::cli::Command& command) {
  egressd::control::ControlClient client(command.socket, std::chrono::seconds(2));
  auto response = client.call("GET", command.path);
  if (!response.ok() || !response->ok()) {
    return egressd::cli::kExitFailure;
  }
  const char* list = command.subject == "sandboxes" ? "sandboxes" : "policies";
  const char* key = command.subject == "sandboxes" ? "id" : "name";
  if (response->body.contains(list) && response->body[list].is_array()) {
    for (const auto& item : response->body[list]) {
      if (item.is_object() && item.contains(key) && item[key].is_string()) {
        std::cout << item[key].get<std::string>() << "\n";
      }
    }
  }
  return egressd::cli::kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  using egressd::cli::Command;
  const std::vector<std::string> args(argv + 1, argv + argc);
  auto parsed = egressd::cli::parseCommand(args, egressd::cli::Inputs::system());
  if (!parsed.ok()) {
    const int code = egressd::cli::exitCodeFor(parsed.error());
    std::cerr << "egressctl: " << parsed.error().message() << "\n";
    if (code == egressd::cli::kExitUsage) {
      std::cerr << egressd::cli::usageHint() << "\n";
    }
    return code;
  }
  const Command& command = *parsed;
  const std::string pinRoot =
      command.pinRoot.empty() ? std::string(EGRESSD_PIN_ROOT_DEFAULT) : command.pinRoot;
  switch (command.kind) {
    case Command::Kind::kHelp:
      std::cout << egressd::cli::usageText();
      return egressd::cli::kExitOk;
    case Command::Kind::kMaps:
      return mapsCommand(pinRoot, command.json);
    case Command::Kind::kStatus:
      return status(pinRoot, command.json, queryDaemon(command));
    case Command::Kind::kVersion:
      std::cout << "egressctl " << EGRESSD_VERSION << "\n";
      return egressd::cli::kExitOk;
    case Command::Kind::kCompletion:
      std::cout << (command.subject == "zsh" ? egressd::cli::zshCompletion()
                                             : egressd::cli::bashCompletion());
      return egressd::cli::kExitOk;
    case Command::Kind::kCompleteIds:
      return completeIds(command);
    case Command::Kind::kRun:
      return egressd::cli::runInSandbox(command, command.sandbox);
    case Command::Kind::kApi:
      if (command.run) {
        return createAndRun(command);
      }
      if (command.follow) {
        return followAudit(command);
      }
      return apiCommand(command);
  }
  return egressd::cli::kExitUsage;
}
