// One HTTP/2 connection to an upstream that chose h2 in ALPN, carrying the streams of one
// client session to it (one stream per client stream). Response bytes are acknowledged to
// the upstream only as the client takes them (end-to-end flow control); a client stream's
// reset resets the upstream stream (CANCEL), and an upstream reset resets the client's with
// the same code, which is how gRPC cancellation travels.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>

#include "common/ip_address.h"
#include "proxy/h2_connection.h"
#include "proxy/h2_frames.h"
#include "proxy/h2_stream.h"
#include "proxy/server.h"

namespace egressd::proxy::h2 {

class H2Upstream : public H2Connection, public std::enable_shared_from_this<H2Upstream> {
 public:
  // `stream`: connected, TLS done, ALPN h2. Reports go to `sink` until detach().
  static std::shared_ptr<H2Upstream> start(TlsStream stream, ResponseSink& sink,
                                           const ProxyConfig& config, std::string endpointText,
                                           IpAddress addr);
  ~H2Upstream() override;

  // Whether a new stream may go on this connection (open, no GOAWAY received).
  bool usable() const;
  const IpAddress& addr() const { return addr_; }
  const std::string& endpointText() const { return endpointText_; }

  // Sends `stream`'s request (`headers`; body from its requestBody until requestEnded, then
  // its requestTrailers). False: nghttp2 refused it (the connection is going away).
  bool submit(const std::shared_ptr<H2Stream>& stream, HeaderList& headers, bool hasBody);
  // More of the request body, or its end, is queued.
  void requestData(H2Stream& stream);
  // The client took `bytes` of the stream's response: the upstream may send that many more.
  void responseTaken(H2Stream& stream, size_t bytes);
  // The client went away from the stream: reset it upstream.
  void cancel(H2Stream& stream);
  // No more reports to the sink (its session is ending); the connection closes.
  void detach();

 private:
  H2Upstream(TlsStream stream, ResponseSink& sink, const ProxyConfig& config,
             std::string endpointText, IpAddress addr);
  asio::awaitable<void> run();
  void failAll(const std::string& why);
  H2Stream* streamOf(int32_t id);

  static int onHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                      size_t namelen, const uint8_t* value, size_t valuelen, uint8_t flags,
                      void* self);
  static int onFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* self);
  static int onDataChunk(nghttp2_session*, uint8_t flags, int32_t streamId, const uint8_t* data,
                         size_t len, void* self);
  static int onStreamClose(nghttp2_session*, int32_t streamId, uint32_t errorCode, void* self);
  static ssize_t readRequestBody(nghttp2_session*, int32_t streamId, uint8_t* buf, size_t length,
                                 uint32_t* flags, nghttp2_data_source* source, void* self);

  ResponseSink* sink_;
  const ProxyConfig::Http2Limits limits_;
  std::string endpointText_;
  IpAddress addr_;
  bool goaway_ = false;
  std::unordered_map<int32_t, std::shared_ptr<H2Stream>> streams_;
  // The response head of each stream as it arrives (status, fields).
  std::unordered_map<int32_t, std::pair<int, std::vector<http::Header>>> heads_;
  size_t responseHeaderBytes_ = 0;
};

}  // namespace egressd::proxy::h2
