#include "sandbox/identity.h"

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>

#include <cerrno>
#include <charconv>
#include <optional>

namespace egressd::sandbox {
namespace {

std::optional<uint32_t> parseId(const std::string& text) {
  uint32_t value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc() || ptr != end || value == static_cast<uint32_t>(-1)) {
    return std::nullopt;
  }
  return value;
}

// getpwnam_r/getgrnam_r with a buffer that grows on ERANGE.
template <typename Entry, typename Fn>
std::optional<Entry> lookup(Fn fn, std::string& buffer) {
  buffer.resize(4096);
  for (;;) {
    Entry entry{};
    Entry* found = nullptr;
    const int rc = fn(&entry, buffer.data(), buffer.size(), &found);
    if (rc == ERANGE && buffer.size() < (1U << 20)) {
      buffer.resize(buffer.size() * 2);
      continue;
    }
    if (rc != 0 || found == nullptr) {
      return std::nullopt;
    }
    return entry;
  }
}

std::string homeOrRoot(const char* dir) {
  struct stat st {};
  if (dir == nullptr || dir[0] != '/' || ::stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
    return "/";
  }
  return dir;
}

Result<RunAsUser> resolve(const std::string& spec) {
  const size_t colon = spec.find(':');
  const std::string userPart = spec.substr(0, colon);
  const std::string groupPart = colon == std::string::npos ? "" : spec.substr(colon + 1);
  if (userPart.empty() || (colon != std::string::npos && groupPart.empty())) {
    return Error(EINVAL, "--user '" + spec + "': expected NAME|UID[:GID]");
  }
  RunAsUser user;
  std::string buffer;
  std::optional<passwd> pw;
  if (auto number = parseId(userPart)) {
    const uid_t uid = *number;
    pw = lookup<passwd>(
        [uid](passwd* e, char* b, size_t n, passwd** r) { return ::getpwuid_r(uid, e, b, n, r); },
        buffer);
    user.uid = uid;
    user.gid = uid;
    user.name = userPart;
  } else {
    pw = lookup<passwd>(
        [&userPart](passwd* e, char* b, size_t n, passwd** r) {
          return ::getpwnam_r(userPart.c_str(), e, b, n, r);
        },
        buffer);
    if (!pw) {
      return Error(ENOENT, "--user '" + spec + "': no user named " + userPart);
    }
  }
  if (pw) {
    user.uid = pw->pw_uid;
    user.gid = pw->pw_gid;
    user.name = pw->pw_name;
    user.home = homeOrRoot(pw->pw_dir);
  } else {
    user.home = "/";
  }
  if (!groupPart.empty()) {
    if (auto number = parseId(groupPart)) {
      user.gid = *number;
    } else {
      std::string groupBuffer;
      auto gr = lookup<group>(
          [&groupPart](group* e, char* b, size_t n, group** r) {
            return ::getgrnam_r(groupPart.c_str(), e, b, n, r);
          },
          groupBuffer);
      if (!gr) {
        return Error(ENOENT, "--user '" + spec + "': no group named " + groupPart);
      }
      user.gid = gr->gr_gid;
    }
  }
  if (pw) {
    // The user's supplementary groups, as login would set them (the primary group included).
    int count = 32;
    std::vector<gid_t> groups(static_cast<size_t>(count));
    while (::getgrouplist(user.name.c_str(), user.gid, groups.data(), &count) < 0) {
      if (count <= static_cast<int>(groups.size()) || count > 65536) {
        return Error(EINVAL, "--user '" + spec + "': getgrouplist failed");
      }
      groups.resize(static_cast<size_t>(count));
    }
    groups.resize(static_cast<size_t>(count));
    user.groups = std::move(groups);
  }
  return user;
}

}  // namespace

Result<RunAsUser> resolveRunAsUser(const std::string& spec, const char* sudoUid,
                                   const char* sudoGid) {
  if (!spec.empty()) {
    return resolve(spec);
  }
  if (sudoUid != nullptr) {
    auto uid = parseId(sudoUid);
    if (uid && *uid != 0) {
      std::string def = std::to_string(*uid);
      if (sudoGid != nullptr && parseId(sudoGid)) {
        def += std::string(":") + sudoGid;
      }
      return resolve(def);
    }
  }
  if (auto nobody = resolve("nobody"); nobody.ok()) {
    return nobody;
  }
  return resolve("65534:65534");
}

}  // namespace egressd::sandbox
