// Names read from a message are decoded to lowercase dotted text with every byte that is
// not a plain host character escaped (\DDD), so a label such as "a.b" can never compare
// equal to the two labels "a" and "b". Comparisons then are plain string equality.
#include "dns/message.h"

#include <netinet/in.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>

#include "dns/wire.h"

namespace egressd::dns {

namespace {

using detail::appendLabelByte;
using detail::kMaxNameWireLength;
using detail::read16;
using detail::read32;

constexpr size_t kMaxLabelLength = 63;
constexpr size_t kMaxEncodedNameLength = 253;
// Enough for any legitimate name (at most 127 labels); stops pointer-to-pointer loops.
constexpr int kMaxCompressionJumps = 128;

Error malformed(std::string message) {
  return Error(EBADMSG, "malformed DNS response: " + std::move(message));
}

std::string hex16(uint16_t value) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "0x";
  for (int shift = 12; shift >= 0; shift -= 4) {
    out += kHex[(value >> shift) & 0xf];
  }
  return out;
}

// Reads the (possibly compressed) name at `offset`. On success `out` holds it in the form
// described above ("" for the root) and the return value is the offset just after the name
// where it was written (after its first pointer, if any).
Result<size_t> readName(std::span<const uint8_t> msg, size_t offset, std::string& out) {
  out.clear();
  size_t pos = offset;
  size_t resumeAt = 0;  // set by the first pointer
  bool jumped = false;
  int jumps = 0;
  size_t wireLength = 1;  // the root label
  while (true) {
    if (pos >= msg.size()) {
      return malformed("name at offset " + std::to_string(offset) + " runs past the end");
    }
    const uint8_t length = msg[pos];
    if ((length & 0xc0) == 0xc0) {
      if (pos + 1 >= msg.size()) {
        return malformed("compression pointer at offset " + std::to_string(pos) +
                         " runs past the end");
      }
      const size_t target = static_cast<size_t>(read16(msg, pos) & 0x3fff);
      if (target < kHeaderSize || target >= msg.size()) {
        return malformed("compression pointer at offset " + std::to_string(pos) +
                         " points outside the message");
      }
      if (++jumps > kMaxCompressionJumps) {
        return malformed("compression pointer loop in name at offset " + std::to_string(offset));
      }
      if (!jumped) {
        resumeAt = pos + 2;
        jumped = true;
      }
      pos = target;
      continue;
    }
    if ((length & 0xc0) != 0) {
      return malformed("unsupported label type at offset " + std::to_string(pos));
    }
    if (length == 0) {
      return jumped ? resumeAt : pos + 1;
    }
    wireLength += 1 + length;
    if (wireLength > kMaxNameWireLength) {
      return malformed("name at offset " + std::to_string(offset) + " is longer than 255 bytes");
    }
    if (pos + 1 + length > msg.size()) {
      return malformed("label at offset " + std::to_string(pos) + " runs past the end");
    }
    if (!out.empty()) {
      out += '.';
    }
    for (size_t i = 0; i < length; ++i) {
      appendLabelByte(out, msg[pos + 1 + i]);
    }
    pos += 1 + length;
  }
}

// The name we asked for, in readName's form: lowercase, no trailing dot.
std::string canonicalQueryName(std::string_view name) {
  if (!name.empty() && name.back() == '.') {
    name.remove_suffix(1);
  }
  std::string out;
  out.reserve(name.size());
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = name.find('.', start);
    if (end == std::string_view::npos) {
      end = name.size();
    }
    if (!out.empty() || start > 0) {
      out += '.';
    }
    for (size_t i = start; i < end; ++i) {
      appendLabelByte(out, static_cast<uint8_t>(name[i]));
    }
    start = end + 1;
  }
  return out;
}

// The ipv4hint (key 4) and ipv6hint (key 6) addresses of the SVCB/HTTPS RDATA in
// [start, end): SvcPriority, TargetName (RFC 9460 forbids compressing it, but reading a
// pointer is harmless), then key/length/value parameters.
Result<std::vector<IpAddress>> readSvcbHints(std::span<const uint8_t> msg, size_t start,
                                             size_t end) {
  std::vector<IpAddress> hints;
  if (start + 2 > end) {
    return malformed("SVCB record without SvcPriority");
  }
  std::string target;
  auto afterTarget = readName(msg, start + 2, target);
  if (!afterTarget.ok()) {
    return std::move(afterTarget).error();
  }
  size_t pos = *afterTarget;
  while (pos < end) {
    if (pos + 4 > end) {
      return malformed("SVCB parameter runs past its record");
    }
    const uint16_t key = read16(msg, pos);
    const size_t length = read16(msg, pos + 2);
    const size_t value = pos + 4;
    if (value + length > end) {
      return malformed("SVCB parameter value runs past its record");
    }
    const size_t width = key == 4 ? 4 : key == 6 ? 16 : 0;
    if (width != 0) {
      if (length == 0 || length % width != 0) {
        return malformed("SVCB address hint of " + std::to_string(length) + " bytes");
      }
      for (size_t at = value; at < value + length; at += width) {
        if (width == 4) {
          hints.push_back(IpAddress::v4(msg[at], msg[at + 1], msg[at + 2], msg[at + 3]));
        } else {
          sockaddr_in6 in6{};
          in6.sin6_family = AF_INET6;
          std::memcpy(in6.sin6_addr.s6_addr, msg.data() + at, 16);
          hints.push_back(IpAddress::fromSockaddr(reinterpret_cast<const sockaddr*>(&in6)));
        }
      }
    }
    pos = value + length;
  }
  return hints;
}

