// The upstreams a handler's reroute can name besides TCP: unix stream sockets (connectUnix,
// with its retry while a listener's backlog is full) and TLS origination for plain sessions
// (originateTls: verified handshake first, then a socketpair pumped to the TLS connection).
// Real sockets on loopback and in a TempDir; a local TLS server with a test CA.
#include "proxy/upstream_connect.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/unique_fd.h"
#include "proxy/stream_ops.h"
#include "proxy/tls_stream.h"
#include "temp_dir.h"
#include "tls/certificate_authority.h"
#include "tls/contexts.h"

namespace egressd::proxy {
namespace {

using asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;
using namespace std::chrono_literals;

// A listening unix socket at `path` (plain POSIX: the code under test is the client).
UniqueFd listenUnix(const std::string& path, int backlog) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path.c_str());
  if (!fd || ::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      (backlog >= 0 && ::listen(fd.get(), backlog) != 0)) {
    ADD_FAILURE() << "unix listener " << path << ": " << std::strerror(errno);
    return UniqueFd();
  }
  return fd;
}

// Reads from `s` until the end of the stream (or `limit` bytes).
template <typename S>
asio::awaitable<std::string> readToEnd(S& s, size_t limit = 1 << 20) {
  std::string got;
  char buf[4096];
  while (got.size() < limit) {
    auto [ec, n] = co_await readSome(s, asio::buffer(buf));
    if (ec || n == 0) {
      break;
    }
    got.append(buf, n);
  }
  co_return got;
}

class UpstreamConnectTest : public ::testing::Test {
 protected:
  // Runs `task` to completion (bounded: a hang is a failure, not a stuck test run).
  // (Not asio::use_future: that needs a default-constructible result, Result<T> is not.)
  template <typename T>
  T run(asio::awaitable<T> task, std::chrono::seconds limit = 10s) {
    std::optional<T> result;
    asio::co_spawn(
        ctx_, [&]() -> asio::awaitable<void> { result.emplace(co_await std::move(task)); },
        asio::detached);
    ctx_.restart();
    ctx_.run_for(limit);
    if (!result) {
      ctx_.stop();
      throw std::runtime_error("did not finish within " + std::to_string(limit.count()) + " s");
    }
    return std::move(*result);
  }

  asio::io_context ctx_;
  test::TempDir dir_ = test::TempDir::createOrThrow();
};

// --- connectUnix ---------------------------------------------------------------------------

TEST_F(UpstreamConnectTest, UnixConnectGivesAStreamTheSessionCanReadAndWrite) {
  const std::string path = dir_.path() + "/kv.sock";
  UniqueFd listener = listenUnix(path, 8);
  ASSERT_TRUE(listener);
  auto result = run(connectUnix(ctx_.get_executor(), path, 1000ms));
  ASSERT_TRUE(result.ok()) << result.error().message();
  tcp::socket socket = std::move(*result);
  EXPECT_TRUE(socket.non_blocking()) << "Asio must know the fd is non-blocking";

  UniqueFd peer(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(peer);
  ASSERT_EQ(::send(peer.get(), "pong", 4, 0), 4);
  ::shutdown(peer.get(), SHUT_WR);
  auto [written, answer] = run([&]() -> asio::awaitable<std::tuple<size_t, std::string>> {
    auto [ec, n] = co_await writeAll(socket, asio::buffer(std::string("ping")));
    std::string got = co_await readToEnd(socket);
    co_return std::tuple<size_t, std::string>{ec ? 0 : n, got};
  }());
  EXPECT_EQ(written, 4u);
  EXPECT_EQ(answer, "pong");
  char buf[8] = {};
  EXPECT_EQ(::recv(peer.get(), buf, sizeof(buf), 0), 4);
  EXPECT_EQ(std::string(buf, 4), "ping");
}

TEST_F(UpstreamConnectTest, UnixConnectToAMissingPathNamesThePathAndTheReason) {
  const std::string path = dir_.path() + "/nobody.sock";
  auto result = run(connectUnix(ctx_.get_executor(), path, 1000ms));
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code(), ENOENT);
  EXPECT_NE(result.error().message().find("unix:" + path), std::string::npos)
      << result.error().message();
  EXPECT_NE(result.error().message().find("No such file"), std::string::npos)
      << result.error().message();
}

