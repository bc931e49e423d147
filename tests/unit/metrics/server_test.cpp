// MetricsServer against real HTTP clients (curl) on a unix socket and on loopback TCP.
#include "metrics/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "temp_dir.h"

namespace egressd::metrics {
namespace {

using test::TempDir;

struct HttpReply {
  int status = 0;
  std::string headers;  // raw header block, lower-cased for searching
  std::string body;
};

// Runs curl with `args`, capturing headers and body (-i). Arguments are fixed strings built
// by the tests, so plain shell quoting is enough.
HttpReply curl(const std::string& args) {
  const std::string command = "curl -sS -i --max-time 5 " + args + " 2>&1";
  HttpReply reply;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) {
    ADD_FAILURE() << "popen failed for " << command;
    return reply;
  }
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) {
    out.append(buf.data(), n);
  }
  ::pclose(pipe);
  size_t split = out.find("\r\n\r\n");
  if (!out.starts_with("HTTP/1.1 ") || split == std::string::npos) {
    ADD_FAILURE() << "no HTTP response from `" << command << "`: " << out;
    return reply;
  }
  reply.status = std::stoi(out.substr(9, 3));
  reply.headers = out.substr(0, split);
  for (char& c : reply.headers) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  reply.body = out.substr(split + 4);
  return reply;
}

