#include "process.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <sstream>
#include <thread>

#include "common/fs.h"

extern char** environ;

namespace egressd::test {
namespace {

// What the child reports through the close-on-exec error pipe when a pre-exec step fails.
struct ChildFailure {
  int stage;
  int err;
};
enum Stage : int { kSetns = 1, kJoinCgroup, kDup, kChdir, kExec, kParentGone };

const char* stageName(int stage) {
  switch (stage) {
    case kSetns:
      return "setns into network namespace";
    case kJoinCgroup:
      return "join cgroup (write cgroup.procs)";
    case kDup:
      return "redirect stdio";
    case kChdir:
      return "chdir";
    case kExec:
      return "execve";
    case kParentGone:
      return "parent exited";
    default:
      return "unknown stage";
  }
}

std::string resolveInPath(const std::string& prog) {
  if (prog.find('/') != std::string::npos) {
    return prog;
  }
  const char* path = ::getenv("PATH");
  std::string dirs = path ? path : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  std::stringstream ss(dirs);
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    std::string candidate = (dir.empty() ? "." : dir) + "/" + prog;
    if (::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
  }
  return prog;  // execve will report ENOENT
}

std::string readAll(int fd) {
  std::string out;
  if (fd < 0) {
    return out;
  }
  char buf[16384];
  off_t off = 0;
  for (;;) {
    ssize_t n = ::pread(fd, buf, sizeof(buf), off);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      break;
    }
    out.append(buf, static_cast<size_t>(n));
    off += n;
  }
  return out;
}

int pidfdOpen(pid_t pid) {
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

}  // namespace

std::string joinArgv(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) {
    if (!s.empty()) {
      s += ' ';
    }
    if (a.empty() || a.find_first_of(" \t\"'$") != std::string::npos) {
      s += "'" + a + "'";
    } else {
      s += a;
    }
  }
  return s;
}

std::string RunResult::describe() const {
  std::ostringstream os;
  if (timedOut) {
    os << "timed out (killed)";
  } else if (termSignal != 0) {
    os << "killed by signal " << termSignal << " (" << ::strsignal(termSignal) << ")";
  } else {
    os << "exit code " << exitCode;
  }
  os << "\n--- stdout ---\n" << out << "\n--- stderr ---\n" << err;
  return os.str();
}