TEST_F(UpstreamConnectTest, UnixConnectToABoundSocketNobodyListensOnIsRefused) {
  const std::string path = dir_.path() + "/bound.sock";
  UniqueFd bound = listenUnix(path, -1);  // bound, never listening
  ASSERT_TRUE(bound);
  auto result = run(connectUnix(ctx_.get_executor(), path, 1000ms));
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code(), ECONNREFUSED) << result.error().message();
}

TEST_F(UpstreamConnectTest, UnixConnectRefusesRelativeAndOverlongPaths) {
  auto relative = run(connectUnix(ctx_.get_executor(), "run/kv.sock", 100ms));
  ASSERT_FALSE(relative.ok());
  EXPECT_EQ(relative.error().code(), EINVAL);
  auto overlong = run(connectUnix(ctx_.get_executor(), "/" + std::string(200, 'x'), 100ms));
  ASSERT_FALSE(overlong.ok());
  EXPECT_EQ(overlong.error().code(), ENAMETOOLONG);
}

// A full backlog makes a unix connect() fail with EAGAIN: connectUnix retries until the
// listener takes a connection (then succeeds) or the timeout passes (then ETIMEDOUT).
TEST_F(UpstreamConnectTest, UnixConnectRetriesWhileTheBacklogIsFull) {
  const std::string path = dir_.path() + "/busy.sock";
  UniqueFd listener = listenUnix(path, 0);
  ASSERT_TRUE(listener);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path.c_str());
  std::vector<UniqueFd> fillers;
  for (int i = 0; i < 64; ++i) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      ASSERT_EQ(errno, EAGAIN) << std::strerror(errno);
      break;
    }
    fillers.push_back(std::move(fd));
  }
  ASSERT_FALSE(fillers.empty());
  ASSERT_LT(fillers.size(), 64u) << "the backlog never filled";

  const auto started = std::chrono::steady_clock::now();
  auto timedOut = run(connectUnix(ctx_.get_executor(), path, 150ms));
  ASSERT_FALSE(timedOut.ok());
  EXPECT_EQ(timedOut.error().code(), ETIMEDOUT) << timedOut.error().message();
  EXPECT_GE(std::chrono::steady_clock::now() - started, 150ms);

  // The listener accepts one connection 100 ms into the attempt: the retry gets through.
  auto eventually = run([&]() -> asio::awaitable<Result<tcp::socket>> {
    asio::steady_timer timer(ctx_);
    timer.expires_after(100ms);
    auto acceptLater = [&]() -> asio::awaitable<void> {
      co_await timer.async_wait(kNoThrow);
      UniqueFd accepted(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
      EXPECT_TRUE(accepted);
    };
    co_return co_await (acceptLater() && connectUnix(ctx_.get_executor(), path, 3000ms));
  }());
  EXPECT_TRUE(eventually.ok()) << eventually.error().message();
}

// --- originateTls --------------------------------------------------------------------------

