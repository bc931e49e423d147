#include "sandbox/hide.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <utility>

namespace egressd::sandbox {
namespace {

constexpr std::string_view kSandboxVar = "${sandbox}";
// A directory holding a secret is re-created entry by entry (one mount per entry).
constexpr size_t kMaxEntries = 4096;

// An entry name the policy's path can stand for: exact, or with "${sandbox}" as a wildcard.
struct NameMatcher {
  std::vector<std::string> parts;  // split at "${sandbox}"; one part: exact match

  bool matches(const std::string& name) const {
    if (parts.size() == 1) {
      return name == parts[0];
    }
    size_t pos = 0;
    for (size_t i = 0; i < parts.size(); ++i) {
      const std::string& p = parts[i];
      if (i == 0) {
        if (name.compare(0, p.size(), p) != 0) {
          return false;
        }
        pos = p.size();
      } else if (i + 1 == parts.size()) {
        return name.size() >= pos + p.size() &&
               name.compare(name.size() - p.size(), p.size(), p) == 0;
      } else {
        const size_t found = name.find(p, pos);
        if (found == std::string::npos) {
          return false;
        }
        pos = found + p.size();
      }
    }
    return true;
  }
};

NameMatcher matcherFor(const std::string& component) {
  NameMatcher m;
  size_t pos = 0;
  for (;;) {
    const size_t found = component.find(kSandboxVar, pos);
    m.parts.push_back(component.substr(pos, found - pos));
    if (found == std::string::npos) {
      break;
    }
    pos = found + kSandboxVar.size();
  }
  return m;
}

struct DirPlan {
  std::vector<NameMatcher> names;
  std::set<std::pair<dev_t, ino_t>> inodes;  // hard links of a secret file are hidden too
};

std::vector<std::string> components(const std::string& path) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t end = path.find('/', pos);
    if (end == std::string::npos) {
      end = path.size();
    }
    std::string c = path.substr(pos, end - pos);
    if (!c.empty() && c != ".") {
      out.push_back(std::move(c));
    }
    pos = end + 1;
  }
  return out;
}

std::string join(const std::string& dir, const std::string& name) {
  return dir == "/" ? "/" + name : dir + "/" + name;
}

Result<std::string> canonical(const std::string& path) {
  std::unique_ptr<char, decltype(&std::free)> real(::realpath(path.c_str(), nullptr), &std::free);
  if (!real) {
    return lastSystemError("realpath " + path);
  }
  return std::string(real.get());
}

bool isUnder(const std::string& path, const std::string& dir) {
  return path == dir || path.rfind(dir + "/", 0) == 0;
}

class Planner {
 public:
  Status addSecret(const std::string& path, int depth = 0) {
    if (path.empty() || path[0] != '/') {
      return Error(EINVAL, "secret file " + path + ": not an absolute path");
    }
    const std::vector<std::string> parts = components(path);
    std::string cur = "/";
    for (size_t i = 0; i < parts.size(); ++i) {
      const std::string& c = parts[i];
      const bool last = i + 1 == parts.size();
      if (c == "..") {
        auto up = canonical(join(cur, ".."));
        if (!up.ok()) {
          return up.error();
        }
        cur = *up;
        continue;
      }
      if (c.find(kSandboxVar) != std::string::npos) {
        return hideIn(path, cur, matcherFor(c));
      }
      const std::string next = join(cur, c);
      struct stat st {};
      if (::lstat(next.c_str(), &st) != 0) {
        if (errno == ENOENT) {
          return hideIn(path, cur, matcherFor(c));  // appears later: still hidden
        }
        return lastSystemError("secret file " + path + ": lstat " + next);
      }
      if (last || (!S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode))) {
        if (auto hidden = hideIn(path, cur, matcherFor(c)); !hidden.ok()) {
          return hidden;
        }
        if (S_ISLNK(st.st_mode)) {
          // The name is hidden; what it points to may be reachable by another path.
          auto target = canonical(next);
          if (target.ok() && depth < 8) {
            return addSecret(*target, depth + 1);
          }
          return okStatus();
        }
        noteFile(path, st);
        return okStatus();
      }
      if (S_ISLNK(st.st_mode)) {
        auto resolved = canonical(next);
        if (!resolved.ok()) {
          return hideIn(path, cur, matcherFor(c));  // dangling: hide the name
        }
        cur = *resolved;
      } else {
        cur = next;
      }
    }
    return Error(EINVAL, "secret file " + path + ": names no file");
  }

  const std::map<std::string, DirPlan>& dirs() const { return dirs_; }
  const std::set<std::pair<dev_t, ino_t>>& inodes() const { return inodes_; }
  std::vector<std::string>& warnings() { return warnings_; }

 private:
  Status hideIn(const std::string& secret, const std::string& dir, NameMatcher name) {
    if (dir == "/") {
      return Error(EINVAL, "secret file " + secret +
                               ": egressd run cannot hide an entry of / from the command; keep "
                               "secrets in a directory of their own");
    }
    dirs_[dir].names.push_back(std::move(name));
    return okStatus();
  }

  void noteFile(const std::string& secret, const struct stat& st) {
    if (!S_ISREG(st.st_mode)) {
      return;
    }
    inodes_.insert({st.st_dev, st.st_ino});
    if (st.st_nlink > 1) {
      warnings_.push_back("secret file " + secret + " has " + std::to_string(st.st_nlink) +
                          " hard links: names outside its directory stay visible to the "
                          "command (only file permissions protect them)");
    }
  }

  std::set<std::pair<dev_t, ino_t>> inodes_;
  std::map<std::string, DirPlan> dirs_;
  std::vector<std::string> warnings_;
};

