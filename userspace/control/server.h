// ControlServer: the control API's HTTP/1.1 + JSON transport on a unix stream socket.
//
// Who may talk to it is decided twice: the socket file is 0600 and owned by the daemon's euid
// in a directory only that uid can write (so nobody can swap the socket for their own), and
// every connection's SO_PEERCRED uid must be 0 or the daemon's euid (403 otherwise, before a
// byte of the request is parsed). The API creates sandboxes and sets secrets: root only.
//
// Framing is the proxy's strict http::RequestParser; requests may be pipelined and the
// connection is kept alive unless the client asks otherwise. Bodies are JSON, at most 1 MiB
// (Content-Length or chunked); Content-Type is not checked, because curl --data and friends
// rarely set it right and the body is parsed as JSON either way. Handlers run on the server's
// own thread, one at a time, so route handlers need no locking among themselves.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <memory>
#include <string>

#include "common/result.h"
#include "control/api.h"

namespace egressd::control {

inline constexpr size_t kMaxRequestBodyBytes = 1024 * 1024;

class ControlServer {
 public:
  // Serves `router` on a unix stream socket, on its own thread (one io_context).
  // Before binding: the parent directory is created (0755) if missing and must be owned by
  // the euid and not group/other-writable, else an error naming the directory; an existing
  // socket file that accepts a connection means another daemon ("another egressd already
  // serves PATH"); a stale one is unlinked; any other kind of file there is an error. The
  // socket is made 0600 (umask around bind, then chmod) and owned by euid.
  static Result<std::unique_ptr<ControlServer>> start(const std::string& socketPath,
                                                      std::shared_ptr<const Router> router);

  const std::string& socketPath() const;

  // Stops the thread, closes every connection and unlinks the socket file (only if it is
  // still the one this server bound: a successor's socket is left alone).
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

 private:
  struct Impl;
  explicit ControlServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace egressd::control
