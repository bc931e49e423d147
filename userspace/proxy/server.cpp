#include "proxy/server.h"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>
#include <atomic>
#include <map>
#include <mutex>
#include <thread>

#include "audit/audit_log.h"
#include "common/unique_fd.h"
#include "proxy/http_session.h"
#include "proxy/upstream_pool.h"

namespace egressd::proxy {

namespace {

using asio::ip::tcp;
constexpr int kListenBacklog = 4096;

unsigned defaultThreads() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    return std::max(1, CPU_COUNT(&set));
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

// Refusals linger (see refuse()) at most this many at once; past that they are closed at
// once, so a flood of refused connections cannot hold descriptors either.
constexpr uint64_t kMaxLingeringRefusals = 1024;

std::string refusalResponse(const std::string& reason, const std::string& body) {
  return "HTTP/1.1 503 Service Unavailable\r\n"
         "Content-Type: text/plain\r\n"
         "X-Egressd-Reason: " +
         reason +
         "\r\n"
         "Retry-After: 1\r\n"
         "Connection: close\r\n"
         "Content-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

const std::string& limitResponse(bool outOfDescriptors = false) {
  static const std::string limit = refusalResponse(
      "connection_limit",
      "egressd: the proxy is at its connection limit (--max-connections); try again later\n");
  static const std::string descriptors = refusalResponse(
      "out_of_descriptors",
      "egressd: the proxy is out of file descriptors (RLIMIT_NOFILE); try again later\n");
  return outOfDescriptors ? descriptors : limit;
}

}  // namespace

uint64_t connectionLimitFor(uint64_t nofile) {
  const uint64_t usable = nofile > kReservedFds ? nofile - kReservedFds : 0;
  return std::max<uint64_t>(16, usable / kFdsPerConnection);
}

struct ProxyServer::Impl {
  ProxyConfig config;
  std::vector<std::unique_ptr<asio::io_context>> contexts;
  std::vector<std::unique_ptr<UpstreamPools>> pools;  // one per context, used only on its thread
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
  std::vector<std::thread> threads;

  struct Listening {
    std::shared_ptr<SandboxContext> sandbox;
    ListenerReservation reservation;
    // One acceptor per thread and family, each on its own dup() of the listening socket.
    std::vector<std::shared_ptr<tcp::acceptor>> acceptors;
  };
  mutable std::mutex mutex;
  std::map<std::string, Listening> sandboxes;
  std::atomic<uint64_t> active{0};     // connections being served, all sandboxes
  std::atomic<uint64_t> lingering{0};  // refused connections still draining

  // One connection too many: a 503 the client can read (HTTP; a TLS client sees a failed
  // handshake), then a half-close and a short drain of what it sent, because closing with
  // unread bytes would send a RST that can destroy the 503 before the client reads it.
  static asio::awaitable<void> refuse(tcp::socket socket, Impl* self) {
    asio::error_code ec;
    co_await asio::async_write(socket, asio::buffer(limitResponse()), kNoThrow);
    socket.shutdown(tcp::socket::shutdown_send, ec);
    asio::steady_timer deadline(socket.get_executor(), std::chrono::seconds(1));
    deadline.async_wait([&socket](const asio::error_code& e) {
      if (!e) {
        asio::error_code ignored;
        socket.close(ignored);
      }
    });
    std::array<char, 4096> sink;
    for (size_t drained = 0; socket.is_open() && drained < 64 * 1024;) {
      auto [readError, n] = co_await socket.async_read_some(asio::buffer(sink), kNoThrow);
      if (readError) {
        break;
      }
      drained += n;
    }
    deadline.cancel();
    socket.close(ec);
    self->lingering.fetch_sub(1, std::memory_order_relaxed);
  }

  asio::awaitable<void> serveCounted(tcp::socket socket, OrigDst orig,
                                     std::shared_ptr<SandboxContext> sandbox,
                                     UpstreamPools* threadPools) {
    struct Release {
      std::atomic<uint64_t>& n;
      ~Release() { n.fetch_sub(1, std::memory_order_relaxed); }
    } release{active};
    co_await serveConnection(std::move(socket), orig, std::move(sandbox), config, threadPools);
  }

