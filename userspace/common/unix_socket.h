// A listening unix stream socket for a local API (control, metrics): replaces only a stale
// socket of a dead process, and is never reachable with a mode looser than 0600.
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"
#include "common/unique_fd.h"

namespace egressd {

// `role` names the socket in errors ("control socket", "metrics socket"). An existing
// non-socket file is refused; a socket someone still accepts on is EADDRINUSE.
Result<UniqueFd> listenOnUnixSocket(const std::string& path, std::string_view role, int backlog);

}  // namespace egressd
