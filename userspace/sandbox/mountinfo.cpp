#include "sandbox/mountinfo.h"

#include <sstream>

#include "common/fs.h"

namespace egressd::sandbox {
namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo (fs/proc_namespace.c).
std::string unescapeOctal(const std::string& in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '\\' && i + 3 < in.size()) {
      const char a = in[i + 1];
      const char b = in[i + 2];
      const char c = in[i + 3];
      if (a >= '0' && a <= '3' && b >= '0' && b <= '7' && c >= '0' && c <= '7') {
        out += static_cast<char>((a - '0') * 64 + (b - '0') * 8 + (c - '0'));
        i += 3;
        continue;
      }
    }
    out += in[i];
  }
  return out;
}

}  // namespace

std::vector<MountEntry> parseMountInfo(const std::string& text) {
  std::vector<MountEntry> entries;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    std::vector<std::string> f;
    std::string field;
    while (fields >> field) {
      f.push_back(field);
    }
    // id parent major:minor root mountpoint options [optional...] - fstype source superopts
    size_t sep = 6;
    while (sep < f.size() && f[sep] != "-") {
      ++sep;
    }
    if (f.size() < 7 || sep + 1 >= f.size()) {
      continue;
    }
    entries.push_back(MountEntry{unescapeOctal(f[3]), unescapeOctal(f[4]), f[5], f[sep + 1],
                                 sep + 3 < f.size() ? f[sep + 3] : ""});
  }
  return entries;
}

Result<std::vector<MountEntry>> readMountInfo(const std::string& path) {
  auto text = readFile(path);
  if (!text.ok()) {
    return std::move(text).error();
  }
  return parseMountInfo(*text);
}

}  // namespace egressd::sandbox
