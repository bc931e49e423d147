#include "loader/enforcer.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <utility>

#include "common/fs.h"
#include "common/unique_fd.h"
#include "loader/bpffs.h"
#include "loader/skeleton.h"

namespace egressd::loader {

namespace {

// flock(2) held for the lifetime of the object.
// Serialises slot allocation and link changes between egressd processes sharing one pin
// root: an flock on the pin root directory itself. bpffs holds no regular files, but a
// directory takes an flock like any inode, and the lock then lives and dies with the pin
// root (a lock file elsewhere outlived every removed pin root).
class PinRootLock {
 public:
  static Result<PinRootLock> acquire(const std::string& pinRoot) {
    UniqueFd fd(::open(pinRoot.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd) {
      return lastSystemError("open pin root " + pinRoot + " to lock it");
    }
    if (::flock(fd.get(), LOCK_EX) != 0) {
      return lastSystemError("lock pin root " + pinRoot);
    }
    PinRootLock lock;
    lock.fd_ = std::move(fd);
    return lock;
  }

 private:
  UniqueFd fd_;
};

struct LinkInfo {
  uint64_t cgroupId = 0;
  bool isCgroupLink = false;
};

Result<LinkInfo> linkInfo(int linkFd, const std::string& path) {
  bpf_link_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(linkFd, &info, &len) != 0) {
    return lastSystemError("read link info of " + path);
  }
  LinkInfo out;
  out.isCgroupLink = info.type == BPF_LINK_TYPE_CGROUP;
  out.cgroupId = info.cgroup.cgroup_id;
  return out;
}

// Detaches a pinned link (even if other fds hold it) and removes the pin.
void destroyPinnedLink(const std::string& path) {
  int fd = bpf_obj_get(path.c_str());
  if (fd >= 0) {
    UniqueFd link(fd);
    if (bpf_link_detach(link.get()) != 0 && errno != ENOLINK) {
      spdlog::warn("detach link {}: {}", path, std::strerror(errno));
    }
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    spdlog::warn("unpin {}: {}", path, std::strerror(errno));
  }
}

void copyId(egressd_sandbox_config& config, const std::string& id) {
  std::memset(config.id, 0, sizeof(config.id));
  std::memcpy(config.id, id.data(), std::min(id.size(), sizeof(config.id) - 1));
}

// The EGRESSD_SB_HAS_* bits: which lookups the BPF side needs for these rules.
uint32_t ruleShapeFlags(const RuleEntries& rules) {
  uint32_t flags = 0;
  if (!rules.deny4.empty() || !rules.deny6.empty()) {
    flags |= EGRESSD_SB_HAS_DENY;
  }
  auto shape = [](uint8_t proto, uint16_t port) -> uint32_t {
    if (proto != EGRESSD_PROTO_ANY) {
      return port != 0 ? EGRESSD_SB_HAS_ALLOW_PROTO_PORT : EGRESSD_SB_HAS_ALLOW_PROTO;
    }
    return port != 0 ? EGRESSD_SB_HAS_ALLOW_PORT : EGRESSD_SB_HAS_ALLOW_ANY;
  };
  for (const auto& [key, value] : rules.allow4) {
    flags |= shape(key.proto, key.port);
  }
  for (const auto& [key, value] : rules.allow6) {
    flags |= shape(key.proto, key.port);
  }
  return flags;
}

}  // namespace

Result<uint64_t> cgroupIdOf(const std::string& cgroupPath) {
  struct stat st {};
  if (::stat(cgroupPath.c_str(), &st) != 0) {
    return lastSystemError("stat cgroup " + cgroupPath);
  }
  return static_cast<uint64_t>(st.st_ino);
}

std::vector<std::string> pinnedLinks(const std::string& pinRoot, const std::string& id) {
  std::vector<std::string> out;
  DIR* dir = ::opendir(linksDir(pinRoot, id).c_str());
  if (dir == nullptr) {
    return out;
  }
  while (dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] != '.') {
      out.emplace_back(entry->d_name);
    }
  }
  ::closedir(dir);
  return out;
}

Enforcer::Enforcer(std::string pinRoot) : pinRoot_(std::move(pinRoot)) {}

