// ControlServer + ControlClient on unix sockets in a temp dir: permissions, stale and live
// sockets, peer credentials, framing (keep-alive, pipelining, chunked, limits), JSON errors.
#include "control/server.h"

#include <fcntl.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/fs.h"
#include "common/unique_fd.h"
#include "control/client.h"
#include "control/wire.h"
#include "http/parser.h"

namespace egressd::control {
namespace {

using nlohmann::json;

// A scratch directory (mode 0700, root's) removed with everything in it. Local rather than
// tests/support's TempDir: that library depends on the daemon binary, this test must not.
class TempDir {
 public:
  static TempDir createOrThrow() {
    std::string path = "/tmp/egressd-test-control-XXXXXX";
    if (::mkdtemp(path.data()) == nullptr) {
      throw std::runtime_error("mkdtemp: " + std::string(std::strerror(errno)));
    }
    return TempDir(path);
  }
  TempDir(TempDir&& other) noexcept : path_(std::exchange(other.path_, "")) {}
  TempDir& operator=(TempDir&&) = delete;
  ~TempDir() {
    if (!path_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(path_, ec);
    }
  }
  const std::string& path() const { return path_; }
  Status writeFile(const std::string& name, const std::string& content) const {
    return egressd::writeFileAtomic(path_ + "/" + name, content);
  }

 private:
  explicit TempDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

sockaddr_un unixAddress(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  path.copy(addr.sun_path, sizeof(addr.sun_path) - 1);
  return addr;
}

UniqueFd connectTo(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr = unixAddress(path);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ADD_FAILURE() << "connect " << path << ": " << std::strerror(errno);
    return UniqueFd();
  }
  timeval timeout{5, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  return fd;
}

void sendAll(int fd, const std::string& bytes) {
  size_t sent = 0;
  while (sent < bytes.size()) {
    ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    ASSERT_GT(n, 0) << std::strerror(errno);
    sent += static_cast<size_t>(n);
  }
}

struct RawResponse {
  int status = 0;
  bool keepAlive = true;
  json body;
};

// Reads exactly `count` responses (Content-Length framed, as the server sends them) and
// reports in `eof` whether the server then closed the connection.
std::vector<RawResponse> readResponses(int fd, size_t count, bool* eof = nullptr) {
  std::vector<RawResponse> out;
  http::ResponseParser parser;
  std::string pending;
  std::string body;
  char buf[4096];
  while (out.size() < count) {
    if (pending.empty()) {
      ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) {
        ADD_FAILURE() << "connection ended after " << out.size() << " of " << count << " responses";
        return out;
      }
      pending.assign(buf, static_cast<size_t>(n));
    }
    http::ParseStep step = parser.feed(pending.data(), pending.size());
    if (step.kind == http::ParseStep::Kind::kError) {
      ADD_FAILURE() << "malformed response: " << step.reason;
      return out;
    }
    if (step.kind == http::ParseStep::Kind::kBody ||
        step.kind == http::ParseStep::Kind::kMessageEnd) {
      body.append(pending, 0, step.consumed);
    }
    pending.erase(0, step.consumed);
    if (step.kind == http::ParseStep::Kind::kMessageEnd) {
      RawResponse r;
      r.status = parser.head().status;
      r.keepAlive = parser.head().keepAlive;
      r.body = json::parse(body, nullptr, false);
      out.push_back(r);
      body.clear();
    }
  }
  if (eof != nullptr) {
    *eof = ::recv(fd, buf, sizeof(buf), 0) == 0;
  }
  return out;
}

std::string post(const std::string& path, const std::string& body, bool close = false) {
  return "POST " + path +
         " HTTP/1.1\r\nHost: egressd\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" +
         (close ? "Connection: close\r\n" : "") + "\r\n" + body;
}

std::string get(const std::string& path) {
  return "GET " + path + " HTTP/1.1\r\nHost: egressd\r\n\r\n";
}

class ControlServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto router = std::make_shared<Router>();
    router->add("POST", "/v1/echo/{id}", [this](const ApiRequest& r) {
      ++calls_;
      return ApiResponse{200,
                         {{"method", r.method},
                          {"path", r.path},
                          {"params", r.params},
                          {"query", r.query},
                          {"body", r.body},
                          {"bodyIsNull", r.body.is_null()},
                          {"peerUid", r.peerUid}}};
    });
    router->add("GET", "/v1/count", [this](const ApiRequest&) {
      return ApiResponse{200, {{"n", ++calls_}}};
    });
    router->add("POST", "/v1/size", [](const ApiRequest& r) {
      return ApiResponse{200, {{"size", r.body.at("v").get<std::string>().size()}}};
    });
    router->add("DELETE", "/v1/sandboxes/{id}/allowed-hosts/{host}", [](const ApiRequest& r) {
      return ApiResponse{200, {{"id", r.params.at("id")}, {"host", r.params.at("host")}}};
    });
    router->add("PUT", "/v1/secrets/{name+}", [](const ApiRequest& r) {
      return ApiResponse{200, {{"name", r.params.at("name")}}};
    });
    router->add("GET", "/v1/boom",
                [](const ApiRequest&) -> ApiResponse { throw std::runtime_error("kaboom"); });
    router_ = router;
    socket_ = dir_.path() + "/ctl.sock";
  }

