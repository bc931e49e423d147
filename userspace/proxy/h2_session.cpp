#include "proxy/h2_session.h"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <chrono>
#include <cstring>
#include <unordered_map>
#include <unordered_set>

#include <spdlog/spdlog.h>

#include "audit/audit_log.h"
#include "metrics/metrics.h"
#include "proxy/byte_window.h"
#include "proxy/h2_connection.h"
#include "proxy/h2_frames.h"
#include "proxy/h2_stream.h"
#include "proxy/h2_upstream.h"
#include "proxy/request_decision.h"
#include "proxy/upstream_choice.h"
#include "proxy/upstream_link.h"
#include "proxy/upstream_pool.h"
#include "proxy/upstream_target.h"
#include "proxy/watchdog.h"
#include "tls/contexts.h"

namespace egressd::proxy {

namespace {

using namespace asio::experimental::awaitable_operators;
using Clock = std::chrono::steady_clock;
using h2::H2Stream;
using h2::H2Upstream;
using h2::Signal;

// "1a2b\r\n": the head of an HTTP/1.1 chunk of `size` bytes. (Not inline in the coroutine:
// GCC 12 miscompiles a local array in a coroutine frame.)
std::string chunkHead(size_t size) {
  char text[24];
  const int len = std::snprintf(text, sizeof(text), "%zx\r\n", size);
  return std::string(text, static_cast<size_t>(len));
}

// Coroutines waiting for the same thing (a connection being opened, a free HTTP/1.1 slot).
class WaitList {
 public:
  asio::awaitable<void> wait(const asio::any_io_executor& executor) {
    auto signal = std::make_shared<Signal>(executor);
    waiters_.push_back(signal);
    co_await signal->wait();
  }
  void notifyAll() {
    auto waiters = std::move(waiters_);
    waiters_.clear();
    for (auto& w : waiters) {
      w->notify();
    }
  }

 private:
  std::vector<std::shared_ptr<Signal>> waiters_;
};

// One stream's HTTP/1.1 upstream connection and what reading it needs; on the heap so its
// watchdog can hold it.
struct Http1Upstream : std::enable_shared_from_this<Http1Upstream> {
  Http1Upstream(const asio::any_io_executor& executor, TlsUpstreamPool* pool,
                const std::string& poolPrefix, size_t bufferBytes)
      : buffer(bufferBytes), link(executor, pool, poolPrefix, buffer, parser), watchdog(executor) {}
  ByteWindow buffer;
  http::ResponseParser parser;
  UpstreamLink<TlsStream> link;
  Watchdog watchdog;
  bool responseDone = false;
};

class H2Session final : public h2::H2Connection,
                        public h2::ResponseSink,
                        public std::enable_shared_from_this<H2Session> {
 public:
  H2Session(TlsStream client, std::string serverName, OrigDst orig,
            std::shared_ptr<SandboxContext> sandbox, const ProxyConfig& config,
            UpstreamPools* pools)
      : H2Connection(std::move(client), config.bufferBytes),
        serverName_(std::move(serverName)),
        orig_(orig),
        sandbox_(std::move(sandbox)),
        config_(config),
        upstreamConfig_(config),
        pools_(pools),
        watchdog_(stream_.get_executor()),
        resetTokens_(config.http2.resetBurst),
        resetRefill_(Clock::now()) {
    if (config.upstreamTlsH2 != nullptr) {
      upstreamConfig_.upstreamTls = config.upstreamTlsH2;
    }
  }

  asio::awaitable<void> run();

  void respond(H2Stream& stream, int status, const std::vector<http::Header>& headers,
               bool endsStream) override;
  void responseData(H2Stream& stream) override;
  void upstreamFailed(H2Stream& stream, uint32_t code, const std::string& why) override;

 private:
  bool setUp();
  void afterInput() override;
  void afterOutput(size_t bytes) override;
  uint32_t onInputError(int error) override;
  void touch();
  // Ends the connection because the client broke a limit: GOAWAY ENHANCE_YOUR_CALM, audited.
  void abuse(const std::string& kind, const std::string& detail);

  // --- one stream
  asio::awaitable<void> handleStream(std::shared_ptr<H2Stream> stream);
  asio::awaitable<void> judgeAndForward(std::shared_ptr<H2Stream> stream);
  // egressd's own response (a denial, a handler's answer, an error).
  void answer(H2Stream& stream, int status, const std::string& body,
              std::vector<http::Header> headers);
  asio::awaitable<void> forward(std::shared_ptr<H2Stream> stream, UpstreamTarget target,
                                std::vector<http::Header> setHeaders,
                                std::vector<std::string> dropHeaders);
  asio::awaitable<void> forwardHttp1(std::shared_ptr<H2Stream> stream,
                                     std::shared_ptr<Http1Upstream> up,
                                     const std::vector<http::Header>& setHeaders,
                                     const std::vector<std::string>& dropHeaders);
  asio::awaitable<bool> writeRequestBody(std::shared_ptr<H2Stream> stream, Http1Upstream& up,
                                         bool chunked);
  asio::awaitable<bool> readResponse(std::shared_ptr<H2Stream> stream, Http1Upstream& up);
  void forwardHttp2(const std::shared_ptr<H2Stream>& stream, H2Upstream& up,
                    const std::vector<http::Header>& setHeaders,
                    const std::vector<std::string>& dropHeaders);
  void failStream(H2Stream& stream, const std::string& reason, int status,
                  const std::string& detail);
  asio::awaitable<Result<std::vector<IpAddress>>> resolveReroute(const std::string& host);
  asio::awaitable<void> untilClosed(H2Stream& stream);
  void audit(H2Stream& stream);
  void consumeRequest(int32_t id, size_t bytes);

  // --- nghttp2 callbacks (server side)
  static int onBeginFrame(nghttp2_session*, const nghttp2_frame_hd* hd, void* self);
  static int onBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* self);
  static int onHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                      size_t namelen, const uint8_t* value, size_t valuelen, uint8_t flags,
                      void* self);
  static int onFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* self);
  static int onDataChunk(nghttp2_session*, uint8_t flags, int32_t streamId, const uint8_t* data,
                         size_t len, void* self);
  static int onStreamClose(nghttp2_session*, int32_t streamId, uint32_t errorCode, void* self);
  static ssize_t readResponseBody(nghttp2_session*, int32_t streamId, uint8_t* buf, size_t length,
                                  uint32_t* flags, nghttp2_data_source* source, void* self);

  H2Stream* streamOf(int32_t id) {
    auto it = streams_.find(id);
    return it == streams_.end() ? nullptr : it->second.get();
  }

  const std::string serverName_;
  OrigDst orig_;
  std::shared_ptr<SandboxContext> sandbox_;
  const ProxyConfig& config_;
  ProxyConfig upstreamConfig_;  // config_ with the h2-offering upstream TLS context
  UpstreamPools* pools_;
  Watchdog watchdog_;
  bool closingIdle_ = false;

  std::unordered_map<int32_t, std::shared_ptr<H2Stream>> streams_;  // open client streams
  size_t tasks_ = 0;  // stream coroutines still running (reset streams included)
  std::unordered_map<std::string, std::shared_ptr<H2Upstream>> h2Upstreams_;
  std::vector<std::shared_ptr<H2Upstream>> allH2Upstreams_;
  std::unordered_map<std::string, std::shared_ptr<WaitList>> connecting_;
  std::unordered_set<std::string> http1Keys_;  // targets that answered ALPN http/1.1 (or none)
  unsigned http1InFlight_ = 0;
  WaitList http1Slots_;

  double resetTokens_;
  Clock::time_point resetRefill_;
  uint32_t continuations_ = 0;
  bool abused_ = false;
};

