// Hiding files from a sandboxed command's mount namespace (`egressd run`): the secret files a
// policy names, and egressd's own directories. Planned in the parent (directory listings,
// readlink, stat all allocate); spawn's child carries the plan out with syscalls only.
//
// The unit hidden is a directory, never a single file: a file bound over is unmounted by the
// kernel as soon as the host renames another file over it (how secrets are rotated), which
// would show the new secret to the command. Instead an empty tmpfs is mounted over the
// directory holding the secret, and every other entry of that directory as it was at start is
// bound back from the real one (directories and files) or recreated (symlinks). Entries added
// to that directory later, and entries renamed over, are not visible to the command.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/result.h"

namespace egressd::sandbox {

struct HiddenEntry {
  enum class Kind { kDir, kFile, kSymlink };
  std::string relative;  // path below the hidden directory ("name" or "a/b")
  std::string absolute;  // dir + "/" + relative, where the placeholder is made
  Kind kind = Kind::kFile;
  std::string linkTarget;  // kSymlink
  bool bind = false;       // bind the real entry over the placeholder
};

struct HiddenDir {
  std::string dir;           // canonical absolute path, never "/"
  std::string tmpfsOptions;  // "mode=0755,uid=0,gid=0,size=…": looks like the real directory
  std::vector<HiddenEntry> entries;
};

struct HidePlan {
  std::vector<HiddenDir> dirs;        // parents before children
  std::vector<std::string> warnings;  // e.g. a secret file with other hard links
};

// A directory to replace by an empty one (0755 root, whatever the real one is) that shows only
// `keep` (relative paths; missing ones are skipped). egressd's run directory keeps only the
// sandbox's own CA files.
struct KeepOnly {
  std::string dir;
  std::vector<std::string> keep;
};

// Plans hiding each of `secretPaths` (absolute; "${sandbox}" in a component hides every
// entry that the component could name, whatever the sandbox) and the `keepOnly` directories.
// Secret paths under a keepOnly directory are covered by it. A path whose directory does not
// exist yet is hidden at its nearest existing ancestor (the missing name), so a directory
// created later does not appear either. A final symlink is hidden and its target too.
// Errors: a relative path, a secret directly in "/", a directory too large to re-create.
Result<HidePlan> planHiding(const std::vector<std::string>& secretPaths,
                            const std::vector<KeepOnly>& keepOnly);

}  // namespace egressd::sandbox