  std::unique_ptr<ControlServer> start() {
    auto server = ControlServer::start(socket_, router_);
    if (!server.ok()) {
      ADD_FAILURE() << server.error().message();
      return nullptr;
    }
    return std::move(server).value();
  }

  TempDir dir_ = TempDir::createOrThrow();
  std::string socket_;
  std::shared_ptr<const Router> router_;
  std::atomic<int> calls_{0};
};

TEST_F(ControlServerTest, RoundTripThroughClient) {
  auto server = start();
  ASSERT_TRUE(server);
  ControlClient client(socket_);
  auto r = client.call("POST", "/v1/echo/sb%201?lines=5&sandbox=a%2Fb", {{"hosts", {"a.test"}}});
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body["method"], "POST");
  EXPECT_EQ(r->body["path"], "/v1/echo/sb%201");
  EXPECT_EQ(r->body["params"]["id"], "sb 1");
  EXPECT_EQ(r->body["query"]["lines"], "5");
  EXPECT_EQ(r->body["query"]["sandbox"], "a/b");
  EXPECT_EQ(r->body["body"]["hosts"][0], "a.test");
  EXPECT_EQ(r->body["peerUid"], ::geteuid());

  // No body -> null, not {} or "".
  auto empty = client.call("POST", "/v1/echo/x");
  ASSERT_TRUE(empty.ok()) << empty.error().message();
  EXPECT_EQ(empty->body["bodyIsNull"], true);

  // Non-2xx is an answer, not an error.
  auto missing = client.call("GET", "/v1/nope");
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(missing->body["error"]["code"], "not_found");
  auto boom = client.call("GET", "/v1/boom");
  ASSERT_TRUE(boom.ok());
  EXPECT_EQ(boom->status, 500);
  EXPECT_NE(errorMessage(*boom).find("kaboom"), std::string::npos);
}