// ---------------------------------------------------------------- session

bool H2Session::setUp() {
  nghttp2_session_callbacks* raw = nullptr;
  if (nghttp2_session_callbacks_new(&raw) != 0) {
    return false;
  }
  std::unique_ptr<nghttp2_session_callbacks, h2::CallbacksDeleter> callbacks(raw);
  nghttp2_session_callbacks_set_on_begin_frame_callback(raw, &H2Session::onBeginFrame);
  nghttp2_session_callbacks_set_on_begin_headers_callback(raw, &H2Session::onBeginHeaders);
  nghttp2_session_callbacks_set_on_header_callback(raw, &H2Session::onHeader);
  nghttp2_session_callbacks_set_on_frame_recv_callback(raw, &H2Session::onFrameRecv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(raw, &H2Session::onDataChunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(raw, &H2Session::onStreamClose);
  nghttp2_option* rawOption = nullptr;
  if (nghttp2_option_new(&rawOption) != 0) {
    return false;
  }
  std::unique_ptr<nghttp2_option, h2::OptionDeleter> option(rawOption);
  // Request bytes are acknowledged only once the upstream took them (consumeRequest).
  nghttp2_option_set_no_auto_window_update(rawOption, 1);
  // Floods of PING/SETTINGS whose acknowledgements the client never reads.
  nghttp2_option_set_max_outbound_ack(rawOption, 1000);
  nghttp2_option_set_max_settings(rawOption, 64);
  nghttp2_option_set_max_deflate_dynamic_table_size(rawOption, 4096);
  if (nghttp2_session_server_new2(&session_, raw, this, rawOption) != 0) {
    return false;
  }
  const auto& limits = config_.http2;
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, limits.maxConcurrentStreams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(limits.streamWindowBytes)},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, static_cast<uint32_t>(limits.maxHeaderListBytes)},
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
  };
  if (nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings)) != 0) {
    return false;
  }
  // The connection's own window: as many streams' worth as may run at once, within reason.
  const int32_t connectionWindow =
      static_cast<int32_t>(std::min<size_t>(limits.streamWindowBytes * 16, (1U << 30) - 1));
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, connectionWindow);
  return true;
}

