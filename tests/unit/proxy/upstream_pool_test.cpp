// The per-thread pool of idle upstream connections, on real loopback TCP sockets.
#include "proxy/upstream_pool.h"

#include <gtest/gtest.h>

#include <asio/connect.hpp>
#include <asio/io_context.hpp>
#include <asio/write.hpp>
#include <thread>

namespace egressd::proxy {
namespace {

using asio::ip::tcp;

// A connected pair: the pool keeps `client`, the test plays the server with `server`.
struct Pair {
  tcp::socket client;
  tcp::socket server;
};

Pair connectedPair(asio::io_context& ctx, tcp::acceptor& acceptor) {
  tcp::socket client(ctx);
  client.connect(acceptor.local_endpoint());
  tcp::socket server = acceptor.accept();
  return {std::move(client), std::move(server)};
}

class UpstreamPoolTest : public ::testing::Test {
 protected:
  asio::io_context ctx;
  tcp::acceptor acceptor{ctx, tcp::endpoint(asio::ip::address_v4::loopback(), 0)};

  UpstreamPool::Entry entry(tcp::socket s) {
    return UpstreamPool::Entry{std::move(s), "127.0.0.1:80", *IpAddress::parse("127.0.0.1"), {}};
  }
};

TEST_F(UpstreamPoolTest, GivesBackAnIdleConnectionForItsKeyOnly) {
  UpstreamPool pool;
  Pair p = connectedPair(ctx, acceptor);
  const auto port = p.client.local_endpoint().port();
  pool.put("sandbox-a|allowed.test|80", entry(std::move(p.client)));
  EXPECT_EQ(pool.size(), 1u);
  EXPECT_FALSE(pool.take("sandbox-b|allowed.test|80")) << "another sandbox got the connection";
  EXPECT_FALSE(pool.take("sandbox-a|other.test|80"));
  auto taken = pool.take("sandbox-a|allowed.test|80");
  ASSERT_TRUE(taken);
  EXPECT_EQ(taken->socket.local_endpoint().port(), port);
  EXPECT_EQ(pool.size(), 0u);
  EXPECT_FALSE(pool.take("sandbox-a|allowed.test|80"));
}

TEST_F(UpstreamPoolTest, DropsConnectionsThePeerClosedOrWroteTo) {
  UpstreamPool pool;
  Pair closed = connectedPair(ctx, acceptor);
  Pair chatty = connectedPair(ctx, acceptor);
  pool.put("k", entry(std::move(closed.client)));
  pool.put("k", entry(std::move(chatty.client)));
  closed.server.close();
  asio::write(chatty.server, asio::buffer(std::string("unasked")));
  // Give loopback a moment to deliver the FIN and the bytes.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(pool.take("k")) << "a closed or out-of-step connection was handed out";
  EXPECT_EQ(pool.size(), 0u);
}

TEST_F(UpstreamPoolTest, BoundsConnectionsPerKey) {
  UpstreamPool pool;
  std::vector<tcp::socket> servers;
  for (size_t i = 0; i < UpstreamPool::kMaxPerKey + 3; ++i) {
    Pair p = connectedPair(ctx, acceptor);
    servers.push_back(std::move(p.server));
    pool.put("k", entry(std::move(p.client)));
  }
  EXPECT_EQ(pool.size(), UpstreamPool::kMaxPerKey);
}

}  // namespace
}  // namespace egressd::proxy
