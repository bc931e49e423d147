#include "daemon/run_env.h"

#include <algorithm>
#include <cerrno>
#include <map>

#include "common/fs.h"

namespace egressd::daemon {
namespace {

bool isVariableName(const std::string& name) {
  if (name.empty() || (name[0] >= '0' && name[0] <= '9')) {
    return false;
  }
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

std::string nameOf(const std::string& entry) {
  return entry.substr(0, entry.find('='));
}

}  // namespace

bool isAllowlistedVariable(const std::string& name) {
  static const std::set<std::string> kNames = {"PATH", "TERM", "LANG", "LANGUAGE", "TZ"};
  return kNames.count(name) != 0 || name.starts_with("LC_");
}

void setVariable(std::vector<std::string>& env, const std::string& name, const std::string& value) {
  std::erase_if(env, [&name](const std::string& e) { return nameOf(e) == name; });
  env.push_back(name + "=" + value);
}

Result<std::vector<std::string>> buildRunEnvironment(const RunEnvironmentInput& in) {
  std::map<std::string, std::string> inherited;
  for (const std::string& e : in.inherited) {
    const size_t eq = e.find('=');
    if (eq != std::string::npos && eq > 0) {
      inherited.emplace(e.substr(0, eq), e.substr(eq + 1));
    }
  }
  std::map<std::string, std::string> out;
  for (const auto& [name, value] : inherited) {
    if (isAllowlistedVariable(name)) {
      out[name] = value;
    }
  }
  if (out.count("PATH") == 0) {
    out["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  }
  out["HOME"] = in.home.empty() ? "/" : in.home;
  out["USER"] = in.userName;
  out["LOGNAME"] = in.userName;

  auto refuseSecret = [&in](const std::string& name, const std::string& where) -> Status {
    if (in.secretVariables.count(name) != 0) {
      return Error(EINVAL, where + ": " + name +
                               " is a secret source of the policy (secrets: {env: " + name +
                               "}); egressd injects it, the command must not see it");
    }
    return okStatus();
  };
  for (const std::string& file : in.envFiles) {
    auto text = readFile(file);
    if (!text.ok()) {
      return Error(text.error().code(), "--env-file: " + text.error().message());
    }
    size_t pos = 0;
    int line = 0;
    while (pos < text->size()) {
      size_t end = text->find('\n', pos);
      if (end == std::string::npos) {
        end = text->size();
      }
      std::string l = text->substr(pos, end - pos);
      pos = end + 1;
      ++line;
      if (!l.empty() && l.back() == '\r') {
        l.pop_back();
      }
      const size_t first = l.find_first_not_of(" \t");
      if (first == std::string::npos || l[first] == '#') {
        continue;
      }
      const std::string where = "--env-file " + file + ":" + std::to_string(line);
      const size_t eq = l.find('=');
      const std::string name = eq == std::string::npos ? "" : l.substr(0, eq);
      if (!isVariableName(name)) {
        return Error(EINVAL, where + ": expected NAME=VALUE");
      }
      EGRESSD_TRY(refuseSecret(name, where));
      out[name] = l.substr(eq + 1);
    }
  }
  for (const std::string& arg : in.envArgs) {
    const size_t eq = arg.find('=');
    const std::string name = arg.substr(0, eq);
    if (!isVariableName(name)) {
      return Error(EINVAL, "--env '" + name + "': expected NAME or NAME=VALUE");
    }
    EGRESSD_TRY(refuseSecret(name, "--env " + name));
    if (eq != std::string::npos) {
      out[name] = arg.substr(eq + 1);
    } else if (auto it = inherited.find(name); it != inherited.end()) {
      out[name] = it->second;
    }
  }
  // However it got here (an allowlisted name used as a secret source), it goes.
  for (const std::string& secret : in.secretVariables) {
    out.erase(secret);
  }
  std::vector<std::string> env;
  env.reserve(out.size());
  for (const auto& [name, value] : out) {
    env.push_back(name + "=" + value);
  }
  return env;
}

}  // namespace egressd::daemon
