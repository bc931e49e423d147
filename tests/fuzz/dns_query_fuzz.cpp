// A sandbox's DNS query (dns::parseQuery, what proxy/dns_server reads from a sandbox) and the
// answers egressd builds for it. Properties:
//   - parseQuery never reads outside the message; a parsed query's question lies inside it,
//     its name is in readName form (lowercase, [a-z0-9_-] and \DDD escapes, '.' separators),
//     maxUdpAnswer is within [512, 1232];
//   - local answers (NOERROR/SERVFAIL/NXDOMAIN/REFUSED) echo the id and the question bytes,
//     have QR set and are no longer than the question; for a plain host name they are
//     accepted by parseResponse as the answer to that question with that rcode;
//   - an address answer parses back (parseResponse) to exactly the addresses of the query's
//     type and the TTL given;
//   - buildQuery of the parsed name and type parses to the same question;
//   - a message parseQuery refuses gets a FORMERR that keeps its id, when headerUsable;
//   - isPrivateReverseName (proxy/dns_query_judge.h) decides on any parsed name without failing.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/ip_address.h"
#include "dns/message.h"
#include "property.h"
#include "proxy/dns_query_judge.h"

namespace {

namespace dns = egressd::dns;
using egressd::IpAddress;

void check(bool condition, const char* what, const std::string& detail = "") {
  egressd::fuzz::check("dns_query", condition, what, detail);
}

uint16_t read16(std::span<const uint8_t> m, size_t at) {
  return static_cast<uint16_t>((m[at] << 8) | m[at + 1]);
}

// Only [a-z0-9-] labels of 1..63 bytes: the names buildQuery and parseResponse take as is.
bool plainHostName(const std::string& name) {
  if (name.empty() || name.size() > 253) {
    return false;
  }
  size_t label = 0;
  for (char c : name) {
    if (c == '.') {
      if (label == 0) {
        return false;
      }
      label = 0;
    } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-') {
      if (++label > 63) {
        return false;
      }
    } else {
      return false;
    }
  }
  return label > 0;
}

void checkReadNameForm(const std::string& name) {
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    if (c == '\\') {
      check(i + 3 < name.size(), "cut escape in name", name);
      check(name[i + 1] >= '0' && name[i + 1] <= '2', "bad escape in name", name);
      i += 3;
      continue;
    }
    check((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.',
          "name byte not in readName form", name);
  }
}

void checkAnswerHead(std::span<const uint8_t> answer, std::span<const uint8_t> query,
                     const dns::ParsedQuery& parsed, int rcode) {
  check(answer.size() >= dns::kHeaderSize, "answer shorter than a header");
  check(read16(answer, 0) == parsed.id, "answer id differs from the query's");
  check((answer[2] & 0x80) != 0, "answer without QR");
  check((answer[3] & 0x0f) == rcode, "answer rcode differs");
  check(answer.size() <= parsed.questionEnd, "local answer longer than the question");
  for (size_t i = dns::kHeaderSize; i < answer.size(); ++i) {
    check(answer[i] == query[i], "local answer does not echo the question bytes");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  egressd::fuzz::InputScope scope(data, size);
  const std::span<const uint8_t> msg(data, size);
  auto parsed = dns::parseQuery(msg);
  if (!parsed.ok()) {
    check(!parsed.error().message().empty(), "refusal without text");
    if (dns::headerUsable(msg)) {
      const std::vector<uint8_t> formErr = dns::buildFormErr(msg);
      check(formErr.size() >= dns::kHeaderSize && read16(formErr, 0) == read16(msg, 0),
            "FORMERR does not keep the id");
      check((formErr[3] & 0x0f) == dns::kRcodeFormErr && (formErr[2] & 0x80) != 0,
            "FORMERR is not a FORMERR response");
    }
    return 0;
  }
  const dns::ParsedQuery& q = *parsed;
  check(q.questionEnd > dns::kHeaderSize && q.questionEnd <= size, "question end out of range");
  check(q.questionEnd == dns::kHeaderSize + q.nameWireLength + 4, "question length mismatch");
  check(q.longestLabel <= 63, "label over 63 bytes accepted");
  check(dns::maxUdpAnswer(q) >= 512 && dns::maxUdpAnswer(q) <= 1232, "maxUdpAnswer range");
  checkReadNameForm(q.name);
  (void)egressd::proxy::isPrivateReverseName(q.name);
  (void)dns::typeName(q.qtype);

  for (int rcode :
       {dns::kRcodeNoError, dns::kRcodeServFail, dns::kRcodeNxDomain, dns::kRcodeRefused}) {
    const std::vector<uint8_t> answer = dns::buildLocalAnswer(msg, q, rcode);
    checkAnswerHead(answer, msg, q, rcode);
    if (plainHostName(q.name) && q.opcode == 0 && q.qclass == dns::kClassIn) {
      auto back = dns::parseResponse(answer, q.id, q.name, q.qtype);
      check(back.ok(), "local answer not accepted as the answer to its question",
            back.ok() ? "" : back.error().message());
      check(back->rcode == rcode && back->addresses.empty(), "local answer reads differently");
    }
  }

  if (plainHostName(q.name) && q.opcode == 0 && q.qclass == dns::kClassIn &&
      (q.qtype == dns::kTypeA || q.qtype == dns::kTypeAaaa)) {
    std::vector<IpAddress> addresses;
    if (q.qtype == dns::kTypeA) {
      addresses = {IpAddress::v4(198, 18, 0, 1), IpAddress::v4(198, 18, 0, 2)};
    } else {
      addresses = {*IpAddress::parse("2001:db8::1"), *IpAddress::parse("2001:db8::2")};
    }
    const std::vector<uint8_t> answer = dns::buildAddressAnswer(msg, q, addresses, 77);
    auto back = dns::parseResponse(answer, q.id, q.name, q.qtype);
    check(back.ok(), "address answer does not parse", back.ok() ? "" : back.error().message());
    check(back->addresses == addresses && back->ttl == 77, "address answer reads differently");

    const std::vector<uint8_t> ours = dns::buildQuery(q.id, q.name, q.qtype);
    check(!ours.empty(), "buildQuery refuses a parsed plain name", q.name);
    auto again = dns::parseQuery(ours);
    check(again.ok() && again->name == q.name && again->qtype == q.qtype && again->id == q.id,
          "buildQuery of the parsed question parses differently", q.name);
  }
  return 0;
}