// Sends raw bytes over TCP and returns everything the server answers before closing.
std::string rawExchange(uint16_t port, const std::string& request) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval timeout{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  std::string out;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(request.size())) {
    char buf[4096];
    ssize_t n;
    while ((n = ::recv(fd, buf, sizeof(buf), 0)) > 0) {
      out.append(buf, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  return out;
}

uint16_t portOf(const std::string& bound) {
  return static_cast<uint16_t>(std::stoi(bound.substr(bound.rfind(':') + 1)));
}

std::unique_ptr<MetricsServer> startOk(const std::string& address, const Registry& registry) {
  auto server = MetricsServer::start(address, registry);
  EXPECT_TRUE(server.ok()) << (server.ok() ? "" : server.error().message());
  return server.ok() ? std::move(*server) : nullptr;
}

TEST(MetricsAddressTest, AcceptsLoopbackAndUnixOnly) {
  auto unixAddr = parseMetricsAddress("unix:/run/egressd/metrics.sock");
  ASSERT_TRUE(unixAddr.ok());
  EXPECT_EQ(unixAddr->unixPath, "/run/egressd/metrics.sock");

  auto v4 = parseMetricsAddress("127.0.0.1:9464");
  ASSERT_TRUE(v4.ok());
  EXPECT_EQ(v4->ip, "127.0.0.1");
  EXPECT_EQ(v4->port, 9464);
  EXPECT_TRUE(parseMetricsAddress("127.8.9.10:0").ok()) << "all of 127/8 is loopback";

  auto v6 = parseMetricsAddress("[::1]:9464");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->ip, "::1");

  for (const char* refused : {"0.0.0.0:9464", "10.1.2.3:9464", "[::]:9464", "[2001:db8::1]:9464",
                              "[::ffff:10.0.0.1]:9464", "192.168.1.1:80"}) {
    auto parsed = parseMetricsAddress(refused);
    ASSERT_FALSE(parsed.ok()) << refused;
    EXPECT_NE(parsed.error().message().find("not a loopback address"), std::string::npos)
        << parsed.error().message();
  }
  for (const char* malformed : {"localhost:9464", "127.0.0.1", "127.0.0.1:99999", "127.0.0.1:x",
                                "::1:9464", "[::1]", "unix:", ""}) {
    EXPECT_FALSE(parseMetricsAddress(malformed).ok()) << malformed;
  }
}

TEST(MetricsServerTest, RefusesNonLoopbackAddresses) {
  Registry registry;
  auto server = MetricsServer::start("0.0.0.0:0", registry);
  ASSERT_FALSE(server.ok());
  EXPECT_NE(server.error().message().find("must not be exposed"), std::string::npos)
      << server.error().message();
}

TEST(MetricsServerTest, ServesMetricsOnAUnixSocket) {
  TempDir dir = TempDir::createOrThrow();
  const std::string path = dir.path() + "/run/egressd/metrics.sock";  // parents created
  Registry registry;
  registry.counter("egressd_requests_total", "Requests.", {{"sandbox", "a"}}).inc(41);
  auto server = startOk("unix:" + path, registry);
  ASSERT_TRUE(server);
  EXPECT_EQ(server->boundAddress(), "unix:" + path);

  struct stat st {};
  ASSERT_EQ(::lstat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  ASSERT_EQ(::stat((dir.path() + "/run/egressd").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0755u);

  registry.counter("egressd_requests_total", "Requests.", {{"sandbox", "a"}}).inc();
  HttpReply reply = curl("--unix-socket " + path + " http://localhost/metrics");
  EXPECT_EQ(reply.status, 200);
  EXPECT_NE(reply.headers.find("content-type: text/plain; version=0.0.4"), std::string::npos)
      << reply.headers;
  EXPECT_EQ(reply.body, registry.render());
  EXPECT_NE(reply.body.find("egressd_requests_total{sandbox=\"a\"} 42\n"), std::string::npos);

  server.reset();
  EXPECT_FALSE(std::filesystem::exists(path)) << "the socket file is removed on shutdown";
}

TEST(MetricsServerTest, ReplacesAStaleSocketButNotALiveOneOrAFile) {
  TempDir dir = TempDir::createOrThrow();
  const std::string path = dir.path() + "/metrics.sock";
  {
    // A socket file left behind by a crashed process: bound, nobody accepting.
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    path.copy(addr.sun_path, path.size());
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    ::close(fd);
  }
  Registry registry;
  auto first = startOk("unix:" + path, registry);
  ASSERT_TRUE(first);
  EXPECT_EQ(curl("--unix-socket " + path + " http://localhost/").status, 200);

  auto second = MetricsServer::start("unix:" + path, registry);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.error().message().find("in use"), std::string::npos) << second.error().message();
  EXPECT_EQ(curl("--unix-socket " + path + " http://localhost/").status, 200)
      << "the live server keeps its socket";

  const std::string file = dir.path() + "/not-a-socket";
  std::ofstream(file) << "data";
  auto onFile = MetricsServer::start("unix:" + file, registry);
  ASSERT_FALSE(onFile.ok());
  EXPECT_NE(onFile.error().message().find("not a socket"), std::string::npos);
  EXPECT_TRUE(std::filesystem::exists(file)) << "a regular file is never deleted";
}

TEST(MetricsServerTest, ServesOverLoopbackTcpWithRouting) {
  Registry registry;
  registry.histogram("egressd_request_duration_seconds", "Latency.", {}, kLatencyBuckets)
      .observe(0.002);
  auto server = startOk("127.0.0.1:0", registry);
  ASSERT_TRUE(server);
  const std::string bound = server->boundAddress();
  ASSERT_TRUE(bound.starts_with("127.0.0.1:")) << bound;
  ASSERT_NE(portOf(bound), 0) << "port 0 is replaced by the chosen port";
  const std::string base = "http://" + bound;

  HttpReply metrics = curl(base + "/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_EQ(metrics.body, registry.render());
  EXPECT_NE(metrics.body.find("egressd_request_duration_seconds_bucket{le=\"0.0025\"} 1\n"),
            std::string::npos);
  EXPECT_NE(metrics.headers.find("connection: close"), std::string::npos);

  EXPECT_EQ(curl(base + "/metrics?name[]=x").status, 200) << "query strings are ignored";

  HttpReply root = curl(base + "/");
  EXPECT_EQ(root.status, 200);
  EXPECT_NE(root.body.find("/metrics"), std::string::npos);

  EXPECT_EQ(curl(base + "/nope").status, 404);
  EXPECT_EQ(curl(base + "/metricsx").status, 404);

  HttpReply post = curl("-X POST --data hello " + base + "/metrics");
  EXPECT_EQ(post.status, 405);
  EXPECT_NE(post.headers.find("allow: get, head"), std::string::npos) << post.headers;
  EXPECT_EQ(curl("-X DELETE " + base + "/").status, 405);

  HttpReply head = curl("--head " + base + "/metrics");
  EXPECT_EQ(head.status, 200);
  EXPECT_TRUE(head.body.empty()) << head.body;
  EXPECT_NE(head.headers.find("content-length: " + std::to_string(registry.render().size())),
            std::string::npos)
      << head.headers;
}

TEST(MetricsServerTest, AnswersMalformedRequestsWith400) {
  Registry registry;
  auto server = startOk("127.0.0.1:0", registry);
  ASSERT_TRUE(server);
  const uint16_t port = portOf(server->boundAddress());
  EXPECT_TRUE(rawExchange(port, "NOT HTTP AT ALL\r\n\r\n").starts_with("HTTP/1.1 400 "));
  const std::string oversized = rawExchange(
      port, "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(20000, 'x') + "\r\n\r\n");
  EXPECT_TRUE(oversized.starts_with("HTTP/1.1 400 "))
      << "an oversized request is refused: " << oversized;
  // And the server still serves afterwards.
  EXPECT_TRUE(rawExchange(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                  .starts_with("HTTP/1.1 200 OK\r\n"));
}

TEST(MetricsServerTest, ServesOverIpv6Loopback) {
  int probe = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in6 addr{};
  addr.sin6_family = AF_INET6;
  addr.sin6_addr = in6addr_loopback;
  const bool haveV6 =
      probe >= 0 && ::bind(probe, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  if (probe >= 0) {
    ::close(probe);
  }
  if (!haveV6) {
    GTEST_SKIP() << "no IPv6 loopback here";
  }
  Registry registry;
  registry.counter("v6_total", "V6.").inc(6);
  auto server = startOk("[::1]:0", registry);
  ASSERT_TRUE(server);
  ASSERT_TRUE(server->boundAddress().starts_with("[::1]:")) << server->boundAddress();
  HttpReply reply = curl("-g http://" + server->boundAddress() + "/metrics");
  EXPECT_EQ(reply.status, 200);
  EXPECT_NE(reply.body.find("v6_total 6\n"), std::string::npos);
}

}  // namespace
}  // namespace egressd::metrics
