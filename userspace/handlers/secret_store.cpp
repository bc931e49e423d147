#include "handlers/secret_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <ctime>

#include "common/unique_fd.h"
#include "handlers/template.h"
#include "handlers/text.h"

namespace egressd::handlers {
namespace {

// File timestamps advance in clock ticks (jiffies on many file systems, seconds on some), so
// two writes close together can leave the same mtime. Content read within this window after
// the file's last change is not trusted to still match its identity: the next get() reads the
// file again (git's "racy clean" problem and fix).
constexpr int64_t kRacyWindowNs = 2'000'000'000;

int64_t toNs(const struct timespec& ts) {
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

int64_t realtimeNs() {
  struct timespec ts {};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return toNs(ts);
}

// Names reach messages; they are validated before anything else, but stay safe to print.
std::string printable(std::string_view text) {
  std::string out;
  for (char c : text.substr(0, 200)) {
    const auto byte = static_cast<unsigned char>(c);
    out += (byte < 0x20 || byte == 0x7f) ? '?' : c;
  }
  return out;
}

void replaceAll(std::string& text, std::string_view from, std::string_view to) {
  for (size_t pos = text.find(from); pos != std::string::npos; pos = text.find(from, pos)) {
    text.replace(pos, from.size(), to);
    pos += to.size();
  }
}

// One trailing "\n" or "\r\n": what editors and `echo` leave at the end of a file.
void stripTrailingNewline(std::string& value) {
  if (value.size() >= 2 && value.compare(value.size() - 2, 2, "\r\n") == 0) {
    value.resize(value.size() - 2);
  } else if (!value.empty() && value.back() == '\n') {
    value.pop_back();
  }
}

}  // namespace

bool isSecretName(std::string_view name) {
  const size_t slash = name.find('/');
  if (slash == std::string_view::npos) {
    return isSecretBaseName(name);
  }
  return isSecretBaseName(name.substr(0, slash)) && isSandboxId(name.substr(slash + 1));
}

Status SecretStore::set(const std::string& name, std::string value) {
  if (!isSecretName(name)) {
    return Error(EINVAL, "invalid secret name \"" + printable(name) +
                             "\" (NAME or NAME/SANDBOX, NAME of [A-Za-z0-9_])");
  }
  if (value.empty()) {
    return Error(EINVAL, "secret " + name + ": the value is empty");
  }
  if (value.size() > kMaxSecretBytes) {
    return Error(EINVAL, "secret " + name + ": the value is longer than " +
                             std::to_string(kMaxSecretBytes) + " bytes");
  }
  // Values go into header lines: a line break would let a secret start a new header.
  if (detail::hasLineBreakOrNul(value)) {
    return Error(EINVAL, "secret " + name + ": the value holds CR, LF or NUL");
  }
  std::unique_lock lock(apiMutex_);
  api_[name] = std::move(value);
  return okStatus();
}

bool SecretStore::remove(const std::string& name) {
  std::unique_lock lock(apiMutex_);
  return api_.erase(name) > 0;
}

std::vector<std::string> SecretStore::apiNames() const {
  std::shared_lock lock(apiMutex_);
  std::vector<std::string> out;
  out.reserve(api_.size());
  for (const auto& [name, value] : api_) {
    out.push_back(name);
  }
  return out;  // std::map order: sorted
}

std::map<std::string, std::string> SecretStore::apiValues() const {
  std::shared_lock lock(apiMutex_);
  return std::map<std::string, std::string>(api_.begin(), api_.end());
}

Result<std::string> SecretStore::get(
    std::string_view name, std::string_view sandbox,
    const std::map<std::string, policy::SecretSource>& policySources) const {
  if (!isSecretName(name)) {
    return Error(EINVAL, "invalid secret name \"" + printable(name) + "\"");
  }
  const std::string secret(name);
  {
    std::shared_lock lock(apiMutex_);
    if (auto it = api_.find(name); it != api_.end()) {
      return it->second;
    }
  }

  const size_t slash = name.find('/');
  const std::string base(name.substr(0, slash));
  const std::string_view perSandbox =
      slash == std::string_view::npos ? std::string_view() : name.substr(slash + 1);
  auto source = policySources.find(base);
  if (source == policySources.end()) {
    return Error(ENOENT, "secret " + secret + " is not set (no API value" +
                             (perSandbox.empty() ? "" : " for " + secret) +
                             " and no policy source for " + base + ")");
  }

  if (source->second.kind == policy::SecretSource::Kind::kEnv) {
    const std::string& variable = source->second.value;
    const char* value = std::getenv(variable.c_str());
    if (value == nullptr || *value == '\0') {
      return Error(ENOENT, "secret " + secret + ": environment variable " + variable +
                               (value == nullptr ? " is not set" : " is empty"));
    }
    const std::string_view text(value);
    if (text.size() > kMaxSecretBytes) {
      return Error(EINVAL, "secret " + secret + ": environment variable " + variable +
                               " is longer than " + std::to_string(kMaxSecretBytes) + " bytes");
    }
    if (detail::hasLineBreakOrNul(text)) {
      return Error(EINVAL,
                   "secret " + secret + ": environment variable " + variable + " holds CR or LF");
    }
    return std::string(text);
  }

  std::string path = source->second.value;
  if (path.find("${sandbox}") != std::string::npos) {
    const std::string_view id = perSandbox.empty() ? sandbox : perSandbox;
    // The id becomes part of a path: only ids that cannot climb out of the directory.
    if (!isSandboxId(id)) {
      return Error(EINVAL, "secret " + secret + ": file " + path + " needs a sandbox id, got \"" +
                               printable(id) + "\"");
    }
    replaceAll(path, "${sandbox}", id);
  }
  return readFileSecret(secret, path);
}

Result<std::string> SecretStore::readFileSecret(const std::string& name,
                                                const std::string& path) const {
  const std::string what = "secret " + name + ": file " + path;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    std::lock_guard lock(filesMutex_);
    files_.erase(path);
    return systemError(err == ENOENT ? ENOENT : err, what);
  }
  FileIdentity identity{st.st_dev, st.st_ino, st.st_size, toNs(st.st_mtim), toNs(st.st_ctim)};
  {
    std::lock_guard lock(filesMutex_);
    if (auto it = files_.find(path); it != files_.end() && it->second.identity == identity &&
                                     it->second.readAtNs - identity.mtimeNs > kRacyWindowNs) {
      return it->second.value;
    }
  }

