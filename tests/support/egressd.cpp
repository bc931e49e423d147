#include "egressd.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <thread>

#include "audit_file.h"
#include "common/fs.h"
#include "names.h"

namespace egressd::test {

std::string egressdBin() {
  if (const char* over = ::getenv("EGRESSD_TEST_EGRESSD_BIN"); over && *over) {
    return over;
  }
#ifdef EGRESSD_BIN
  return EGRESSD_BIN;
#else
  return "";
#endif
}

std::string egressctlBin() {
  if (const char* over = ::getenv("EGRESSD_TEST_EGRESSCTL_BIN"); over && *over) {
    return over;
  }
#ifdef EGRESSCTL_BIN
  return EGRESSCTL_BIN;
#else
  return "";
#endif
}

Status requireBinaries() {
  for (const auto& [name, path] :
       {std::pair{"egressd", egressdBin()}, std::pair{"egressctl", egressctlBin()}}) {
    if (path.empty()) {
      return Error(ENOENT, std::string(name) +
                               " was not a CMake target when the tests were configured: "
                               "re-run cmake once it exists");
    }
    if (::access(path.c_str(), X_OK) != 0) {
      return lastSystemError(std::string(name) + " binary " + path);
    }
  }
  return okStatus();
}

Result<std::unique_ptr<EgressdDaemon>> EgressdDaemon::start(Options opts) {
  EGRESSD_TRY(requireBinaries());
  EGRESSD_TRY(ensureBpffs());
  if (opts.cgroup.empty()) {
    return Error(EINVAL, "EgressdDaemon: no cgroup given");
  }
  if (opts.sandboxId.empty()) {
    opts.sandboxId = uniqueName();
  }
  auto dir = TempDir::create();
  if (!dir.ok()) {
    return std::move(dir).error();
  }
  std::unique_ptr<EgressdDaemon> d(new EgressdDaemon(std::move(opts), std::move(dir).value()));
  d->policyPath_ = d->dir_.path() + "/policy.yaml";
  EGRESSD_TRY(d->writePolicy(d->opts_.policyYaml));
  EGRESSD_TRY(d->startProcess());
  return d;
}

std::vector<std::string> EgressdDaemon::sandboxArgs(const std::string& policyFile) const {
  std::vector<std::string> args{"--sandbox",  opts_.sandboxId, "--cgroup",
                                opts_.cgroup, "--policy",      policyFile};
  if (!opts_.netnsPath.empty()) {
    args.push_back("--netns");
    args.push_back(opts_.netnsPath);
  }
  args.push_back("--pin-root");
  args.push_back(pinRoot_.path());
  return args;
}

Status EgressdDaemon::startProcess() {
  std::vector<std::string> argv{egressdBin()};
  auto tail = sandboxArgs(policyPath_);
  argv.insert(argv.end(), tail.begin(), tail.end());
  if (opts_.auditLog) {
    argv.insert(argv.end(), {"--audit-log", auditLogPath()});
  }
  if (opts_.metrics) {
    argv.insert(argv.end(), {"--metrics", "unix:" + metricsSocketPath()});
  }
  argv.insert(argv.end(), opts_.extraArgs.begin(), opts_.extraArgs.end());
  return process_.start(std::move(argv), {}, opts_.readyTimeout);
}

Status EgressdDaemon::writePolicy(const std::string& yaml) {
  return writeFileAtomic(policyPath_, yaml);
}

Status EgressdDaemon::reload(const std::string& yaml) {
  EGRESSD_TRY(writePolicy(yaml));
  return process_.signal(SIGHUP);
}

Result<RunResult> EgressdDaemon::apply(const std::string& policyFile) {
  std::vector<std::string> argv{egressdBin(), "apply"};
  auto tail = sandboxArgs(policyFile.empty() ? policyPath_ : policyFile);
  argv.insert(argv.end(), tail.begin(), tail.end());
  return run(SpawnOptions{.argv = argv}, milliseconds(20000));
}

Result<RunResult> EgressdDaemon::detach(bool ifExists) {
  std::vector<std::string> argv = {egressdBin(),    "detach",     "--sandbox",
                                   opts_.sandboxId, "--pin-root", pinRoot_.path()};
  if (ifExists) {
    argv.push_back("--if-exists");
  }
  return run(SpawnOptions{.argv = argv}, milliseconds(20000));
}

Result<RunResult> EgressdDaemon::ctl(std::vector<std::string> args) {
  args.insert(args.begin(), egressctlBin());
  args.push_back("--pin-root");
  args.push_back(pinRoot_.path());
  return run(SpawnOptions{.argv = args}, milliseconds(20000));
}

std::string EgressdDaemon::auditLogPath() const {
  return opts_.auditLog ? dir_.path() + "/audit.jsonl" : "";
}

std::string EgressdDaemon::metricsSocketPath() const {
  return opts_.metrics ? dir_.path() + "/metrics.sock" : "";
}

Result<std::vector<nlohmann::json>> EgressdDaemon::auditRecords() const {
  if (!opts_.auditLog) {
    return Error(EINVAL, "the daemon was started without an audit log");
  }
  return readAuditRecords(auditLogPath());
}

Result<nlohmann::json> EgressdDaemon::waitForAudit(
    const std::function<bool(const nlohmann::json&)>& match, milliseconds timeout) const {
  EGRESSD_TRY(auditRecords());  // the "no audit log" error
  return waitForAuditRecord(auditLogPath(), match, timeout);
}

Result<size_t> EgressdDaemon::waitForAuditCount(
    const std::function<bool(const nlohmann::json&)>& match, size_t count,
    milliseconds timeout) const {
  EGRESSD_TRY(auditRecords());
  return waitForAuditRecordCount(auditLogPath(), match, count, timeout);
}

Result<std::string> EgressdDaemon::scrapeMetrics() const {
  if (!opts_.metrics) {
    return Error(EINVAL, "the daemon was started without a metrics endpoint");
  }
  auto r = run(SpawnOptions{.argv = {"curl", "-sS", "--fail", "--max-time", "5", "--unix-socket",
                                     metricsSocketPath(), "http://egressd/metrics"}},
               milliseconds(10000));
  if (!r.ok()) {
    return std::move(r).error();
  }
  if (!r->succeeded()) {
    return Error(EIO, "scrape " + metricsSocketPath() + ": " + r->describe());
  }
  return r->out;
}

EgressdDaemon::~EgressdDaemon() {
  process_.stop(milliseconds(5000), "egressd");
  if (pathExists(pinRoot_.path())) {
    auto r = detach(true);  // the test may have detached it already
    if (!r.ok() || !r->succeeded()) {
      std::fprintf(stderr, "[egressd-test] cleanup: egressd detach --sandbox %s: %s\n",
                   opts_.sandboxId.c_str(),
                   r.ok() ? r->describe().c_str() : r.error().message().c_str());
    }
  }
  pinRoot_.remove();
}

}  // namespace egressd::test
