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
inline constexpr uint16_t kTypeAaaa = 28;
inline constexpr uint16_t kClassIn = 1;

inline constexpr int kRcodeNoError = 0;
inline constexpr int kRcodeFormErr = 1;
inline constexpr int kRcodeServFail = 2;
inline constexpr int kRcodeNxDomain = 3;
inline constexpr int kRcodeRefused = 5;

inline constexpr size_t kHeaderSize = 12;
// CNAME hops followed inside one answer before giving up (a loop or a hostile chain).
inline constexpr int kMaxCnameChain = 8;

// "NOERROR", "NXDOMAIN", ..., or "RCODE 9".
std::string rcodeName(int rcode);
// "A", "AAAA", "CNAME", or "TYPE 65".
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
};

// Checks that `msg` answers our query: id, QR=1, opcode QUERY, exactly one question equal
// to (`name`, `qtype`, IN) ignoring case. Fails (EBADMSG) on anything else and on malformed
// records in the answer section. A response with a non-zero rcode or TC=1 is returned as is
// (without addresses): what it means is the caller's decision.
Result<ParsedAnswer> parseResponse(std::span<const uint8_t> msg, uint16_t id, std::string_view name,
                                   uint16_t qtype);

}  // namespace egressd::dns