struct Record {
  std::string owner;
  uint16_t type = 0;
  uint32_t ttl = 0;
  IpAddress address;   // A / AAAA
  std::string target;  // CNAME
};

}  // namespace

std::string rcodeName(int rcode) {
  switch (rcode) {
    case kRcodeNoError:
      return "NOERROR";
    case kRcodeFormErr:
      return "FORMERR";
    case kRcodeServFail:
      return "SERVFAIL";
    case kRcodeNxDomain:
      return "NXDOMAIN";
    case 4:
      return "NOTIMP";
    case kRcodeRefused:
      return "REFUSED";
    default:
      return "RCODE " + std::to_string(rcode);
  }
}

std::string typeName(uint16_t qtype) {
  switch (qtype) {
    case kTypeA:
      return "A";
    case kTypeAaaa:
      return "AAAA";
    case kTypeCname:
      return "CNAME";
    case 2:
      return "NS";
    case 6:
      return "SOA";
    case kTypePtr:
      return "PTR";
    case kTypeMx:
      return "MX";
    case kTypeTxt:
      return "TXT";
    case kTypeSrv:
      return "SRV";
    case kTypeOpt:
      return "OPT";
    case kTypeSvcb:
      return "SVCB";
    case kTypeHttps:
      return "HTTPS";
    case kTypeAny:
      return "ANY";
    default:
      return "TYPE " + std::to_string(qtype);
  }
}

std::vector<uint8_t> buildQuery(uint16_t id, std::string_view name, uint16_t qtype) {
  if (!name.empty() && name.back() == '.') {
    name.remove_suffix(1);
  }
  if (name.empty() || name.size() > kMaxEncodedNameLength) {
    return {};
  }
  std::vector<uint8_t> query = {
      static_cast<uint8_t>(id >> 8),
      static_cast<uint8_t>(id & 0xff),
      0x01,
      0x00,  // RD
      0x00,
      0x01,  // QDCOUNT
      0x00,
      0x00,
      0x00,
      0x00,
      0x00,
      0x00,
  };
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = name.find('.', start);
    if (end == std::string_view::npos) {
      end = name.size();
    }
    const size_t length = end - start;
    if (length == 0 || length > kMaxLabelLength) {
      return {};
    }
    query.push_back(static_cast<uint8_t>(length));
    query.insert(query.end(), name.begin() + static_cast<std::ptrdiff_t>(start),
                 name.begin() + static_cast<std::ptrdiff_t>(end));
    start = end + 1;
  }
  query.push_back(0);
  query.push_back(static_cast<uint8_t>(qtype >> 8));
  query.push_back(static_cast<uint8_t>(qtype & 0xff));
  query.push_back(0);
  query.push_back(kClassIn);
  return query;
}

