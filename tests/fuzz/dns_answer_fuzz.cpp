// An upstream's DNS answer (dns::parseResponse, what egressd's resolver reads) and what the
// per-sandbox server makes of it (relayAnswer, buildAddressAnswer). The query is egressd's
// own for "www.example.test" with the id the input carries and the type its question names
// (A when it names none), so mutated answers still get past the question check.
// Properties:
//   - parseResponse never reads outside the message and never loops (kMaxCnameChain, a
//     bounded number of compression jumps);
//   - an accepted answer with TC or a non-zero rcode has no addresses; addresses are unique,
//     IPv4 for an A query, at most ANCOUNT of them; no addresses <=> ttl 0, and ttl is never
//     below the smallest record TTL; hint addresses are unique;
//   - relayed to a sandbox's query (another id, the name in other case) with a 512-byte
//     limit: no longer than the limit, accepted by parseResponse as the answer to the
//     sandbox's query, with the same addresses (or TC and none when it did not fit);
//   - the addresses put into a fresh answer (buildAddressAnswer) parse back unchanged.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "dns/message.h"
#include "property.h"

namespace {

namespace dns = egressd::dns;
using egressd::IpAddress;

constexpr const char* kName = "www.example.test";
constexpr const char* kSandboxName = "WWW.Example.TEST";
constexpr size_t kQtypeOffset = dns::kHeaderSize + 18;  // after the encoded kName

void check(bool condition, const char* what, const std::string& detail = "") {
  egressd::fuzz::check("dns_answer", condition, what, detail);
}

bool unique(std::vector<IpAddress> addresses) {
  std::sort(addresses.begin(), addresses.end());
  return std::adjacent_find(addresses.begin(), addresses.end()) == addresses.end();
}

void checkParsed(const dns::ParsedAnswer& a, uint16_t qtype) {
  check(a.rcode >= 0 && a.rcode <= 15, "rcode out of range");
  if (a.truncated || a.rcode != dns::kRcodeNoError) {
    check(a.addresses.empty(), "addresses from a truncated or failed answer");
  }
  check(unique(a.addresses), "duplicate addresses");
  check(unique(a.hintAddresses), "duplicate hint addresses");
  check(a.addresses.size() <= a.answerCount, "more addresses than answer records");
  check(!a.addresses.empty() || a.ttl == 0, "ttl without addresses");
  if (!a.addresses.empty()) {
    check(a.ttl >= a.minRecordTtl, "address ttl below the smallest record ttl");
  }
  if (qtype == dns::kTypeA) {
    for (const IpAddress& address : a.addresses) {
      check(address.isV4(), "non-IPv4 address for an A query", address.toString());
    }
  }
  if (qtype != dns::kTypeA && qtype != dns::kTypeAaaa) {
    check(a.addresses.empty(), "addresses for a non-address query");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  egressd::fuzz::InputScope scope(data, size);
  const std::span<const uint8_t> msg(data, size);
  const uint16_t id = size >= 2 ? static_cast<uint16_t>((data[0] << 8) | data[1]) : 0;
  const uint16_t qtype =
      size >= kQtypeOffset + 2
          ? static_cast<uint16_t>((data[kQtypeOffset] << 8) | data[kQtypeOffset + 1])
          : dns::kTypeA;
  auto parsed = dns::parseResponse(msg, id, kName, qtype);
  if (!parsed.ok()) {
    check(!parsed.error().message().empty(), "refusal without text");
    return 0;
  }
  checkParsed(*parsed, qtype);

  // The sandbox asked the same question in its own case, with another id.
  const uint16_t sandboxId = static_cast<uint16_t>(id ^ 0x5a5a);
  const std::vector<uint8_t> query = dns::buildQuery(sandboxId, kSandboxName, qtype);
  check(!query.empty(), "buildQuery refused the fixed name");
  auto sandboxQuery = dns::parseQuery(query);
  check(sandboxQuery.ok(), "our own query does not parse");
  auto relayed = dns::relayAnswer(msg, query, *sandboxQuery, 512);
  if (relayed.ok()) {
    check(relayed->size() <= 512, "relayed answer over the size limit",
          std::to_string(relayed->size()));
    auto back = dns::parseResponse(*relayed, sandboxId, kSandboxName, qtype);
    check(back.ok(), "relayed answer not accepted for the sandbox's query",
          back.ok() ? "" : back.error().message());
    checkParsed(*back, qtype);
    if (back->truncated && !parsed->truncated) {
      check(back->addresses.empty() && relayed->size() == sandboxQuery->questionEnd,
            "a too-long answer is not cut to header and question");
    } else {
      check(back->rcode == parsed->rcode && back->addresses == parsed->addresses &&
                back->ttl == parsed->ttl,
            "relayed answer reads differently");
    }
  }

  if (!parsed->addresses.empty() && (qtype == dns::kTypeA || qtype == dns::kTypeAaaa)) {
    std::vector<IpAddress> sameFamily;
    for (const IpAddress& address : parsed->addresses) {
      if (address.isV4() == (qtype == dns::kTypeA)) {
        sameFamily.push_back(address);
      }
    }
    const std::vector<uint8_t> fresh =
        dns::buildAddressAnswer(query, *sandboxQuery, sameFamily, parsed->ttl);
    auto back = dns::parseResponse(fresh, sandboxId, kSandboxName, qtype);
    check(back.ok() && back->addresses == sameFamily &&
              (sameFamily.empty() || back->ttl == parsed->ttl),
          "address answer does not read back", back.ok() ? "" : back.error().message());
  }
  return 0;
}
