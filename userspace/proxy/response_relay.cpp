#include "proxy/response_relay.h"

#include <string>
#include <type_traits>

#include "proxy/splice_copy.h"
#include "proxy/stream_ops.h"

namespace egressd::proxy {

namespace {

// Bodies at least this large (what remains of them) are spliced instead of copied.
constexpr uint64_t kSpliceThreshold = 64 * 1024;

}  // namespace

template <typename Stream>
asio::awaitable<ResponseEnd> ResponseRelay<Stream>::relay(std::string_view method,
                                                          ResponseRules rules,
                                                          ResponseProgress& progress) {
  ResponseScan scan(parser_, method, rules);
  bool anyByte = false;
  for (;;) {
    if (upstreamBuf_.readable() == 0) {
      watchdog_.setDeadline(ioTimeout_);
      // Asio reads speculatively only when the last read did not drain the socket, so
      // waiting for a response costs no EAGAIN read.
      auto [ec, n] = co_await readSome(upstream_, upstreamBuf_.writable());
      if (ec || n == 0) {
        if (!ec && anyByte && parser_.finishAtEof()) {
          if (!co_await sendToClient(nullptr, 0, true, progress)) {
            co_return ResponseEnd::kFailed;
          }
          co_return ResponseEnd::kCompleteUntilClose;
        }
        co_return anyByte ? ResponseEnd::kFailed : ResponseEnd::kFailedBeforeBytes;
      }
      upstreamBuf_.commit(n);
      anyByte = true;
    }
    // Parse all that is buffered, then write it out in one go.
    const ResponseChunk chunk = scan.scan(upstreamBuf_.readPtr(), upstreamBuf_.readable());
    if (chunk.status != 0) {
      progress.status = chunk.status;
    }
    switch (chunk.verdict) {
      case ResponseChunk::Verdict::kRelay:
        break;
      case ResponseChunk::Verdict::kMalformed:
        co_return progress.started || chunk.forward > 0 ? ResponseEnd::kFailed
                                                        : ResponseEnd::kFailedBeforeBytes;
      case ResponseChunk::Verdict::kRefusedUpgrade:
        co_return ResponseEnd::kFailed;
    }
    size_t forward = chunk.forward;
    if (chunk.announceCloseAt != 0) {
      std::string head = withConnectionClose(std::string_view(upstreamBuf_.readPtr(), forward),
                                             chunk.announceCloseAt);
      if (!co_await sendToClient(head.data(), head.size(), chunk.ended, progress)) {
        co_return ResponseEnd::kFailed;
      }
      progress.started = true;
      upstreamBuf_.consume(forward);
      forward = 0;
    }
    if (forward > 0) {
      progress.started = true;
      if (!co_await sendToClient(upstreamBuf_.mutableReadPtr(), forward, chunk.ended, progress)) {
        co_return ResponseEnd::kFailed;
      }
      upstreamBuf_.consume(forward);
    }
    if (chunk.upgraded) {
      co_return ResponseEnd::kUpgraded;
    }
    // A large Content-Length body: the rest moves socket to socket in the kernel (splice),
    // never through the buffer. The parser, which then has not seen the body's end, starts
    // over for the next response.
    if constexpr (std::is_same_v<Stream, asio::ip::tcp::socket>) {
      const std::optional<uint64_t> bodyLeft = scan.bodyRemaining();
      if (!chunk.ended && bodyLeft && upstreamBuf_.readable() == 0 && !redactor_.scanning() &&
          *bodyLeft >= kSpliceThreshold) {
        const bool keepAlive = parser_.head().keepAlive;
        if (!co_await spliceToClient(*bodyLeft, progress)) {
          co_return ResponseEnd::kFailed;
        }
        parser_.reset();
        progress.upstreamKeepAlive = keepAlive;
        co_return ResponseEnd::kComplete;
      }
    }
    if (chunk.ended) {
      progress.upstreamKeepAlive = parser_.head().keepAlive;
      if (upstreamBuf_.readable() > 0) {
        // Bytes after the end of the response: the upstream is out of step; do not reuse it.
        progress.upstreamKeepAlive = false;
      }
      co_return ResponseEnd::kComplete;
    }
    if (upstreamBuf_.readable() > 0 && upstreamBuf_.full()) {
      co_return ResponseEnd::kFailed;  // a head larger than the buffer the parser refused
    }
    if (upstreamBuf_.readable() > 0) {
      // The parser wants more before it can consume the rest (a partial head line).
      watchdog_.setDeadline(ioTimeout_);
      auto [ec, n] = co_await readSome(upstream_, upstreamBuf_.writable());
      if (ec || n == 0) {
        co_return ResponseEnd::kFailed;
      }
      upstreamBuf_.commit(n);
    }
  }
}

// Response bytes to the client, through the redactor while it scans (the request carried
// injected secrets); `last`: the response ends with these bytes, so nothing is kept back.
// `data` is the session's own buffer: the redactor masks it in place.
template <typename Stream>
asio::awaitable<bool> ResponseRelay<Stream>::sendToClient(char* data, size_t size, bool last,
                                                          ResponseProgress& progress) {
  std::string_view bytes(data, size);
  std::string joined;
  if (redactor_.scanning() || redactor_.holding()) {
    bytes = redactor_.pushInPlace(data, size);
    if (last && redactor_.holding()) {
      joined.assign(bytes);
      joined.append(redactor_.flush());
      bytes = joined;
    }
  }
  if (bytes.empty()) {
    co_return true;
  }
  auto [ec, n] = co_await writeAll(client_, asio::buffer(bytes.data(), bytes.size()));
  if (ec) {
    co_return false;
  }
  countToClient(bytes.size(), progress);
  co_return true;
}

// Moves exactly `length` body bytes from the upstream to the client through a pipe, without
// copying them through userspace. False when either side fails or closes early.
template <typename Stream>
asio::awaitable<bool> ResponseRelay<Stream>::spliceToClient(uint64_t length,
                                                            ResponseProgress& progress) {
  if constexpr (std::is_same_v<Stream, asio::ip::tcp::socket>) {
    if (!pipe_) {
      pipe_ = SplicePipe::open();
      if (!pipe_) {
        co_return false;
      }
    }
    const bool moved =
        co_await spliceExactly(upstream_, client_, *pipe_, length, watchdog_, ioTimeout_,
                               [&](uint64_t n) { countToClient(n, progress); });
    if (!moved) {
      // Whatever is left in the pipe belongs to a dead exchange: drop the pipe with it.
      pipe_.reset();
    }
    co_return moved;
  } else {
    co_return false;  // TLS bytes cannot be spliced: relay() never asks
  }
}

template <typename Stream>
void ResponseRelay<Stream>::countToClient(uint64_t bytes, ResponseProgress& progress) {
  progress.bytesToClient += bytes;
  if (bytesToSandbox_ != nullptr) {
    bytesToSandbox_->inc(bytes);
  }
}

template class ResponseRelay<asio::ip::tcp::socket>;
template class ResponseRelay<TlsStream>;

}  // namespace egressd::proxy