Result<ParsedAnswer> parseResponse(std::span<const uint8_t> msg, uint16_t id, std::string_view name,
                                   uint16_t qtype) {
  if (msg.size() < kHeaderSize) {
    return malformed(std::to_string(msg.size()) + " bytes, shorter than the 12-byte header");
  }
  const uint16_t responseId = read16(msg, 0);
  if (responseId != id) {
    return Error(EBADMSG,
                 "DNS response id " + hex16(responseId) + " does not match query id " + hex16(id));
  }
  const uint16_t flags = read16(msg, 2);
  if ((flags & 0x8000) == 0) {
    return Error(EBADMSG, "DNS message is a query, not a response");
  }
  const int opcode = (flags >> 11) & 0xf;
  if (opcode != 0) {
    return Error(EBADMSG, "DNS response has opcode " + std::to_string(opcode) + ", not QUERY");
  }
  ParsedAnswer answer;
  answer.truncated = (flags & 0x0200) != 0;
  answer.rcode = flags & 0xf;
  const uint16_t questions = read16(msg, 4);
  const uint16_t answers = read16(msg, 6);
  answer.answerCount = answers;
  if (questions != 1) {
    return Error(EBADMSG, "DNS response (" + rcodeName(answer.rcode) + ") carries " +
                              std::to_string(questions) + " questions instead of ours");
  }

  std::string owner;
  auto afterQuestionName = readName(msg, kHeaderSize, owner);
  if (!afterQuestionName.ok()) {
    return std::move(afterQuestionName).error();
  }
  size_t pos = *afterQuestionName;
  if (pos + 4 > msg.size()) {
    return malformed("question runs past the end");
  }
  const std::string expected = canonicalQueryName(name);
  const uint16_t questionType = read16(msg, pos);
  const uint16_t questionClass = read16(msg, pos + 2);
  if (owner != expected || questionType != qtype || questionClass != kClassIn) {
    return Error(EBADMSG, "DNS response is for " + owner + " " + typeName(questionType) +
                              ", not for " + expected + " " + typeName(qtype));
  }
  pos += 4;
  if (answer.truncated || answer.rcode != kRcodeNoError) {
    return answer;
  }

  std::vector<Record> records;
  uint32_t minRecordTtl = UINT32_MAX;
  for (uint16_t i = 0; i < answers; ++i) {
    Record record;
    auto afterOwner = readName(msg, pos, record.owner);
    if (!afterOwner.ok()) {
      return std::move(afterOwner).error();
    }
    pos = *afterOwner;
    if (pos + 10 > msg.size()) {
      return malformed("answer record " + std::to_string(i) + " runs past the end");
    }
    record.type = read16(msg, pos);
    const uint16_t recordClass = read16(msg, pos + 2);
    const uint32_t ttl = read32(msg, pos + 4);
    record.ttl = (ttl & 0x80000000u) != 0 ? 0 : ttl;  // RFC 2181 section 8
    minRecordTtl = std::min(minRecordTtl, record.ttl);
    const size_t dataLength = read16(msg, pos + 8);
    const size_t dataStart = pos + 10;
    if (dataStart + dataLength > msg.size()) {
      return malformed("answer record " + std::to_string(i) + " data runs past the end");
    }
    pos = dataStart + dataLength;
    if (recordClass != kClassIn) {
      continue;
    }
    if (record.type == kTypeCname) {
      auto afterTarget = readName(msg, dataStart, record.target);
      if (!afterTarget.ok()) {
        return std::move(afterTarget).error();
      }
      if (*afterTarget != pos) {
        return malformed("CNAME record " + std::to_string(i) + " has a bad data length");
      }
    } else if (record.type == qtype && qtype == kTypeA) {
      if (dataLength != 4) {
        return malformed("A record with " + std::to_string(dataLength) + " bytes of data");
      }
      record.address =
          IpAddress::v4(msg[dataStart], msg[dataStart + 1], msg[dataStart + 2], msg[dataStart + 3]);
    } else if (record.type == qtype && qtype == kTypeAaaa) {
      if (dataLength != 16) {
        return malformed("AAAA record with " + std::to_string(dataLength) + " bytes of data");
      }
      sockaddr_in6 in6{};
      in6.sin6_family = AF_INET6;
      std::memcpy(in6.sin6_addr.s6_addr, msg.data() + dataStart, 16);
      record.address = IpAddress::fromSockaddr(reinterpret_cast<const sockaddr*>(&in6));
    } else if (record.type == kTypeSvcb || record.type == kTypeHttps) {
      auto hints = readSvcbHints(msg, dataStart, pos);
      if (!hints.ok()) {
        return std::move(hints).error();
      }
      for (const IpAddress& hint : *hints) {
        if (std::find(answer.hintAddresses.begin(), answer.hintAddresses.end(), hint) ==
            answer.hintAddresses.end()) {
          answer.hintAddresses.push_back(hint);
        }
      }
      continue;
    } else {
      continue;  // other types (RRSIG, ...) are not ours to interpret
    }
    records.push_back(std::move(record));
  }

  answer.minRecordTtl = minRecordTtl == UINT32_MAX ? 0 : minRecordTtl;
  if (qtype != kTypeA && qtype != kTypeAaaa) {
    // Only A and AAAA answers carry addresses. The records a CNAME query asks for are the
    // CNAMEs themselves: followed as a chain they yielded their unset address (0.0.0.0),
    // which the sandbox resolver then dropped as a special destination, emptying every
    // CNAME answer (found by fuzz.dns_answer).
    return answer;
  }

  // Follow the chain from our name; only records on it count.
  std::string current = expected;
  uint32_t minTtl = UINT32_MAX;
  for (int hops = 0;; ++hops) {
    bool found = false;
    for (const Record& record : records) {
      if (record.type == qtype && record.owner == current) {
        found = true;
        minTtl = std::min(minTtl, record.ttl);
        if (std::find(answer.addresses.begin(), answer.addresses.end(), record.address) ==
            answer.addresses.end()) {
          answer.addresses.push_back(record.address);
        }
      }
    }
    if (found) {
      break;
    }
    const Record* alias = nullptr;
    for (const Record& record : records) {
      if (record.type == kTypeCname && record.owner == current) {
        alias = &record;
        break;
      }
    }
    if (alias == nullptr) {
      break;  // no data for this type
    }
    if (hops == kMaxCnameChain) {
      return malformed("CNAME chain from " + expected + " is longer than " +
                       std::to_string(kMaxCnameChain) + " (or loops)");
    }
    minTtl = std::min(minTtl, alias->ttl);
    current = alias->target;
  }
  answer.ttl = answer.addresses.empty() ? 0 : minTtl;
  return answer;
}

}  // namespace egressd::dns