  // O_NONBLOCK: opening a FIFO put where the secret should be must not hang a proxy thread.
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (!fd) {
    return lastSystemError(what);
  }
  if (::fstat(fd.get(), &st) != 0) {
    return lastSystemError(what);
  }
  if (!S_ISREG(st.st_mode)) {
    return Error(EINVAL, what + " is not a regular file");
  }
  // Identity of what is actually read (the path may have been renamed over since stat()).
  identity = FileIdentity{st.st_dev, st.st_ino, st.st_size, toNs(st.st_mtim), toNs(st.st_ctim)};
  const int64_t readAt = realtimeNs();
  constexpr size_t kLimit = kMaxSecretBytes + 2;  // + "\r\n"
  std::string value;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return lastSystemError(what);
    }
    if (n == 0) {
      break;
    }
    value.append(buf, static_cast<size_t>(n));
    if (value.size() > kLimit) {
      return Error(EFBIG, what + " is larger than " + std::to_string(kMaxSecretBytes) + " bytes");
    }
  }
  fileReads_.fetch_add(1, std::memory_order_relaxed);
  stripTrailingNewline(value);
  if (value.empty()) {
    return Error(ENOENT, what + " is empty");
  }
  if (value.size() > kMaxSecretBytes) {
    return Error(EFBIG, what + " is larger than " + std::to_string(kMaxSecretBytes) + " bytes");
  }
  if (detail::hasLineBreakOrNul(value)) {
    return Error(EINVAL, what + " holds CR, LF or NUL (only one trailing newline is removed)");
  }
  std::lock_guard lock(filesMutex_);
  files_[path] = CachedFile{identity, readAt, value};
  return value;
}

}  // namespace egressd::handlers
