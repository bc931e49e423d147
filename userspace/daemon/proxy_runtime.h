// The userspace half of egressd that runs beside the enforcer: the proxy, the resolver it
// uses for upstreams, the audit log (fed by the proxy and by a thread draining the kernel's
// denial ring buffer) and the metrics endpoint. Shared by `egressd daemon` and `egressd run`.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "audit/record.h"
#include "bpf/abi.h"
#include "common/result.h"
#include "daemon/sandbox_files.h"
#include "handlers/handler.h"
#include "handlers/secret_store.h"
#include "policy/overrides.h"
#include "policy/policy.h"
#include "proxy/dns_server.h"
#include "proxy/listener_reservation.h"
#include "proxy/sandbox_context.h"

namespace egressd::daemon {

struct ProxyOptions {
  bool enabled = true;           // false: proxied ports stay reserved, connections refused
  std::string auditLog;          // file path, "-" for stdout, "" for none
  std::string metrics;           // "unix:/path", "127.0.0.1:9464", "" for none
  std::string upstreamResolver;  // "ip:port"; "" = the policy's dns.upstream, else resolv.conf
  unsigned threads = 0;          // 0 = one per CPU
  unsigned headerTimeoutMs = 15000;
  unsigned idleTimeoutMs = 60000;
  unsigned ioTimeoutMs = 60000;
  uint64_t maxConnections = 0;  // proxy::ProxyConfig::maxConnections
  // Extra PEM bundle trusted for upstream TLS besides the system store ("" = none).
  std::string upstreamCaFile;
  // Where per-sandbox files go (sandboxes/<id>/ca.crt).
  std::string runDir = "/run/egressd";
};

class ProxyRuntime {
 public:
  static Result<std::unique_ptr<ProxyRuntime>> start(const ProxyOptions& options,
                                                     const std::string& pinRoot);
  ~ProxyRuntime();

  // Serves sandbox `id` (kernel slot `slot`) on `listener`, judging requests by `policy`
  // (or by `view` when given), and its DNS queries on `dns` (the resolver sockets taken
  // from the reservation, served also without a proxy);
  // `ruleNames` names the kernel's rule ids in its denial events. Without a proxy
  // (ProxyOptions::enabled false) the listener is dropped by the caller beforehand and
  // only the events and metrics are served.
  Status addSandbox(const std::string& id, uint32_t slot, const policy::Policy& policy,
                    std::vector<std::string> ruleNames,
                    std::optional<proxy::ListenerReservation> listener,
                    std::shared_ptr<const proxy::SandboxPolicyView> view = nullptr,
                    std::optional<proxy::DnsSockets> dns = std::nullopt,
                    std::string cgroupPath = "", std::string netnsPath = "");
  // Swaps the sandbox's policy: requests from now on (also on open connections) see it.
  Status updatePolicy(const std::string& id, const policy::Policy& policy,
                      std::vector<std::string> ruleNames);
  Status updateView(const std::string& id, std::shared_ptr<const proxy::SandboxPolicyView> view,
                    std::vector<std::string> ruleNames);
  // Stops serving the sandbox: its listener closes, its CA files and metric series go.
  void removeSandbox(const std::string& id);

  // The daemon's secrets (API values and file/env reads), shared by every sandbox.
  const std::shared_ptr<handlers::SecretStore>& secrets() const;
  uint64_t openConnections(const std::string& id) const;
  // The live kernel entries name-based allow rules made from the sandbox's DNS answers.
  std::vector<proxy::NameRuleState> nameRuleEntries(const std::string& id) const;

  // The sandbox's published CA files (empty paths: no proxy, so no interception CA).
  SandboxCaFiles caFiles(const std::string& id) const;

  // Writes a record that no proxy, DNS or kernel decision made (layer "control": the daemon
  // itself, e.g. a sandbox deleted because its cgroup went). Nothing when there is no log.
  void auditControlEvent(const audit::AuditRecord& record);

  // Before exiting: stops taking kernel events, drains those pending, writes buffered audit
  // lines out.
  void flush();

  struct Impl;

 private:
  explicit ProxyRuntime(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace egressd::daemon
