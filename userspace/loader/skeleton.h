// RAII over the generated libbpf skeleton (egressd_bpf.skel.h): open with the pin root,
// set the rodata knobs, load. One instance per sandbox: the sandbox slot is a
// load-time constant of its programs (see bpf/lib/config.h).
#pragma once

#include <bpf/libbpf.h>

#include <memory>
#include <string>
#include <vector>

#include "common/result.h"

struct egressd_bpf;  // generated skeleton type (egressd_bpf.skel.h)

namespace egressd::loader {

// One cgroup hook: which program, how it attaches, and what it needs from the kernel.
struct HookSpec {
  const char* programName;
  bpf_attach_type attachType;
  bpf_prog_type progType;
  const char* kernelNote;  // for "kernel lacks ..." errors
};
const std::vector<HookSpec>& allHooks();

struct KernelFeatures {
  bool hasSetRetval = false;
};

// Probes every program type the hooks need; a missing one is an error naming the hook
// (enforcement must be complete or refuse to start: fail closed).
Result<KernelFeatures> probeKernelFeatures();

// Routes libbpf's messages (incl. verifier logs) to spdlog. Idempotent.
void routeLibbpfLogsToSpdlog();

class Skeleton {
 public:
  ~Skeleton();
  Skeleton(const Skeleton&) = delete;
  Skeleton& operator=(const Skeleton&) = delete;

  // open -> set knobs -> load. Maps are created, or reused, pinned under pinRoot.
  static Result<std::unique_ptr<Skeleton>> load(const std::string& pinRoot, uint32_t sandboxSlot,
                                                const KernelFeatures& features);

  bpf_program* program(const std::string& name) const;
  bpf_map* map(const std::string& name) const;
  int mapFd(const std::string& name) const;

 private:
  Skeleton() = default;
  ::egressd_bpf* skel_ = nullptr;
};

}  // namespace egressd::loader
