// Probe run inside test sandboxes: performs one syscall the sandbox should allow or refuse
// and exits with 0 on success or the errno value on failure (a seccomp kill shows up as
// 128 + SIGSYS). Raw syscalls, so the exact argument bits reach the filter.
#include <dirent.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

// The probe provokes SIGSEGV on purpose (`int 0x80` on a kernel without IA32 emulation) and
// the test reads the signal from its exit status. Under ASan its SEGV handler would turn that
// into a report and exit 1: leave SIGSEGV to the kernel in this binary.
extern "C" const char* __asan_default_options() {  // NOLINT(bugprone-reserved-identifier)
  return "handle_segv=0";
}

namespace {

int result(long rc) {
  return rc < 0 ? errno : 0;
}

long arg(const char* s) {
  return std::strtol(s, nullptr, 0);
}

int usage() {
  std::fprintf(stderr,
               "usage: sandbox_probe socket DOMAIN TYPE PROTO [highbits]\n"
               "       sandbox_probe socketpair DOMAIN TYPE\n"
               "       sandbox_probe io_uring | x32-getpid | int80-getpid | fds\n"
               "       sandbox_probe join-cgroup DIR | mkdir PATH\n");
  return 125;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    return usage();
  }
  const std::string cmd = argv[1];
  if (cmd == "socket" && argc >= 5) {
    // "highbits" sets bit 32 of the domain register: the kernel truncates it to int.
    uint64_t domain = static_cast<uint32_t>(arg(argv[2]));
    if (argc >= 6 && std::strcmp(argv[5], "highbits") == 0) {
      domain |= 1ULL << 32;
    }
    return result(::syscall(SYS_socket, domain, arg(argv[3]), arg(argv[4])));
  }
  if (cmd == "socketpair" && argc >= 4) {
    int fds[2];
    return result(::syscall(SYS_socketpair, arg(argv[2]), arg(argv[3]), 0, fds));
  }
  if (cmd == "io_uring") {
    struct io_uring_params params;
    std::memset(&params, 0, sizeof(params));
    return result(::syscall(SYS_io_uring_setup, 1, &params));
  }
  if (cmd == "x32-getpid") {
    // __X32_SYSCALL_BIT | getpid: the x32 ABI's view of the same syscall table.
    return result(::syscall(0x40000000L | SYS_getpid));
  }
  if (cmd == "int80-getpid") {
#if defined(__x86_64__)
    // The i386 entry point from a 64-bit process; 20 is getpid in the i386 table.
    long rc = 20;
    asm volatile("int $0x80" : "+a"(rc) : : "memory", "r8", "r9", "r10", "r11");
    return rc < 0 ? static_cast<int>(-rc) : 0;
#else
    return 124;
#endif
  }
  if (cmd == "fds") {
    // Prints every open fd above stderr except the one reading the directory.
    DIR* d = ::opendir("/proc/self/fd");
    if (d == nullptr) {
      return errno;
    }
    while (struct dirent* e = ::readdir(d)) {
      int fd = std::atoi(e->d_name);
      if (e->d_name[0] != '.' && fd > 2 && fd != ::dirfd(d)) {
        std::printf("%d\n", fd);
      }
    }
    ::closedir(d);
    return 0;
  }
  if (cmd == "join-cgroup" && argc >= 3) {
    std::string procs = std::string(argv[2]) + "/cgroup.procs";
    int fd = ::open(procs.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
      return errno;
    }
    std::string pid = std::to_string(::getpid());
    int rc = result(::write(fd, pid.data(), pid.size()));
    ::close(fd);
    return rc;
  }
  if (cmd == "mkdir" && argc >= 3) {
    return result(::mkdir(argv[2], 0755));
  }
  return usage();
}