asio::awaitable<void> H2Session::run() {
  auto self = shared_from_this();
  sandbox_->openConnections.fetch_add(1, std::memory_order_relaxed);
  if (config_.metrics != nullptr) {
    config_.metrics
        ->counter("egressd_http2_connections_total",
                  "Intercepted TLS connections served as HTTP/2, by sandbox.",
                  {{"sandbox", sandbox_->id}})
        .inc();
  }
  if (!setUp()) {
    spdlog::warn("sandbox {}: HTTP/2 session setup failed for {}", sandbox_->id, serverName_);
  } else {
    // The client preface and SETTINGS must come as fast as a request head would.
    watchdog_.setDeadline(config_.headerTimeout);
    watchdog_.start(self, [this] {
      // Idle (or stalled): a GOAWAY first; if even that cannot be written, cut.
      if (!closingIdle_ && session_ != nullptr) {
        closingIdle_ = true;
        nghttp2_session_terminate_session(session_, NGHTTP2_NO_ERROR);
        wakeWriter();
        watchdog_.setDeadline(std::chrono::milliseconds(1000));
        return;
      }
      stop();
    });
    co_await serve(self);
    watchdog_.stop();
  }
  // The connection is gone: every stream still running ends, every upstream closes.
  for (auto& [id, stream] : streams_) {
    stream->closed = true;
    stream->requestSignal.notify();
    stream->responseSignal.notify();
  }
  streams_.clear();
  for (auto& up : allH2Upstreams_) {
    up->detach();
  }
  allH2Upstreams_.clear();
  h2Upstreams_.clear();
  sandbox_->openConnections.fetch_sub(1, std::memory_order_relaxed);
}

void H2Session::touch() {
  if (closingIdle_) {
    return;
  }
  watchdog_.setDeadline(streams_.empty() && tasks_ == 0 ? config_.idleTimeout : config_.ioTimeout);
}

void H2Session::afterInput() {
  touch();
}

void H2Session::afterOutput(size_t /*bytes*/) {
  touch();
}

uint32_t H2Session::onInputError(int error) {
  // nghttp2's own flood limits (its CONTINUATION cap, queued control frames): audited like
  // egressd's.
  if (error == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS) {
    abuse("continuation_flood", std::string("nghttp2: ") + nghttp2_strerror(error));
  } else if (error == NGHTTP2_ERR_FLOODED) {
    abuse("control_flood", std::string("nghttp2: ") + nghttp2_strerror(error));
  }
  return abused_ ? NGHTTP2_ENHANCE_YOUR_CALM : NGHTTP2_PROTOCOL_ERROR;
}

void H2Session::abuse(const std::string& kind, const std::string& detail) {
  if (abused_) {
    return;
  }
  abused_ = true;
  nghttp2_session_terminate_session(session_, NGHTTP2_ENHANCE_YOUR_CALM);
  wakeWriter();
  if (config_.metrics != nullptr) {
    config_.metrics
        ->counter("egressd_http2_abuse_total",
                  "HTTP/2 connections ended for breaking a limit, by sandbox and kind.",
                  {{"sandbox", sandbox_->id}, {"kind", kind}})
        .inc();
  }
  spdlog::warn("sandbox {}: HTTP/2 connection to {} ended: {}", sandbox_->id, serverName_, detail);
  if (config_.audit != nullptr) {
    audit::AuditRecord r;
    r.sandbox = sandbox_->id;
    r.layer = "proxy";
    r.protocol = "h2";
    r.origDst = orig_.toString();
    r.host = serverName_;
    r.decision = "deny";
    r.reason = "h2_" + kind;
    r.detail = detail;
    config_.audit->write(r);
  }
}

// ---------------------------------------------------------------- callbacks

int H2Session::onBeginFrame(nghttp2_session* /*session*/, const nghttp2_frame_hd* hd, void* p) {
  H2Session& s = *static_cast<H2Session*>(p);
  if (hd->type == NGHTTP2_HEADERS) {
    s.continuations_ = 0;
  } else if (hd->type == NGHTTP2_CONTINUATION &&
             ++s.continuations_ > s.config_.http2.maxContinuationFrames) {
    s.abuse("continuation_flood", "more than " +
                                      std::to_string(s.config_.http2.maxContinuationFrames) +
                                      " CONTINUATION frames in one header block");
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  }
  return 0;
}

int H2Session::onBeginHeaders(nghttp2_session* session, const nghttp2_frame* frame, void* p) {
  H2Session& s = *static_cast<H2Session*>(p);
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
    return 0;
  }
  // Streams the client reset still count until their work has unwound: a client that opens
  // and resets streams faster than upstream work ends gets refused, not served.
  if (s.tasks_ >= 2 * static_cast<size_t>(s.config_.http2.maxConcurrentStreams) || s.abused_) {
    nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                              NGHTTP2_REFUSED_STREAM);
    return 0;
  }
  auto stream = std::make_shared<H2Stream>(s.stream_.get_executor(), frame->hd.stream_id);
  s.streams_[frame->hd.stream_id] = std::move(stream);
  return 0;
}

