// AuditLog: the JSON-lines audit trail (one line per decision) to a file and/or stdout.
//
// Built for the proxy's hot path: write() serializes on the caller's thread, appends to a
// shared buffer under a short lock and returns; no system call per record. A background
// thread writes the buffer out every flushInterval, or sooner when 64 KiB are pending.
// When the output stalls (full disk, blocked pipe) and maxBufferedBytes are pending, new
// records are dropped and counted rather than blocking the proxy; once the output moves
// again, one line with "reason":"audit_records_dropped" and "dropped":N says how many went
// missing. Records that a failed write(2) lost are counted and reported the same way.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "audit/record.h"
#include "common/result.h"
#include "common/unique_fd.h"

namespace egressd::audit {

inline constexpr size_t kAuditWakeBytes = 64 * 1024;

struct AuditOptions {
  std::string filePath;  // "" = no file
  bool toStdout = false;
  std::chrono::milliseconds flushInterval{200};
  size_t maxBufferedBytes = 1 << 20;
};

class AuditLog {
 public:
  // Creates the file (mode 0600, parent directories 0750 when missing) or appends to it,
  // O_APPEND|O_CLOEXEC. Errors name the path. At least one output must be chosen.
  static Result<std::unique_ptr<AuditLog>> open(const AuditOptions& options);

  // Writes out everything still buffered (blocks while the output is stalled).
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Thread-safe and cheap; never blocks on the output. Drops (and counts) the record when
  // maxBufferedBytes are already pending.
  void write(const AuditRecord& record);

  // Synchronously writes everything buffered so far, in order (shutdown, tests).
  void flush();

  // Opens the file path again (after log rotation moved the old file away) and writes from
  // now on to the new file. Thread-safe, but not async-signal-safe: call it from the
  // daemon's signal handling loop on SIGHUP, not from a signal handler. On failure the old
  // file stays in use.
  Status reopen();

  // Values (secrets' plain text) that must never appear in the log: every occurrence in a
  // string field of a later record becomes "[REDACTED]". Replaces the previous set.
  void setSecretsToRedact(std::vector<std::string> values);

  // Records lost so far: dropped because the buffer was full, or lost to a failed write.
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

  const AuditOptions& options() const { return options_; }

 private:
  AuditLog(AuditOptions options, UniqueFd fileFd);
  void runWriter();
  // Takes the pending buffer and writes it to every output, then the dropped-records note
  // if one is owed. Serialized by ioMutex_ so batches reach the outputs in order.
  void writePending();
  // Writes `data` to every output; returns how many of its lines at least one output lost.
  uint64_t writeToOutputs(const std::string& data);

  const AuditOptions options_;
  const size_t wakeBytes_;

  // Producer side: guarded by bufferMutex_.
  std::mutex bufferMutex_;
  std::condition_variable wake_;
  std::string pending_;
  uint64_t droppedFullSinceNote_ = 0;
  bool wakeRequested_ = false;
  bool stopping_ = false;

  // Output side: guarded by ioMutex_ (taken before bufferMutex_, never the other way).
  std::mutex ioMutex_;
  UniqueFd fileFd_;
  std::string batch_;
  uint64_t unreportedFull_ = 0;
  uint64_t unreportedLost_ = 0;
  bool outputFailing_ = false;
  bool midLine_[2] = {false, false};  // file, stdout: a failed write left half a line

  std::atomic<std::shared_ptr<const std::vector<std::string>>> secrets_;
  std::atomic<uint64_t> dropped_{0};
  std::thread writer_;  // last: starts after every other member is ready
};

}  // namespace egressd::audit