TEST_F(ControlServerTest, SocketIsPrivateAndRemovedOnStop) {
  auto server = start();
  ASSERT_TRUE(server);
  EXPECT_EQ(server->socketPath(), socket_);
  struct stat st {};
  ASSERT_EQ(::lstat(socket_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600U);
  EXPECT_EQ(st.st_uid, ::geteuid());
  server.reset();
  EXPECT_NE(::lstat(socket_.c_str(), &st), 0) << "socket file left behind";
}

TEST_F(ControlServerTest, CreatesMissingParentDirectory) {
  socket_ = dir_.path() + "/run/egressd/ctl.sock";
  auto server = start();
  ASSERT_TRUE(server);
  struct stat st {};
  ASSERT_EQ(::stat((dir_.path() + "/run/egressd").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 022, 0U);
  auto r = ControlClient(socket_).call("GET", "/v1/count");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->status, 200);
}

TEST_F(ControlServerTest, StaleSocketFileIsReplaced) {
  {
    // A socket file nobody accepts on, as a killed daemon leaves it.
    UniqueFd stale(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr = unixAddress(socket_);
    ASSERT_EQ(::bind(stale.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  }
  ASSERT_TRUE(pathExists(socket_));
  // Without a fresh socket the client would get ECONNREFUSED from the stale one.
  EXPECT_FALSE(ControlClient(socket_).call("GET", "/v1/count").ok());
  auto server = start();
  ASSERT_TRUE(server);
  auto r = ControlClient(socket_).call("GET", "/v1/count");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->status, 200);
}

TEST_F(ControlServerTest, SecondServerOnLiveSocketIsRefused) {
  auto first = start();
  ASSERT_TRUE(first);
  auto second = ControlServer::start(socket_, router_);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().message(), "another egressd already serves " + socket_);
  // The refused start took nothing away from the first.
  auto r = ControlClient(socket_).call("GET", "/v1/count");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->status, 200);
}

TEST_F(ControlServerTest, RegularFileAtSocketPathIsRefused) {
  ASSERT_TRUE(dir_.writeFile("ctl.sock", "not a socket").ok());
  auto server = ControlServer::start(socket_, router_);
  ASSERT_FALSE(server.ok());
  EXPECT_NE(server.error().message().find("is not a socket"), std::string::npos);
  EXPECT_TRUE(pathExists(socket_));
}

TEST_F(ControlServerTest, GroupOrOtherWritableParentIsRefused) {
  const std::string parent = dir_.path() + "/shared";
  ASSERT_EQ(::mkdir(parent.c_str(), 0755), 0);
  socket_ = parent + "/ctl.sock";
  for (mode_t mode : {0775, 0757, 01777}) {
    ASSERT_EQ(::chmod(parent.c_str(), mode), 0);
    auto server = ControlServer::start(socket_, router_);
    ASSERT_FALSE(server.ok()) << "mode " << std::oct << mode;
    EXPECT_NE(server.error().message().find(parent), std::string::npos) << server.error().message();
    EXPECT_NE(server.error().message().find("writable by group or others"), std::string::npos)
        << server.error().message();
    struct stat st {};
    EXPECT_NE(::lstat(socket_.c_str(), &st), 0) << "socket created despite the refusal";
  }
  ASSERT_EQ(::chmod(parent.c_str(), 0755), 0);
  EXPECT_TRUE(start());
}

TEST_F(ControlServerTest, ParentOwnedBySomeoneElseIsRefused) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "needs root to chown";
  }
  const std::string parent = dir_.path() + "/theirs";
  ASSERT_EQ(::mkdir(parent.c_str(), 0755), 0);
  ASSERT_EQ(::chown(parent.c_str(), 65534, 65534), 0);
  socket_ = parent + "/ctl.sock";
  auto server = ControlServer::start(socket_, router_);
  ASSERT_FALSE(server.ok());
  EXPECT_NE(server.error().message().find(parent + " is owned by uid 65534"), std::string::npos)
      << server.error().message();
}

// The child connects as uid/gid 65534 and sends a request; the parent gets what it read
// (or "connect-errno:N") through a pipe. Only async-signal-safe calls in the child.
std::string exchangeAsNobody(const std::string& socketPath, const std::string& request) {
  int fds[2];
  if (::pipe(fds) != 0) {
    return "pipe failed";
  }
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    auto report = [&](const char* text, size_t len) { (void)!::write(fds[1], text, len); };
    if (::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0) {
      report("setuid-failed", 13);
      ::_exit(1);
    }
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr = unixAddress(socketPath);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      char text[32] = "connect-errno:";
      int err = errno;
      text[14] = static_cast<char>('0' + err / 10);
      text[15] = static_cast<char>('0' + err % 10);
      report(text, 16);
      ::_exit(0);
    }
    timeval timeout{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    (void)!::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
    char buf[4096];
    ssize_t n;
    while ((n = ::recv(fd, buf, sizeof(buf), 0)) > 0) {
      report(buf, static_cast<size_t>(n));
    }
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof(buf))) > 0) {
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return out;
}

TEST_F(ControlServerTest, NonRootPeerIsForbidden) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "needs root to switch to uid 65534";
  }
  auto server = start();
  ASSERT_TRUE(server);
  // First line of defence: the 0600 socket file.
  EXPECT_EQ(exchangeAsNobody(socket_, get("/v1/count")), "connect-errno:13");
  // Second: the peer credentials, checked even when the file is reachable.
  ASSERT_EQ(::chmod(dir_.path().c_str(), 0755), 0);
  ASSERT_EQ(::chmod(socket_.c_str(), 0666), 0);
  std::string reply = exchangeAsNobody(socket_, get("/v1/count"));
  EXPECT_TRUE(reply.starts_with("HTTP/1.1 403 ")) << reply;
  EXPECT_NE(reply.find("\"code\":\"forbidden\""), std::string::npos) << reply;
  EXPECT_NE(reply.find("Connection: close"), std::string::npos) << reply;
  EXPECT_EQ(calls_.load(), 0) << "a handler ran for a forbidden peer";
  // Root still gets through.
  auto r = ControlClient(socket_).call("GET", "/v1/count");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(calls_.load(), 1);
}

