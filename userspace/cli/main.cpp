// egressctl: the operator's view of egressd. `status` and `maps` read the pinned state
// directly (no daemon needed); the control-API verbs arrive with the control plane.
#include <nlohmann/json.hpp>

#include <cxxopts.hpp>
#include <iostream>

#include "bpf/abi.h"
#include "common/fs.h"
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

int status(const std::string& pinRoot, bool json) {
  if (!PinnedMaps::exist(pinRoot)) {
    if (json) {
      std::cout << nlohmann::json{{"pinRoot", pinRoot}, {"sandboxes", nlohmann::json::array()}}
                << "\n";
    } else {
      std::cout << "egressd: nothing pinned under " << pinRoot << " (no sandbox armed)\n";
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
    std::cout << nlohmann::json{{"pinRoot", pinRoot}, {"sandboxes", list}}.dump(2) << "\n";
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

}  // namespace

int main(int argc, char** argv) {
  cxxopts::Options options("egressctl", "inspect and control egressd");
  options.custom_help("status|maps [--json] [--pin-root DIR]");
  options.add_options()("verb", "status | maps", cxxopts::value<std::string>())(
      "json", "machine-readable output")(
      "pin-root", "bpffs directory of egressd's pins",
      cxxopts::value<std::string>()->default_value(EGRESSD_PIN_ROOT_DEFAULT))("h,help", "help");
  options.parse_positional({"verb"});
  cxxopts::ParseResult args;
  try {
    args = options.parse(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "egressctl: " << e.what() << "\n" << options.help() << "\n";
    return 64;
  }
  if (args.count("help") != 0U || args.count("verb") == 0U) {
    std::cout << options.help() << "\n";
    return args.count("help") != 0U ? 0 : 64;
  }
  std::string verb = args["verb"].as<std::string>();
  std::string pinRoot = args["pin-root"].as<std::string>();
  bool json = args.count("json") != 0U;
  if (verb == "status") {
    return status(pinRoot, json);
  }
  if (verb == "maps") {
    return mapsCommand(pinRoot, json);
  }
  std::cerr << "egressctl: unknown verb '" << verb << "'\n" << options.help() << "\n";
  return 64;
}
