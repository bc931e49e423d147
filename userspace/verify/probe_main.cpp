#include "verify/probe_main.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cstdio>
#include <iostream>

#include "common/unique_fd.h"

namespace egressd::verify {
namespace {

// A case never takes longer than this (each blocking step is bounded at 1 s).
constexpr int kCaseTimeoutMs = 5000;

ActionResult runForked(const Targets& t, const Case& c, const std::string& token) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return ActionResult::failure(errno, "pipe");
  }
  UniqueFd readEnd(fds[0]);
  UniqueFd writeEnd(fds[1]);
  pid_t pid = ::fork();
  if (pid < 0) {
    return ActionResult::failure(errno, "fork");
  }
  if (pid == 0) {
    readEnd.reset();
    std::string line = c.action(t, c, token).serialize() + "\n";
    [[maybe_unused]] ssize_t n = ::write(writeEnd.get(), line.data(), line.size());
    ::_exit(0);
  }
  writeEnd.reset();
  std::string out;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(kCaseTimeoutMs);
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      break;
    }
    pollfd pfd{readEnd.get(), POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) {
      break;
    }
    char buf[1024];
    ssize_t n = ::read(readEnd.get(), buf, sizeof(buf));
    if (n <= 0) {
      break;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  while (!out.empty() && out.back() == '\n') {
    out.pop_back();
  }
  if (out.empty()) {
    return ActionResult::failure(ETIMEDOUT, "case",
                                 "no result within " + std::to_string(kCaseTimeoutMs) + " ms");
  }
  return ActionResult::parse(out);
}

}  // namespace

std::string caseToken(const std::string& tokenPrefix, size_t index) {
  // The closing "z" keeps token 3 from being a prefix of token 30.
  return tokenPrefix + "x" + std::to_string(index) + "z";
}

std::vector<std::string> probeArguments(const Targets& t, const std::string& tokenPrefix,
                                        const std::vector<Case>& cases) {
  std::vector<std::string> args = {
      "--origin", t.origin,   "--other",         t.other,
      "--dns",    t.dns,      "--loopback-port", std::to_string(t.loopbackPort),
      "--token",  tokenPrefix};
  for (const Case& c : cases) {
    args.push_back(c.sampleKind.empty() ? c.id : "sample:" + c.sampleKind + ":" + c.param);
  }
  return args;
}

int probeMain(const std::vector<std::string>& args) {
  Targets t;
  std::string tokenPrefix;
  size_t i = 0;
  for (; i + 1 < args.size() && args[i].starts_with("--"); i += 2) {
    const std::string& v = args[i + 1];
    if (args[i] == "--origin") {
      t.origin = v;
    } else if (args[i] == "--other") {
      t.other = v;
    } else if (args[i] == "--dns") {
      t.dns = v;
    } else if (args[i] == "--loopback-port") {
      auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), t.loopbackPort);
      if (ec != std::errc() || end != v.data() + v.size()) {
        std::cerr << "egressd " << kProbeSubcommand << ": bad --loopback-port " << v << "\n";
        return 64;
      }
    } else if (args[i] == "--token") {
      tokenPrefix = v;
    } else {
      std::cerr << "egressd " << kProbeSubcommand << ": unknown option " << args[i] << "\n";
      return 64;
    }
  }
  std::vector<Case> cases;
  for (; i < args.size(); ++i) {
    const std::string& word = args[i];
    if (word.starts_with("sample:")) {
      auto colon = word.find(':', 7);
      std::string error;
      Case c = sampleCase(word.substr(7, colon - 7),
                          colon == std::string::npos ? "" : word.substr(colon + 1), &error);
      if (!error.empty()) {
        std::cerr << "egressd " << kProbeSubcommand << ": " << error << "\n";
        return 64;
      }
      cases.push_back(std::move(c));
    } else if (const Case* c = findBuiltinCase(word)) {
      cases.push_back(*c);
    } else {
      std::cerr << "egressd " << kProbeSubcommand << ": unknown case " << word << "\n";
      return 64;
    }
  }
  for (size_t k = 0; k < cases.size(); ++k) {
    ActionResult r = runForked(t, cases[k], caseToken(tokenPrefix, k));
    std::printf("CASE %zu %s\n", k, r.serialize().c_str());
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace egressd::verify
