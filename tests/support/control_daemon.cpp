#include "control_daemon.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <thread>

#include "audit_file.h"
#include "common/fs.h"
#include "egressd.h"

namespace egressd::test {
namespace {

std::string errorField(const nlohmann::json& body, const char* key) {
  if (!body.is_object() || !body.contains("error") || !body["error"].is_object()) {
    return "";
  }
  const auto& v = body["error"].value(key, nlohmann::json());
  return v.is_string() ? v.get<std::string>() : (v.is_null() ? "" : v.dump());
}

CtlReply toCtlReply(Result<RunResult> r, const std::vector<std::string>& argv) {
  CtlReply reply;
  if (!r.ok()) {
    reply.run.exitCode = -1;
    reply.run.err = joinArgv(argv) + ": " + r.error().message();
    reply.body = nullptr;
    return reply;
  }
  reply.run = std::move(r).value();
  reply.body = nlohmann::json::parse(reply.run.out, nullptr, false);
  if (reply.body.is_discarded()) {
    reply.body = nullptr;
  }
  return reply;
}

}  // namespace

int CtlReply::errorStatus() const {
  if (!body.is_object() || !body.contains("error") || !body["error"].is_object()) {
    return 0;
  }
  const auto& s = body["error"].value("status", nlohmann::json());
  return s.is_number_integer() ? s.get<int>() : 0;
}

std::string CtlReply::errorCode() const {
  return errorField(body, "code");
}

std::string CtlReply::errorMessage() const {
  return errorField(body, "message");
}

std::string CtlReply::describe() const {
  return run.describe();
}

std::string ApiReply::describe() const {
  return "HTTP " + std::to_string(status) + " body: " + text + "\n  curl: " + run.describe();
}

Result<std::unique_ptr<ControlDaemon>> ControlDaemon::start(Options opts) {
  EGRESSD_TRY(requireBinaries());
  EGRESSD_TRY(ensureBpffs());
  auto dir = TempDir::create();
  if (!dir.ok()) {
    return std::move(dir).error();
  }
  std::unique_ptr<ControlDaemon> d(new ControlDaemon(std::move(opts), std::move(dir).value()));
  // The state and run directories are the daemon's to create; the policy directory is ours.
  EGRESSD_TRY(makeDirs(d->policyDir(), 0700));
  for (const auto& [name, yaml] : d->opts_.policyFiles) {
    auto written = d->writePolicyFile(name, yaml);
    if (!written.ok()) {
      return std::move(written).error();
    }
  }
  EGRESSD_TRY(d->process_.start(d->daemonArgv(), d->opts_.extraEnv, d->opts_.readyTimeout));
  return d;
}

std::vector<std::string> ControlDaemon::daemonArgv() const {
  std::vector<std::string> argv{egressdBin(),  "daemon",   "--socket",     socketPath(),
                                "--state-dir", stateDir(), "--policy-dir", policyDir(),
                                "--run-dir",   runDir(),   "--pin-root",   pinRoot_.path()};
  if (!opts_.cgroupParent.empty()) {
    argv.insert(argv.end(), {"--cgroup-parent", opts_.cgroupParent});
  }
  if (opts_.persistSecrets) {
    argv.push_back("--persist-secrets");
  }
  if (opts_.auditLog) {
    argv.insert(argv.end(), {"--audit-log", auditLogPath()});
  }
  if (!opts_.upstreamResolver.empty()) {
    argv.insert(argv.end(), {"--upstream-resolver", opts_.upstreamResolver});
  }
  if (!opts_.upstreamCaFile.empty()) {
    argv.insert(argv.end(), {"--upstream-ca-file", opts_.upstreamCaFile});
  }
  argv.insert(argv.end(), opts_.extraArgs.begin(), opts_.extraArgs.end());
  return argv;
}

Result<std::string> ControlDaemon::writePolicyFile(const std::string& fileName,
                                                   const std::string& yaml) const {
  const std::string path = policyDir() + "/" + fileName;
  EGRESSD_TRY(writeFileAtomic(path, yaml));
  return path;
}

Status ControlDaemon::removePolicyFile(const std::string& fileName) const {
  const std::string path = policyDir() + "/" + fileName;
  if (::unlink(path.c_str()) != 0) {
    return lastSystemError("unlink " + path);
  }
  return okStatus();
}

std::vector<std::string> ControlDaemon::ctlPrefix(bool json) const {
  std::vector<std::string> argv{egressctlBin(), "--socket", socketPath()};
  if (json) {
    argv.push_back("--json");
  }
  return argv;
}

RunResult ControlDaemon::ctl(const std::vector<std::string>& args) const {
  auto argv = ctlPrefix(false);
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = run(SpawnOptions{.argv = argv}, milliseconds(20000));
  if (!r.ok()) {
    RunResult failed;
    failed.err = joinArgv(argv) + ": " + r.error().message();
    return failed;
  }
  return std::move(r).value();
}

CtlReply ControlDaemon::ctlJson(const std::vector<std::string>& args) const {
  auto argv = ctlPrefix(true);
  argv.insert(argv.end(), args.begin(), args.end());
  return toCtlReply(run(SpawnOptions{.argv = argv}, milliseconds(20000)), argv);
}

CtlReply ControlDaemon::sandboxCtl(const std::string& sandboxId,
                                   const std::vector<std::string>& args) const {
  std::vector<std::string> all{"-s", sandboxId};
  all.insert(all.end(), args.begin(), args.end());
  return ctlJson(all);
}

CtlReply ControlDaemon::secretSet(const std::string& name, const std::string& value) const {
  auto tail = ctlPrefix(true);
  tail.insert(tail.end(), {"secret", "set", name});
  // The value reaches the shell through the environment of this one child, not argv.
  std::vector<std::string> argv{
      "/bin/sh", "-c", "printf '%s\\n' \"$EGRESSD_TEST_SECRET_VALUE\" | exec \"$@\"", "sh"};
  argv.insert(argv.end(), tail.begin(), tail.end());
  return toCtlReply(
      run(SpawnOptions{.argv = argv, .extraEnv = {"EGRESSD_TEST_SECRET_VALUE=" + value}},
          milliseconds(20000)),
      tail);
}

CtlReply ControlDaemon::policyApply(const std::string& fileName, const std::string& yaml) const {
  const std::string dir = dir_.path() + "/applied";
  const std::string path = dir + "/" + fileName;
  if (Status st = makeDirs(dir, 0700); !st.ok()) {
    CtlReply failed;
    failed.run.err = st.error().message();
    return failed;
  }
  if (Status st = writeFileAtomic(path, yaml); !st.ok()) {
    CtlReply failed;
    failed.run.err = st.error().message();
    return failed;
  }
  return ctlJson({"policy", "apply", path});
}

ApiReply ControlDaemon::api(const std::string& method, const std::string& path,
                            const std::optional<std::string>& rawBody) const {
  std::vector<std::string> argv{
      "curl", "-sS", "--max-time", "10", "--unix-socket", socketPath(), "-X",
      method, "-o",  "-",          "-w", "\n%{http_code}"};
  if (rawBody) {
    argv.insert(argv.end(), {"-H", "Content-Type: application/json", "--data-binary", *rawBody});
  }
  argv.push_back("http://egressd" + path);
  ApiReply reply;
  auto r = run(SpawnOptions{.argv = argv}, milliseconds(15000));
  if (!r.ok()) {
    reply.run.err = joinArgv(argv) + ": " + r.error().message();
    return reply;
  }
  reply.run = std::move(r).value();
  const std::string& out = reply.run.out;
  const size_t nl = out.rfind('\n');
  if (nl != std::string::npos) {
    reply.status = std::atoi(out.c_str() + nl + 1);
    reply.text = out.substr(0, nl);
    reply.body = nlohmann::json::parse(reply.text, nullptr, false);
    if (reply.body.is_discarded()) {
      reply.body = nullptr;
    }
  }
  return reply;
}

std::string ControlDaemon::stateDump() const {
  std::string out;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(stateDir(), ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file()) {
      auto text = readFile(it->path().string());
      out += "== " + it->path().string() + "\n" +
             (text.ok() ? *text : "(unreadable: " + text.error().message() + ")") + "\n";
    }
  }
  return out.empty() ? "(no state files in " + stateDir() + ")" : out;
}

