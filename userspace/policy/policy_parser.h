// The policy schema walker shared by policy.cpp (top level, hosts, ports, DNS, HTTP/TLS rules)
// and policy_handlers_schema.cpp (secrets and outbound handlers). Internal to the policy
// library: the public entry points are in policy.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "policy/policy.h"
#include "yaml/strict_reader.h"

namespace egressd::policy::schema {

using yaml::Field;

// Letters, digits, '_' (and '-' where allowDash): names of handlers, secrets and the policy.
bool isNameChar(char c, bool allowDash);

// One pass over one policy document; errors and warnings go to `diagnostics`.
class Parser {
 public:
  explicit Parser(yaml::Diagnostics& diagnostics) : diagnostics_(diagnostics) {}

  // Throws what the walk cannot recover from (yaml::Diagnostics::run records it); the other
  // errors are in the diagnostics, which then say whether the Policy means anything.
  Policy parse(std::string_view text);

 private:
  HostList hostList(const Field& field) const;
  HostGlob hostGlob(const Field& field) const;
  InterceptHttps interceptHttps(const Field& field) const;
  std::vector<uint16_t> proxyPorts(const Field& field) const;
  AllowRule allowRule(const Field& field, size_t index) const;
  std::vector<PortRange> portList(const Field& field) const;
  PortRange portRange(const Field& field) const;
  Protocol protocol(const Field& field) const;
  DnsPolicy dns(const Field& field) const;
  std::vector<Endpoint> dnsUpstream(const Field& field) const;
  DnsLimits dnsLimits(const Field& field) const;
  SocketPermissions sockets(const Field& field) const;
  std::map<std::string, SecretSource> secrets(const Field& field) const;
  std::vector<HostHandler> outboundByHost(const Field& field) const;
  HandlerRef handlerRef(const Field& field) const;
  std::map<std::string, Handler> outboundHandlers(const Field& field) const;

  void parseTopLevel(const Field& key, const Field& value, Policy& policy, bool& hasName);
  void checkHandlerRefs(const Policy& policy) const;
  // `http:` / `tls:` (docs/security.md).
  HttpRules httpRules(const Field& field) const;
  TlsRules tlsRules(const Field& field) const;

  yaml::Diagnostics& diagnostics_;
};

}  // namespace egressd::policy::schema
