// TlsStream on real loopback TCP sockets: a server side that starts its handshake from a
// ClientHello already read off the socket (as the TLS gate hands it over), a verifying
// client side, both directions at once with a reader and a writer on the same stream,
// and the end of a connection (close_notify, or a bare FIN).
#include "proxy/tls_stream.h"

#include <gtest/gtest.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/io_context.hpp>
#include <asio/use_future.hpp>
#include <string>

#include "proxy/stream_ops.h"
#include "temp_dir.h"
#include "tls/certificate_authority.h"
#include "tls/contexts.h"

namespace egressd::proxy {
namespace {

using asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;

class TlsStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ca = tls::CertificateAuthority::create("tls-stream-test");
    ASSERT_TRUE(ca.ok()) << ca.error().message();
    ca_ = *ca;
    auto caFile = dir_.writeFile("ca.crt", ca_->certificatePem());
    ASSERT_TRUE(caFile.ok());
    auto server = tls::makeInterceptionServerContext();
    ASSERT_TRUE(server.ok()) << server.error().message();
    serverCtx_ = std::move(*server);
    auto client = tls::makeUpstreamClientContext(*caFile);
    ASSERT_TRUE(client.ok()) << client.error().message();
    clientCtx_ = std::move(*client);
  }

  // A connected pair; the server's socket is returned with `helloBytes` of the client's
  // first flight already read off it, like the gate does.
  struct Pair {
    TlsStream server;
    TlsStream client;
  };
  Pair connect(const std::string& serverName) {
    tcp::acceptor acceptor(ctx_, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    tcp::socket clientSocket(ctx_);
    clientSocket.connect(acceptor.local_endpoint());
    tcp::socket serverSocket = acceptor.accept();
    clientSocket.non_blocking(true);
    serverSocket.non_blocking(true);

    auto leaf = ca_->mintLeaf(serverName);
    EXPECT_TRUE(leaf.ok());
    tls::SslPtr serverSsl(SSL_new(serverCtx_.get()));
    EXPECT_TRUE(tls::useLeaf(serverSsl.get(), **leaf).ok());
    tls::SslPtr clientSsl(SSL_new(clientCtx_.get()));
    EXPECT_TRUE(tls::prepareUpstreamSsl(clientSsl.get(), serverName).ok());

    Pair p{TlsStream(std::move(serverSocket)), TlsStream(std::move(clientSocket))};
    p.server.attach(std::move(serverSsl), TlsStream::Role::kServer);
    p.client.attach(std::move(clientSsl), TlsStream::Role::kClient);
    return p;
  }

  template <typename T>
  T run(asio::awaitable<T> task) {
    auto future = asio::co_spawn(ctx_, std::move(task), asio::use_future);
    ctx_.restart();
    ctx_.run();
    return future.get();
  }

  asio::io_context ctx_;
  test::TempDir dir_ = test::TempDir::createOrThrow();
  std::shared_ptr<tls::CertificateAuthority> ca_;
  tls::SslCtxPtr serverCtx_;
  tls::SslCtxPtr clientCtx_;
};

// Reads from `s` until `want` bytes or the end.
asio::awaitable<std::string> readAll(TlsStream& s, size_t want) {
  std::string got;
  char buf[7000];  // not a record size: reads straddle records
  while (got.size() < want) {
    auto [ec, n] = co_await s.readSome(asio::buffer(buf));
    if (ec || n == 0) {
      break;
    }
    got.append(buf, n);
  }
  co_return got;
}

TEST_F(TlsStreamTest, ServerHandshakeStartsFromAHelloReadBeforehand) {
  Pair p = connect("api.example.test");
  std::string result = run([&]() -> asio::awaitable<std::string> {
    // The client's first flight, read off the server's socket before the server's
    // TlsStream starts: what the TLS gate does to see the SNI.
    std::string hello;
    auto clientSide = [&]() -> asio::awaitable<std::error_code> {
      co_return co_await p.client.handshake();
    };
    auto serverSide = [&]() -> asio::awaitable<std::error_code> {
      char buf[4096];
      auto [ec, n] = co_await p.server.socket().async_read_some(asio::buffer(buf), kNoThrow);
      if (ec) {
        co_return ec;
      }
      hello.assign(buf, n);
      co_return co_await p.server.handshake(hello);
    };
    auto [c, s] = co_await (clientSide() && serverSide());
    if (c || s) {
      co_return "client: " + c.message() + " " + p.client.failureText() +
          ", server: " + s.message() + " " + p.server.failureText();
    }
    co_return hello.empty() || static_cast<unsigned char>(hello[0]) != 0x16
        ? std::string("the first read was no handshake record")
        : std::string("ok");
  }());
  EXPECT_EQ(result, "ok");
}

TEST_F(TlsStreamTest, BothDirectionsAtOnceWithOneReaderAndOneWriterPerStream) {
  Pair p = connect("bulk.example.test");
  const size_t size = 3 * 1024 * 1024 + 17;
  std::string up(size, '\0');
  std::string down(size, '\0');
  for (size_t i = 0; i < size; ++i) {
    up[i] = static_cast<char>('a' + i % 23);
    down[i] = static_cast<char>('A' + i % 19);
  }
  auto [gotUp, gotDown] = run([&]() -> asio::awaitable<std::tuple<std::string, std::string>> {
    auto [c, s] = co_await (p.client.handshake() && p.server.handshake());
    if (c || s) {
      co_return std::tuple<std::string, std::string>{"handshake failed", ""};
    }
    // Each stream has a writer and a reader running at once, each writing in pieces
    // smaller and larger than a record.
    auto writer = [](TlsStream& stream, const std::string& data) -> asio::awaitable<void> {
      size_t off = 0;
      size_t piece = 1000;
      while (off < data.size()) {
        const size_t n = std::min(piece, data.size() - off);
        auto [ec, w] = co_await stream.writeAll(asio::buffer(data.data() + off, n));
        if (ec) {
          co_return;
        }
        off += n;
        piece = piece == 1000 ? 40000 : 1000;
      }
      stream.shutdownSend();
    };
    auto results = co_await (writer(p.client, up) && writer(p.server, down) &&
                             readAll(p.server, size + 1) && readAll(p.client, size + 1));
    co_return results;
  }());
  EXPECT_EQ(gotUp.size(), size);
  EXPECT_TRUE(gotUp == up) << "upstream bytes differ";
  EXPECT_EQ(gotDown.size(), size);
  EXPECT_TRUE(gotDown == down) << "downstream bytes differ";
}

// The proxy reads a client's request body while its response to that client is stuck
// (the client sends everything before it reads): the read must not wait for the write.
TEST_F(TlsStreamTest, AReaderNeverWaitsForABlockedWriter) {
  Pair p = connect("early.example.test");
  const size_t size = 8 * 1024 * 1024;
  const std::string payload(size, 'x');
  // Named: a coroutine lambda's captures live in the closure, which must outlive the run.
  auto exchange = [&]() -> asio::awaitable<std::tuple<size_t, size_t>> {
    auto [c, s] = co_await (p.client.handshake() && p.server.handshake());
    if (c || s) {
      co_return std::tuple<size_t, size_t>{0, 0};
    }
    // Server: answers (blocks: the client is not reading yet) while reading the body.
    auto server = [&]() -> asio::awaitable<size_t> {
      auto [got, unused] =
          co_await (readAll(p.server, size) && p.server.writeAll(asio::buffer(payload)));
      co_return got.size();
    };
    // Client: sends the whole body first, reads the answer only then.
    auto client = [&]() -> asio::awaitable<size_t> {
      co_await p.client.writeAll(asio::buffer(payload));
      std::string got = co_await readAll(p.client, size);
      co_return got.size();
    };
    auto both = co_await (server() && client());
    co_return both;
  };
  auto future = asio::co_spawn(ctx_, exchange(), asio::use_future);
  ctx_.run_for(std::chrono::seconds(20));
  ASSERT_EQ(future.wait_for(std::chrono::seconds(0)), std::future_status::ready)
      << "deadlock: the server's reader waited for its blocked writer";
  auto [serverGot, clientGot] = future.get();
  EXPECT_EQ(serverGot, size);
  EXPECT_EQ(clientGot, size);
}

TEST_F(TlsStreamTest, WrongNameFailsTheClientHandshakeWithTheReason) {
  Pair p = connect("right.example.test");
  tls::SslPtr ssl(SSL_new(clientCtx_.get()));
  ASSERT_TRUE(tls::prepareUpstreamSsl(ssl.get(), "wrong.example.test").ok());
  p.client.attach(std::move(ssl), TlsStream::Role::kClient);
  auto [c, s] = run([&]() -> asio::awaitable<std::tuple<std::error_code, std::error_code>> {
    auto both = co_await (p.client.handshake() && p.server.handshake());
    co_return both;
  }());
  EXPECT_TRUE(c);
  EXPECT_TRUE(s) << "the server side saw the client's alert";
  const std::string why = tls::upstreamFailureText(p.client.ssl());
  EXPECT_NE(why.find("mismatch"), std::string::npos) << why;
}

TEST_F(TlsStreamTest, EndOfStreamIsReadAsZeroWithAndWithoutCloseNotify) {
  Pair p = connect("end.example.test");
  auto [first, second] = run([&]() -> asio::awaitable<std::tuple<std::string, std::string>> {
    auto [c, s] = co_await (p.client.handshake() && p.server.handshake());
    if (c || s) {
      co_return std::tuple<std::string, std::string>{"handshake failed", ""};
    }
    co_await p.server.writeAll(asio::buffer(std::string("bye")));
    p.server.shutdownSend();  // close_notify, then FIN
    std::string a = co_await readAll(p.client, 100);
    // A bare FIN (no close_notify) also ends the stream: HTTP framing judges truncation.
    std::error_code ignored;
    p.client.socket().shutdown(tcp::socket::shutdown_send, ignored);
    std::string b = co_await readAll(p.server, 100);
    co_return std::tuple<std::string, std::string>{a, b.empty() ? "eof" : b};
  }());
  EXPECT_EQ(first, "bye");
  EXPECT_EQ(second, "eof");
}

// Without attach() a TlsStream is a plain socket (an intercepted session's upstream after a
// handler rerouted it to `host:port` or `unix:`): bytes go through unchanged both ways, the
// end of the stream reads as 0 without error, and a half-close passes.
TEST_F(TlsStreamTest, PlainModeWithoutTlsIsARoundTripOnTheSocket) {
  tcp::acceptor acceptor(ctx_, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  tcp::socket clientSocket(ctx_);
  clientSocket.connect(acceptor.local_endpoint());
  tcp::socket serverSocket = acceptor.accept();
  clientSocket.non_blocking(true);
  serverSocket.non_blocking(true);
  TlsStream client(std::move(clientSocket));
  tcp::socket& server = serverSocket;
  EXPECT_FALSE(client.hasTls());

  const size_t size = 2 * 1024 * 1024 + 5;  // more than a socket buffer: the async path too
  std::string up(size, '\0');
  for (size_t i = 0; i < size; ++i) {
    up[i] = static_cast<char>('a' + i % 23);
  }
  auto exchange = [&]() -> asio::awaitable<std::tuple<std::string, std::string, std::string>> {
    // The client writes everything and half-closes while the server reads it all; then
    // the server answers and closes.
    auto clientSide = [&]() -> asio::awaitable<std::string> {
      auto [ec, n] = co_await client.writeAll(asio::buffer(up));
      if (ec || n != size) {
        co_return "write failed: " + ec.message();
      }
      client.shutdownSend();
      std::string got = co_await readAll(client, 1000);
      co_return got;
    };
    auto serverSide = [&]() -> asio::awaitable<std::string> {
      std::string got;
      char buf[65536];
      for (;;) {
        auto [ec, n] = co_await server.async_read_some(asio::buffer(buf), kNoThrow);
        if (ec || n == 0) {
          break;  // the client's half-close
        }
        got.append(buf, n);
      }
      co_await writeAll(server, asio::buffer(std::string("answer")));
      std::error_code ignored;
      server.shutdown(tcp::socket::shutdown_send, ignored);
      co_return got;
    };
    auto [down, received] = co_await (clientSide() && serverSide());
    // After the end of the stream another read is 0 again, without error.
    char byte;
    auto [ec, n] = co_await client.readSome(asio::buffer(&byte, 1));
    co_return std::tuple<std::string, std::string, std::string>{
        down, received, ec ? ec.message() : (n == 0 ? "eof" : "data")};
  };
  auto [down, received, after] = run(exchange());
  EXPECT_EQ(down, "answer");
  EXPECT_EQ(received.size(), size);
  EXPECT_TRUE(received == up) << "bytes differ";
  EXPECT_EQ(after, "eof");
}

TEST_F(TlsStreamTest, PlainModeHandshakeIsAnErrorNotACrash) {
  tcp::acceptor acceptor(ctx_, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  tcp::socket clientSocket(ctx_);
  clientSocket.connect(acceptor.local_endpoint());
  TlsStream client(std::move(clientSocket));
  const std::error_code ec = run(client.handshake());
  EXPECT_EQ(ec, std::make_error_code(std::errc::protocol_error));
  EXPECT_NE(client.failureText().find("no TLS"), std::string::npos) << client.failureText();
}

}  // namespace
}  // namespace egressd::proxy
