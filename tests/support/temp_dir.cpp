#include "temp_dir.h"

#include <stdexcept>

#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "common/fs.h"
#include "names.h"

namespace egressd::test {
namespace {

constexpr long kBpfFsMagic = 0xcafe4a11;

void removeTree(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
  if (ec) {
    std::fprintf(stderr, "[egressd-test] cleanup: rm -rf %s: %s\n", path.c_str(),
                 ec.message().c_str());
  }
}

}  // namespace

TempDir TempDir::createOrThrow() {
  auto dir = create();
  if (!dir.ok()) {
    throw std::runtime_error(dir.error().message());
  }
  return std::move(dir).value();
}

Result<TempDir> TempDir::create() {
  std::string tmpl = "/tmp/" + uniqueName() + "-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    return lastSystemError("mkdtemp " + tmpl);
  }
  return TempDir(tmpl);
}

TempDir::TempDir(TempDir&& other) noexcept : path_(std::exchange(other.path_, "")) {}

TempDir::~TempDir() {
  if (!path_.empty()) {
    removeTree(path_);
  }
}

Result<std::string> TempDir::writeFile(const std::string& name, const std::string& content) const {
  std::string full = path_ + "/" + name;
  EGRESSD_TRY(writeFileAtomic(full, content));
  return full;
}

Status ensureBpffs() {
  struct statfs fs {};
  if (::statfs(kBpffsRoot, &fs) == 0 && fs.f_type == kBpfFsMagic) {
    return okStatus();
  }
  if (::mount("bpf", kBpffsRoot, "bpf", 0, "mode=0700") != 0) {
    return lastSystemError(std::string("mount bpffs at ") + kBpffsRoot);
  }
  return okStatus();
}

PinRoot::PinRoot() : path_(std::string(kBpffsRoot) + "/" + uniqueName()) {}

PinRoot::PinRoot(PinRoot&& other) noexcept : path_(std::exchange(other.path_, "")) {}

PinRoot::~PinRoot() {
  remove();
}

void PinRoot::remove() {
  if (!path_.empty() && pathExists(path_)) {
    removeTree(path_);
  }
}

}  // namespace egressd::test
