#include "verify/testnet.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "common/fs.h"
#include "common/unique_fd.h"

extern char** environ;

namespace egressd::verify {
namespace {

constexpr const char* kNetnsPrefix = "egressd-verify-";

std::string netnsPath(const std::string& name) {
  return "/var/run/netns/" + name;
}

bool processAlive(pid_t pid) {
  return pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM);
}

}  // namespace

Result<std::string> runTool(const std::vector<std::string>& argv) {
  int out[2];
  int err[2];
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
    return lastSystemError("pipe for " + argv[0]);
  }
  UniqueFd outRead(out[0]), outWrite(out[1]), errRead(err[0]), errWrite(err[1]);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, outWrite.get(), 1);
  posix_spawn_file_actions_adddup2(&actions, errWrite.get(), 2);
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const std::string& a : argv) {
    args.push_back(const_cast<char*>(a.c_str()));
  }
  args.push_back(nullptr);
  // Signals verify blocks (SIGINT/SIGTERM, taken by its signalfd) are unblocked in the tool.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  pid_t pid = 0;
  int rc = ::posix_spawnp(&pid, argv[0].c_str(), &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    return systemError(rc, "run " + argv[0]);
  }
  outWrite.reset();
  errWrite.reset();
  std::string stdoutText;
  std::string stderrText;
  std::vector<pollfd> fds = {{outRead.get(), POLLIN, 0}, {errRead.get(), POLLIN, 0}};
  int open = 2;
  while (open > 0) {
    if (::poll(fds.data(), fds.size(), 10000) <= 0) {
      break;
    }
    for (size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) {
        continue;
      }
      char buf[4096];
      ssize_t n = ::read(fds[i].fd, buf, sizeof(buf));
      if (n <= 0) {
        fds[i].fd = -1;
        --open;
        continue;
      }
      (i == 0 ? stdoutText : stderrText).append(buf, static_cast<size_t>(n));
    }
  }
  if (open > 0) {
    ::kill(pid, SIGKILL);  // a tool that hangs for 10 s will not finish
    stderrText += "(killed after 10 s)";
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string cmd;
    for (const std::string& a : argv) {
      cmd += (cmd.empty() ? "" : " ") + a;
    }
    while (!stderrText.empty() && stderrText.back() == '\n') {
      stderrText.pop_back();
    }
    return Error(EIO, "`" + cmd + "` failed: " + stderrText);
  }
  return stdoutText;
}

Result<std::unique_ptr<TestNetwork>> TestNetwork::create() {
  std::unique_ptr<TestNetwork> net(new TestNetwork());
  const std::string pid = std::to_string(::getpid());
  net->prefix_ = kNetnsPrefix + pid;
  // A /24 of 198.18.0.0/15 that nothing on this host routes yet (e2e tests use low ones).
  for (int n = 200 + ::getpid() % 50, tries = 0; tries < 50; ++tries, n = 200 + (n - 199) % 50) {
    auto routes =
        runTool({"ip", "-4", "route", "show", "to", "match", "198.18." + std::to_string(n) + ".1"});
    if (!routes.ok()) {
      return std::move(routes).error();
    }
    if (routes->find("198.18.") == std::string::npos) {
      net->n_ = n;
      break;
    }
  }
  if (net->n_ == 0) {
    return Error(EADDRINUSE, "no free 198.18.N.0/24 for verify's test network");
  }
  const std::string n = std::to_string(net->n_);
  const std::string inet = net->prefix_ + "-net";
  const std::string sb = net->prefix_ + "-sb";
  const std::string host = "ev" + pid + "h";
  const std::string peer = "ev" + pid + "p";
  const std::string sbIf = "ev" + pid + "s";
  const std::string sbPeer = "ev" + pid + "t";
  net->hostLink_ = host;
  net->created_ = true;  // from here on, destroy() has something to remove
  const std::vector<std::vector<std::string>> steps = {
      {"ip", "netns", "add", inet},
      {"ip", "netns", "add", sb},
      {"ip", "link", "add", host, "type", "veth", "peer", "name", peer, "netns", inet},
      {"ip", "addr", "add", "198.18." + n + ".1/24", "dev", host},
      {"ip", "link", "set", host, "up"},
      {"ip", "-n", inet, "addr", "add", "198.18." + n + ".2/24", "dev", peer},
      {"ip", "-n", inet, "addr", "add", "198.18." + n + ".3/24", "dev", peer},
      {"ip", "-n", inet, "addr", "add", "198.18." + n + ".4/24", "dev", peer},
      {"ip", "-n", inet, "link", "set", peer, "up"},
      {"ip", "-n", inet, "link", "set", "lo", "up"},
      {"ip", "-n", inet, "link", "add", sbPeer, "type", "veth", "peer", "name", sbIf, "netns", sb},
      {"ip", "-n", inet, "addr", "add", "198.19." + n + ".1/24", "dev", sbPeer},
      {"ip", "-n", inet, "link", "set", sbPeer, "up"},
      {"ip", "-n", sb, "addr", "add", "198.19." + n + ".2/24", "dev", sbIf},
      {"ip", "-n", sb, "link", "set", sbIf, "up"},
      {"ip", "-n", sb, "link", "set", "lo", "up"},
      {"ip", "-n", sb, "route", "add", "198.18." + n + ".0/24", "via", "198.19." + n + ".1"},
      // Ping sockets are creatable there, so the battery tests the enforcer, not the sysctl.
      {"ip", "netns", "exec", sb, "sysctl", "-q", "-w", "net.ipv4.ping_group_range=0 2147483647"},
  };
  for (const auto& step : steps) {
    auto ran = runTool(step);
    if (!ran.ok()) {
      return std::move(ran).error().wrap("creating verify's test network");
    }
  }
  EGRESSD_TRY(net->checkIsolated());
  return net;
}

