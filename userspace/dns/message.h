// DNS wire format (RFC 1035), only as much as a stub resolver needs: build one query, and
// read one response to it. Pure and fuzz-safe: every read is bounds-checked, compression
// pointers are followed a bounded number of times, and nothing a response says is trusted
// beyond the question egressd asked (records for other names are ignored).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/ip_address.h"
#include "common/result.h"

namespace egressd::dns {

inline constexpr uint16_t kTypeA = 1;
inline constexpr uint16_t kTypeCname = 5;
inline constexpr uint16_t kTypePtr = 12;
inline constexpr uint16_t kTypeMx = 15;
inline constexpr uint16_t kTypeTxt = 16;
inline constexpr uint16_t kTypeAaaa = 28;
inline constexpr uint16_t kTypeSrv = 33;
inline constexpr uint16_t kTypeOpt = 41;
inline constexpr uint16_t kTypeSvcb = 64;
inline constexpr uint16_t kTypeHttps = 65;
inline constexpr uint16_t kTypeAny = 255;
inline constexpr uint16_t kClassIn = 1;

inline constexpr int kRcodeNoError = 0;
inline constexpr int kRcodeFormErr = 1;
inline constexpr int kRcodeServFail = 2;
inline constexpr int kRcodeNxDomain = 3;
inline constexpr int kRcodeNotImp = 4;
inline constexpr int kRcodeRefused = 5;

inline constexpr size_t kHeaderSize = 12;
// CNAME hops followed inside one answer before giving up (a loop or a hostile chain).
inline constexpr int kMaxCnameChain = 8;

// "NOERROR", "NXDOMAIN", ..., or "RCODE 9".
std::string rcodeName(int rcode);
// "A", "AAAA", "CNAME", "TXT", "HTTPS", ... or "TYPE 99".
std::string typeName(uint16_t qtype);

// A standard query: RD=1, one question (`name` IN `qtype`), no EDNS. `name` is a host name
// without or with one trailing dot. Returns an empty vector when `name` cannot be encoded
// (empty, an empty label, a label over 63 bytes or a name over 253).
std::vector<uint8_t> buildQuery(uint16_t id, std::string_view name, uint16_t qtype);

struct ParsedAnswer {
  int rcode = kRcodeNoError;
  bool truncated = false;  // TC: the answer section is not to be used; retry over TCP
  // `qtype` records of `name` or of the end of its CNAME chain, in answer order, without
  // duplicates (v4-mapped AAAA data becomes IPv4, as everywhere else).
  std::vector<IpAddress> addresses;
  uint32_t ttl = 0;  // the smallest TTL along the chain used; 0 when there are no addresses
  // The smallest TTL of any answer-section record (0 when there is none), for caching
  // answers of any type.
  uint32_t minRecordTtl = 0;
  uint16_t answerCount = 0;  // ANCOUNT
  // ipv4hint/ipv6hint addresses of every SVCB/HTTPS record in the answer section (RFC 9460
  // section 7.3): a client may connect to them without asking for A/AAAA, so they are judged
  // like addresses. Parsed for any query type; duplicates kept out.
  std::vector<IpAddress> hintAddresses;
};

// Checks that `msg` answers our query: id, QR=1, opcode QUERY, exactly one question equal
// to (`name`, `qtype`, IN) ignoring case. Fails (EBADMSG) on anything else and on malformed
// records in the answer section. A response with a non-zero rcode or TC=1 is returned as is
// (without addresses): what it means is the caller's decision.
Result<ParsedAnswer> parseResponse(std::span<const uint8_t> msg, uint16_t id, std::string_view name,
                                   uint16_t qtype);

// ---- The server side: what egressd's per-sandbox resolver reads from and writes to a
// sandbox (proxy/dns_server.h). Queries are never forwarded as they came: egressd builds
// its own query (buildQuery) from the parsed question, so EDNS options, padding, extra
// records and flags a sandbox sets never leave the machine.

// A sandbox's query: one question, nothing else but an optional OPT record.
struct ParsedQuery {
  uint16_t id = 0;
  int opcode = 0;
  bool recursionDesired = false;
  // The question name in readName form: lowercase, no trailing dot, bytes outside
  // [a-z0-9_-] escaped as \DDD ("" = the root).
  std::string name;
  uint16_t qtype = 0;
  uint16_t qclass = 0;
  size_t questionEnd = 0;  // offset just after the question: [0, questionEnd) is echoed
  size_t nameWireLength = 0;
  size_t longestLabel = 0;  // bytes
  bool hasEdns = false;
  uint16_t ednsUdpSize = 0;  // from the OPT record (0 without one)
};

// Fails (EBADMSG) on a message too short for a header, a response (QR=1), and anything but
// exactly one question (the caller answers FORMERR when headerUsable() holds). A non-QUERY
// opcode parses; what to answer is the caller's business.
Result<ParsedQuery> parseQuery(std::span<const uint8_t> msg);
// Whether a message that parseQuery refused still has a query header to answer FORMERR to.
bool headerUsable(std::span<const uint8_t> msg);

// The largest UDP answer the client takes: 512 without EDNS, else its advertised size
// clamped to [512, 1232] (the DNS flag day 2020 value).
size_t maxUdpAnswer(const ParsedQuery& query);

// An answer egressd makes itself: QR, the query's id, opcode and RD, RA, `rcode`, and the
// query's question echoed (none when it could not be parsed).
std::vector<uint8_t> buildLocalAnswer(std::span<const uint8_t> query, const ParsedQuery& parsed,
                                      int rcode);
// FORMERR for a message parseQuery refused (headerUsable() must hold).
std::vector<uint8_t> buildFormErr(std::span<const uint8_t> query);

// An upstream's answer to egressd's own query for the same question, made an answer to the
// sandbox's query: the sandbox's id and question bytes (the case it asked in), the rest
// as the upstream sent it. Longer than `maxSize`: the header and question only, with TC set,
// so the client retries over TCP. Fails (EBADMSG) when the answer's question does not line
// up with the query's.
Result<std::vector<uint8_t>> relayAnswer(std::span<const uint8_t> upstream,
                                         std::span<const uint8_t> query, const ParsedQuery& parsed,
                                         size_t maxSize);

// NOERROR with one A or AAAA record per address (owner: the question), all with `ttl`:
// what is left of an answer after addresses the policy refuses were dropped.
std::vector<uint8_t> buildAddressAnswer(std::span<const uint8_t> query, const ParsedQuery& parsed,
                                        const std::vector<IpAddress>& addresses, uint32_t ttl);

}  // namespace egressd::dns