TEST_F(ControlServerTest, MalformedJsonIs400WithPosition) {
  auto server = start();
  ASSERT_TRUE(server);
  UniqueFd fd = connectTo(socket_);
  ASSERT_TRUE(fd);
  sendAll(fd.get(), post("/v1/echo/x", "{\"hosts\": [\"a\",]}"));
  bool eof = false;
  auto replies = readResponses(fd.get(), 1, &eof);
  ASSERT_EQ(replies.size(), 1U);
  EXPECT_EQ(replies[0].status, 400);
  EXPECT_EQ(replies[0].body["error"]["code"], "malformed_json");
  const std::string message = replies[0].body["error"]["message"];
  EXPECT_NE(message.find("line 1, column 16"), std::string::npos) << message;
  EXPECT_EQ(calls_.load(), 0);
  EXPECT_TRUE(eof) << "connection kept open after a malformed request";
}

// Found by fuzz.control_json: a number nlohmann cannot hold throws out_of_range, not
// parse_error; it escaped the server's catch and the connection died without an answer.
TEST_F(ControlServerTest, NumberOverflowInBodyIs400) {
  auto server = start();
  ASSERT_TRUE(server);
  UniqueFd fd = connectTo(socket_);
  ASSERT_TRUE(fd);
  sendAll(fd.get(), post("/v1/echo/x", "{\"hosts\": [1e999]}"));
  bool eof = false;
  auto replies = readResponses(fd.get(), 1, &eof);
  ASSERT_EQ(replies.size(), 1U);
  EXPECT_EQ(replies[0].status, 400);
  EXPECT_EQ(replies[0].body["error"]["code"], "malformed_json");
  const std::string message = replies[0].body["error"]["message"];
  EXPECT_NE(message.find("number overflow"), std::string::npos) << message;
  EXPECT_EQ(calls_.load(), 0);
}

TEST(ControlWireTest, ParseJsonBodyNeverThrows) {
  auto ok = parseJsonBody("{\"a\": [1, 2.5, \"x\"]}");
  ASSERT_TRUE(ok.ok()) << ok.error().message();
  EXPECT_EQ((*ok)["a"][2], "x");
  auto syntax = parseJsonBody("{\"a\": }");
  ASSERT_FALSE(syntax.ok());
  EXPECT_NE(syntax.error().message().find("(byte "), std::string::npos) << syntax.error().message();
  auto overflow = parseJsonBody("-1e400");
  ASSERT_FALSE(overflow.ok());
  EXPECT_EQ(overflow.error().message().find("[json.exception"), std::string::npos)
      << overflow.error().message();
}

// Found by fuzz.http_chunked: `raw.size() < size + 2` wrapped for sizes near 2^64 and
// substr() then threw out_of_range instead of failing cleanly.
TEST(ControlWireTest, DecodeChunkedRefusesSizesNearTheTopOfUint64) {
  for (const char* raw :
       {"ffffffffffffffff\r\nx\r\n", "fffffffffffffffe\r\nabc", "fffffffffffffffd\r\n\r\n"}) {
    auto decoded = decodeChunked(raw);
    ASSERT_FALSE(decoded.ok()) << raw;
    EXPECT_NE(decoded.error().message().find("truncated"), std::string::npos)
        << decoded.error().message();
  }
  auto fine = decodeChunked("3\r\nabc\r\n0\r\n\r\n");
  ASSERT_TRUE(fine.ok()) << fine.error().message();
  EXPECT_EQ(*fine, "abc");
}