TestNetwork::~TestNetwork() {
  if (auto s = destroy(); !s.ok()) {
    std::fprintf(stderr, "egressd verify: %s\n", s.error().message().c_str());
  }
}

std::string TestNetwork::ip(int host) const {
  return "198.18." + std::to_string(n_) + "." + std::to_string(host);
}

std::string TestNetwork::internetNetns() const {
  return netnsPath(prefix_ + "-net");
}

std::string TestNetwork::sandboxNetns() const {
  return netnsPath(prefix_ + "-sb");
}

Status TestNetwork::checkIsolated() const {
  for (const std::string& path : {internetNetns(), sandboxNetns()}) {
    if (!pathExists(path)) {
      return Error(ENOENT, "verify's namespace " + path + " is gone");
    }
  }
  for (const char* family : {"-4", "-6"}) {
    auto routes = runTool({"ip", "-n", prefix_ + "-sb", family, "route", "show", "default"});
    if (!routes.ok()) {
      return std::move(routes).error();
    }
    if (!routes->empty()) {
      return Error(EEXIST, "verify's sandbox netns has a default route: " + *routes);
    }
  }
  return okStatus();
}

Status TestNetwork::destroy() {
  if (!created_) {
    return okStatus();
  }
  created_ = false;
  std::string errors;
  // Deleting the namespaces deletes the veths inside them, and so their peers.
  for (const std::string& name : {prefix_ + "-sb", prefix_ + "-net"}) {
    if (pathExists(netnsPath(name))) {
      auto r = runTool({"ip", "netns", "delete", name});
      if (!r.ok()) {
        errors += r.error().message() + "; ";
      }
    }
  }
  // The namespaces' veths are torn down asynchronously (netns cleanup runs in a kernel
  // work queue), so the host end can vanish between the check and the delete: only a link
  // that is still there after a failed delete is an error.
  const std::string hostLinkPath = "/sys/class/net/" + hostLink_;
  if (pathExists(hostLinkPath)) {
    auto r = runTool({"ip", "link", "delete", hostLink_});
    if (!r.ok() && pathExists(hostLinkPath)) {
      errors += r.error().message() + "; ";
    }
  }
  if (!errors.empty()) {
    return Error(EIO, "removing verify's test network: " + errors);
  }
  return okStatus();
}

void sweepStaleNetworks() {
  DIR* dir = ::opendir("/var/run/netns");
  if (dir == nullptr) {
    return;
  }
  std::vector<std::string> stale;
  while (dirent* e = ::readdir(dir)) {
    std::string name = e->d_name;
    if (!name.starts_with(kNetnsPrefix)) {
      continue;
    }
    pid_t pid = static_cast<pid_t>(std::atol(name.c_str() + std::strlen(kNetnsPrefix)));
    if (!processAlive(pid)) {
      stale.push_back(name);
    }
  }
  ::closedir(dir);
  for (const std::string& name : stale) {
    (void)runTool({"ip", "netns", "delete", name});
    const std::string pid =
        name.substr(std::strlen(kNetnsPrefix), name.rfind('-') - std::strlen(kNetnsPrefix));
    if (pathExists("/sys/class/net/ev" + pid + "h")) {
      (void)runTool({"ip", "link", "delete", "ev" + pid + "h"});
    }
  }
}

}  // namespace egressd::verify
