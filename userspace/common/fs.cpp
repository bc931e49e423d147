#include "common/fs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "common/unique_fd.h"

namespace egressd {

Result<std::string> readFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    return lastSystemError("open " + path);
  }
  std::string out;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return lastSystemError("read " + path);
    }
    if (n == 0) {
      break;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

Status writeFile(const std::string& path, const std::string& content) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) {
    return lastSystemError("open " + path + " for writing");
  }
  ssize_t n = ::write(fd.get(), content.data(), content.size());
  if (n < 0) {
    return lastSystemError("write " + path);
  }
  if (static_cast<size_t>(n) != content.size()) {
    return Error(EIO, "short write to " + path);
  }
  return okStatus();
}

Status writeFileAtomic(const std::string& path, const std::string& content, int mode) {
  // The pid keeps two processes writing the same file (daemon and CLI) off each other's temp.
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
    if (!fd) {
      return lastSystemError("create " + tmp);
    }
    size_t off = 0;
    while (off < content.size()) {
      ssize_t n = ::write(fd.get(), content.data() + off, content.size() - off);
      if (n < 0) {
        if (errno == EINTR) {
          continue;
        }
        int err = errno;
        ::unlink(tmp.c_str());
        return systemError(err, "write " + tmp);
      }
      off += static_cast<size_t>(n);
    }
    if (::fsync(fd.get()) != 0) {
      int err = errno;
      ::unlink(tmp.c_str());
      return systemError(err, "fsync " + tmp);
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return systemError(err, "rename " + tmp + " to " + path);
  }
  // Without syncing the directory a crash can lose the rename itself: after reboot the old
  // file (or none) is back although the call reported success.
  const auto slash = path.find_last_of('/');
  const std::string dir =
      slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  UniqueFd dirFd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dirFd) {
    return lastSystemError("open directory " + dir + " to sync the rename of " + path);
  }
  if (::fsync(dirFd.get()) != 0) {
    return lastSystemError("fsync directory " + dir + " after renaming " + path);
  }
  return okStatus();
}

Status makeDirs(const std::string& path, int mode) {
  if (path.empty()) {
    return okStatus();
  }
  std::string partial;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    partial = path.substr(0, pos);
    if (partial.empty()) {
      continue;
    }
    if (::mkdir(partial.c_str(), static_cast<mode_t>(mode)) != 0 && errno != EEXIST) {
      return lastSystemError("mkdir " + partial);
    }
  }
  return okStatus();
}

bool pathExists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace egressd