int H2Session::onHeader(nghttp2_session* /*session*/, const nghttp2_frame* frame,
                        const uint8_t* name, size_t namelen, const uint8_t* value, size_t valuelen,
                        uint8_t /*flags*/, void* p) {
  H2Session& s = *static_cast<H2Session*>(p);
  if (frame->hd.type != NGHTTP2_HEADERS) {
    return 0;
  }
  H2Stream* stream = s.streamOf(frame->hd.stream_id);
  if (stream == nullptr) {
    return 0;
  }
  const size_t limit = s.config_.http2.maxHeaderListBytes;
  stream->headerBytes += namelen + valuelen + 32;
  if (stream->headerBytes > 4 * limit) {
    // Far past what any client sends: HPACK references to a large table entry, repeated.
    s.abuse("header_bomb", "a header block decoding to more than " + std::to_string(4 * limit) +
                               " bytes (HPACK bomb)");
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  }
  if (stream->headerBytes > limit || stream->headerOverflow) {
    stream->headerOverflow = true;  // answered 431 once the block is complete
    return 0;
  }
  const std::string_view n(reinterpret_cast<const char*>(name), namelen);
  const std::string_view v(reinterpret_cast<const char*>(value), valuelen);
  if (frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
    stream->requestTrailers.push_back(http::Header{std::string(n), std::string(v)});
    return 0;
  }
  h2::RequestFields& f = stream->fields;
  if (n == ":method") {
    f.method = v;
  } else if (n == ":scheme") {
    f.scheme = v;
  } else if (n == ":authority") {
    f.authority = v;
  } else if (n == ":path") {
    f.path = v;
  } else if (n == ":protocol") {
    f.protocol = v;
  } else if (f.headers.size() >= s.config_.limits.maxHeaders) {
    stream->headerOverflow = true;
  } else {
    f.headers.push_back(http::Header{std::string(n), std::string(v)});
  }
  return 0;
}

int H2Session::onFrameRecv(nghttp2_session* /*session*/, const nghttp2_frame* frame, void* p) {
  H2Session& s = *static_cast<H2Session*>(p);
  if (frame->hd.type == NGHTTP2_RST_STREAM) {
    // Rapid reset (CVE-2023-44487): resets are cheap to send and each may have started work.
    const auto now = Clock::now();
    const double elapsed = std::chrono::duration<double>(now - s.resetRefill_).count();
    s.resetRefill_ = now;
    s.resetTokens_ = std::min<double>(s.config_.http2.resetBurst,
                                      s.resetTokens_ + elapsed * s.config_.http2.resetsPerSecond);
    s.resetTokens_ -= 1;
    if (s.resetTokens_ < 0) {
      s.abuse("rapid_reset", "client stream resets above " +
                                 std::to_string(s.config_.http2.resetsPerSecond) + "/s (burst " +
                                 std::to_string(s.config_.http2.resetBurst) + ")");
    }
    return 0;
  }
  H2Stream* stream = s.streamOf(frame->hd.stream_id);
  if (stream == nullptr) {
    return 0;
  }
  const bool endStream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
  if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
    stream->requestEnded = endStream;
    // The stream's work runs as its own coroutine; the session keeps reading frames.
    ++s.tasks_;
    asio::co_spawn(s.stream_.get_executor(), s.handleStream(s.streams_[frame->hd.stream_id]),
                   asio::detached);
    return 0;
  }
  if (endStream) {
    stream->requestEnded = true;
    stream->requestSignal.notify();
    if (stream->upstream != nullptr) {
      stream->upstream->requestData(*stream);
    }
  }
  return 0;
}

int H2Session::onDataChunk(nghttp2_session* session, uint8_t /*flags*/, int32_t streamId,
                           const uint8_t* data, size_t len, void* p) {
  H2Session& s = *static_cast<H2Session*>(p);
  H2Stream* stream = s.streamOf(streamId);
  if (stream == nullptr || stream->discardRequest) {
    // Nobody will take these (a refused or already answered stream): acknowledge them now so
    // the connection's window does not shrink for good.
    nghttp2_session_consume(session, streamId, len);
    return 0;
  }
  stream->requestBody.append(std::string_view(reinterpret_cast<const char*>(data), len));
  stream->bytesIn += len;
  stream->requestSignal.notify();
  if (stream->upstream != nullptr) {
    stream->upstream->requestData(*stream);
  }
  return 0;
}

int H2Session::onStreamClose(nghttp2_session* /*session*/, int32_t streamId, uint32_t errorCode,
                             void* p) {
  H2Session& s = *static_cast<H2Session*>(p);
  auto it = s.streams_.find(streamId);
  if (it == s.streams_.end()) {
    return 0;
  }
  std::shared_ptr<H2Stream> stream = std::move(it->second);
  s.streams_.erase(it);
  stream->closed = true;
  if (errorCode != NGHTTP2_NO_ERROR) {
    stream->resetCode = errorCode;
    if (stream->upstream != nullptr) {
      stream->upstream->cancel(*stream);
    }
  }
  stream->requestSignal.notify();
  stream->responseSignal.notify();
  s.touch();
  return 0;
}

ssize_t H2Session::readResponseBody(nghttp2_session* session, int32_t /*streamId*/, uint8_t* buf,
                                    size_t length, uint32_t* flags, nghttp2_data_source* source,
                                    void* /*self*/) {
  H2Stream& stream = *static_cast<H2Stream*>(source->ptr);
  const size_t n = std::min(length, stream.responseBody.size());
  if (n > 0) {
    std::memcpy(buf, stream.responseBody.peek().data(), n);
    stream.responseBody.consume(n);
    stream.bytesOut += n;
    if (stream.upstream != nullptr) {
      stream.upstream->responseTaken(stream, n);
    }
    stream.responseSignal.notify();
  }
  if (stream.responseBody.size() == 0 && stream.responseEnded) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (!stream.responseTrailers.empty()) {
      for (http::Header& h : stream.responseTrailers) {
        stream.redactor.maskField(h.value);
      }
      h2::HeaderList trailers = h2::relayedFields(stream.responseTrailers);
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      nghttp2_submit_trailer(session, stream.id, trailers.data(), trailers.size());
    }
    return static_cast<ssize_t>(n);
  }
  if (n == 0) {
    stream.dataDeferred = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  return static_cast<ssize_t>(n);
}