TEST_F(ControlServerTest, BodyOverOneMebibyteIs413) {
  auto server = start();
  ASSERT_TRUE(server);
  ControlClient client(socket_);
  // Exactly at the limit: {"v":"aaa..."} is 8 bytes of JSON around the string.
  auto atLimit =
      client.call("POST", "/v1/size", {{"v", std::string(kMaxRequestBodyBytes - 8, 'a')}});
  ASSERT_TRUE(atLimit.ok()) << atLimit.error().message();
  EXPECT_EQ(atLimit->status, 200);
  EXPECT_EQ(atLimit->body["size"], kMaxRequestBodyBytes - 8);
  auto over = client.call("POST", "/v1/size", {{"v", std::string(kMaxRequestBodyBytes - 7, 'a')}});
  ASSERT_TRUE(over.ok()) << over.error().message();
  EXPECT_EQ(over->status, 413);
  auto big = client.call("POST", "/v1/size", {{"v", std::string(2 * 1024 * 1024, 'a')}});
  ASSERT_TRUE(big.ok()) << big.error().message();
  EXPECT_EQ(big->status, 413);
  EXPECT_EQ(big->body["error"]["code"], "body_too_large");
  // The server is still there for the next client.
  auto next = client.call("GET", "/v1/count");
  ASSERT_TRUE(next.ok()) << next.error().message();
  EXPECT_EQ(next->status, 200);
}

TEST_F(ControlServerTest, ChunkedBodyOverLimitIs413) {
  auto server = start();
  ASSERT_TRUE(server);
  UniqueFd fd = connectTo(socket_);
  ASSERT_TRUE(fd);
  std::string request =
      "POST /v1/size HTTP/1.1\r\nHost: egressd\r\nTransfer-Encoding: chunked\r\n\r\n";
  const std::string chunk(64 * 1024, 'a');
  for (int i = 0; i < 40; ++i) {  // 2.5 MiB
    request += "10000\r\n" + chunk + "\r\n";
  }
  request += "0\r\n\r\n";
  std::thread writer([&] {
    size_t sent = 0;
    while (sent < request.size()) {
      ssize_t n = ::send(fd.get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) {
        return;  // the server may stop reading once it has answered
      }
      sent += static_cast<size_t>(n);
    }
  });
  auto replies = readResponses(fd.get(), 1);
  writer.join();
  ASSERT_EQ(replies.size(), 1U);
  EXPECT_EQ(replies[0].status, 413);
}

TEST_F(ControlServerTest, ChunkedBodyIsDecoded) {
  auto server = start();
  ASSERT_TRUE(server);
  UniqueFd fd = connectTo(socket_);
  ASSERT_TRUE(fd);
  sendAll(fd.get(),
          "POST /v1/echo/c HTTP/1.1\r\nHost: egressd\r\nTransfer-Encoding: chunked\r\n\r\n"
          "5;ext=1\r\n{\"k\":\r\n3\r\n42}\r\n0\r\n\r\n");
  auto replies = readResponses(fd.get(), 1);
  ASSERT_EQ(replies.size(), 1U);
  EXPECT_EQ(replies[0].status, 200) << replies[0].body;
  EXPECT_EQ(replies[0].body["body"]["k"], 42);
}

TEST_F(ControlServerTest, ExpectContinueGetsInterimResponse) {
  auto server = start();
  ASSERT_TRUE(server);
  UniqueFd fd = connectTo(socket_);
  ASSERT_TRUE(fd);
  const std::string body = "{\"k\":\"v\"}";
  sendAll(fd.get(),
          "POST /v1/echo/e HTTP/1.1\r\nHost: egressd\r\nExpect: 100-continue\r\n"
          "Content-Length: " +
              std::to_string(body.size()) + "\r\n\r\n");
  // curl waits for this before it sends the body (or gives up waiting after a second).
  char buf[64] = {};
  ssize_t n = ::recv(fd.get(), buf, sizeof(buf) - 1, 0);
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(buf, static_cast<size_t>(n)), "HTTP/1.1 100 Continue\r\n\r\n");
  sendAll(fd.get(), body);
  auto replies = readResponses(fd.get(), 1);
  ASSERT_EQ(replies.size(), 1U);
  EXPECT_EQ(replies[0].body["body"]["k"], "v");
}

