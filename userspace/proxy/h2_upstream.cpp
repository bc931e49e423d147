#include "proxy/h2_upstream.h"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <charconv>
#include <cstring>

namespace egressd::proxy::h2 {

namespace {

H2Upstream& self(void* p) {
  return *static_cast<H2Upstream*>(p);
}

}  // namespace

H2Upstream::H2Upstream(TlsStream stream, ResponseSink& sink, const ProxyConfig& config,
                       std::string endpointText, IpAddress addr)
    : H2Connection(std::move(stream), config.bufferBytes),
      sink_(&sink),
      limits_(config.http2),
      endpointText_(std::move(endpointText)),
      addr_(addr) {}

H2Upstream::~H2Upstream() = default;

std::shared_ptr<H2Upstream> H2Upstream::start(TlsStream stream, ResponseSink& sink,
                                              const ProxyConfig& config, std::string endpointText,
                                              IpAddress addr) {
  std::shared_ptr<H2Upstream> up(
      new H2Upstream(std::move(stream), sink, config, std::move(endpointText), addr));
  nghttp2_session_callbacks* raw = nullptr;
  nghttp2_session_callbacks_new(&raw);
  std::unique_ptr<nghttp2_session_callbacks, CallbacksDeleter> callbacks(raw);
  nghttp2_session_callbacks_set_on_header_callback(raw, &H2Upstream::onHeader);
  nghttp2_session_callbacks_set_on_frame_recv_callback(raw, &H2Upstream::onFrameRecv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(raw, &H2Upstream::onDataChunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(raw, &H2Upstream::onStreamClose);
  nghttp2_option* rawOption = nullptr;
  nghttp2_option_new(&rawOption);
  std::unique_ptr<nghttp2_option, OptionDeleter> option(rawOption);
  // Response bytes are acknowledged as the client takes them (responseTaken).
  nghttp2_option_set_no_auto_window_update(rawOption, 1);
  nghttp2_option_set_max_outbound_ack(rawOption, 1000);
  nghttp2_option_set_max_settings(rawOption, 64);
  if (nghttp2_session_client_new2(&up->session_, raw, up.get(), rawOption) != 0) {
    return nullptr;
  }
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(config.http2.streamWindowBytes)},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
       static_cast<uint32_t>(config.http2.maxHeaderListBytes)},
  };
  nghttp2_submit_settings(up->session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  asio::co_spawn(up->stream_.get_executor(), up->run(), asio::detached);
  return up;
}

asio::awaitable<void> H2Upstream::run() {
  auto owner = shared_from_this();
  co_await serve(owner);
  failAll(endReason_.empty() ? "the upstream connection ended" : endReason_);
}

bool H2Upstream::usable() const {
  return !stopped() && !goaway_ && session_ != nullptr &&
         nghttp2_session_check_request_allowed(session_) != 0;
}

void H2Upstream::failAll(const std::string& why) {
  auto streams = std::move(streams_);
  streams_.clear();
  for (auto& [id, stream] : streams) {
    stream->upstream = nullptr;
    if (sink_ != nullptr && !stream->responseEnded) {
      sink_->upstreamFailed(*stream, NGHTTP2_INTERNAL_ERROR,
                            "the HTTP/2 upstream " + endpointText_ + " failed: " + why);
    }
  }
}

void H2Upstream::detach() {
  sink_ = nullptr;
  for (auto& [id, stream] : streams_) {
    stream->upstream = nullptr;
  }
  streams_.clear();
  stop();
}

H2Stream* H2Upstream::streamOf(int32_t id) {
  auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : it->second.get();
}

bool H2Upstream::submit(const std::shared_ptr<H2Stream>& stream, HeaderList& headers,
                        bool hasBody) {
  nghttp2_data_provider provider{};
  provider.source.ptr = stream.get();
  provider.read_callback = &H2Upstream::readRequestBody;
  const int32_t id = nghttp2_submit_request(session_, nullptr, headers.data(), headers.size(),
                                            hasBody ? &provider : nullptr, nullptr);
  if (id < 0) {
    return false;
  }
  stream->upstream = this;
  stream->upstreamStreamId = id;
  streams_[id] = stream;
  wakeWriter();
  return true;
}

void H2Upstream::requestData(H2Stream& stream) {
  if (stream.upstream == this &&
      nghttp2_session_resume_data(session_, stream.upstreamStreamId) == 0) {
    wakeWriter();
  }
}

void H2Upstream::responseTaken(H2Stream& stream, size_t bytes) {
  if (stream.upstream == this && bytes > 0) {
    nghttp2_session_consume(session_, stream.upstreamStreamId, bytes);
    wakeWriter();
  }
}

void H2Upstream::cancel(H2Stream& stream) {
  if (stream.upstream != this) {
    return;
  }
  nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream.upstreamStreamId, NGHTTP2_CANCEL);
  streams_.erase(stream.upstreamStreamId);
  stream.upstream = nullptr;
  wakeWriter();
}

