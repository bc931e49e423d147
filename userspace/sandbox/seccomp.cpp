#include "sandbox/seccomp.h"

#include <linux/seccomp.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <memory>
#include <string>

#include "common/unique_fd.h"

namespace egressd::sandbox {
namespace {

struct FilterDeleter {
  void operator()(void* ctx) const { seccomp_release(ctx); }
};
using FilterCtx = std::unique_ptr<void, FilterDeleter>;

// The kernel reads socket(2)'s domain and protocol as int, but seccomp sees the full 64-bit
// register: a domain of 0x1_0000_0011 is AF_PACKET to the kernel. Every comparison therefore
// masks to the low 32 bits, where "== 17" alone would be bypassed by setting high bits.
constexpr scmp_datum_t kLow32 = 0xffffffffULL;
// Domains below this are judged one by one; everything at or above it (and every negative
// int) is refused by the bit rules in addDenyOutside(). Linux 6.18 has AF_MAX = 46, and the
// kernel itself refuses domains >= AF_MAX, so new families up to 63 stay denied by default.
constexpr int kEnumeratedDomains = 64;

Status ruleError(int rc, const std::string& what) {
  return Error(-rc, "seccomp_rule_add " + what + ": " + std::generic_category().message(-rc));
}

// Makes syscall `nr` fail with `err` whenever the low 32 bits of argument `arg` are not in
// `allowed`: an allowlist, so a family added to a future kernel is denied until judged.
Status addDenyOutside(scmp_filter_ctx ctx, int nr, unsigned int arg,
                      const std::vector<int>& allowed, int err, const char* name) {
  for (int value = 0; value < kEnumeratedDomains; ++value) {
    if (std::find(allowed.begin(), allowed.end(), value) != allowed.end()) {
      continue;
    }
    struct scmp_arg_cmp cmp =
        SCMP_CMP64(arg, SCMP_CMP_MASKED_EQ, kLow32, static_cast<scmp_datum_t>(value));
    if (int rc = seccomp_rule_add_array(ctx, SCMP_ACT_ERRNO(err), nr, 1, &cmp); rc != 0) {
      return ruleError(rc, std::string(name) + " domain " + std::to_string(value));
    }
  }
  // Any of bits 6..31 set means >= 64 as unsigned, which covers negative ints too.
  for (int bit = 6; bit < 32; ++bit) {
    const scmp_datum_t mask = 1ULL << bit;
    struct scmp_arg_cmp cmp = SCMP_CMP64(arg, SCMP_CMP_MASKED_EQ, mask, mask);
    if (int rc = seccomp_rule_add_array(ctx, SCMP_ACT_ERRNO(err), nr, 1, &cmp); rc != 0) {
      return ruleError(rc, std::string(name) + " domain bit " + std::to_string(bit));
    }
  }
  return okStatus();
}

Status addRules(scmp_filter_ctx ctx, const SeccompOptions& options) {
  // AF_NETLINK stays for NETLINK_ROUTE only: getaddrinfo(AI_ADDRCONFIG) and getifaddrs() read
  // addresses through it, and changing anything needs CAP_NET_ADMIN, which is dropped.
  EGRESSD_TRY(addDenyOutside(ctx, SCMP_SYS(socket), 0, {AF_UNIX, AF_INET, AF_INET6, AF_NETLINK},
                             EAFNOSUPPORT, "socket"));
  // AF_NETLINK with a protocol other than NETLINK_ROUTE (0): sock_diag, netfilter, xfrm,
  // generic netlink, … One rule per protocol bit (masked like the domain) is "!= 0" on the
  // low 32 bits.
  for (int bit = 0; bit < 32; ++bit) {
    const scmp_datum_t mask = 1ULL << bit;
    std::array<struct scmp_arg_cmp, 2> cmps = {
        SCMP_CMP64(0, SCMP_CMP_MASKED_EQ, kLow32, static_cast<scmp_datum_t>(AF_NETLINK)),
        SCMP_CMP64(2, SCMP_CMP_MASKED_EQ, mask, mask),
    };
    if (int rc = seccomp_rule_add_array(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socket),
                                        static_cast<unsigned int>(cmps.size()), cmps.data());
        rc != 0) {
      return ruleError(rc, "socket netlink protocol bit " + std::to_string(bit));
    }
  }
  // socketpair(2) makes connected pairs, never a route out, except for families that route
  // elsewhere (AF_TIPC supports it); AF_UNIX is all real programs use.
  EGRESSD_TRY(addDenyOutside(ctx, SCMP_SYS(socketpair), 0, {AF_UNIX}, EAFNOSUPPORT, "socketpair"));
  if (!options.allowIoUring) {
    for (int nr :
         {SCMP_SYS(io_uring_setup), SCMP_SYS(io_uring_enter), SCMP_SYS(io_uring_register)}) {
      if (int rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0); rc != 0) {
        return ruleError(rc, "io_uring syscall " + std::to_string(nr));
      }
    }
  }
  return okStatus();
}

}  // namespace