Result<std::vector<nlohmann::json>> ControlDaemon::auditRecords() const {
  if (!opts_.auditLog) {
    return Error(EINVAL, "the daemon was started without an audit log");
  }
  return readAuditRecords(auditLogPath());
}

Result<nlohmann::json> ControlDaemon::waitForAudit(
    const std::function<bool(const nlohmann::json&)>& match, milliseconds timeout) const {
  EGRESSD_TRY(auditRecords());  // the "no audit log" error
  return waitForAuditRecord(auditLogPath(), match, timeout);
}

void ControlDaemon::deleteAllSandboxes() {
  CtlReply list = ctlJson({"sandbox", "list"});
  if (!list.ok() || !list.body.contains("sandboxes") || !list.body["sandboxes"].is_array()) {
    std::fprintf(stderr, "[egressd-test] cleanup: egressctl sandbox list: %s\n",
                 list.describe().c_str());
    return;
  }
  for (const auto& s : list.body["sandboxes"]) {
    const std::string id = s.value("id", "");
    if (id.empty()) {
      continue;
    }
    CtlReply del = ctlJson({"sandbox", "delete", id});
    if (!del.ok()) {
      std::fprintf(stderr, "[egressd-test] cleanup: egressctl sandbox delete %s: %s\n", id.c_str(),
                   del.describe().c_str());
    }
  }
}

ControlDaemon::~ControlDaemon() {
  // A daemon a test left stopped is started once more, so that it detaches its sandboxes
  // itself; when that fails, removing the pin root drops the links (and the test cgroups
  // they sit on are removed by their owners).
  if (!running() && pathExists(stateDir())) {
    if (Status st = restart(); !st.ok()) {
      std::fprintf(stderr, "[egressd-test] cleanup: restart to delete sandboxes: %s\n",
                   st.error().message().c_str());
    }
  }
  if (running()) {
    deleteAllSandboxes();
  }
  process_.stop(milliseconds(5000), "egressd daemon");
  pinRoot_.remove();
}

}  // namespace egressd::test
