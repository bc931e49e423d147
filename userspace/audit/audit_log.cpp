#include "audit/audit_log.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <utility>

#include <spdlog/spdlog.h>

#include "common/fs.h"

namespace egressd::audit {

namespace {

// Writing to stdout when it is a pipe whose reader went away raises SIGPIPE, which would kill
// the daemon over a log consumer. Blocked on this thread for the duration of the write, the
// signal is not delivered and write(2) fails with EPIPE instead; a SIGPIPE that we caused is
// consumed before unblocking so it is not delivered later either.
class ScopedSigpipeBlock {
 public:
  ScopedSigpipeBlock() {
    sigemptyset(&pipeSet_);
    sigaddset(&pipeSet_, SIGPIPE);
    sigset_t pending;
    sigemptyset(&pending);
    ::sigpending(&pending);
    wasPending_ = sigismember(&pending, SIGPIPE) == 1;
    ::pthread_sigmask(SIG_BLOCK, &pipeSet_, &previous_);
  }
  ~ScopedSigpipeBlock() {
    if (!wasPending_) {
      timespec zero{};
      while (::sigtimedwait(&pipeSet_, nullptr, &zero) > 0) {
      }
    }
    ::pthread_sigmask(SIG_SETMASK, &previous_, nullptr);
  }
  ScopedSigpipeBlock(const ScopedSigpipeBlock&) = delete;
  ScopedSigpipeBlock& operator=(const ScopedSigpipeBlock&) = delete;

 private:
  sigset_t pipeSet_;
  sigset_t previous_;
  bool wasPending_ = false;
};

Result<UniqueFd> openAuditFile(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) {
    std::string parent = path.substr(0, slash);
    if (!pathExists(parent)) {
      Status made = makeDirs(parent, 0750);
      if (!made.ok()) {
        return std::move(made).error().wrap("creating the directory of audit log " + path);
      }
    }
  }
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0600));
  if (!fd) {
    return lastSystemError("open audit log " + path);
  }
  return fd;
}

// Writes all of `data`; returns 0 or the errno of the failure, with `written` set to the bytes
// that made it.
int writeAll(int fd, const std::string& data, size_t& written) {
  written = 0;
  while (written < data.size()) {
    ssize_t n = ::write(fd, data.data() + written, data.size() - written);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return errno;
    }
    written += static_cast<size_t>(n);
  }
  return 0;
}

std::string droppedNote(uint64_t droppedFull, uint64_t lostToWrites) {
  std::string detail;
  if (droppedFull > 0) {
    detail = std::to_string(droppedFull) +
             " audit records dropped because the audit buffer was full (output stalled)";
  }
  if (lostToWrites > 0) {
    if (!detail.empty()) {
      detail += "; ";
    }
    detail += std::to_string(lostToWrites) + " audit records lost to failed writes";
  }
  std::string out = "{\"time\":\"" + formatTime(std::chrono::system_clock::now()) +
                    "\",\"layer\":\"audit\",\"decision\":\"error\","
                    "\"reason\":\"audit_records_dropped\",\"dropped\":" +
                    std::to_string(droppedFull + lostToWrites) + ",\"detail\":";
  appendJsonString(out, detail);
  out += "}\n";
  return out;
}

}  // namespace

Result<std::unique_ptr<AuditLog>> AuditLog::open(const AuditOptions& options) {
  if (options.filePath.empty() && !options.toStdout) {
    return Error(EINVAL, "audit log: no output chosen (neither a file nor stdout)");
  }
  if (options.flushInterval.count() <= 0) {
    return Error(EINVAL, "audit log: the flush interval must be positive");
  }
  if (options.maxBufferedBytes == 0) {
    return Error(EINVAL, "audit log: maxBufferedBytes must be positive");
  }
  UniqueFd fileFd;
  if (!options.filePath.empty()) {
    auto opened = openAuditFile(options.filePath);
    if (!opened.ok()) {
      return std::move(opened).error();
    }
    fileFd = std::move(*opened);
  }
  return std::unique_ptr<AuditLog>(new AuditLog(options, std::move(fileFd)));
}

AuditLog::AuditLog(AuditOptions options, UniqueFd fileFd)
    : options_(std::move(options)),
      wakeBytes_(std::clamp<size_t>(options_.maxBufferedBytes / 2, 1, kAuditWakeBytes)),
      fileFd_(std::move(fileFd)),
      secrets_(std::make_shared<const std::vector<std::string>>()) {
  writer_ = std::thread([this] { runWriter(); });
}