Result<Process> Process::spawn(const SpawnOptions& opts) {
  if (opts.argv.empty()) {
    return Error(EINVAL, "spawn: empty argv");
  }
  const std::string what = "spawn '" + joinArgv(opts.argv) + "'";

  // Everything the child needs is prepared here: after fork only syscalls run.
  std::string exe = resolveInPath(opts.argv[0]);
  std::vector<char*> argvPtrs;
  for (const auto& a : opts.argv) {
    argvPtrs.push_back(const_cast<char*>(a.c_str()));
  }
  argvPtrs.push_back(nullptr);

  std::vector<std::string> envStrings;
  if (opts.env) {
    envStrings = *opts.env;
  } else {
    for (char** e = environ; e && *e; ++e) {
      envStrings.emplace_back(*e);
    }
  }
  envStrings.insert(envStrings.end(), opts.extraEnv.begin(), opts.extraEnv.end());
  std::vector<char*> envPtrs;
  for (auto& e : envStrings) {
    envPtrs.push_back(e.data());
  }
  envPtrs.push_back(nullptr);

  UniqueFd netns;
  if (!opts.netnsPath.empty()) {
    netns.reset(::open(opts.netnsPath.c_str(), O_RDONLY | O_CLOEXEC));
    if (!netns) {
      return lastSystemError(what + ": open netns " + opts.netnsPath);
    }
  }
  UniqueFd cgroupProcs;
  if (!opts.cgroup.empty()) {
    std::string procs = opts.cgroup + "/cgroup.procs";
    cgroupProcs.reset(::open(procs.c_str(), O_WRONLY | O_CLOEXEC));
    if (!cgroupProcs) {
      return lastSystemError(what + ": open " + procs);
    }
  }
  UniqueFd devNull(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  UniqueFd outFd(::memfd_create("egressd-test-stdout", MFD_CLOEXEC));
  UniqueFd errFd(::memfd_create("egressd-test-stderr", MFD_CLOEXEC));
  if (!devNull || !outFd || !errFd) {
    return lastSystemError(what + ": open /dev/null or memfd");
  }
  int errPipe[2];
  if (::pipe2(errPipe, O_CLOEXEC) != 0) {
    return lastSystemError(what + ": pipe2");
  }
  UniqueFd errRead(errPipe[0]);
  UniqueFd errWrite(errPipe[1]);
  const pid_t parent = ::getpid();

  pid_t pid = ::fork();
  if (pid < 0) {
    return lastSystemError(what + ": fork");
  }
  if (pid == 0) {
    // Child: async-signal-safe calls only.
    auto fail = [&](int stage) {
      ChildFailure f{stage, errno};
      ssize_t ignored = ::write(errWrite.get(), &f, sizeof(f));
      (void)ignored;
      ::_exit(127);
    };
    // Die with the test process, so a crashed test leaves no servers behind.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) {
      fail(kParentGone);
    }
    sigset_t all;
    ::sigemptyset(&all);
    ::sigprocmask(SIG_SETMASK, &all, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    if (netns && ::setns(netns.get(), CLONE_NEWNET) != 0) {
      fail(kSetns);
    }
    if (cgroupProcs && ::write(cgroupProcs.get(), "0", 1) != 1) {
      fail(kJoinCgroup);
    }
    if (::dup2(devNull.get(), 0) < 0 || ::dup2(outFd.get(), 1) < 0 || ::dup2(errFd.get(), 2) < 0) {
      fail(kDup);
    }
    if (!opts.cwd.empty() && ::chdir(opts.cwd.c_str()) != 0) {
      fail(kChdir);
    }
    ::execve(exe.c_str(), argvPtrs.data(), envPtrs.data());
    fail(kExec);
  }

  errWrite.reset();
  Process p;
  p.pid_ = pid;
  p.argv_ = opts.argv;
  p.out_ = std::move(outFd);
  p.err_ = std::move(errFd);
  p.pidfd_.reset(pidfdOpen(pid));

  ChildFailure failure{};
  ssize_t n;
  do {
    n = ::read(errRead.get(), &failure, sizeof(failure));
  } while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof(failure))) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    p.reaped_ = true;
    return systemError(failure.err, what + ": " + stageName(failure.stage));
  }
  if (!p.pidfd_) {
    return lastSystemError(what + ": pidfd_open");
  }
  return p;
}