TEST_F(ControlServerTest, KeepAliveAndPipelining) {
  auto server = start();
  ASSERT_TRUE(server);
  UniqueFd fd = connectTo(socket_);
  ASSERT_TRUE(fd);
  // Two requests in one write: the second must not be lost in the first one's buffer.
  sendAll(fd.get(), get("/v1/count") + post("/v1/echo/two", "{\"n\":2}"));
  auto first = readResponses(fd.get(), 2);
  ASSERT_EQ(first.size(), 2U);
  EXPECT_EQ(first[0].status, 200);
  EXPECT_EQ(first[0].body["n"], 1);
  EXPECT_TRUE(first[0].keepAlive);
  EXPECT_EQ(first[1].body["params"]["id"], "two");
  EXPECT_EQ(first[1].body["body"]["n"], 2);
  // Then a third, later, on the same connection; Connection: close ends it.
  sendAll(fd.get(), post("/v1/echo/three", "", true));
  bool eof = false;
  auto last = readResponses(fd.get(), 1, &eof);
  ASSERT_EQ(last.size(), 1U);
  EXPECT_EQ(last[0].body["params"]["id"], "three");
  EXPECT_EQ(last[0].body["bodyIsNull"], true);
  EXPECT_FALSE(last[0].keepAlive);
  EXPECT_TRUE(eof);
}

TEST_F(ControlServerTest, MalformedHttpIs400AndCloses) {
  auto server = start();
  ASSERT_TRUE(server);
  UniqueFd fd = connectTo(socket_);
  ASSERT_TRUE(fd);
  sendAll(fd.get(),
          "GET /v1/count HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n"
          "Transfer-Encoding: chunked\r\n\r\n");
  bool eof = false;
  auto replies = readResponses(fd.get(), 1, &eof);
  ASSERT_EQ(replies.size(), 1U);
  EXPECT_EQ(replies[0].status, 400);
  EXPECT_EQ(replies[0].body["error"]["code"], "bad_request");
  EXPECT_TRUE(eof);
  EXPECT_EQ(calls_.load(), 0);
}

TEST_F(ControlServerTest, PercentEncodedHostWithStarRoundTrip) {
  auto server = start();
  ASSERT_TRUE(server);
  ControlClient client(socket_);
  const std::string host = "*.evil.example";
  auto r = client.call(
      "DELETE", "/v1/sandboxes/" + percentEncode("sb/1") + "/allowed-hosts/" + percentEncode(host));
  ASSERT_TRUE(r.ok()) << r.error().message();
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->body["host"], host);
  EXPECT_EQ(r->body["id"], "sb/1");
  auto secret = client.call("PUT", "/v1/secrets/API_KEY/" + percentEncode("sb A"), json::object());
  ASSERT_TRUE(secret.ok()) << secret.error().message();
  EXPECT_EQ(secret->body["name"], "API_KEY/sb A");
}

TEST_F(ControlServerTest, ClientReportsMissingDaemon) {
  ControlClient client(dir_.path() + "/absent.sock");
  auto r = client.call("GET", "/v1/status");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "cannot connect to " + dir_.path() +
                                     "/absent.sock: No such file or directory (is the egressd "
                                     "daemon running?)");
}

TEST_F(ControlServerTest, ClientTimesOut) {
  // Listening but never answering (the backlog accepts the connection for us).
  UniqueFd silent(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr = unixAddress(socket_);
  ASSERT_EQ(::bind(silent.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(silent.get(), 4), 0);
  ControlClient client(socket_, std::chrono::milliseconds(300));
  const auto before = std::chrono::steady_clock::now();
  auto r = client.call("GET", "/v1/status");
  const auto took = std::chrono::steady_clock::now() - before;
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("no complete answer"), std::string::npos)
      << r.error().message();
  EXPECT_LT(took, std::chrono::seconds(3));
}

TEST_F(ControlServerTest, ClientRejectsUnsafePathAndBadUtf8) {
  ControlClient client(socket_);
  auto space = client.call("GET", "/v1/a b");
  ASSERT_FALSE(space.ok());
  EXPECT_NE(space.error().message().find("percent-encode"), std::string::npos);
  EXPECT_FALSE(client.call("GET", "/v1/a\r\nX-Injected: 1").ok());
  EXPECT_FALSE(client.call("GET", "v1/relative").ok());
  auto utf8 = client.call("PUT", "/v1/secrets/x", {{"value", "\xff\xfe"}});
  ASSERT_FALSE(utf8.ok());
  EXPECT_NE(utf8.error().message().find("UTF-8"), std::string::npos) << utf8.error().message();
}

}  // namespace
}  // namespace egressd::control