Result<ArmResult> Enforcer::swapPolicy(const PinnedMaps& maps, uint32_t slot,
                                       const SandboxRequest& req, uint64_t cgroupId) {
  auto current = maps.activeRuleset(slot);
  if (!current.ok()) {
    return std::move(current).error();
  }
  uint32_t oldRuleset = current->value_or(slot * 2 + 1);
  uint32_t newRuleset = slot * 2 + ((oldRuleset & 1) ^ 1);
  uint32_t generation = 0;
  if (current->has_value()) {
    auto old = maps.configAt(oldRuleset);
    if (!old.ok()) {
      return std::move(old).error();
    }
    generation = old->generation_counter + 1;
  }

  // The target generation may hold leftovers of an interrupted update.
  auto stale = maps.deleteRuleset(newRuleset);
  if (!stale.ok()) {
    return std::move(stale).error();
  }
  EGRESSD_TRY(maps.insertRules(newRuleset, req.rules));

  egressd_sandbox_config config = req.config;
  config.active_ruleset = newRuleset;
  config.flags |= EGRESSD_SB_ACTIVE | ruleShapeFlags(req.rules);
  config.cgroup_id = cgroupId;
  config.generation_counter = generation;
  copyId(config, req.id);
  EGRESSD_TRY(maps.writeConfig(newRuleset, config));
  EGRESSD_TRY(maps.setActive(slot, newRuleset));

  if (current->has_value()) {
    auto removed = maps.deleteRuleset(oldRuleset);
    if (!removed.ok()) {
      return std::move(removed).error();
    }
    // Keep the id in the old generation's config: findSlot must still find the slot.
    egressd_sandbox_config retired = config;
    retired.flags &= ~EGRESSD_SB_ACTIVE;
    retired.active_ruleset = oldRuleset;
    EGRESSD_TRY(maps.writeConfig(oldRuleset, retired));
  }
  ArmResult result;
  result.slot = slot;
  result.ruleset = newRuleset;
  result.rules = ruleCount(req.rules);
  return result;
}

Status Enforcer::ensureMaps() {
  if (PinnedMaps::exist(pinRoot_)) {
    return okStatus();
  }
  EGRESSD_TRY(ensureBpffsMounted());
  EGRESSD_TRY(makeDirs(pinRoot_, 0700));
  if (!isOnBpffs(pinRoot_)) {
    return Error(EINVAL, "pin root " + pinRoot_ + " is not on a bpf filesystem");
  }
  auto lock = PinRootLock::acquire(pinRoot_);
  if (!lock.ok()) {
    return std::move(lock).error();
  }
  if (PinnedMaps::exist(pinRoot_)) {
    return okStatus();
  }
  auto features = probeKernelFeatures();
  if (!features.ok()) {
    return std::move(features).error();
  }
  // Loading pins the shared maps; the programs go again with the skeleton, unattached.
  auto skel = Skeleton::load(pinRoot_, 0, *features);
  if (!skel.ok()) {
    return std::move(skel).error().wrap("creating the pinned maps in " + pinRoot_);
  }
  return okStatus();
}