AuditLog::~AuditLog() {
  {
    std::lock_guard lock(bufferMutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  writer_.join();
  writePending();
}

void AuditLog::write(const AuditRecord& record) {
  std::shared_ptr<const std::vector<std::string>> secrets = secrets_.load();
  std::string line = toJsonLine(record, *secrets);
  bool wake = false;
  {
    std::lock_guard lock(bufferMutex_);
    if (pending_.size() + line.size() > options_.maxBufferedBytes) {
      ++droppedFullSinceNote_;
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    pending_ += line;
    if (!wakeRequested_ && pending_.size() >= wakeBytes_) {
      wakeRequested_ = true;  // one notification per batch, not one per record
      wake = true;
    }
  }
  if (wake) {
    wake_.notify_one();
  }
}

void AuditLog::flush() {
  writePending();
}

Status AuditLog::reopen() {
  if (options_.filePath.empty()) {
    return okStatus();
  }
  auto opened = openAuditFile(options_.filePath);
  if (!opened.ok()) {
    return std::move(opened).error().wrap("reopening the audit log");
  }
  std::lock_guard io(ioMutex_);
  fileFd_ = std::move(*opened);
  midLine_[0] = false;
  return okStatus();
}

void AuditLog::setSecretsToRedact(std::vector<std::string> values) {
  values.erase(std::remove(values.begin(), values.end(), std::string()), values.end());
  // Longest first, so a secret that contains another is redacted whole.
  std::sort(values.begin(), values.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  secrets_.store(std::make_shared<const std::vector<std::string>>(std::move(values)));
}

void AuditLog::runWriter() {
  std::unique_lock lock(bufferMutex_);
  while (!stopping_) {
    wake_.wait_for(lock, options_.flushInterval, [this] { return stopping_ || wakeRequested_; });
    if (stopping_) {
      break;  // the destructor writes the rest
    }
    lock.unlock();
    writePending();
    lock.lock();
  }
}

void AuditLog::writePending() {
  std::lock_guard io(ioMutex_);
  {
    std::lock_guard lock(bufferMutex_);
    batch_.swap(pending_);
    unreportedFull_ += std::exchange(droppedFullSinceNote_, 0);
    wakeRequested_ = false;
  }
  if (!batch_.empty()) {
    uint64_t lost = writeToOutputs(batch_);
    unreportedLost_ += lost;
    dropped_.fetch_add(lost, std::memory_order_relaxed);
    batch_.clear();  // keeps the capacity for the next swap
  }
  if (unreportedFull_ > 0 || unreportedLost_ > 0) {
    if (writeToOutputs(droppedNote(unreportedFull_, unreportedLost_)) == 0) {
      unreportedFull_ = 0;
      unreportedLost_ = 0;
    }
  }
}

uint64_t AuditLog::writeToOutputs(const std::string& data) {
  struct Output {
    int fd;
    const std::string& name;
  };
  static const std::string kStdoutName = "stdout";
  Output outputs[2] = {{fileFd_.get(), options_.filePath}, {STDOUT_FILENO, kStdoutName}};
  const bool enabled[2] = {fileFd_.valid(), options_.toStdout};

  ScopedSigpipeBlock noSigpipe;
  uint64_t lostLines = 0;
  int firstErr = 0;
  const std::string* failedName = nullptr;
  for (int i = 0; i < 2; ++i) {
    if (!enabled[i]) {
      continue;
    }
    size_t written = 0;
    int err = 0;
    if (midLine_[i]) {
      // An earlier write failed inside a line: end that fragment first so the next record
      // starts on a line of its own and stays parseable.
      err = writeAll(outputs[i].fd, "\n", written);
      midLine_[i] = err != 0;
      written = 0;
    }
    if (err == 0) {
      err = writeAll(outputs[i].fd, data, written);
    }
    if (err != 0) {
      midLine_[i] = midLine_[i] || (written > 0 && data[written - 1] != '\n');
      lostLines = std::max<uint64_t>(
          lostLines, std::count(data.begin() + static_cast<ptrdiff_t>(written), data.end(), '\n'));
      if (firstErr == 0) {
        firstErr = err;
        failedName = &outputs[i].name;
      }
    }
  }
  // Say so once per failure streak, not once per batch.
  if (firstErr != 0 && !outputFailing_) {
    spdlog::warn("audit: write to {} failed: {}; audit records are being lost", *failedName,
                 std::generic_category().message(firstErr));
  } else if (firstErr == 0 && outputFailing_) {
    spdlog::info("audit: writing the audit log works again");
  }
  outputFailing_ = firstErr != 0;
  return lostLines;
}

}  // namespace egressd::audit