Result<SeccompProgram> SeccompProgram::buildSocketFamilyFilter(const SeccompOptions& options) {
  FilterCtx ctx(seccomp_init(SCMP_ACT_ALLOW));
  if (!ctx) {
    return Error(ENOMEM, "seccomp_init failed");
  }
  // The context holds the native architecture only. libseccomp sends every other audit arch
  // (i386 via int 0x80 from a 64-bit process) and, on x86_64, every x32 syscall number to the
  // bad-arch action: a socketcall(2) or x32 socket(2) would otherwise pass unjudged.
  if (int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
      rc != 0) {
    return systemError(-rc, "seccomp_attr_set(SCMP_FLTATR_ACT_BADARCH)");
  }
  EGRESSD_TRY(addRules(ctx.get(), options));

  // seccomp_export_bpf writes to an fd; a memfd keeps it in memory.
  UniqueFd mem(::memfd_create("egressd-seccomp", MFD_CLOEXEC));
  if (!mem) {
    return lastSystemError("memfd_create for the seccomp program");
  }
  if (int rc = seccomp_export_bpf(ctx.get(), mem.get()); rc != 0) {
    return systemError(-rc, "seccomp_export_bpf");
  }
  const off_t size = ::lseek(mem.get(), 0, SEEK_END);
  if (size <= 0 || size % static_cast<off_t>(sizeof(struct sock_filter)) != 0) {
    return Error(EIO, "seccomp_export_bpf produced " + std::to_string(size) + " bytes");
  }
  SeccompProgram program;
  program.insns_.resize(static_cast<size_t>(size) / sizeof(struct sock_filter));
  if (::pread(mem.get(), program.insns_.data(), static_cast<size_t>(size), 0) != size) {
    return lastSystemError("reading back the seccomp program");
  }
  program.prog_.len = static_cast<unsigned short>(program.insns_.size());
  program.prog_.filter = program.insns_.data();
  if (program.insns_.size() > BPF_MAXINSNS) {
    return Error(E2BIG, "seccomp program has " + std::to_string(program.insns_.size()) +
                            " instructions, the kernel accepts " + std::to_string(BPF_MAXINSNS));
  }
  return program;
}

SeccompProgram::SeccompProgram(SeccompProgram&& other) noexcept
    : insns_(std::move(other.insns_)), prog_(other.prog_) {
  prog_.filter = insns_.data();
}

SeccompProgram& SeccompProgram::operator=(SeccompProgram&& other) noexcept {
  insns_ = std::move(other.insns_);
  prog_ = other.prog_;
  prog_.filter = insns_.data();
  return *this;
}

int SeccompProgram::install(unsigned int flags) const noexcept {
  long rc = ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog_);
  if (rc < 0) {
    return errno;
  }
  // With TSYNC, a positive return is the id of a thread that could not be synchronised.
  return rc == 0 ? 0 : EAGAIN;
}

Status installSocketFamilyFilter(const SeccompOptions& options) {
  auto program = SeccompProgram::buildSocketFamilyFilter(options);
  if (!program.ok()) {
    return std::move(program).error().wrap("building the socket family seccomp filter");
  }
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    return lastSystemError("prctl(PR_SET_NO_NEW_PRIVS)");
  }
  if (int err = program->install(SECCOMP_FILTER_FLAG_TSYNC); err != 0) {
    return systemError(err, "installing the socket family seccomp filter");
  }
  return okStatus();
}

}  // namespace egressd::sandbox