Result<ArmResult> Enforcer::arm(const SandboxRequest& req) {
  EGRESSD_TRY(validateSandboxId(req.id));
  auto cgroupId = cgroupIdOf(req.cgroupPath);
  if (!cgroupId.ok()) {
    return std::move(cgroupId).error();
  }
  UniqueFd cgroupFd(::open(req.cgroupPath.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!cgroupFd) {
    return lastSystemError("open cgroup " + req.cgroupPath);
  }
  EGRESSD_TRY(ensureBpffsMounted());
  EGRESSD_TRY(makeDirs(pinRoot_, 0700));
  if (!isOnBpffs(pinRoot_)) {
    return Error(EINVAL, "pin root " + pinRoot_ + " is not on a bpf filesystem");
  }
  EGRESSD_TRY(makeDirs(linksDir(pinRoot_, req.id), 0700));

  auto lock = PinRootLock::acquire(pinRoot_);
  if (!lock.ok()) {
    return std::move(lock).error();
  }
  auto features = probeKernelFeatures();
  if (!features.ok()) {
    return std::move(features).error();
  }

  uint32_t slot = 0;
  bool newSlot = true;
  if (PinnedMaps::exist(pinRoot_)) {
    auto maps = PinnedMaps::open(pinRoot_);
    if (!maps.ok()) {
      return std::move(maps).error();
    }
    auto found = maps->findSlot(req.id);
    if (!found.ok()) {
      return std::move(found).error();
    }
    if (found->has_value()) {
      slot = **found;
      newSlot = false;
    } else {
      auto allocated = maps->allocateSlot();
      if (!allocated.ok()) {
        return std::move(allocated).error();
      }
      slot = *allocated;
    }
  }

  auto skel = Skeleton::load(pinRoot_, slot, *features);
  if (!skel.ok()) {
    return std::move(skel).error().wrap("sandbox " + req.id);
  }
  auto maps = PinnedMaps::open(pinRoot_);
  if (!maps.ok()) {
    return std::move(maps).error();
  }
  if (newSlot) {
    EGRESSD_TRY(maps->resetCounters(slot));
  }
  // Rules and configuration go in before any program is attached: armed before use.
  auto result = swapPolicy(*maps, slot, req, *cgroupId);
  if (!result.ok()) {
    return std::move(result).error().wrap("sandbox " + req.id);
  }

  for (const HookSpec& hook : allHooks()) {
    bpf_program* prog = (*skel)->program(hook.programName);
    if (prog == nullptr) {
      return Error(ENOENT, std::string("BPF object has no program ") + hook.programName);
    }
    int progFd = bpf_program__fd(prog);
    std::string pin = linkPinPath(pinRoot_, req.id, hook.programName);
    if (pathExists(pin)) {
      int fd = bpf_obj_get(pin.c_str());
      if (fd >= 0) {
        UniqueFd link(fd);
        auto info = linkInfo(link.get(), pin);
        if (info.ok() && info->isCgroupLink && info->cgroupId == *cgroupId) {
          if (bpf_link_update(link.get(), progFd, nullptr) == 0) {
            result->linksUpdated++;
            continue;
          }
          spdlog::warn("sandbox {}: updating pinned link {} failed ({}); recreating it", req.id,
                       pin, std::strerror(errno));
        } else {
          spdlog::warn(
              "sandbox {}: pinned link {} belongs to another cgroup or is defunct; "
              "recreating it",
              req.id, pin);
        }
      }
      destroyPinnedLink(pin);
    }
    int linkFd = bpf_link_create(progFd, cgroupFd.get(), hook.attachType, nullptr);
    if (linkFd < 0) {
      return lastSystemError(std::string("attach ") + hook.programName + " (" + hook.kernelNote +
                             ") to cgroup " + req.cgroupPath);
    }
    UniqueFd link(linkFd);
    if (bpf_obj_pin(link.get(), pin.c_str()) != 0) {
      int err = errno;
      bpf_link_detach(link.get());
      return systemError(err, "pin link " + pin);
    }
    result->linksCreated++;
  }
  spdlog::info("sandbox {}: armed on {} (slot {}, {} rules, links: {} new, {} adopted)", req.id,
               req.cgroupPath, slot, result->rules, result->linksCreated, result->linksUpdated);
  return result;
}

Result<ArmResult> Enforcer::updatePolicy(const SandboxRequest& req) {
  auto lock = PinRootLock::acquire(pinRoot_);
  if (!lock.ok()) {
    return std::move(lock).error();
  }
  auto maps = PinnedMaps::open(pinRoot_);
  if (!maps.ok()) {
    return std::move(maps).error();
  }
  auto found = maps->findSlot(req.id);
  if (!found.ok()) {
    return std::move(found).error();
  }
  if (!found->has_value()) {
    return Error(ENOENT, "sandbox " + req.id + " is not armed under " + pinRoot_);
  }
  auto cgroupId = cgroupIdOf(req.cgroupPath);
  if (!cgroupId.ok()) {
    return std::move(cgroupId).error();
  }
  return swapPolicy(*maps, **found, req, *cgroupId);
}

Status Enforcer::detach(const std::string& id) {
  EGRESSD_TRY(validateSandboxId(id));
  if (!pathExists(pinRoot_)) {
    return okStatus();  // nothing was ever pinned here
  }
  auto lock = PinRootLock::acquire(pinRoot_);
  if (!lock.ok()) {
    return std::move(lock).error();
  }
  for (const std::string& name : pinnedLinks(pinRoot_, id)) {
    destroyPinnedLink(linkPinPath(pinRoot_, id, name));
  }
  ::rmdir(linksDir(pinRoot_, id).c_str());
  if (!PinnedMaps::exist(pinRoot_)) {
    return okStatus();
  }
  auto maps = PinnedMaps::open(pinRoot_);
  if (!maps.ok()) {
    return std::move(maps).error();
  }
  auto found = maps->findSlot(id);
  if (!found.ok()) {
    return std::move(found).error();
  }
  if (!found->has_value()) {
    return okStatus();
  }
  uint32_t slot = **found;
  EGRESSD_TRY(maps->setActive(slot, std::nullopt));
  for (uint32_t gen = 0; gen < 2; ++gen) {
    auto removed = maps->deleteRuleset(slot * 2 + gen);
    if (!removed.ok()) {
      return std::move(removed).error();
    }
    EGRESSD_TRY(maps->writeConfig(slot * 2 + gen, egressd_sandbox_config{}));
  }
  EGRESSD_TRY(maps->resetCounters(slot));
  spdlog::info("sandbox {}: detached (slot {} freed)", id, slot);

  if (!keepMaps_) {
    removeMapsIfUnused();
  }
  return okStatus();
}

void Enforcer::removeMapsIfUnused() {
  // The last sandbox gone: leave nothing pinned behind (the next arm creates the maps).
  if (!PinnedMaps::exist(pinRoot_)) {
    return;
  }
  auto maps = PinnedMaps::open(pinRoot_);
  if (!maps.ok()) {
    return;
  }
  auto remaining = maps->listSandboxes();
  if (remaining.ok() && remaining->empty()) {
    for (const std::string& name : PinnedMaps::names()) {
      ::unlink((pinRoot_ + "/" + name).c_str());
    }
    ::rmdir((pinRoot_ + "/links").c_str());
    ::rmdir(pinRoot_.c_str());
  }
}

}  // namespace egressd::loader
