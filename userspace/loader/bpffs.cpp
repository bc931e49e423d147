#include "loader/bpffs.h"

#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include "bpf/abi.h"
#include "common/fs.h"

namespace egressd::loader {

bool isOnBpffs(const std::string& path) {
  struct statfs st {};
  return ::statfs(path.c_str(), &st) == 0 && st.f_type == BPF_FS_MAGIC;
}

Status ensureBpffsMounted() {
  if (isOnBpffs(kBpffsMount)) {
    return okStatus();
  }
  EGRESSD_TRY(makeDirs(kBpffsMount));
  if (::mount("bpf", kBpffsMount, "bpf", 0, "mode=0700") != 0) {
    return lastSystemError(std::string("mount bpffs at ") + kBpffsMount);
  }
  return okStatus();
}

std::string linksDir(const std::string& pinRoot, const std::string& sandboxId) {
  return pinRoot + "/links/" + sandboxId;
}

std::string linkPinPath(const std::string& pinRoot, const std::string& sandboxId,
                        const std::string& programName) {
  return linksDir(pinRoot, sandboxId) + "/" + programName;
}

Status validateSandboxId(const std::string& id) {
  if (id.empty() || id.size() >= EGRESSD_SANDBOX_ID_LEN) {
    return Error(EINVAL, "sandbox id '" + id + "' must be 1.." +
                             std::to_string(EGRESSD_SANDBOX_ID_LEN - 1) + " characters");
  }
  if (id == "." || id == "..") {
    return Error(EINVAL, "sandbox id '" + id + "' is not allowed");
  }
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.';
    if (!ok) {
      return Error(EINVAL, "sandbox id '" + id + "' may only hold [A-Za-z0-9_.-]");
    }
  }
  return okStatus();
}

}  // namespace egressd::loader