// ---------------------------------------------------------------- ResponseSink

void H2Session::respond(H2Stream& stream, int status, const std::vector<http::Header>& headers,
                        bool endsStream) {
  if (stream.closed || stream.responseSubmitted || session_ == nullptr) {
    return;
  }
  stream.responseSubmitted = true;
  stream.status = status;
  // An upstream that echoes a request header would hand the injected secret back: masked,
  // as the HTTP/1.1 relay masks it in the head's bytes.
  std::vector<http::Header> masked = headers;
  for (http::Header& h : masked) {
    stream.redactor.maskField(h.value);
  }
  h2::HeaderList list = h2::responseHeaders(status, masked);
  nghttp2_data_provider provider{};
  provider.source.ptr = &stream;
  provider.read_callback = &H2Session::readResponseBody;
  nghttp2_submit_response(session_, stream.id, list.data(), list.size(),
                          endsStream ? nullptr : &provider);
  wakeWriter();
}

void H2Session::responseData(H2Stream& stream) {
  if (stream.dataDeferred && !stream.closed && session_ != nullptr) {
    stream.dataDeferred = false;
    nghttp2_session_resume_data(session_, stream.id);
  }
  wakeWriter();
}

void H2Session::upstreamFailed(H2Stream& stream, uint32_t code, const std::string& why) {
  stream.upstreamFailed = true;
  if (!stream.responseSubmitted) {
    failStream(stream, "upstream_failed", 502, why);
  } else if (!stream.closed && session_ != nullptr) {
    if (stream.outcome.decision == "allow") {
      stream.outcome.decision = "error";
      stream.outcome.reason = "relay_failed";
      stream.outcome.detail = why;
    }
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream.id, code);
    wakeWriter();
  }
  stream.responseSignal.notify();
}

// ---------------------------------------------------------------- streams

void H2Session::consumeRequest(int32_t id, size_t bytes) {
  if (session_ != nullptr && bytes > 0) {
    nghttp2_session_consume(session_, id, bytes);
    wakeWriter();
  }
}

void H2Session::answer(H2Stream& stream, int status, const std::string& body,
                       std::vector<http::Header> headers) {
  const bool bodyAllowed = status >= 200 && status != 204 && status != 304;
  if (bodyAllowed) {
    const bool typed = std::any_of(headers.begin(), headers.end(), [](const http::Header& h) {
      return http::equalsIgnoreCase(h.name, "content-type");
    });
    if (!typed) {
      headers.push_back(http::Header{"Content-Type", "text/plain; charset=utf-8"});
    }
    std::erase_if(headers, [](const http::Header& h) {
      return http::equalsIgnoreCase(h.name, "content-length");
    });
    headers.push_back(http::Header{"Content-Length", std::to_string(body.size())});
    stream.responseBody.append(body);
  }
  stream.responseEnded = true;
  stream.discardRequest = true;
  respond(stream, status, headers, !bodyAllowed || body.empty());
}

void H2Session::failStream(H2Stream& stream, const std::string& reason, int status,
                           const std::string& detail) {
  stream.outcome.decision = "error";
  stream.outcome.reason = reason;
  stream.outcome.status = status;
  stream.outcome.detail = detail;
  answer(stream, status, "egressd: " + detail + "\n", reasonHeaders(reason));
}

asio::awaitable<Result<std::vector<IpAddress>>> H2Session::resolveReroute(const std::string& host) {
  if (auto ip = IpAddress::parse(host)) {
    co_return std::vector<IpAddress>{*ip};
  }
  co_return co_await sandbox_->resolver->resolve(host);
}

asio::awaitable<void> H2Session::untilClosed(H2Stream& stream) {
  while (!stream.closed) {
    co_await stream.responseSignal.wait();
  }
}

asio::awaitable<void> H2Session::handleStream(std::shared_ptr<H2Stream> stream) {
  auto self = shared_from_this();
  stream->requestConsumed = [weak = std::weak_ptr<H2Session>(self), id = stream->id](size_t n) {
    if (auto session = weak.lock()) {
      session->consumeRequest(id, n);
    }
  };
  co_await judgeAndForward(stream);
  co_await untilClosed(*stream);
  // Whatever the client sent that nobody took.
  consumeRequest(stream->id, stream->requestBody.size());
  audit(*stream);
  --tasks_;
  touch();
}

