// The attack battery of `egressd verify`: ONE table of cases, shared by the product (run
// from inside a throw-away sandbox, see battery.h) and by tests/e2e/verify_test.cpp, which
// runs every case of this same table and asserts each expected outcome.
//
// A case is an action a sandboxed process performs (probe_actions.h) plus how its outcome
// is judged:
//   - Evidence::kCall: by the result of the call itself. "blocked" means it failed with one
//     of the refusal errnos (EPERM/EACCES by default: what the BPF hooks and the seccomp
//     filter return); any other result means the enforcer let it past.
//   - Evidence::kSink: by what a listener in the test network received. Each run of a case
//     carries a unique token (in the payload, the HTTP path, the DNS name or the TLS SNI);
//     "reached" means the token arrived at the case's sink listener.
// Role says what a failure means: an attack that got through (kAttack, kDeniedSample), a
// positive control that shows the test network works (kControl: a failure makes the
// battery inconclusive), or an allowed destination of the user's policy (kAllowedSample:
// a failure is a warning, never a hole).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "verify/probe_actions.h"

namespace egressd::verify {

// Ports of the test network's listeners (testnet.h, listeners.h).
inline constexpr uint16_t kTcpPort = 7001;  // plain TCP; the built-in policy allows origin:7001
inline constexpr uint16_t kUdpPort = 7003;  // UDP
inline constexpr uint16_t kHttpPort = 80;   // HTTP (a proxied port)
inline constexpr uint16_t kTlsPort = 443;   // TLS over TCP and QUIC over UDP (proxied port)
inline constexpr uint16_t kDnsPort = 53;    // DNS over UDP and TCP

// Where things are, as seen from inside the sandbox.
struct Targets {
  std::string origin;         // IPv4 of the "allowed" origin (listeners on every port above)
  std::string other;          // IPv4 of a host nothing allows (same listeners)
  std::string dns;            // IPv4 of the upstream DNS server egressd forwards to
  uint16_t loopbackPort = 0;  // a listener on 127.0.0.1 and ::1 in the sandbox's netns
  std::string allowedDomain = "allowed.verify.test";  // *.allowedDomain is allowed
  std::string deniedDomain = "denied.verify.test";    // nothing allows it
};

enum class Evidence { kCall, kSink };
enum class Expect { kBlocked, kAllowed };
enum class Role { kAttack, kControl, kDeniedSample, kAllowedSample };

// A listener of the test network, as "role:port/proto" (e.g. "other:7001/tcp",
// "loopback:PORT/tcp"); empty = none.
struct Sink {
  std::string host;  // "origin", "other", "dns", "loopback" or "" (no sink)
  uint16_t port = 0;
  bool udp = false;
  bool empty() const { return host.empty(); }
  std::string label() const;
};

struct Case;
using CaseAction = ActionResult (*)(const Targets& t, const Case& c, const std::string& token);

struct Case {
  std::string id;       // stable, kebab-case; scripts may match on it
  std::string attempt;  // what the sandboxed process tries, one line
  Role role = Role::kAttack;
  Expect expect = Expect::kBlocked;
  Evidence evidence = Evidence::kCall;
  Sink sink;                       // kSink: judged here; kCall: a token seen here is a hole too
  std::vector<int> refusedErrnos;  // kCall: errnos that count as refused (default EPERM, EACCES)
  // kCall: errnos meaning "this kernel has no such thing" (e.g. SCTP not built): the case
  // does not apply here and is skipped, not passed.
  std::vector<int> unsupportedErrnos;
  CaseAction action = nullptr;
  std::string param;       // per-case parameter (policy samples: the destination)
  std::string sampleKind;  // policy samples: how to rebuild the case from (kind, param)
  // The expectation holds under any policy (socket kinds, socket options, io_uring, special
  // destinations, DNS pinning): run also when verify arms the user's --policy.
  bool policyIndependent = false;

  std::string expectedText() const;  // "refused (EPERM)", "not at other:80/tcp", ...
};

// Every built-in case, in the order they run and print.
const std::vector<Case>& builtinCases();
const Case* findBuiltinCase(const std::string& id);

// A case made from the user's policy (--policy): kind is one of
//   "deny-cidr"  param "IP"   TCP to IP:443 must be refused by the kernel (deniedHosts CIDR)
//   "deny-host"  param NAME   HTTP with Host NAME must not reach the origin
//   "allow-cidr" param "IP:PORT[/udp]" must not be refused by the kernel (allow rule)
//   "allow-host" param NAME   HTTP with Host NAME reaches the origin through the proxy
// An unknown kind is an error message in `error`.
Case sampleCase(const std::string& kind, const std::string& param, std::string* error);

// The outcome of one run of a case.
struct Observation {
  ActionResult call;
  bool tokenAtSink = false;               // the token reached the case's sink listener
  std::vector<std::string> reachedSinks;  // every listener the token reached
};

// kError: the case could not run (the probe died); like kControlFailed, it makes the
// battery inconclusive.
enum class Verdict { kPass, kHole, kControlFailed, kWarn, kSkip, kError };
std::string_view verdictName(Verdict v);

// Judges an observation against the case (pure; unit-tested).
Verdict judge(const Case& c, const Observation& o);
// "refused: EPERM at connect", "reached other:80/tcp", ... for the table.
std::string observedText(const Case& c, const Observation& o);

}  // namespace egressd::verify
