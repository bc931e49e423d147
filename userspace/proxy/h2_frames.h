// HTTP/2 header blocks as the proxy reads and writes them, apart from any session (pure,
// unit-tested): a request's fields -> the http::RequestHead that request_decision judges
// (the same judgement as an HTTP/1.1 request), and the header lists egressd sends: a
// response (from an HTTP/1.1 or HTTP/2 upstream, or egressd's own), a request to an HTTP/2
// upstream, trailers. nghttp2 has already checked the block's HTTP/2 rules (pseudo-header
// order and set, no connection-specific fields, lowercase names, content-length against
// DATA); what is checked here is what the proxy itself depends on.
#pragma once

#include <nghttp2/nghttp2.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/message.h"

namespace egressd::proxy::h2 {

// The fields of one header block, owned, with the nghttp2_nv array that points into them.
class HeaderList {
 public:
  void add(std::string_view name, std::string_view value);
  // The array for nghttp2_submit_*; valid until the next add() (nghttp2 copies it).
  const nghttp2_nv* data();
  size_t size() const { return fields_.size(); }
  const std::vector<http::Header>& fields() const { return fields_; }

 private:
  std::vector<http::Header> fields_;
  std::vector<nghttp2_nv> nv_;
};

// A request's header block as received (pseudo-headers included, in order).
struct RequestFields {
  std::string method;                 // :method
  std::string scheme;                 // :scheme
  std::string authority;              // :authority
  std::string path;                   // :path
  std::string protocol;               // :protocol (extended CONNECT, RFC 8441)
  std::vector<http::Header> headers;  // the regular fields, names lowercase
};

// The request as the proxy judges it: `head.host` is :authority (or the host field when the
// client sent no :authority), `head.headers` the regular fields without `host`, version 2.0,
// content-length read into `head.contentLength`. An error text for a request the proxy
// refuses with 400: no :authority and no host, :authority and host that disagree, CONNECT
// (405 in `status`), a missing :path, a :scheme other than https.
struct RequestConversion {
  http::RequestHead head;
  std::string error;  // non-empty: refuse with `status`
  int status = 400;
  bool trailersOk = false;  // the client sent "te: trailers" (forwarded to an HTTP/2 upstream)
};
RequestConversion toRequestHead(RequestFields fields);

// The header block for the upstream's HTTP/2 request: :method, :scheme https, :authority,
// :path, then the client's fields except `dropHeaders` (http::fieldNameMatches) and the
// handler's `extraHeaders` (names lowercased; unsafe names or values left out), and
// "te: trailers" when the client sent it.
HeaderList upstreamRequest(const http::RequestHead& head, const std::vector<http::Header>& extra,
                           const std::vector<std::string>& drop, bool trailersOk);

// The head for an HTTP/1.1 upstream: the request with Host set to the authority, and
// Transfer-Encoding: chunked when it has a body of unknown length (`chunked` set then).
http::RequestHead toHttp1(const http::RequestHead& head, bool hasBody, bool& chunked);

// A response header block: ":status", then `headers` with names lowercased and without the
// fields HTTP/2 forbids (Connection and the fields it names, Keep-Alive, Proxy-Connection,
// Transfer-Encoding, Upgrade, TE), Content-Length only when `keepLength`. Unsafe names or
// values (not a token, CR/LF/NUL) are left out.
HeaderList responseHeaders(int status, const std::vector<http::Header>& headers,
                           bool keepLength = true);

// Regular fields (trailers, or the fields of an HTTP/2 response relayed to the client) with
// the forbidden ones removed, names lowercased.
HeaderList relayedFields(const std::vector<http::Header>& headers);

// A field HTTP/2 never carries (RFC 9113 8.2.2).
bool isConnectionSpecific(std::string_view name);

}  // namespace egressd::proxy::h2