asio::awaitable<void> H2Session::judgeAndForward(std::shared_ptr<H2Stream> stream) {
  RequestOutcome& out = stream->outcome;
  if (stream->headerOverflow) {
    out.decision = "deny";
    out.reason = "bad_request";
    out.status = 431;
    out.detail = "request header block over " + std::to_string(config_.http2.maxHeaderListBytes) +
                 " bytes or " + std::to_string(config_.limits.maxHeaders) + " fields";
    answer(*stream, 431, "egressd: " + out.detail + "\n", reasonHeaders("bad_request"));
    co_return;
  }
  h2::RequestConversion converted = h2::toRequestHead(std::move(stream->fields));
  stream->head = std::move(converted.head);
  stream->trailersOk = converted.trailersOk;
  if (!converted.error.empty()) {
    out.decision = "deny";
    out.reason = "bad_request";
    out.status = converted.status;
    out.detail = converted.error;
    answer(*stream, converted.status, "egressd: " + out.detail + "\n",
           reasonHeaders("bad_request"));
    co_return;
  }
  const auto view = sandbox_->currentPolicy();
  RequestContext context;
  context.port = orig_.port;
  context.tlsServerName = serverName_;
  context.sandboxId = sandbox_->id;
  context.secrets = sandbox_->secrets.get();
  RequestDecision decision = decideRequest(stream->head, context, *view);
  out = std::move(decision.outcome);
  stream->host = decision.host;
  if (decision.action != RequestDecision::Action::kForward) {
    if (!decision.operatorLog.empty()) {
      spdlog::warn("{}", decision.operatorLog);
    }
    answer(*stream, out.status, decision.body, std::move(decision.responseHeaders));
    co_return;
  }
  stream->redactor.reset(std::move(decision.secretValues));
  UpstreamTarget target = upstreamTargetFor(stream->host, orig_.port, std::move(decision.reroute));
  if (target.reroute) {
    const handlers::RerouteTarget& r = *target.reroute;
    if (r.kind != handlers::RerouteTarget::Kind::kUnix) {
      Result<std::vector<IpAddress>> resolved = co_await resolveReroute(r.host);
      if (!resolved.ok()) {
        stream->upstreamText = r.text();
        failStream(*stream, "resolve_failed", 502,
                   "reroute to " + r.text() + ": " + resolved.error().message());
        co_return;
      }
      target.addrs = std::move(*resolved);
    }
  } else {
    UpstreamChoice choice =
        co_await resolveUpstream(*view, *sandbox_->resolver, *decision.normalizedHost, orig_.port,
                                 decision.hostDecision, &sandbox_->resolved);
    out.decision = choice.decision;
    out.reason = std::move(choice.reason);
    out.rule = std::move(choice.rule);
    out.detail = std::move(choice.detail);
    if (out.decision == "deny") {
      out.status = view->denyStatus;
      answer(*stream, out.status, denyBody(stream->host, sandbox_->id, out),
             reasonHeaders(out.reason, &out.rule));
      co_return;
    }
    if (out.decision == "error") {
      failStream(*stream, out.reason, 502, out.detail);
      co_return;
    }
    target.addrs = std::move(choice.addrs);
  }
  if (stream->closed) {
    co_return;
  }
  co_await forward(stream, std::move(target), std::move(decision.setHeaders),
                   std::move(decision.dropHeaders));
}

asio::awaitable<void> H2Session::forward(std::shared_ptr<H2Stream> stream, UpstreamTarget target,
                                         std::vector<http::Header> setHeaders,
                                         std::vector<std::string> dropHeaders) {
  using Kind = handlers::RerouteTarget::Kind;
  const bool tlsTarget = !target.reroute || target.reroute->kind == Kind::kTls;
  for (;;) {
    // An HTTP/2 upstream already open for this target carries the stream.
    if (auto it = h2Upstreams_.find(target.key); it != h2Upstreams_.end()) {
      if (it->second->usable() && target.mayUse(it->second->addr())) {
        stream->upstreamText = it->second->endpointText();
        forwardHttp2(stream, *it->second, setHeaders, dropHeaders);
        co_return;
      }
      h2Upstreams_.erase(it);
    }
    // Another stream is finding out what this target speaks: wait for it.
    if (auto it = connecting_.find(target.key); it != connecting_.end()) {
      auto waiters = it->second;
      co_await waiters->wait(stream_.get_executor());
      if (stream->closed) {
        co_return;
      }
      continue;
    }
    break;
  }
  if (stream->closed) {
    co_return;
  }
  // HTTP/1.1: at most maxHttp1UpstreamsPerSession connections at once for this session.
  while (http1InFlight_ >= config_.http2.maxHttp1UpstreamsPerSession) {
    co_await http1Slots_.wait(stream_.get_executor());
    if (stream->closed) {
      co_return;
    }
  }
  ++http1InFlight_;
  struct Slot {
    H2Session* session;
    ~Slot() {
      --session->http1InFlight_;
      session->http1Slots_.notifyAll();
    }
  } slot{this};

  auto up = std::make_shared<Http1Upstream>(stream_.get_executor(),
                                            pools_ != nullptr ? &pools_->tls : nullptr,
                                            sandbox_->id + "|", config_.bufferBytes);
  const bool probe =
      tlsTarget && config_.upstreamTlsH2 != nullptr && !http1Keys_.contains(target.key);
  std::weak_ptr<Http1Upstream> weakUp = up;
  up->watchdog.start(up, [weakUp] {
    if (auto u = weakUp.lock()) {
      cancelStream(u->link.stream());
    }
  });
  struct StopWatchdog {
    Http1Upstream* up;
    ~StopWatchdog() { up->watchdog.stop(); }
  } stopWatchdog{up.get()};

  if (!probe && up->link.reuse(target)) {
    stream->upstreamText = up->link.endpointText();
  } else {
    std::shared_ptr<WaitList> waiters;
    if (probe) {
      waiters = std::make_shared<WaitList>();
      connecting_[target.key] = waiters;
    }
    up->watchdog.setDeadline(config_.connectTimeout);
    UpstreamEndpoint endpoint;
    Status opened =
        co_await up->link.connect(target, stream->host, probe ? upstreamConfig_ : config_,
                                  up->watchdog.timedOut, sandbox_->upstreamConnect, endpoint);
    stream->upstreamText = endpoint.text;
    const bool h2 = opened.ok() && up->link.stream().hasTls() &&
                    tls::selectedAlpn(up->link.stream().ssl()) == tls::kAlpnH2;
    if (probe) {
      connecting_.erase(target.key);
      if (opened.ok() && !h2) {
        http1Keys_.insert(target.key);
      }
    }
    if (h2) {
      auto upstream = H2Upstream::start(std::move(up->link.stream()), *this, upstreamConfig_,
                                        endpoint.text, endpoint.addr);
      up->link.keepFromReuse();
      up->link.close();
      if (upstream != nullptr) {
        h2Upstreams_[target.key] = upstream;
        allH2Upstreams_.push_back(upstream);
        std::erase_if(allH2Upstreams_, [](const auto& u) { return u->stopped(); });
      }
      if (waiters) {
        waiters->notifyAll();
      }
      if (upstream == nullptr) {
        failStream(*stream, "upstream_failed", 502, "HTTP/2 session setup failed");
        co_return;
      }
      forwardHttp2(stream, *upstream, setHeaders, dropHeaders);
      co_return;
    }
    if (waiters) {
      waiters->notifyAll();
    }
    if (!opened.ok()) {
      const bool timedOut = up->watchdog.timedOut;
      failStream(*stream,
                 timedOut                          ? "upstream_timeout"
                 : opened.error().code() == EPROTO ? "upstream_tls_failed"
                                                   : "upstream_unreachable",
                 timedOut ? 504 : 502, opened.error().message());
      co_return;
    }
  }
  co_await forwardHttp1(stream, up, setHeaders, dropHeaders);
}

