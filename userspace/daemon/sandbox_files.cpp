#include "daemon/sandbox_files.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>

#include "common/fs.h"

namespace egressd::daemon {

namespace {

std::string sandboxDir(const std::string& runDir, const std::string& id) {
  return runDir + "/sandboxes/" + id;
}

}  // namespace

SandboxCaFiles sandboxCaFiles(const std::string& runDir, const std::string& id) {
  const std::string dir = sandboxDir(runDir, id);
  return SandboxCaFiles{dir + "/ca.crt", dir + "/ca-bundle.crt"};
}

Result<SandboxCaFiles> publishSandboxCa(const std::string& runDir, const std::string& id,
                                        const std::string& caPem) {
  // The id reaches a path: the loader admits only [A-Za-z0-9_.-], checked again here.
  if (id.empty() || id == "." || id == ".." || id.find('/') != std::string::npos) {
    return Error(EINVAL, "sandbox id '" + id + "' cannot name a directory");
  }
  const SandboxCaFiles files = sandboxCaFiles(runDir, id);
  if (auto made = makeDirs(sandboxDir(runDir, id), 0755); !made.ok()) {
    return made.error();
  }
  if (auto written = writeFileAtomic(files.certificate, caPem, 0644); !written.ok()) {
    return written.error();
  }
  std::string bundle;
  if (auto system = readFile(kSystemCaBundle); system.ok()) {
    bundle = std::move(*system);
    if (!bundle.empty() && bundle.back() != '\n') {
      bundle += '\n';
    }
  } else {
    spdlog::warn("sandbox {}: {}; {} holds the sandbox CA only", id, system.error().message(),
                 files.bundle);
  }
  bundle += caPem;
  if (auto written = writeFileAtomic(files.bundle, bundle, 0644); !written.ok()) {
    return written.error();
  }
  return files;
}

void removeSandboxFiles(const std::string& runDir, const std::string& id) {
  const SandboxCaFiles files = sandboxCaFiles(runDir, id);
  for (const std::string& path : {files.certificate, files.bundle}) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      spdlog::warn("removing {}: {}", path, std::strerror(errno));
    }
  }
  const std::string dir = sandboxDir(runDir, id);
  if (::rmdir(dir.c_str()) != 0 && errno != ENOENT) {
    spdlog::warn("removing {}: {}", dir, std::strerror(errno));
  }
}

}  // namespace egressd::daemon
