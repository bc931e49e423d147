// Shell completion for egressctl, generated from the verb and option tables that parsing
// and --help use (cli/commands.h), so a new verb or option completes without more work.
// `egressctl completion bash` prints it; the build also writes it to build/completion/.
#pragma once

#include <string>

namespace egressd::cli {

// A bash script defining and registering _egressctl. Sandbox ids and policy names are asked
// of the daemon (`egressctl __complete sandboxes|policies`, honouring --socket on the line).
std::string bashCompletion();
// The same function for zsh, through bashcompinit; to be sourced from ~/.zshrc.
std::string zshCompletion();

}  // namespace egressd::cli