void H2Session::forwardHttp2(const std::shared_ptr<H2Stream>& stream, H2Upstream& up,
                             const std::vector<http::Header>& setHeaders,
                             const std::vector<std::string>& dropHeaders) {
  h2::HeaderList headers =
      h2::upstreamRequest(stream->head, setHeaders, dropHeaders, stream->trailersOk);
  const bool hasBody = !stream->requestEnded || stream->requestBody.size() > 0;
  if (!up.submit(stream, headers, hasBody)) {
    failStream(*stream, "upstream_failed", 502,
               "the HTTP/2 upstream " + up.endpointText() + " refused a new stream");
  }
}

asio::awaitable<void> H2Session::forwardHttp1(std::shared_ptr<H2Stream> stream,
                                              std::shared_ptr<Http1Upstream> up,
                                              const std::vector<http::Header>& setHeaders,
                                              const std::vector<std::string>& dropHeaders) {
  std::weak_ptr<Http1Upstream> weakUp = up;
  const bool hasBody = !stream->requestEnded || stream->requestBody.size() > 0;
  bool chunked = false;
  const http::RequestHead head = h2::toHttp1(stream->head, hasBody, chunked);
  const std::string text = http::serializeRequestHead(head, setHeaders, dropHeaders);
  up->link.setIdle(false);
  up->watchdog.setDeadline(config_.ioTimeout);
  auto [wec, wn] = co_await up->link.stream().writeAll(asio::buffer(text));
  if (wec) {
    up->link.close();
    failStream(*stream, up->watchdog.timedOut ? "upstream_timeout" : "upstream_failed",
               up->watchdog.timedOut ? 504 : 502,
               "the upstream " + stream->upstreamText + " closed before the request was sent");
    co_return;
  }
  auto [bodySent, clean] =
      co_await (writeRequestBody(stream, *up, chunked) && readResponse(stream, *up));
  if (bodySent && clean && stream->responseEnded) {
    up->link.setIdle(true);
    up->link.release();
  } else {
    up->link.close();
  }
}

asio::awaitable<bool> H2Session::writeRequestBody(std::shared_ptr<H2Stream> stream,
                                                  Http1Upstream& up, bool chunked) {
  std::string framed;
  for (;;) {
    if (up.responseDone) {
      co_return stream->requestEnded && stream->requestBody.size() == 0;
    }
    if (stream->requestBody.size() > 0) {
      const std::string_view data = stream->requestBody.peek();
      asio::const_buffer out = asio::buffer(data);
      if (chunked) {
        framed = chunkHead(data.size());
        framed.append(data);
        framed.append("\r\n");
        out = asio::buffer(framed);
      }
      const size_t taken = data.size();
      up.watchdog.setDeadline(config_.ioTimeout);
      auto [ec, n] = co_await up.link.stream().writeAll(out);
      if (ec) {
        co_return false;
      }
      stream->requestBody.consume(taken);
      stream->requestConsumed(taken);
      continue;
    }
    if (stream->requestEnded) {
      if (chunked) {
        auto [ec, n] =
            co_await up.link.stream().writeAll(asio::buffer(std::string_view("0\r\n\r\n")));
        co_return !ec;
      }
      co_return true;
    }
    if (stream->closed) {
      co_return false;
    }
    co_await stream->requestSignal.wait();
  }
}

