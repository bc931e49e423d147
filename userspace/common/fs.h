// Small file helpers whose errors name the path and carry errno text.
#pragma once

#include <string>

#include "common/result.h"

namespace egressd {

Result<std::string> readFile(const std::string& path);
// Writes with a single write(2) (cgroup and proc files need exactly that).
Status writeFile(const std::string& path, const std::string& content);
// Writes to a temp file in the same directory, fsyncs it, renames it over `path` and fsyncs
// the directory: a reader or a crash sees the old file or the new one whole.
Status writeFileAtomic(const std::string& path, const std::string& content, int mode = 0644);
// mkdir -p; existing directories are fine.
Status makeDirs(const std::string& path, int mode = 0755);
bool pathExists(const std::string& path);

}  // namespace egressd