Process::Process(Process&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      reaped_(other.reaped_),
      waitStatus_(other.waitStatus_),
      pidfd_(std::move(other.pidfd_)),
      out_(std::move(other.out_)),
      err_(std::move(other.err_)),
      argv_(std::move(other.argv_)) {}

Process& Process::operator=(Process&& other) noexcept {
  if (this != &other) {
    killAndReap();
    pid_ = std::exchange(other.pid_, -1);
    reaped_ = other.reaped_;
    waitStatus_ = other.waitStatus_;
    pidfd_ = std::move(other.pidfd_);
    out_ = std::move(other.out_);
    err_ = std::move(other.err_);
    argv_ = std::move(other.argv_);
  }
  return *this;
}

Process::~Process() {
  killAndReap();
}

void Process::killAndReap() {
  if (pid_ <= 0 || reaped_) {
    return;
  }
  ::kill(pid_, SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  reaped_ = true;
  waitStatus_ = status;
}

bool Process::running() {
  if (pid_ <= 0 || reaped_) {
    return false;
  }
  struct pollfd pfd {
    pidfd_.get(), POLLIN, 0
  };
  return ::poll(&pfd, 1, 0) == 0;
}

Status Process::signal(int sig) {
  if (pid_ <= 0 || reaped_) {
    return Error(ESRCH,
                 "signal " + std::to_string(sig) + " to " + joinArgv(argv_) + ": already exited");
  }
  // pidfd_send_signal: no risk of hitting a recycled pid.
  if (::syscall(SYS_pidfd_send_signal, pidfd_.get(), sig, nullptr, 0) != 0) {
    return lastSystemError("signal " + std::to_string(sig) + " to pid " + std::to_string(pid_));
  }
  return okStatus();
}

RunResult Process::collect(int waitStatus) const {
  RunResult r;
  if (WIFEXITED(waitStatus)) {
    r.exitCode = WEXITSTATUS(waitStatus);
  } else if (WIFSIGNALED(waitStatus)) {
    r.termSignal = WTERMSIG(waitStatus);
  }
  r.out = stdoutText();
  r.err = stderrText();
  return r;
}

Result<RunResult> Process::wait(milliseconds timeout) {
  if (pid_ <= 0) {
    return Error(ECHILD, "wait: no process");
  }
  if (!reaped_) {
    struct pollfd pfd {
      pidfd_.get(), POLLIN, 0
    };
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto left =
          std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
      int rc = ::poll(&pfd, 1, static_cast<int>(std::max<long>(0, left.count())));
      if (rc > 0) {
        break;
      }
      if (rc < 0 && errno == EINTR) {
        continue;
      }
      if (rc == 0) {
        return Error(ETIMEDOUT, "'" + joinArgv(argv_) + "' (pid " + std::to_string(pid_) +
                                    ") still running after " + std::to_string(timeout.count()) +
                                    " ms");
      }
      return lastSystemError("poll pidfd");
    }
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0) {
      if (errno != EINTR) {
        return lastSystemError("waitpid " + std::to_string(pid_));
      }
    }
    reaped_ = true;
    waitStatus_ = status;
  }
  return collect(waitStatus_);
}

RunResult Process::stop(milliseconds grace) {
  if (grace.count() > 0 && running()) {
    (void)signal(SIGTERM);
    auto r = wait(grace);
    if (r.ok()) {
      return std::move(r).value();
    }
  }
  killAndReap();
  return collect(waitStatus_);
}

std::string Process::stdoutText() const {
  return readAll(out_.get());
}
std::string Process::stderrText() const {
  return readAll(err_.get());
}

bool Process::waitForOutput(const std::string& needle, milliseconds timeout, bool onStderr) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    std::string text = onStderr ? stderrText() : stdoutText();
    if (text.find(needle) != std::string::npos) {
      return true;
    }
    if (!running() || std::chrono::steady_clock::now() >= deadline) {
      // One last look: output written just before exit.
      text = onStderr ? stderrText() : stdoutText();
      return text.find(needle) != std::string::npos;
    }
    std::this_thread::sleep_for(milliseconds(20));
  }
}

Result<RunResult> run(const SpawnOptions& opts, milliseconds timeout) {
  auto p = Process::spawn(opts);
  if (!p.ok()) {
    return std::move(p).error();
  }
  auto r = p->wait(timeout);
  if (r.ok()) {
    return r;
  }
  RunResult killed = p->stop(milliseconds(0));
  killed.timedOut = true;
  return killed;
}

Status runChecked(const std::vector<std::string>& argv, milliseconds timeout) {
  auto r = run(SpawnOptions{.argv = argv}, timeout);
  if (!r.ok()) {
    return std::move(r).error();
  }
  if (!r->succeeded()) {
    return Error(EIO, "'" + joinArgv(argv) + "' failed: " + r->describe());
  }
  return okStatus();
}

Result<RunResult> runInSandbox(const std::string& cgroup, const std::vector<std::string>& argv,
                               const std::string& netnsPath, milliseconds timeout) {
  SpawnOptions opts{.argv = argv, .cgroup = cgroup, .netnsPath = netnsPath};
  return run(opts, timeout);
}

Result<uint64_t> procStatusKib(pid_t pid, const std::string& field) {
  const std::string path = "/proc/" + std::to_string(pid) + "/status";
  auto text = readFile(path);
  if (!text.ok()) {
    return std::move(text).error();
  }
  std::istringstream in(*text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with(field + ":")) {
      return std::strtoull(line.c_str() + field.size() + 1, nullptr, 10);
    }
  }
  return Error(ENOENT, "no " + field + " in " + path);
}

}  // namespace egressd::test
