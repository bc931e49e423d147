// One audit record per decision (docs/design.md "Names", Audit) and its JSON line.
// The record stores what it is given; callers pass paths through pathForAudit() so query
// strings (which often carry tokens) never reach the log, and AuditLog redacts the values of
// known secrets from every field as a second line of defence.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace egressd::audit {

inline constexpr size_t kMaxAuditPathBytes = 512;
inline constexpr std::string_view kRedacted = "[REDACTED]";

struct AuditRecord {
  std::chrono::system_clock::time_point time = std::chrono::system_clock::now();
  std::string sandbox;
  std::string layer;      // "kernel" | "proxy" | "dns"
  std::string protocol;   // "http", "https", "tcp", "udp", "websocket", ...
  std::string origDst;    // "198.18.3.3:80" / "[2001:db8::3]:80" (what the sandbox connected to)
  std::string upstream;   // where egressd actually connected ("" if none)
  std::string host;       // normalized host, "" if none
  std::string method;     // "" if none
  std::string path;       // without query or fragment: build it with pathForAudit()
  std::string decision;   // "allow" | "deny" | "error"
  std::string reason;     // stable id: "denied_host", "allowed_host", "upstream_timeout", ...
  std::string rule;       // rule that decided ("" = default)
  std::string handler;    // "" until handlers exist
  int status = 0;         // HTTP status sent to the client (0 for kernel/non-HTTP)
  uint64_t bytesIn = 0;   // request body bytes from the sandbox
  uint64_t bytesOut = 0;  // response bytes to the sandbox
  std::chrono::microseconds duration{0};
  std::string detail;  // free text (kernel: hook, pid, comm; proxy: error text)
  // layer dns: the query's type ("A", "TYPE 99"), the answer's rcode ("NXDOMAIN") and its
  // answer-record count (written only when rcode is set).
  std::string queryType;
  std::string rcode;
  uint32_t answers = 0;
};

// One JSON object on one line, ending with '\n'. Keys in this order: time, sandbox, layer,
// protocol, orig_dst, upstream, host, method, path, decision, reason, rule, handler, status,
// bytes_in, bytes_out, duration_us, detail, query_type, rcode, answers. Empty string fields
// are omitted; numbers are always present (but answers, only there with an rcode). time is RFC 3339
// UTC with microseconds ("2024-05-01T12:34:56.000123Z"). Bytes that are not valid UTF-8 become
// U+FFFD, so every line is valid JSON whatever the sandbox sent. Every occurrence of a non-empty
// value in `secrets` inside any string field is replaced by "[REDACTED]".
std::string toJsonLine(const AuditRecord& record);
std::string toJsonLine(const AuditRecord& record, const std::vector<std::string>& secrets);

// The path of a request target as the audit log keeps it: query and fragment removed, the
// scheme and authority of an absolute-form target removed (they may carry user:password@;
// the host is recorded separately), an authority-form target (CONNECT host:port) gives "",
// and the result is cut to at most kMaxAuditPathBytes without splitting a UTF-8 sequence.
std::string pathForAudit(std::string_view target);

// RFC 3339 UTC with microseconds, as in the "time" key.
std::string formatTime(std::chrono::system_clock::time_point time);

// Appends `text` as a JSON string literal (quotes included), escaping control characters and
// replacing invalid UTF-8 with U+FFFD.
void appendJsonString(std::string& out, std::string_view text);

}  // namespace egressd::audit
