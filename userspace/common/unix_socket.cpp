#include "common/unix_socket.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>

namespace egressd {

Result<UniqueFd> listenOnUnixSocket(const std::string& path, std::string_view role, int backlog) {
  const std::string name(role);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return Error(ENAMETOOLONG, name + " path '" + path + "' must be 1 to " +
                                   std::to_string(sizeof(addr.sun_path) - 1) + " bytes long");
  }
  path.copy(addr.sun_path, path.size());
  const auto* sa = reinterpret_cast<const sockaddr*>(&addr);
  const socklen_t len = sizeof(addr);

  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return Error(EEXIST,
                   name + " path " + path + " exists and is not a socket; refusing to replace it");
    }
    UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!probe) {
      return lastSystemError("create a socket to probe " + path);
    }
    if (::connect(probe.get(), sa, len) == 0) {
      return Error(EADDRINUSE, name + " " + path + " is in use by another process");
    }
    // Nobody accepts on it: left behind by a process that did not exit cleanly.
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return lastSystemError("remove stale " + name + " " + path);
    }
  }

  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) {
    return lastSystemError("create " + name);
  }
  // umask makes the file 0600 from its first moment; the chmod after makes sure of it
  // whatever the umask did. Nobody can connect before listen() anyway.
  const mode_t oldMask = ::umask(0177);
  const int bound = ::bind(fd.get(), sa, len);
  const int bindErrno = errno;
  ::umask(oldMask);
  if (bound != 0) {
    return systemError(bindErrno, "bind " + name + " " + path);
  }
  auto fail = [&](const std::string& what) {
    Error err = lastSystemError(what);
    ::unlink(path.c_str());
    return err;
  };
  if (::chmod(path.c_str(), 0600) != 0) {
    return fail("chmod 0600 " + name + " " + path);
  }
  if (::listen(fd.get(), backlog) != 0) {
    return fail("listen on " + name + " " + path);
  }
  return fd;
}

}  // namespace egressd
