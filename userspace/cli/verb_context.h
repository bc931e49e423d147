// What the verb table's build functions (cli/verbs.cpp) share with the parser
// (cli/commands.cpp): the context a verb fills its Command from, and the argument helpers.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cli/commands.h"
#include "control/api.h"

namespace egressd::cli {

namespace detail {

Error usage(const std::string& message);  // code kExitUsage
std::string sandboxPath(const std::string& id);
// Secret names may hold '/' ("API_KEY/sb1"): each segment encoded, the slashes kept.
std::string secretPath(const std::string& name);
Result<nlohmann::json> parseJsonObject(const std::string& text, const std::string& what);
// One trailing newline is what `echo`, heredocs and editors add; the value is the rest.
std::string stripOneNewline(std::string text);
// Not-a-usage error (exit 1) naming `what` when the file cannot be read.
Result<std::string> readInputFile(const Inputs& inputs, const std::string& path,
                                  const std::string& what);

}  // namespace detail

// What a verb's build function sees: its positionals, options and inputs, and the command
// it fills.
struct VerbContext {
  const Verb& verb;
  Command& command;
  const std::vector<std::string>& pos;
  const std::vector<std::string>& trailing;
  const std::map<std::string, std::vector<std::string>>& options;
  const Inputs& inputs;

  std::optional<std::string> option(const std::string& name) const {
    auto it = options.find(name);
    if (it == options.end() || it->second.empty()) {
      return std::nullopt;
    }
    return it->second.back();
  }
  std::vector<std::string> all(const std::string& name) const {
    auto it = options.find(name);
    return it == options.end() ? std::vector<std::string>{} : it->second;
  }
  bool flag(const std::string& name) const { return options.contains(name); }
  std::string sandboxPath() const {
    return "/v1/sandboxes/" + control::percentEncode(command.sandbox);
  }
  void request(std::string method, std::string path, nlohmann::json body = nullptr) {
    command.method = std::move(method);
    command.path = std::move(path);
    command.body = std::move(body);
  }
  // {"handler": NAME, "params": --params} for the handler verbs.
  Result<nlohmann::json> handlerBody(const std::string& handler) const {
    nlohmann::json body = {{"handler", handler}};
    if (auto text = option("params")) {
      auto params = detail::parseJsonObject(*text, "--params");
      if (!params.ok()) {
        return std::move(params).error();
      }
      body["params"] = *params;
    }
    return body;
  }
};

}  // namespace egressd::cli