asio::awaitable<bool> H2Session::readResponse(std::shared_ptr<H2Stream> stream, Http1Upstream& up) {
  struct Done {
    Http1Upstream& up;
    H2Stream& stream;
    ~Done() {
      up.responseDone = true;
      stream.discardRequest = true;   // what the client still sends has nowhere to go
      stream.requestSignal.notify();  // the body writer stops waiting
      up.parser.setBodySink(nullptr, nullptr);
    }
  } done{up, *stream};
  up.parser.expectResponseTo(stream->head.method);
  up.parser.setBodySink(
      [](void* arg, const char* data, size_t len) {
        static_cast<H2Stream*>(arg)->appendResponse(std::string_view(data, len));
      },
      stream.get());
  const auto fail = [&](const std::string& detail) {
    upstreamFailed(*stream, NGHTTP2_INTERNAL_ERROR, detail);
    return false;
  };
  bool keepAlive = false;
  for (;;) {
    while (up.buffer.readable() > 0) {
      const http::ParseStep step = up.parser.feed(up.buffer.readPtr(), up.buffer.readable());
      up.buffer.consume(step.consumed);
      switch (step.kind) {
        case http::ParseStep::Kind::kHead: {
          const http::ResponseHead& head = up.parser.head();
          if (head.informational()) {
            continue;  // 100 Continue and the like: the client gets the final response
          }
          keepAlive = head.keepAlive;
          if (step.endsMessage) {
            stream->endResponse();
          }
          respond(*stream, head.status, head.headers, step.endsMessage);
          if (step.endsMessage) {
            co_return keepAlive;
          }
          continue;
        }
        case http::ParseStep::Kind::kBody:
          responseData(*stream);
          continue;
        case http::ParseStep::Kind::kMessageEnd:
          stream->endResponse();
          responseData(*stream);
          co_return keepAlive&& up.buffer.readable() == 0;
        case http::ParseStep::Kind::kError:
          co_return fail("the upstream's response is malformed: " + step.reason);
        case http::ParseStep::Kind::kNeedMore:
          break;
      }
      break;
    }
    // Back-pressure: no more from the upstream until the client took what is queued.
    while (stream->responseBody.size() >= config_.http2.streamWindowBytes && !stream->closed) {
      co_await stream->responseSignal.wait();
    }
    if (stream->closed) {
      co_return false;
    }
    up.watchdog.setDeadline(config_.ioTimeout);
    auto [ec, n] = co_await up.link.stream().readSome(up.buffer.writable());
    if (ec || n == 0) {
      if (!ec && up.parser.finishAtEof()) {
        if (stream->responseSubmitted) {
          stream->endResponse();
          responseData(*stream);
          co_return false;
        }
      }
      co_return fail(up.watchdog.timedOut
                         ? "no response from " + stream->upstreamText + " in time"
                         : "the upstream " + stream->upstreamText + " closed mid-response");
    }
    up.buffer.commit(n);
  }
}

void H2Session::audit(H2Stream& stream) {
  const RequestOutcome& out = stream.outcome;
  const auto duration =
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - stream.start);
  if (config_.metrics != nullptr) {
    sandbox_->decisionCounter(*config_.metrics, out.decision, out.reason).inc();
    if (sandbox_->requestDuration != nullptr) {
      sandbox_->requestDuration->observe(std::chrono::duration<double>(duration).count());
    }
  }
  if (sandbox_->bytesFromSandbox != nullptr) {
    sandbox_->bytesFromSandbox->inc(stream.bytesIn);
  }
  if (sandbox_->bytesToSandbox != nullptr) {
    sandbox_->bytesToSandbox->inc(stream.bytesOut);
  }
  if (config_.audit == nullptr) {
    return;
  }
  audit::AuditRecord r;
  r.sandbox = sandbox_->id;
  r.layer = "proxy";
  r.protocol = "h2";
  r.origDst = orig_.toString();
  r.upstream = stream.upstreamText;
  r.host = stream.host;
  r.method = stream.head.method;
  r.path = audit::pathForAudit(stream.head.path);
  r.decision = out.decision;
  r.reason = out.reason;
  r.rule = out.rule;
  r.handler = out.handler;
  r.status = stream.status != 0 ? stream.status : out.status;
  r.bytesIn = stream.bytesIn;
  r.bytesOut = stream.bytesOut;
  r.duration = duration;
  r.detail = out.detail;
  if (stream.resetCode != 0) {
    r.detail += std::string(r.detail.empty() ? "" : "; ") + "reset by the client (" +
                nghttp2_http2_strerror(stream.resetCode) + ")";
  }
  if (stream.redactor.redactions() > 0) {
    r.detail += std::string(r.detail.empty() ? "" : "; ") + "redacted " +
                std::to_string(stream.redactor.redactions()) +
                " injected secret value(s) in the response";
  }
  config_.audit->write(r);
}

}  // namespace

asio::awaitable<void> serveHttp2Connection(TlsStream client, std::string serverName, OrigDst orig,
                                           std::shared_ptr<SandboxContext> sandbox,
                                           const ProxyConfig& config, UpstreamPools* pools) {
  auto session = std::make_shared<H2Session>(std::move(client), std::move(serverName), orig,
                                             std::move(sandbox), config, pools);
  co_await session->run();
}

}  // namespace egressd::proxy