std::string tmpfsOptionsLike(const struct stat& st) {
  char buf[96];
  std::snprintf(buf, sizeof(buf), "mode=%04o,uid=%u,gid=%u,size=64k",
                static_cast<unsigned>(st.st_mode & 07777), static_cast<unsigned>(st.st_uid),
                static_cast<unsigned>(st.st_gid));
  return buf;
}

Result<HiddenDir> planSecretDir(const std::string& dir, const DirPlan& plan,
                                const std::set<std::pair<dev_t, ino_t>>& inodes) {
  HiddenDir out;
  out.dir = dir;
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    return lastSystemError("hiding secrets: stat " + dir);
  }
  out.tmpfsOptions = tmpfsOptionsLike(st);
  std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), ::closedir);
  if (!d) {
    return lastSystemError("hiding secrets: opendir " + dir);
  }
  errno = 0;
  while (dirent* e = ::readdir(d.get())) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") {
      continue;
    }
    if (std::any_of(plan.names.begin(), plan.names.end(),
                    [&name](const NameMatcher& m) { return m.matches(name); })) {
      continue;
    }
    HiddenEntry entry;
    entry.relative = name;
    entry.absolute = join(dir, name);
    struct stat est {};
    if (::lstat(entry.absolute.c_str(), &est) != 0) {
      continue;  // gone meanwhile
    }
    if (S_ISREG(est.st_mode) && inodes.count({est.st_dev, est.st_ino}) != 0) {
      continue;  // another name of a secret file (an editor's backup, a hard link)
    }
    if (S_ISLNK(est.st_mode)) {
      char target[PATH_MAX];
      const ssize_t n = ::readlink(entry.absolute.c_str(), target, sizeof(target) - 1);
      if (n < 0) {
        continue;
      }
      entry.kind = HiddenEntry::Kind::kSymlink;
      entry.linkTarget.assign(target, static_cast<size_t>(n));
    } else {
      entry.kind = S_ISDIR(est.st_mode) ? HiddenEntry::Kind::kDir : HiddenEntry::Kind::kFile;
      entry.bind = true;
    }
    out.entries.push_back(std::move(entry));
    if (out.entries.size() > kMaxEntries) {
      return Error(E2BIG, "hiding secrets: " + dir + " has more than " +
                              std::to_string(kMaxEntries) +
                              " entries; keep secrets in a directory of their own");
    }
  }
  return out;
}

Result<HiddenDir> planKeepOnly(const KeepOnly& k, const std::string& dir) {
  HiddenDir out;
  out.dir = dir;
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    return lastSystemError("hiding " + k.dir + ": stat");
  }
  // Traversable by anyone, whatever the real one is: it holds only what `keep` names, which
  // the command is meant to read (the sandbox's CA files).
  st.st_mode = (st.st_mode & ~07777) | 0755;
  st.st_uid = 0;
  st.st_gid = 0;
  out.tmpfsOptions = tmpfsOptionsLike(st);
  std::set<std::string> made;
  for (const std::string& keep : k.keep) {
    const std::vector<std::string> parts = components(keep);
    struct stat kst {};
    if (parts.empty() || std::find(parts.begin(), parts.end(), "..") != parts.end() ||
        ::lstat(join(dir, keep).c_str(), &kst) != 0 || S_ISLNK(kst.st_mode)) {
      continue;
    }
    std::string rel;
    for (size_t i = 0; i < parts.size(); ++i) {
      rel = rel.empty() ? parts[i] : rel + "/" + parts[i];
      if (!made.insert(rel).second) {
        continue;
      }
      HiddenEntry entry;
      entry.relative = rel;
      entry.absolute = join(dir, rel);
      const bool last = i + 1 == parts.size();
      entry.kind =
          !last || S_ISDIR(kst.st_mode) ? HiddenEntry::Kind::kDir : HiddenEntry::Kind::kFile;
      entry.bind = last;
      out.entries.push_back(std::move(entry));
    }
  }
  return out;
}

}  // namespace

Result<HidePlan> planHiding(const std::vector<std::string>& secretPaths,
                            const std::vector<KeepOnly>& keepOnly) {
  Planner planner;
  for (const std::string& path : secretPaths) {
    if (auto added = planner.addSecret(path); !added.ok()) {
      return added.error();
    }
  }
  HidePlan plan;
  plan.warnings = std::move(planner.warnings());
  std::vector<std::pair<std::string, const KeepOnly*>> keepDirs;
  for (const KeepOnly& k : keepOnly) {
    auto dir = canonical(k.dir);
    if (!dir.ok()) {
      continue;  // nothing there to hide
    }
    if (*dir == "/") {
      return Error(EINVAL, "cannot hide /");
    }
    keepDirs.emplace_back(*dir, &k);
  }
  for (const auto& [dir, dirPlan] : planner.dirs()) {
    const std::string& secretDir = dir;  // clang 14 cannot capture a structured binding
    const bool covered = std::any_of(keepDirs.begin(), keepDirs.end(), [&secretDir](const auto& k) {
      return isUnder(secretDir, k.first);
    });
    if (covered) {
      continue;
    }
    auto hidden = planSecretDir(dir, dirPlan, planner.inodes());
    if (!hidden.ok()) {
      return hidden.error();
    }
    plan.dirs.push_back(std::move(*hidden));
  }
  for (const auto& [dir, k] : keepDirs) {
    auto hidden = planKeepOnly(*k, dir);
    if (!hidden.ok()) {
      return hidden.error();
    }
    plan.dirs.push_back(std::move(*hidden));
  }
  // Parents first: a child directory is reached through what its parent's plan bound back.
  std::stable_sort(plan.dirs.begin(), plan.dirs.end(),
                   [](const HiddenDir& a, const HiddenDir& b) { return a.dir < b.dir; });
  return plan;
}

}  // namespace egressd::sandbox