  // Counts, audits and answers a connection over config.maxConnections (`reason`
  // connection_limit) or one taken with the spare descriptor (out_of_descriptors: no
  // lingering then, the descriptor is needed back at once).
  void refuseOverLimit(tcp::socket socket, const OrigDst& orig, SandboxContext& sandbox,
                       const std::string& reason = "connection_limit");

  // One descriptor held in reserve (/dev/null): when accept() fails with EMFILE/ENFILE the
  // connection waits in the listen queue, where the client would only see a stall. The
  // spare is closed, the connection accepted with its descriptor and answered with the 503,
  // and the spare opened again. False when even that found no descriptor.
  std::mutex spareMutex;
  UniqueFd spare{::open("/dev/null", O_RDONLY | O_CLOEXEC)};
  bool refuseWithSpare(tcp::acceptor& acceptor, SandboxContext& sandbox) {
    std::lock_guard lock(spareMutex);
    spare.reset();
    const int fd =
        ::accept4(acceptor.native_handle(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    bool answered = false;
    if (fd >= 0) {
      auto orig = takeOrigDst(config.origDstMapFd, fd);
      tcp::socket socket(acceptor.get_executor());
      asio::error_code ec;
      socket.assign(acceptor.local_endpoint(ec).protocol(), fd, ec);
      if (ec) {
        ::close(fd);
      } else {
        refuseOverLimit(std::move(socket), orig.ok() ? *orig : OrigDst{}, sandbox,
                        "out_of_descriptors");
        answered = true;
      }
    }
    spare = UniqueFd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    return answered;
  }

  asio::awaitable<void> acceptLoop(std::shared_ptr<tcp::acceptor> acceptor,
                                   std::shared_ptr<SandboxContext> sandbox,
                                   UpstreamPools* threadPools) {
    for (;;) {
      auto [ec, socket] = co_await acceptor->async_accept(kNoThrow);
      if (ec == asio::error::operation_aborted || !acceptor->is_open()) {
        co_return;
      }
      if (ec) {
        if ((ec.value() == EMFILE || ec.value() == ENFILE) &&
            refuseWithSpare(*acceptor, *sandbox)) {
          continue;
        }
        // Out of descriptors even with the spare, or another error: say so, back off a
        // little instead of spinning.
        spdlog::warn("sandbox {}: accept on the proxy listener: {}", sandbox->id, ec.message());
        asio::steady_timer pause(acceptor->get_executor(), std::chrono::milliseconds(50));
        co_await pause.async_wait(kNoThrow);
        continue;
      }
      auto orig = takeOrigDst(config.origDstMapFd, socket.native_handle());
      if (!orig.ok() || orig->slot != sandbox->slot) {
        // Fail closed: without the kernel's record of where this was going (or with one
        // for another sandbox) nothing is forwarded.
        const std::string why = orig.ok() ? "original destination belongs to slot " +
                                                std::to_string(orig->slot) + ", listener to " +
                                                std::to_string(sandbox->slot)
                                          : orig.error().message();
        spdlog::warn("sandbox {}: closing a proxied connection: {}", sandbox->id, why);
        if (config.audit != nullptr) {
          audit::AuditRecord r;
          r.sandbox = sandbox->id;
          r.layer = "proxy";
          r.protocol = "tcp";
          r.decision = "deny";
          r.reason = "orig_dst_missing";
          r.detail = why;
          config.audit->write(r);
        }
        asio::error_code ignored;
        socket.close(ignored);
        continue;
      }
      if (active.fetch_add(1, std::memory_order_relaxed) >= config.maxConnections) {
        active.fetch_sub(1, std::memory_order_relaxed);
        refuseOverLimit(std::move(socket), *orig, *sandbox);
        continue;
      }
      asio::co_spawn(acceptor->get_executor(),
                     serveCounted(std::move(socket), *orig, sandbox, threadPools), asio::detached);
    }
  }
};

void ProxyServer::Impl::refuseOverLimit(tcp::socket socket, const OrigDst& orig,
                                        SandboxContext& sandbox, const std::string& reason) {
  const bool outOfDescriptors = reason == "out_of_descriptors";
  if (sandbox.connectionsRefused != nullptr) {
    sandbox.connectionsRefused->inc();
  }
  // Said once per burst (the counter has the numbers), not once per refused connection.
  static std::atomic<int64_t> lastWarned{0};
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::steady_clock::now().time_since_epoch())
                          .count();
  if (int64_t last = lastWarned.load();
      now - last >= 10 && lastWarned.compare_exchange_strong(last, now)) {
    if (outOfDescriptors) {
      spdlog::warn(
          "proxy: out of file descriptors (RLIMIT_NOFILE) below --max-connections {}; "
          "refusing with 503 out_of_descriptors (sandbox {})",
          config.maxConnections, sandbox.id);
    } else {
      spdlog::warn(
          "proxy: {} connections open, the limit (--max-connections); refusing more "
          "with 503 connection_limit (sandbox {})",
          config.maxConnections, sandbox.id);
    }
  }
  if (config.audit != nullptr) {
    audit::AuditRecord r;
    r.sandbox = sandbox.id;
    r.layer = "proxy";
    r.protocol = "tcp";
    r.origDst = orig.toString();
    r.decision = "deny";
    r.reason = reason;
    r.status = 503;
    r.detail = outOfDescriptors
                   ? "out of file descriptors below " + std::to_string(config.maxConnections) +
                         " connections"
                   : std::to_string(config.maxConnections) + " connections already open";
    config.audit->write(r);
  }
  if (outOfDescriptors ||
      lingering.fetch_add(1, std::memory_order_relaxed) >= kMaxLingeringRefusals) {
    // Too many draining already (or no descriptor to spare): what the client already sent
    // is read and dropped (a connection that waited in the listen queue has its request
    // there; closing over unread bytes would send a RST that can destroy the 503), the 503
    // goes out in one non-blocking send (a fresh socket's buffer holds it) and the socket
    // closes at once. Bytes arriving after that can still turn the close into a reset.
    if (!outOfDescriptors) {
      lingering.fetch_sub(1, std::memory_order_relaxed);
    }
    const int fd = socket.native_handle();
    auto drain = [fd] {
      std::array<char, 4096> sink;
      for (int i = 0; i < 16 && ::recv(fd, sink.data(), sink.size(), MSG_DONTWAIT) > 0; ++i) {
      }
    };
    drain();
    const std::string& response = limitResponse(outOfDescriptors);
    (void)::send(fd, response.data(), response.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    ::shutdown(fd, SHUT_WR);
    drain();
    asio::error_code ignored;
    socket.close(ignored);
    return;
  }
  auto executor = socket.get_executor();
  asio::co_spawn(executor, refuse(std::move(socket), this), asio::detached);
}

ProxyServer::ProxyServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<ProxyServer>> ProxyServer::start(ProxyConfig config) {
  if (config.origDstMapFd < 0) {
    return Error(EINVAL, "the proxy needs the egressd_orig_dst map");
  }
  auto impl = std::make_unique<Impl>();
  impl->config = config;
  const unsigned n = config.threads != 0 ? config.threads : defaultThreads();
  impl->config.threads = n;
  if (impl->config.maxConnections == 0) {
    struct rlimit nofile {};
    const uint64_t limit =
        ::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY
            ? nofile.rlim_cur
            : 1024;
    impl->config.maxConnections = connectionLimitFor(limit);
    spdlog::info(
        "proxy: at most {} connections at once ({} descriptors each of RLIMIT_NOFILE "
        "{}); more are refused with 503 connection_limit",
        impl->config.maxConnections, kFdsPerConnection, limit);
  } else {
    spdlog::info(
        "proxy: at most {} connections at once (--max-connections); more are refused "
        "with 503 connection_limit",
        impl->config.maxConnections);
  }
  for (unsigned i = 0; i < n; ++i) {
    impl->contexts.push_back(std::make_unique<asio::io_context>(1));
    impl->pools.push_back(std::make_unique<UpstreamPools>());
    impl->guards.push_back(asio::make_work_guard(*impl->contexts.back()));
  }
  for (unsigned i = 0; i < n; ++i) {
    asio::io_context* ctx = impl->contexts[i].get();
    impl->threads.emplace_back([ctx] {
      // splice(2) to a socket the client closed raises SIGPIPE (it has no MSG_NOSIGNAL).
      // Blocked in the proxy's threads only: the process-wide disposition stays default,
      // so commands `egressd run` starts do not inherit an ignored SIGPIPE.
      sigset_t pipe;
      sigemptyset(&pipe);
      sigaddset(&pipe, SIGPIPE);
      pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
      for (;;) {
        try {
          ctx->run();
          return;
        } catch (const std::exception& e) {
          // A bug in one connection must not take the proxy (and every sandbox) down.
          spdlog::error("proxy thread: {}", e.what());
        }
      }
    });
  }
  return std::unique_ptr<ProxyServer>(new ProxyServer(std::move(impl)));
}

ProxyServer::~ProxyServer() {
  {
    std::lock_guard lock(impl_->mutex);
    for (auto& [id, listening] : impl_->sandboxes) {
      for (auto& acceptor : listening.acceptors) {
        asio::post(acceptor->get_executor(), [acceptor] {
          asio::error_code ignored;
          acceptor->close(ignored);
        });
      }
    }
  }
  for (auto& ctx : impl_->contexts) {
    ctx->stop();
  }
  for (auto& t : impl_->threads) {
    t.join();
  }
  impl_->sandboxes.clear();
  impl_->guards.clear();
  impl_->pools.clear();  // their sockets belong to the contexts
  impl_->contexts.clear();
}

Status ProxyServer::addSandbox(const std::shared_ptr<SandboxContext>& sandbox,
                               ListenerReservation listener) {
  for (int fd : {listener.fd4(), listener.fd6()}) {
    if (::listen(fd, kListenBacklog) != 0) {
      return lastSystemError("listen on the proxy port " + std::to_string(listener.port()) +
                             " of sandbox " + sandbox->id);
    }
  }
  Impl::Listening listening{sandbox, std::move(listener), {}};
  for (size_t i = 0; i < impl_->contexts.size(); ++i) {
    asio::io_context& ctx = *impl_->contexts[i];
    for (int fd : {listening.reservation.fd4(), listening.reservation.fd6()}) {
      const int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
      if (copy < 0) {
        return lastSystemError("duplicate the proxy listener of sandbox " + sandbox->id);
      }
      sockaddr_storage ss{};
      socklen_t len = sizeof(ss);
      ::getsockname(copy, reinterpret_cast<sockaddr*>(&ss), &len);
      const tcp protocol = ss.ss_family == AF_INET6 ? tcp::v6() : tcp::v4();
      auto acceptor = std::make_shared<tcp::acceptor>(ctx);
      asio::error_code ec;
      acceptor->assign(protocol, copy, ec);
      if (ec) {
        ::close(copy);
        return Error(ec.value(),
                     "serve the proxy listener of sandbox " + sandbox->id + ": " + ec.message());
      }
      listening.acceptors.push_back(acceptor);
      asio::co_spawn(ctx, impl_->acceptLoop(acceptor, sandbox, impl_->pools[i].get()),
                     asio::detached);
    }
  }
  std::lock_guard lock(impl_->mutex);
  impl_->sandboxes.insert_or_assign(sandbox->id, std::move(listening));
  return okStatus();
}

void ProxyServer::removeSandbox(const std::string& id) {
  std::lock_guard lock(impl_->mutex);
  auto it = impl_->sandboxes.find(id);
  if (it == impl_->sandboxes.end()) {
    return;
  }
  for (auto& acceptor : it->second.acceptors) {
    asio::post(acceptor->get_executor(), [acceptor] {
      asio::error_code ignored;
      acceptor->close(ignored);
    });
  }
  impl_->sandboxes.erase(it);
}

unsigned ProxyServer::threads() const {
  return impl_->config.threads;
}
const ProxyConfig& ProxyServer::config() const {
  return impl_->config;
}

uint64_t ProxyServer::openConnections() const {
  std::lock_guard lock(impl_->mutex);
  uint64_t total = 0;
  for (const auto& [id, listening] : impl_->sandboxes) {
    total += listening.sandbox->openConnections.load(std::memory_order_relaxed);
  }
  return total;
}

}  // namespace egressd::proxy
