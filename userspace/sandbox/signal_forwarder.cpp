// SignalForwarder (spawn.h): relays SIGINT, SIGTERM, SIGHUP and SIGQUIT from `egressd run` to
// the sandboxed command, from an async-signal-safe handler.
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "sandbox/spawn.h"

namespace egressd::sandbox {
namespace {

constexpr std::array<int, 4> kForwardedSignals = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

// Shared with the handler; lock-free atomics are async-signal-safe.
std::atomic<bool> gForwarderActive{false};
std::atomic<pid_t> gTarget{0};
std::atomic<int> gPendingSignal{0};
std::atomic<bool> gPendingFromTerminal{false};
std::atomic<int> gLastSignal{0};
static_assert(std::atomic<pid_t>::is_always_lock_free && std::atomic<int>::is_always_lock_free &&
              std::atomic<bool>::is_always_lock_free);

// The tty sends Ctrl-C / Ctrl-\ / hangup to the whole foreground process group (si_code
// SI_KERNEL); a target still in our group got it already.
bool alreadyDelivered(pid_t target, bool fromTerminal) {
  return fromTerminal && ::getpgid(target) == ::getpgrp();
}

void forwardSignal(int sig, siginfo_t* info, void* /*context*/) {
  const int savedErrno = errno;
  gLastSignal.store(sig);
  const bool fromTerminal = info != nullptr && info->si_code == SI_KERNEL;
  const pid_t target = gTarget.load();
  if (target <= 0) {
    gPendingFromTerminal.store(fromTerminal);
    gPendingSignal.store(sig);
  } else if (!alreadyDelivered(target, fromTerminal)) {
    ::kill(target, sig);
  }
  errno = savedErrno;
}

}  // namespace

Result<std::unique_ptr<SignalForwarder>> SignalForwarder::create(pid_t target) {
  if (gForwarderActive.exchange(true)) {
    return Error(EBUSY, "a SignalForwarder is already active in this process");
  }
  gTarget.store(target);
  gPendingSignal.store(0);
  gLastSignal.store(0);
  std::unique_ptr<SignalForwarder> forwarder(new SignalForwarder());
  struct sigaction sa;
  std::memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = forwardSignal;
  // SA_RESTART: the waitpid() the caller is blocked in carries on after a forward.
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  for (int sig : kForwardedSignals) {
    sigaddset(&sa.sa_mask, sig);
  }
  for (size_t i = 0; i < kForwardedSignals.size(); ++i) {
    if (::sigaction(kForwardedSignals[i], &sa, &forwarder->previous_[i]) != 0) {
      int err = errno;
      for (size_t j = 0; j < i; ++j) {
        ::sigaction(kForwardedSignals[j], &forwarder->previous_[j], nullptr);
      }
      gForwarderActive.store(false);
      return systemError(err, "sigaction for signal forwarding");
    }
    // An ignored signal stays ignored (nohup, or `cmd &` in a script ignoring SIGINT and
    // SIGQUIT): the command inherits the same disposition and should not get it from us.
    if (forwarder->previous_[i].sa_handler == SIG_IGN) {
      ::sigaction(kForwardedSignals[i], &forwarder->previous_[i], nullptr);
    }
  }
  return forwarder;
}

SignalForwarder::~SignalForwarder() {
  for (size_t i = 0; i < kForwardedSignals.size(); ++i) {
    ::sigaction(kForwardedSignals[i], &previous_[i], nullptr);
  }
  gTarget.store(0);
  gForwarderActive.store(false);
}

void SignalForwarder::setTarget(pid_t pid) {
  gTarget.store(pid);
  // A signal that arrived before the store sits in gPendingSignal; one after it was forwarded
  // by the handler itself.
  const bool fromTerminal = gPendingFromTerminal.load();
  if (int sig = gPendingSignal.exchange(0);
      sig != 0 && pid > 0 && !alreadyDelivered(pid, fromTerminal)) {
    ::kill(pid, sig);
  }
}

Result<int> SignalForwarder::waitForTargetExit() {
  const pid_t pid = gTarget.load();
  if (pid <= 0) {
    return Error(EINVAL, "SignalForwarder has no target to wait for");
  }
  // WNOWAIT leaves the zombie in place, so the pid cannot be reused until forwarding stops.
  siginfo_t info;
  std::memset(&info, 0, sizeof(info));
  while (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT) != 0) {
    if (errno != EINTR) {
      return lastSystemError("waitid " + std::to_string(pid));
    }
  }
  gTarget.store(0);
  return waitForExit(pid);
}

int SignalForwarder::lastSignal() const {
  return gLastSignal.load();
}

}  // namespace egressd::sandbox