ssize_t H2Upstream::readRequestBody(nghttp2_session* /*session*/, int32_t /*streamId*/,
                                    uint8_t* buf, size_t length, uint32_t* flags,
                                    nghttp2_data_source* source, void* /*self*/) {
  H2Stream& stream = *static_cast<H2Stream*>(source->ptr);
  const size_t n = std::min(length, stream.requestBody.size());
  if (n > 0) {
    std::memcpy(buf, stream.requestBody.peek().data(), n);
    stream.requestBody.consume(n);
    if (stream.requestConsumed) {
      stream.requestConsumed(n);
    }
  }
  if (stream.requestBody.size() == 0 && stream.requestEnded) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (!stream.requestTrailers.empty()) {
      HeaderList trailers = relayedFields(stream.requestTrailers);
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      H2Upstream* up = stream.upstream;
      if (up != nullptr) {
        nghttp2_submit_trailer(up->session_, stream.upstreamStreamId, trailers.data(),
                               trailers.size());
      }
    }
    return static_cast<ssize_t>(n);
  }
  if (n == 0) {
    return NGHTTP2_ERR_DEFERRED;
  }
  return static_cast<ssize_t>(n);
}

int H2Upstream::onHeader(nghttp2_session* /*session*/, const nghttp2_frame* frame,
                         const uint8_t* name, size_t namelen, const uint8_t* value, size_t valuelen,
                         uint8_t /*flags*/, void* p) {
  H2Upstream& up = self(p);
  if (frame->hd.type != NGHTTP2_HEADERS) {
    return 0;
  }
  H2Stream* stream = up.streamOf(frame->hd.stream_id);
  if (stream == nullptr) {
    return 0;
  }
  const std::string_view n(reinterpret_cast<const char*>(name), namelen);
  const std::string_view v(reinterpret_cast<const char*>(value), valuelen);
  up.responseHeaderBytes_ += namelen + valuelen + 32;
  if (up.responseHeaderBytes_ > up.limits_.maxHeaderListBytes) {
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // resets the stream: a 502 for the client
  }
  auto& head = up.heads_[frame->hd.stream_id];
  if (stream->responseSubmitted) {
    stream->responseTrailers.push_back(http::Header{std::string(n), std::string(v)});
  } else if (n == ":status") {
    int status = 0;
    std::from_chars(v.data(), v.data() + v.size(), status);
    head.first = status;
  } else if (!n.empty() && n.front() != ':') {
    head.second.push_back(http::Header{std::string(n), std::string(v)});
  }
  return 0;
}

int H2Upstream::onFrameRecv(nghttp2_session* /*session*/, const nghttp2_frame* frame, void* p) {
  H2Upstream& up = self(p);
  if (frame->hd.type == NGHTTP2_GOAWAY) {
    up.goaway_ = true;
    return 0;
  }
  H2Stream* stream = up.streamOf(frame->hd.stream_id);
  if (stream == nullptr || up.sink_ == nullptr) {
    return 0;
  }
  const bool endStream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
  if (frame->hd.type == NGHTTP2_HEADERS) {
    up.responseHeaderBytes_ = 0;
    auto it = up.heads_.find(frame->hd.stream_id);
    if (!stream->responseSubmitted && it != up.heads_.end()) {
      const int status = it->second.first;
      if (status >= 100 && status < 200) {
        up.heads_.erase(it);  // interim: not relayed (the client gets the final response)
        return 0;
      }
      std::vector<http::Header> fields = std::move(it->second.second);
      up.heads_.erase(it);
      if (endStream) {
        stream->endResponse();
      }
      up.sink_->respond(*stream, status, fields, endStream);
      return 0;
    }
    if (endStream) {  // trailers
      stream->endResponse();
      up.sink_->responseData(*stream);
    }
    return 0;
  }
  if (frame->hd.type == NGHTTP2_DATA && endStream) {
    stream->endResponse();
    up.sink_->responseData(*stream);
  }
  return 0;
}

int H2Upstream::onDataChunk(nghttp2_session* /*session*/, uint8_t /*flags*/, int32_t streamId,
                            const uint8_t* data, size_t len, void* p) {
  H2Upstream& up = self(p);
  H2Stream* stream = up.streamOf(streamId);
  if (stream == nullptr || up.sink_ == nullptr) {
    nghttp2_session_consume(up.session_, streamId, len);
    return 0;
  }
  stream->appendResponse(std::string_view(reinterpret_cast<const char*>(data), len));
  up.sink_->responseData(*stream);
  return 0;
}

int H2Upstream::onStreamClose(nghttp2_session* /*session*/, int32_t streamId, uint32_t errorCode,
                              void* p) {
  H2Upstream& up = self(p);
  up.heads_.erase(streamId);
  auto it = up.streams_.find(streamId);
  if (it == up.streams_.end()) {
    return 0;
  }
  std::shared_ptr<H2Stream> stream = std::move(it->second);
  up.streams_.erase(it);
  stream->upstream = nullptr;
  if (up.sink_ == nullptr) {
    return 0;
  }
  if (errorCode != NGHTTP2_NO_ERROR || !stream->responseEnded) {
    up.sink_->upstreamFailed(
        *stream, errorCode == NGHTTP2_NO_ERROR ? uint32_t{NGHTTP2_INTERNAL_ERROR} : errorCode,
        std::string("the upstream reset the stream (") + nghttp2_http2_strerror(errorCode) + ")");
  }
  return 0;
}

}  // namespace egressd::proxy::h2
