#include "audit/record.h"

#include <cstdio>
#include <ctime>

namespace egressd::audit {

namespace {

constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD in UTF-8

// Length of the valid UTF-8 sequence starting at text[pos], or 0 when it is not valid
// (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF).
size_t validUtf8Length(std::string_view text, size_t pos) {
  auto byteAt = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byteAt(pos);
  size_t length = 0;
  unsigned char minSecond = 0x80;
  unsigned char maxSecond = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) {
      minSecond = 0xA0;  // overlong below U+0800
    } else if (lead == 0xED) {
      maxSecond = 0x9F;  // UTF-16 surrogates
    }
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) {
      minSecond = 0x90;  // overlong below U+10000
    } else if (lead == 0xF4) {
      maxSecond = 0x8F;  // above U+10FFFF
    }
  } else {
    return 0;
  }
  if (pos + length > text.size()) {
    return 0;
  }
  if (byteAt(pos + 1) < minSecond || byteAt(pos + 1) > maxSecond) {
    return 0;
  }
  for (size_t i = 2; i < length; ++i) {
    if ((byteAt(pos + i) & 0xC0) != 0x80) {
      return 0;
    }
  }
  return length;
}

std::string redact(std::string_view value, const std::vector<std::string>& secrets) {
  std::string out(value);
  for (const std::string& secret : secrets) {
    if (secret.empty()) {
      continue;
    }
    size_t pos = out.find(secret);
    while (pos != std::string::npos) {
      out.replace(pos, secret.size(), kRedacted);
      pos = out.find(secret, pos + kRedacted.size());
    }
  }
  return out;
}

bool containsAny(std::string_view value, const std::vector<std::string>& secrets) {
  for (const std::string& secret : secrets) {
    if (!secret.empty() && value.find(secret) != std::string_view::npos) {
      return true;
    }
  }
  return false;
}

class LineWriter {
 public:
  LineWriter(std::string& out, const std::vector<std::string>& secrets)
      : out_(out), secrets_(secrets) {}

  void key(std::string_view name) {
    out_ += first_ ? "{\"" : ",\"";
    first_ = false;
    out_ += name;
    out_ += "\":";
  }

  void stringField(std::string_view name, std::string_view value) {
    if (value.empty()) {
      return;
    }
    key(name);
    if (!secrets_.empty() && containsAny(value, secrets_)) {
      appendJsonString(out_, redact(value, secrets_));
    } else {
      appendJsonString(out_, value);
    }
  }

  template <typename Number>
  void numberField(std::string_view name, Number value) {
    key(name);
    out_ += std::to_string(value);
  }

 private:
  std::string& out_;
  const std::vector<std::string>& secrets_;
  bool first_ = true;
};

}  // namespace

void appendJsonString(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  size_t pos = 0;
  while (pos < text.size()) {
    const auto c = static_cast<unsigned char>(text[pos]);
    if (c >= 0x80) {
      size_t length = validUtf8Length(text, pos);
      if (length == 0) {
        out += kReplacementChar;
        ++pos;
      } else {
        out.append(text.substr(pos, length));
        pos += length;
      }
      continue;
    }
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 0xF];
        } else {
          out += static_cast<char>(c);
        }
    }
    ++pos;
  }
  out += '"';
}

std::string formatTime(std::chrono::system_clock::time_point time) {
  using std::chrono::duration_cast;
  using std::chrono::floor;
  const auto sinceEpoch = duration_cast<std::chrono::microseconds>(time.time_since_epoch());
  const auto seconds = floor<std::chrono::seconds>(sinceEpoch);
  const auto micros = (sinceEpoch - seconds).count();  // 0..999999 thanks to floor()
  const std::time_t secondsT = static_cast<std::time_t>(seconds.count());
  std::tm utc{};
  ::gmtime_r(&secondsT, &utc);
  char buf[96];  // roomy enough for any int year, so no truncation is possible
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", utc.tm_year + 1900,
                utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                static_cast<int>(micros));
  return buf;
}

std::string toJsonLine(const AuditRecord& record) {
  static const std::vector<std::string> kNoSecrets;
  return toJsonLine(record, kNoSecrets);
}

std::string toJsonLine(const AuditRecord& record, const std::vector<std::string>& secrets) {
  std::string out;
  out.reserve(256 + record.path.size() + record.detail.size());
  LineWriter line(out, secrets);
  line.key("time");
  out += '"';
  out += formatTime(record.time);
  out += '"';
  line.stringField("sandbox", record.sandbox);
  line.stringField("layer", record.layer);
  line.stringField("protocol", record.protocol);
  line.stringField("orig_dst", record.origDst);
  line.stringField("upstream", record.upstream);
  line.stringField("host", record.host);
  line.stringField("method", record.method);
  line.stringField("path", record.path);
  line.stringField("decision", record.decision);
  line.stringField("reason", record.reason);
  line.stringField("rule", record.rule);
  line.stringField("handler", record.handler);
  line.numberField("status", record.status);
  line.numberField("bytes_in", record.bytesIn);
  line.numberField("bytes_out", record.bytesOut);
  line.numberField("duration_us", static_cast<long long>(record.duration.count()));
  line.stringField("detail", record.detail);
  line.stringField("query_type", record.queryType);
  line.stringField("rcode", record.rcode);
  if (!record.rcode.empty()) {
    line.numberField("answers", record.answers);
  }
  out += "}\n";
  return out;
}

std::string pathForAudit(std::string_view target) {
  std::string_view path;
  if (!target.empty() && target.front() == '/') {
    path = target;  // origin-form, the usual case
  } else if (target == "*") {
    path = target;  // OPTIONS *
  } else if (size_t schemeEnd = target.find("://");
             schemeEnd != std::string_view::npos && target.find_first_of("/?#") == schemeEnd + 1) {
    // absolute-form (a client that treats us as a forward proxy): drop scheme://authority,
    // which may hold user:password@.
    std::string_view rest = target.substr(schemeEnd + 3);
    size_t pathStart = rest.find_first_of("/?#");
    path = pathStart == std::string_view::npos ? std::string_view() : rest.substr(pathStart);
    if (path.empty() || path.front() != '/') {
      return "/";
    }
  } else {
    return "";  // authority-form (CONNECT host:port) or not a target at all
  }
  path = path.substr(0, path.find_first_of("?#"));
  if (path.size() > kMaxAuditPathBytes) {
    size_t cut = kMaxAuditPathBytes;
    // Back up to the start of a UTF-8 sequence so the cut never leaves half a character
    // (at most 3 bytes: a longer run of continuation bytes is not UTF-8 anyway).
    for (int i = 0; i < 3 && (static_cast<unsigned char>(path[cut]) & 0xC0) == 0x80; ++i) {
      --cut;
    }
    path = path.substr(0, cut);
  }
  return std::string(path);
}

}  // namespace egressd::audit
