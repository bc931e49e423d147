#include "proxy/h2_frames.h"

#include <algorithm>

#include "common/ascii.h"

namespace egressd::proxy::h2 {

namespace {

bool safeValue(std::string_view value) {
  return value.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool named(std::string_view name, const std::vector<std::string>& patterns) {
  return std::any_of(patterns.begin(), patterns.end(),
                     [name](const std::string& p) { return http::fieldNameMatches(name, p); });
}

// The names a Connection field lists, and the fixed connection-specific ones.
std::vector<std::string> forbiddenNames(const std::vector<http::Header>& headers) {
  std::vector<std::string> names;
  for (const http::Header& h : headers) {
    if (!http::equalsIgnoreCase(h.name, "connection")) {
      continue;
    }
    for (std::string_view token : http::listElements(h.value)) {
      if (token.find('*') == std::string_view::npos) {
        names.emplace_back(token);
      }
    }
  }
  return names;
}

}  // namespace

void HeaderList::add(std::string_view name, std::string_view value) {
  fields_.push_back(http::Header{std::string(name), std::string(value)});
}

const nghttp2_nv* HeaderList::data() {
  nv_.clear();
  nv_.reserve(fields_.size());
  for (http::Header& f : fields_) {
    nv_.push_back(nghttp2_nv{reinterpret_cast<uint8_t*>(f.name.data()),
                             reinterpret_cast<uint8_t*>(f.value.data()), f.name.size(),
                             f.value.size(), NGHTTP2_NV_FLAG_NONE});
  }
  return nv_.data();
}

bool isConnectionSpecific(std::string_view name) {
  for (std::string_view n :
       {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te"}) {
    if (http::equalsIgnoreCase(name, n)) {
      return true;
    }
  }
  return false;
}

RequestConversion toRequestHead(RequestFields fields) {
  RequestConversion c;
  http::RequestHead& head = c.head;
  head.versionMajor = 2;
  head.versionMinor = 0;
  head.method = std::move(fields.method);
  if (head.method == "CONNECT") {
    c.status = 405;
    c.error = fields.protocol.empty()
                  ? "CONNECT is not supported (the sandbox already chose the destination)"
                  : "extended CONNECT (:protocol " + fields.protocol +
                        ") is not supported: the stream would become a tunnel egressd does not "
                        "judge";
    return c;
  }
  if (fields.path.empty()) {
    c.error = "request without :path";
    return c;
  }
  if (!http::equalsIgnoreCase(fields.scheme, "https")) {
    c.error = "request :scheme " + (fields.scheme.empty() ? std::string("(none)") : fields.scheme) +
              " inside TLS; only https is served";
    return c;
  }
  std::optional<std::string> hostField;
  for (http::Header& h : fields.headers) {
    if (http::equalsIgnoreCase(h.name, "host")) {
      if (hostField) {
        c.error = "more than one host field";
        return c;
      }
      hostField = h.value;
      continue;
    }
    if (http::equalsIgnoreCase(h.name, "te")) {
      c.trailersOk = http::equalsIgnoreCase(h.value, "trailers");
      continue;  // hop-by-hop: re-added for an HTTP/2 upstream only
    }
    if (http::equalsIgnoreCase(h.name, "content-length")) {
      uint64_t length = 0;
      bool digits = !h.value.empty() && h.value.size() <= 19;
      for (char ch : h.value) {
        digits = digits && ch >= '0' && ch <= '9';
        length = length * 10 + static_cast<uint64_t>(ch - '0');
      }
      if (!digits || (head.contentLength && *head.contentLength != length)) {
        c.error = "bad content-length " + h.value;
        return c;
      }
      head.contentLength = length;
    }
    head.headers.push_back(std::move(h));
  }
  if (!fields.authority.empty()) {
    // RFC 9113 8.3.1: a host field beside :authority must name the same; a proxy that sent
    // one upstream and judged the other would be fronting.
    if (hostField && !http::sameAuthority(*hostField, fields.authority, 443)) {
      c.error = "host " + *hostField + " differs from :authority " + fields.authority;
      return c;
    }
    head.host = std::move(fields.authority);
  } else if (hostField) {
    head.host = std::move(*hostField);
  } else {
    c.error = "request without :authority or host";
    return c;
  }
  head.path = std::move(fields.path);
  head.target = head.path;
  head.keepAlive = true;
  return c;
}

HeaderList upstreamRequest(const http::RequestHead& head, const std::vector<http::Header>& extra,
                           const std::vector<std::string>& drop, bool trailersOk) {
  HeaderList list;
  list.add(":method", head.method);
  list.add(":scheme", "https");
  list.add(":authority", head.host);
  list.add(":path", head.path);
  for (const http::Header& h : head.headers) {
    if (!named(h.name, drop) && !isConnectionSpecific(h.name) && safeValue(h.value)) {
      list.add(lower(h.name), h.value);
    }
  }
  for (const http::Header& h : extra) {
    if (http::isToken(h.name) && safeValue(h.value) && !isConnectionSpecific(h.name) &&
        !http::equalsIgnoreCase(h.name, "host")) {
      list.add(lower(h.name), h.value);
    }
  }
  if (trailersOk) {
    list.add("te", "trailers");
  }
  return list;
}

http::RequestHead toHttp1(const http::RequestHead& head, bool hasBody, bool& chunked) {
  http::RequestHead out;
  out.method = head.method;
  out.path = head.path;
  out.target = head.path;
  out.host = head.host;
  out.versionMajor = 1;
  out.versionMinor = 1;
  out.headers.reserve(head.headers.size() + 2);
  out.headers.push_back(http::Header{"Host", head.host});
  for (const http::Header& h : head.headers) {
    out.headers.push_back(h);
  }
  chunked = hasBody && !head.contentLength;
  if (chunked) {
    out.headers.push_back(http::Header{"Transfer-Encoding", "chunked"});
  }
  out.contentLength = head.contentLength;
  out.chunked = chunked;
  out.hasBody = hasBody;
  return out;
}

HeaderList responseHeaders(int status, const std::vector<http::Header>& headers, bool keepLength) {
  HeaderList list;
  list.add(":status", std::to_string(status));
  const std::vector<std::string> listed = forbiddenNames(headers);
  for (const http::Header& h : headers) {
    if (!http::isToken(h.name) || !safeValue(h.value) || isConnectionSpecific(h.name) ||
        named(h.name, listed) ||
        (!keepLength && http::equalsIgnoreCase(h.name, "content-length"))) {
      continue;
    }
    list.add(lower(h.name), h.value);
  }
  return list;
}

HeaderList relayedFields(const std::vector<http::Header>& headers) {
  HeaderList list;
  const std::vector<std::string> listed = forbiddenNames(headers);
  for (const http::Header& h : headers) {
    if (!http::isToken(h.name) || !safeValue(h.value) || isConnectionSpecific(h.name) ||
        named(h.name, listed) || (!h.name.empty() && h.name.front() == ':')) {
      continue;
    }
    list.add(lower(h.name), h.value);
  }
  return list;
}

}  // namespace egressd::proxy::h2
