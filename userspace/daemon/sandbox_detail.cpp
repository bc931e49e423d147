#include "daemon/sandbox_detail.h"

#include <sys/stat.h>

#include <cstdio>
#include <cstring>

#include "loader/maps.h"

namespace egressd::daemon {

namespace {

nlohmann::json refJson(const policy::HandlerRef& ref, const char* from) {
  return {{"handler", ref.handler}, {"params", ref.params}, {"from", from}};
}

// Secret files that a process of a daemon sandbox could read: egressd does not start those
// processes, so it cannot hide the files or pick their user (as `egressd run` does); all it
// can do is say so. Readable by non-root = not owned by root, or group/other may read.
nlohmann::json secretFileWarnings(const policy::Policy& p, const std::string& sandboxId) {
  nlohmann::json warnings = nlohmann::json::array();
  for (const auto& [name, source] : p.secrets) {
    if (source.kind != policy::SecretSource::Kind::kFile) {
      continue;
    }
    std::string path = source.value;
    for (size_t pos = path.find("${sandbox}"); pos != std::string::npos;
         pos = path.find("${sandbox}", pos + sandboxId.size())) {
      path.replace(pos, std::strlen("${sandbox}"), sandboxId);
    }
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      continue;
    }
    if (st.st_uid != 0 || (st.st_mode & 0044) != 0) {
      char mode[8];
      std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
      warnings.push_back("secret " + name + ": file " + path + " (mode " + mode + ", owner uid " +
                         std::to_string(st.st_uid) +
                         ") is readable by non-root users: a process of this sandbox running as "
                         "such a user can read the secret egressd injects (make it root-owned "
                         "0600, or 0400)");
    }
  }
  return warnings;
}

// The policy's settings with the instance overrides applied, each handler marked with
// where it comes from.
nlohmann::json effectiveJson(const SandboxRecord& record, const policy::Policy& p) {
  nlohmann::json effective = nlohmann::json::object();
  effective["enableInternet"] = p.enableInternet;
  if (p.interceptHttps.hosts.empty()) {
    effective["interceptHttps"] = p.interceptHttps.all;
  } else {
    nlohmann::json globs = nlohmann::json::array();
    for (const auto& g : p.interceptHttps.hosts) {
      globs.push_back(g.text);
    }
    effective["interceptHttps"] = globs;
  }
  const bool allowWritten = p.allowedHosts.present || record.overrides.allowedHosts.set ||
                            !record.overrides.allowedHosts.added.empty();
  effective["allowedHosts"] =
      allowWritten
          ? nlohmann::json(policy::effectiveHostList(p.allowedHosts, record.overrides.allowedHosts))
          : nlohmann::json(nullptr);
  effective["deniedHosts"] = policy::effectiveHostList(p.deniedHosts, record.overrides.deniedHosts);
  nlohmann::json byHost = nlohmann::json::array();
  for (const auto& [host, ref] : record.overrides.outboundByHost) {
    nlohmann::json j = refJson(ref, "instance");
    j["host"] = host;
    byHost.push_back(j);
  }
  for (const auto& h : p.outboundByHost) {
    nlohmann::json j = refJson(h.ref, "policy");
    j["host"] = h.host.text;
    byHost.push_back(j);
  }
  effective["outboundByHost"] = byHost;
  effective["outbound"] = record.overrides.outbound
                              ? refJson(*record.overrides.outbound, "instance")
                          : p.outbound ? refJson(*p.outbound, "policy")
                                       : nlohmann::json(nullptr);
  return effective;
}

nlohmann::json kernelCounters(const std::string& pinRoot, const std::string& id) {
  nlohmann::json kernel = nlohmann::json::object();
  if (auto maps = loader::PinnedMaps::open(pinRoot); maps.ok()) {
    auto slot = maps->findSlot(id);
    if (slot.ok() && slot->has_value()) {
      if (auto counters = maps->counters(**slot); counters.ok()) {
        for (uint32_t r = 1; r < EGRESSD_REASON_MAX; ++r) {
          if (counters->by_reason[r] != 0) {
            kernel[loader::reasonName(r)] = counters->by_reason[r];
          }
        }
      }
    }
  }
  return kernel;
}

}  // namespace

nlohmann::json sandboxDetailJson(const SandboxRecord& record,
                                 const control_model::PolicyEntry* entry,
                                 const std::string& pinRoot, const ProxyRuntime& runtime) {
  const nlohmann::json effective =
      entry != nullptr ? effectiveJson(record, entry->policy) : nlohmann::json::object();
  const nlohmann::json kernel = kernelCounters(pinRoot, record.id);
  SandboxCaFiles ca = runtime.caFiles(record.id);
  nlohmann::json overrides = record.overrides.toJson();
  for (auto& [host, ref] : overrides["outboundByHost"].items()) {
    (void)host;
    ref.erase("from");
  }
  // Name-based allow rules' live kernel entries (from the sandbox's DNS answers).
  nlohmann::json nameEntries = nlohmann::json::array();
  for (const proxy::NameRuleState& s : runtime.nameRuleEntries(record.id)) {
    nameEntries.push_back({{"name", s.name},
                           {"address", s.entry.addr.toString()},
                           {"protocol", s.entry.proto == EGRESSD_PROTO_TCP   ? "tcp"
                                        : s.entry.proto == EGRESSD_PROTO_UDP ? "udp"
                                                                             : "any"},
                           {"port", s.entry.port},
                           {"rule", s.rule},
                           {"expiresInSeconds", s.expiresIn}});
  }
  return {{"id", record.id},
          {"policy", record.policyName},
          {"cgroup", record.cgroupPath},
          {"createdCgroup", record.createdCgroup},
          {"netns", record.netns},
          {"caCert", ca.certificate},
          {"caBundle", ca.bundle},
          {"proxyPort", record.proxy.port},
          {"dnsPort", record.proxy.dnsPort},
          {"nameRuleEntries", nameEntries},
          {"overrides", overrides},
          {"effective", effective},
          {"warnings", entry != nullptr ? secretFileWarnings(entry->policy, record.id)
                                        : nlohmann::json::array()},
          {"counters",
           {{"openConnections", runtime.openConnections(record.id)},
            {"kernel", kernel},
            {"closedSockets", record.closedSockets}}}};
}

}  // namespace egressd::daemon
