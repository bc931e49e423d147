// A pipe for splice(2): the kernel moves bytes socket -> pipe -> socket without copying
// them through the proxy. Grown to 1 MiB when the kernel allows (fewer system calls per
// MiB); the default 64 KiB otherwise (e.g. past the user's pipe-buffer limit).
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cstddef>
#include <optional>

#include "common/unique_fd.h"

namespace egressd::proxy {

struct SplicePipe {
  static constexpr size_t kPreferredBytes = 1 << 20;

  UniqueFd read;
  UniqueFd write;
  size_t capacity = 0;

  static std::optional<SplicePipe> open() {
    int fds[2];
    if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
      return std::nullopt;
    }
    SplicePipe p{UniqueFd(fds[0]), UniqueFd(fds[1]), 0};
    const int size = ::fcntl(p.write.get(), F_SETPIPE_SZ, static_cast<int>(kPreferredBytes));
    p.capacity = size > 0 ? static_cast<size_t>(size) : 64 * 1024;
    return p;
  }
};

}  // namespace egressd::proxy
