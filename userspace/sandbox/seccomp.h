// Seccomp filter for socket families that no cgroup BPF hook sees. cgroup sock_addr hooks
// judge AF_INET/AF_INET6 connect/sendmsg; AF_PACKET, AF_XDP, AF_VSOCK, AF_TIPC, AF_RDS,
// netlink families other than NETLINK_ROUTE, … would send around them, so a sandboxed command
// cannot create them at all. The program is compiled in the parent and installed in the
// child between clone and exec without allocating.
#pragma once

#include <linux/filter.h>

#include <cstddef>
#include <vector>

#include "common/result.h"

namespace egressd::sandbox {

struct SeccompOptions {
  // io_uring's IORING_OP_SOCKET (Linux 5.19+) creates sockets without socket(2), so a filter
  // on socket(2) cannot see their family. Docker's default profile blocks io_uring for the
  // same kind of reason. Only set this for workloads that need io_uring and are trusted
  // with every socket family.
  bool allowIoUring = false;
};

// A compiled classic-BPF seccomp program.
class SeccompProgram {
 public:
  // Allowed: socket(2) for AF_UNIX, AF_INET, AF_INET6, and AF_NETLINK with NETLINK_ROUTE;
  // socketpair(2) for AF_UNIX. Any other domain fails with EAFNOSUPPORT; io_uring_setup,
  // io_uring_enter and io_uring_register fail with EPERM unless allowIoUring. Every other
  // syscall is allowed. A syscall from another ABI than the native one (int 0x80 i386 or x32
  // on x86_64) kills the process: the filter cannot judge arguments it does not decode.
  static Result<SeccompProgram> buildSocketFamilyFilter(const SeccompOptions& options);

  SeccompProgram(SeccompProgram&& other) noexcept;
  SeccompProgram& operator=(SeccompProgram&& other) noexcept;
  SeccompProgram(const SeccompProgram&) = delete;
  SeccompProgram& operator=(const SeccompProgram&) = delete;

  size_t instructionCount() const { return insns_.size(); }

  // Installs the filter on the calling thread (and, with SECCOMP_FILTER_FLAG_TSYNC in flags,
  // on every thread). Needs no_new_privs or CAP_SYS_ADMIN. Async-signal-safe. Returns 0 or
  // an errno value.
  int install(unsigned int flags = 0) const noexcept;

 private:
  SeccompProgram() = default;

  std::vector<struct sock_filter> insns_;
  struct sock_fprog prog_ {};
};

// Sets no_new_privs and installs the filter on every thread of the calling process.
// Irreversible: the filter stays for the process and everything it executes.
Status installSocketFamilyFilter(const SeccompOptions& options);

}  // namespace egressd::sandbox
