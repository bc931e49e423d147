// The completion scripts come from the verb table: every verb, group and option is in them,
// and bash accepts the script and completes from it.
#include "cli/completion.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "cli/commands.h"

namespace egressd::cli {
namespace {

TEST(CliCompletion, BashScriptNamesEveryVerbAndOption) {
  const std::string script = bashCompletion();
  for (const Verb& verb : verbTable()) {
    EXPECT_NE(script.find("\"" + verb.name + "\")"), std::string::npos) << verb.name;
  }
  for (const std::string& group : verbGroups()) {
    EXPECT_NE(script.find("    " + group + ") COMPREPLY"), std::string::npos) << group;
  }
  for (const OptionInfo& option : optionTable()) {
    EXPECT_NE(script.find("--" + option.name), std::string::npos) << option.name;
  }
  EXPECT_NE(script.find("complete -o default -F _egressctl egressctl"), std::string::npos);
  EXPECT_NE(zshCompletion().find("bashcompinit && bashcompinit\n"), std::string::npos);
  EXPECT_NE(zshCompletion().find(script), std::string::npos);
}

// Runs the generated script in bash: what does it offer for these words?
std::string complete(const std::string& words) {
  const std::string path = ::testing::TempDir() + "egressctl-completion.bash";
  {
    std::ofstream out(path);
    out << bashCompletion();
  }
  const std::string command = "bash -c 'source " + path + "; COMP_WORDS=(" + words +
                              "); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); _egressctl; "
                              "echo \"${COMPREPLY[*]}\"'";
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) {
    return "popen failed";
  }
  std::string out;
  char buffer[4096];
  while (size_t n = std::fread(buffer, 1, sizeof(buffer), pipe)) {
    out.append(buffer, n);
  }
  EXPECT_EQ(::pclose(pipe), 0) << words;
  return out;
}

TEST(CliCompletion, BashCompletesVerbsSubcommandsAndValues) {
  EXPECT_EQ(complete("egressctl sa"), "sandbox\n");
  EXPECT_EQ(complete("egressctl sandbox \"\""), "create list show delete\n");
  EXPECT_EQ(complete("egressctl audit tail --layer \"\""), "kernel proxy dns control\n");
  EXPECT_EQ(complete("egressctl audit tail --dec"), "--decision\n");
  EXPECT_EQ(complete("egressctl completion \"\""), "bash zsh\n");
  EXPECT_EQ(complete("egressctl --socket /x policy val"), "validate\n");
  // -s takes a value: the word after it is not the verb.
  EXPECT_EQ(complete("egressctl -s sb1 allow-h"), "allow-host\n");
}

}  // namespace
}  // namespace egressd::cli