class OriginateTlsTest : public UpstreamConnectTest {
 protected:
  void SetUp() override {
    auto ca = tls::CertificateAuthority::create("originate-test");
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
    acceptor_.emplace(ctx_, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  }

  // A TCP connection to the local server; returns the client side (the server side is
  // accepted by serve()).
  tcp::socket connectToServer() {
    tcp::socket s(ctx_);
    s.connect(acceptor_->local_endpoint());
    return s;
  }

  // One TLS server connection with a leaf for `name`: reads until the client's end of
  // stream, answers "you sent: " + what it read, then close_notify + FIN. Returns what it read
  // ("handshake failed: ..." when the handshake did not complete).
  asio::awaitable<std::string> serve(const std::string& name) {
    tcp::socket socket = co_await acceptor_->async_accept(asio::use_awaitable);
    socket.non_blocking(true);
    auto leaf = ca_->mintLeaf(name);
    tls::SslPtr ssl(SSL_new(serverCtx_.get()));
    if (!leaf.ok() || !tls::useLeaf(ssl.get(), **leaf).ok()) {
      co_return std::string("no leaf");
    }
    TlsStream server(std::move(socket));
    server.attach(std::move(ssl), TlsStream::Role::kServer);
    if (auto ec = co_await server.handshake(); ec) {
      co_return "handshake failed: " + server.failureText();
    }
    std::string got = co_await readToEnd(server);
    co_await server.writeAll(asio::buffer("you sent: " + got));
    server.shutdownSend();
    co_return got;
  }

  std::shared_ptr<tls::CertificateAuthority> ca_;
  tls::SslCtxPtr serverCtx_;
  tls::SslCtxPtr clientCtx_;
  std::optional<tcp::acceptor> acceptor_;
};

TEST_F(OriginateTlsTest, PlaintextInTheSocketpairTravelsAsVerifiedTlsBothWays) {
  auto exchange = [&]() -> asio::awaitable<std::tuple<std::string, std::string, std::string>> {
    auto client = [&]() -> asio::awaitable<std::tuple<std::string, std::string>> {
      auto originated = co_await originateTls(connectToServer(), clientCtx_.get(),
                                              "origin.example.test", 5000ms, 1000ms);
      if (!originated.ok()) {
        co_return std::tuple<std::string, std::string>{"error: " + originated.error().message(),
                                                       ""};
      }
      tcp::socket s = std::move(*originated);
      // The session end is a unix socket: plain reads and writes, a half-close passes on.
      const std::string request = "GET / HTTP/1.1\r\nHost: origin.example.test\r\n\r\n";
      co_await writeAll(s, asio::buffer(request));
      shutdownSend(s);
      std::string answer = co_await readToEnd(s);
      co_return std::tuple<std::string, std::string>{"ok", answer};
    };
    auto [served, result] = co_await (serve("origin.example.test") && client());
    co_return std::tuple<std::string, std::string, std::string>{served, std::get<0>(result),
                                                                std::get<1>(result)};
  };
  auto [served, status, answer] = run(exchange());
  EXPECT_EQ(status, "ok");
  EXPECT_EQ(served, "GET / HTTP/1.1\r\nHost: origin.example.test\r\n\r\n");
  EXPECT_EQ(answer, "you sent: " + served);
}

TEST_F(OriginateTlsTest, ACertificateForAnotherNameFailsBeforeAnySocketIsHandedOver) {
  auto exchange = [&]() -> asio::awaitable<std::tuple<std::string, std::string>> {
    auto client = [&]() -> asio::awaitable<std::string> {
      auto originated = co_await originateTls(connectToServer(), clientCtx_.get(),
                                              "expected.example.test", 5000ms, 1000ms);
      if (originated.ok()) {
        co_return std::string("handed over a socket");
      }
      co_return std::to_string(originated.error().code()) + " " + originated.error().message();
    };
    auto [served, result] = co_await (serve("impostor.example.test") && client());
    co_return std::tuple<std::string, std::string>{served, result};
  };
  auto [served, result] = run(exchange());
  EXPECT_EQ(result.rfind(std::to_string(EPROTO) + " ", 0), 0u) << result;
  EXPECT_NE(result.find("mismatch"), std::string::npos) << result;
  EXPECT_EQ(served.rfind("handshake failed", 0), 0u) << served;
}

TEST_F(OriginateTlsTest, AServerThatNeverAnswersTheHandshakeTimesOut) {
  auto exchange = [&]() -> asio::awaitable<std::string> {
    auto silent = [&]() -> asio::awaitable<tcp::socket> {
      co_return co_await acceptor_->async_accept(asio::use_awaitable);  // accepts, says nothing
    };
    auto client = [&]() -> asio::awaitable<std::string> {
      auto originated = co_await originateTls(connectToServer(), clientCtx_.get(),
                                              "slow.example.test", 200ms, 1000ms);
      co_return originated.ok() ? std::string("handed over a socket")
                                : originated.error().message();
    };
    auto [peer, result] = co_await (silent() && client());
    co_return result;
  };
  const auto started = std::chrono::steady_clock::now();
  const std::string result = run(exchange());
  EXPECT_EQ(result, "handshake timed out");
  EXPECT_LT(std::chrono::steady_clock::now() - started, 3s);
}

// Closing the session's end (the pool dropping the connection, the session failing) ends
// the TLS connection with close_notify: the server reads the end of the stream.
TEST_F(OriginateTlsTest, ClosingTheSessionEndClosesTheTlsConnection) {
  auto exchange = [&]() -> asio::awaitable<std::string> {
    auto client = [&]() -> asio::awaitable<void> {
      auto originated = co_await originateTls(connectToServer(), clientCtx_.get(),
                                              "bye.example.test", 5000ms, 1000ms);
      if (!originated.ok()) {
        co_return;
      }
      tcp::socket s = std::move(*originated);
      co_await writeAll(s, asio::buffer(std::string("partial")));
      std::error_code ignored;
      s.close(ignored);
    };
    co_return co_await (serve("bye.example.test") && client());
  };
  EXPECT_EQ(run(exchange()), "partial");
}

}  // namespace
}  // namespace egressd::proxy
