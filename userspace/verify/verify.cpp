#include "verify/verify.h"

#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <iostream>

#include "common/unique_fd.h"
#include "daemon/arming.h"
#include "policy/policy.h"
#include "verify/battery.h"
#include "verify/host_checks.h"
#include "verify/report.h"

namespace egressd::verify {
std::string buildNote() {
#ifdef EGRESSD_WEAKEN_FOR_VERIFY
  return "this egressd is a DELIBERATELY WEAKENED build "
         "(EGRESSD_WEAKEN_FOR_VERIFY=" EGRESSD_WEAKEN_FOR_VERIFY
         "): it exists to show that verify detects holes; never deploy it";
#else
  return "";
#endif
}

int verifyCommand(const VerifyOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  if (::geteuid() != 0) {
    std::cerr << "egressd verify: must run as root (it loads BPF programs, makes a cgroup and "
                 "network namespaces)\n";
    return kExitInconclusive;
  }
  // Before any thread exists: SIGINT/SIGTERM/SIGHUP become readable on a signalfd, checked
  // between steps, so every RAII cleanup runs.
  UniqueFd signals = daemon::blockDaemonSignals();
  bool stop = false;
  auto interrupted = [&]() {
    if (!stop && signals) {
      pollfd pfd{signals.get(), POLLIN, 0};
      stop = ::poll(&pfd, 1, 0) > 0;
    }
    return stop;
  };

  if (!o.policyFile.empty()) {
    // A bad policy is a usage error, before anything is created.
    auto policy = policy::loadPolicyFile(o.policyFile);
    if (!policy.ok()) {
      std::cerr << "egressd verify: " << policy.error().message() << "\n";
      return kExitBadPolicy;
    }
  }

  // The throw-away sandbox's kernel denials are the battery working, not news: logged only
  // when asked for (--log-level debug).
  if (spdlog::get_level() == spdlog::level::info) {
    spdlog::set_level(spdlog::level::warn);
  }
  VerifyResult result;
  result.buildNote = buildNote();  // main() has logged it too; the table repeats it
  result.checks = featureChecks();
  for (Check& c : hookChecks()) {
    result.checks.push_back(std::move(c));
  }
  for (Check& c : daemonChecks(DaemonPaths{o.pinRoot, o.stateDir + "/state.json", o.socket})) {
    result.checks.push_back(std::move(c));
  }

  char exe[4096];
  ssize_t n = ::readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  BatteryOptions battery;
  battery.policyFile = o.policyFile;
  battery.selfExe = n > 0 ? std::string(exe, static_cast<size_t>(n)) : "/proc/self/exe";
  battery.interrupted = interrupted;
  if (!interrupted()) {
    auto report = runBattery(battery);
    if (report.ok()) {
      result.battery = std::move(*report);
    } else {
      result.batteryError = report.error().message();
    }
  } else {
    result.batteryError = "interrupted";
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (o.json) {
    printJson(std::cout, result);
  } else {
    printTable(std::cout, result);
  }
  if (stop && !result.battery) {
    return kExitInterrupted;
  }
  return exitCodeOf(result);
}

}  // namespace egressd::verify
