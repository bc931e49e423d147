#include "loader/skeleton.h"

#include <bpf/bpf.h>
#include <spdlog/spdlog.h>

#include <cstdarg>
#include <cstdio>
#include <mutex>

#include "egressd_bpf.skel.h"

namespace egressd::loader {

const std::vector<HookSpec>& allHooks() {
  static const std::vector<HookSpec> hooks = {
      {"egressd_sock_create", BPF_CGROUP_INET_SOCK_CREATE, BPF_PROG_TYPE_CGROUP_SOCK,
       "cgroup/sock_create (Linux 4.10+)"},
      {"egressd_connect4", BPF_CGROUP_INET4_CONNECT, BPF_PROG_TYPE_CGROUP_SOCK_ADDR,
       "cgroup/connect4 (Linux 4.17+)"},
      {"egressd_connect6", BPF_CGROUP_INET6_CONNECT, BPF_PROG_TYPE_CGROUP_SOCK_ADDR,
       "cgroup/connect6 (Linux 4.17+)"},
      {"egressd_sendmsg4", BPF_CGROUP_UDP4_SENDMSG, BPF_PROG_TYPE_CGROUP_SOCK_ADDR,
       "cgroup/sendmsg4 (Linux 4.18+)"},
      {"egressd_sendmsg6", BPF_CGROUP_UDP6_SENDMSG, BPF_PROG_TYPE_CGROUP_SOCK_ADDR,
       "cgroup/sendmsg6 (Linux 4.18+)"},
      {"egressd_recvmsg4", BPF_CGROUP_UDP4_RECVMSG, BPF_PROG_TYPE_CGROUP_SOCK_ADDR,
       "cgroup/recvmsg4 (Linux 5.2+)"},
      {"egressd_recvmsg6", BPF_CGROUP_UDP6_RECVMSG, BPF_PROG_TYPE_CGROUP_SOCK_ADDR,
       "cgroup/recvmsg6 (Linux 5.2+)"},
      {"egressd_getpeername4", BPF_CGROUP_INET4_GETPEERNAME, BPF_PROG_TYPE_CGROUP_SOCK_ADDR,
       "cgroup/getpeername4 (Linux 5.8+)"},
      {"egressd_getpeername6", BPF_CGROUP_INET6_GETPEERNAME, BPF_PROG_TYPE_CGROUP_SOCK_ADDR,
       "cgroup/getpeername6 (Linux 5.8+)"},
      {"egressd_setsockopt", BPF_CGROUP_SETSOCKOPT, BPF_PROG_TYPE_CGROUP_SOCKOPT,
       "cgroup/setsockopt (Linux 5.3+)"},
      {"egressd_sockops", BPF_CGROUP_SOCK_OPS, BPF_PROG_TYPE_SOCK_OPS,
       "sockops with sk storage and netns cookie (Linux 5.15+)"},
      {"egressd_skb_egress", BPF_CGROUP_INET_EGRESS, BPF_PROG_TYPE_CGROUP_SKB,
       "cgroup_skb/egress with sk storage (Linux 5.2+)"},
  };
  return hooks;
}

namespace {

int libbpfPrint(enum libbpf_print_level level, const char* format, va_list args) {
  // Verifier logs arrive as one message of many lines: size it, then log line by line.
  va_list copy;
  va_copy(copy, args);
  int n = std::vsnprintf(nullptr, 0, format, copy);
  va_end(copy);
  if (n <= 0) {
    return n;
  }
  std::string text(static_cast<size_t>(n) + 1, '\0');
  std::vsnprintf(text.data(), text.size(), format, args);
  text.resize(static_cast<size_t>(n));
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) {
      end = text.size();
    }
    std::string_view line(text.data() + start, end - start);
    if (!line.empty()) {
      switch (level) {
        case LIBBPF_WARN:
          spdlog::warn("libbpf: {}", line);
          break;
        case LIBBPF_INFO:
          spdlog::debug("libbpf: {}", line);
          break;
        default:
          spdlog::trace("libbpf: {}", line);
          break;
      }
    }
    start = end + 1;
  }
  return n;
}

}  // namespace

void routeLibbpfLogsToSpdlog() {
  static std::once_flag once;
  std::call_once(once, [] { libbpf_set_print(libbpfPrint); });
}

Result<KernelFeatures> probeKernelFeatures() {
  KernelFeatures features;
  for (const HookSpec& hook : allHooks()) {
    int ret = libbpf_probe_bpf_prog_type(hook.progType, nullptr);
    if (ret != 1) {
      return Error(ENOTSUP, std::string("this kernel lacks the BPF program type for ") +
                                hook.kernelNote +
                                "; egressd will not run with partial enforcement");
    }
  }
  features.hasSetRetval =
      libbpf_probe_bpf_helper(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_FUNC_set_retval, nullptr) == 1;
  if (!features.hasSetRetval) {
    spdlog::info("kernel has no bpf_set_retval (< 5.18): denials use the default EPERM");
  }
  return features;
}

Skeleton::~Skeleton() {
  if (skel_ != nullptr) {
    egressd_bpf__destroy(skel_);
  }
}

Result<std::unique_ptr<Skeleton>> Skeleton::load(const std::string& pinRoot, uint32_t sandboxSlot,
                                                 const KernelFeatures& features) {
  routeLibbpfLogsToSpdlog();
  std::unique_ptr<Skeleton> self(new Skeleton());
  LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = pinRoot.c_str());
  self->skel_ = egressd_bpf__open_opts(&opts);
  if (self->skel_ == nullptr) {
    return lastSystemError("opening the egressd BPF object");
  }
  self->skel_->rodata->g_sandbox_slot = sandboxSlot;
  self->skel_->rodata->g_has_set_retval = features.hasSetRetval ? 1 : 0;
  int err = egressd_bpf__load(self->skel_);
  if (err != 0) {
    return systemError(-err, "loading egressd BPF programs (pin root " + pinRoot +
                                 "; the verifier log is in the debug output)");
  }
  return self;
}

bpf_program* Skeleton::program(const std::string& name) const {
  return bpf_object__find_program_by_name(skel_->obj, name.c_str());
}

bpf_map* Skeleton::map(const std::string& name) const {
  return bpf_object__find_map_by_name(skel_->obj, name.c_str());
}

int Skeleton::mapFd(const std::string& name) const {
  bpf_map* m = map(name);
  return m == nullptr ? -1 : bpf_map__fd(m);
}

}  // namespace egressd::loader
