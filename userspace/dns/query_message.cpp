// The server side of the DNS wire format (message.h): what egressd's per-sandbox resolver
// reads from a sandbox (parseQuery) and writes back to it (local answers, FORMERR, relayed
// and rebuilt upstream answers). Pure and fuzz-safe like the client side in message.cpp.
#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>

#include "dns/message.h"
#include "dns/wire.h"

namespace egressd::dns {

namespace {

using detail::appendLabelByte;
using detail::kMaxNameWireLength;
using detail::read16;

void put16(std::vector<uint8_t>& out, size_t offset, uint16_t value) {
  out[offset] = static_cast<uint8_t>(value >> 8);
  out[offset + 1] = static_cast<uint8_t>(value & 0xff);
}

void append16(std::vector<uint8_t>& out, uint16_t value) {
  out.push_back(static_cast<uint8_t>(value >> 8));
  out.push_back(static_cast<uint8_t>(value & 0xff));
}

// QR, the query's opcode and RD, RA, `rcode`.
uint16_t answerFlags(const ParsedQuery& parsed, int rcode) {
  return static_cast<uint16_t>(0x8000 | ((parsed.opcode & 0xf) << 11) |
                               (parsed.recursionDesired ? 0x0100 : 0) | 0x0080 | (rcode & 0xf));
}

// Header (counts zero but QDCOUNT) + the query's question.
std::vector<uint8_t> answerHead(std::span<const uint8_t> query, const ParsedQuery& parsed,
                                int rcode) {
  const bool withQuestion = parsed.questionEnd > kHeaderSize && parsed.questionEnd <= query.size();
  // The query's header and question, then the header rewritten (the question echoed).
  std::vector<uint8_t> out(kHeaderSize, 0);
  if (withQuestion) {
    out.assign(query.begin(), query.begin() + static_cast<std::ptrdiff_t>(parsed.questionEnd));
  }
  put16(out, 0, parsed.id);
  put16(out, 2, answerFlags(parsed, rcode));
  put16(out, 4, withQuestion ? 1 : 0);
  put16(out, 6, 0);
  put16(out, 8, 0);
  put16(out, 10, 0);
  return out;
}

}  // namespace

bool headerUsable(std::span<const uint8_t> msg) {
  return msg.size() >= kHeaderSize && (msg[2] & 0x80) == 0;
}

Result<ParsedQuery> parseQuery(std::span<const uint8_t> msg) {
  if (msg.size() < kHeaderSize) {
    return Error(EBADMSG, "DNS query of " + std::to_string(msg.size()) +
                              " bytes, shorter than the 12-byte header");
  }
  const uint16_t flags = read16(msg, 2);
  if ((flags & 0x8000) != 0) {
    return Error(EBADMSG, "DNS message is a response, not a query");
  }
  ParsedQuery q;
  q.id = read16(msg, 0);
  q.opcode = (flags >> 11) & 0xf;
  q.recursionDesired = (flags & 0x0100) != 0;
  const uint16_t questions = read16(msg, 4);
  const uint16_t answers = read16(msg, 6);
  const uint16_t authority = read16(msg, 8);
  const uint16_t additional = read16(msg, 10);
  if (questions != 1) {
    return Error(EBADMSG, "DNS query with " + std::to_string(questions) + " questions");
  }
  if (answers != 0 || authority != 0 || additional > 1) {
    return Error(EBADMSG, "DNS query carrying records");
  }
  // The question name, uncompressed (a query has nothing to point back to).
  size_t pos = kHeaderSize;
  size_t wire = 1;
  while (true) {
    if (pos >= msg.size()) {
      return Error(EBADMSG, "DNS query name runs past the end");
    }
    const uint8_t length = msg[pos];
    if ((length & 0xc0) != 0) {
      return Error(EBADMSG, "compressed or extended label in a DNS query name");
    }
    if (length == 0) {
      ++pos;
      break;
    }
    wire += 1 + length;
    if (wire > kMaxNameWireLength) {
      return Error(EBADMSG, "DNS query name longer than 255 bytes");
    }
    if (pos + 1 + length > msg.size()) {
      return Error(EBADMSG, "DNS query label runs past the end");
    }
    if (!q.name.empty() || pos > kHeaderSize) {
      q.name += '.';
    }
    for (size_t i = 0; i < length; ++i) {
      appendLabelByte(q.name, msg[pos + 1 + i]);
    }
    q.longestLabel = std::max<size_t>(q.longestLabel, length);
    pos += 1 + length;
  }
  if (pos + 4 > msg.size()) {
    return Error(EBADMSG, "DNS question runs past the end");
  }
  q.nameWireLength = wire;
  q.qtype = read16(msg, pos);
  q.qclass = read16(msg, pos + 2);
  pos += 4;
  q.questionEnd = pos;
  if (additional == 1) {
    // Only an OPT record (RFC 6891): root owner, type 41, CLASS = the UDP payload size.
    if (pos + 11 > msg.size() || msg[pos] != 0 || read16(msg, pos + 1) != kTypeOpt) {
      return Error(EBADMSG, "DNS query with an additional record that is not OPT");
    }
    const size_t dataLength = read16(msg, pos + 9);
    if (pos + 11 + dataLength > msg.size()) {
      return Error(EBADMSG, "DNS query OPT record runs past the end");
    }
    q.hasEdns = true;
    q.ednsUdpSize = read16(msg, pos + 3);
  }
  return q;
}

size_t maxUdpAnswer(const ParsedQuery& query) {
  if (!query.hasEdns) {
    return 512;
  }
  return std::clamp<size_t>(query.ednsUdpSize, 512, 1232);
}

std::vector<uint8_t> buildLocalAnswer(std::span<const uint8_t> query, const ParsedQuery& parsed,
                                      int rcode) {
  return answerHead(query, parsed, rcode);
}

std::vector<uint8_t> buildFormErr(std::span<const uint8_t> query) {
  ParsedQuery parsed;
  if (query.size() >= kHeaderSize) {
    parsed.id = read16(query, 0);
    parsed.opcode = (query[2] >> 3) & 0xf;
    parsed.recursionDesired = (query[2] & 0x01) != 0;
  }
  return answerHead(query, parsed, kRcodeFormErr);
}

Result<std::vector<uint8_t>> relayAnswer(std::span<const uint8_t> upstream,
                                         std::span<const uint8_t> query, const ParsedQuery& parsed,
                                         size_t maxSize) {
  const size_t end = parsed.questionEnd;
  if (end <= kHeaderSize || end > query.size() || upstream.size() < end ||
      read16(upstream, 4) != 1) {
    return Error(EBADMSG, "upstream answer does not line up with the query");
  }
  // Same name (case aside), type and class: the question bytes must agree but for case.
  for (size_t i = kHeaderSize; i < end; ++i) {
    const auto fold = [](uint8_t b) {
      return static_cast<uint8_t>(b >= 'A' && b <= 'Z' ? b - 'A' + 'a' : b);
    };
    if (fold(upstream[i]) != fold(query[i])) {
      return Error(EBADMSG, "upstream answer is for another question");
    }
  }
  if (upstream.size() > maxSize) {
    std::vector<uint8_t> out = answerHead(query, parsed, upstream[3] & 0xf);
    out[2] = static_cast<uint8_t>(out[2] | 0x02);  // TC
    return out;
  }
  std::vector<uint8_t> out(upstream.begin(), upstream.end());
  put16(out, 0, parsed.id);
  std::copy(query.begin() + kHeaderSize, query.begin() + static_cast<std::ptrdiff_t>(end),
            out.begin() + kHeaderSize);
  return out;
}

std::vector<uint8_t> buildAddressAnswer(std::span<const uint8_t> query, const ParsedQuery& parsed,
                                        const std::vector<IpAddress>& addresses, uint32_t ttl) {
  std::vector<uint8_t> out = answerHead(query, parsed, kRcodeNoError);
  uint16_t count = 0;
  for (const IpAddress& a : addresses) {
    const bool v4 = a.family == AF_INET;
    if ((v4 && parsed.qtype != kTypeA) || (!v4 && parsed.qtype != kTypeAaaa)) {
      continue;
    }
    append16(out, 0xc000 | kHeaderSize);  // owner: the question's name
    append16(out, parsed.qtype);
    append16(out, kClassIn);
    append16(out, static_cast<uint16_t>(ttl >> 16));
    append16(out, static_cast<uint16_t>(ttl & 0xffff));
    append16(out, v4 ? 4 : 16);
    out.insert(out.end(), a.bytes.begin(), a.bytes.begin() + (v4 ? 4 : 16));
    ++count;
  }
  put16(out, 6, count);
  return out;
}

}  // namespace egressd::dns
