// connect()+close() latency on loopback: the cost egressd's hooks add.
// Usage: egressd-connect-bench tcp|tcp-client|udp PORT ITERATIONS  (prints "ns_per_connect N")
//        egressd-connect-bench serve PORT    (accept-and-close loop, until killed)
// tcp-client connects to a `serve` process started elsewhere (outside the sandbox, as a
// real sandbox's peers are), so only the client side's hooks are measured.
// tcp: a listener on 127.0.0.1:PORT accepts in a thread; the client connects and closes
//      in a loop (SO_LINGER 0: RST, so TIME_WAIT does not exhaust ports). Includes the
//      handshake and the per-packet backstop, and the scheduler noise of two threads.
// udp: socket()+connect()+close() of a UDP socket: no packet is sent, so this is the
//      socket-creation and connect hooks alone, with little noise.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <thread>

int main(int argc, char** argv) {
  const std::string_view mode = argc > 1 ? argv[1] : "";
  if (!((argc == 4 && (mode == "tcp" || mode == "tcp-client" || mode == "udp")) ||
        (argc == 3 && mode == "serve"))) {
    std::fprintf(stderr, "usage: %s tcp|tcp-client|udp PORT ITERATIONS | serve PORT\n", argv[0]);
    return 64;
  }
  const bool udp = mode == "udp";
  const bool serveOnly = mode == "serve";
  const bool ownListener = mode == "tcp" || serveOnly;
  const int port = std::atoi(argv[2]);
  const long iterations = serveOnly ? 0 : std::atol(argv[3]);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

  std::atomic<bool> done{false};
  std::thread acceptor;
  int listener = -1;
  if (ownListener) {
    listener = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        listen(listener, 4096) != 0) {
      std::perror("listen");
      return 1;
    }
    acceptor = std::thread([&] {
      while (!done.load()) {
        int c = accept(listener, nullptr, nullptr);
        if (c >= 0) {
          close(c);
        }
      }
    });
  }

  if (serveOnly) {
    std::printf("serving\n");
    std::fflush(stdout);
    acceptor.join();  // until killed
    return 0;
  }
  linger lin{1, 0};
  auto start = std::chrono::steady_clock::now();
  for (long i = 0; i < iterations; ++i) {
    int s = socket(AF_INET, udp ? SOCK_DGRAM : SOCK_STREAM, 0);
    if (!udp) {
      setsockopt(s, SOL_SOCKET, SO_LINGER, &lin, sizeof(lin));
    }
    if (connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      std::perror("connect");
      return 1;
    }
    close(s);
  }
  auto elapsed = std::chrono::steady_clock::now() - start;
  done.store(true);
  if (listener >= 0) {
    // Wake the acceptor with one last connection.
    int s = socket(AF_INET, SOCK_STREAM, 0);
    connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    close(s);
    acceptor.join();
    close(listener);
  }
  std::printf("ns_per_connect %.0f\n",
              std::chrono::duration<double, std::nano>(elapsed).count() / iterations);
  return 0;
}
