#include "yaml/diagnostic.h"

#include <algorithm>

#include "common/ascii.h"

namespace egressd::yaml {

std::string Diagnostic::text() const {
  if (source.empty()) {
    return message;  // a message that names its place itself
  }
  std::string out = source;
  if (pos.line > 0) {
    out += ":" + std::to_string(pos.line) + ":" + std::to_string(pos.column);
  }
  out += ": ";
  if (!path.empty()) {
    out += path + ": ";
  }
  return out + message;
}

size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) {
    row[j] = j;
  }
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      const size_t substitute = diagonal + (a[i - 1] == b[j - 1] ? 0 : 1);
      row[j] = std::min({above + 1, row[j - 1] + 1, substitute});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string didYouMean(std::string_view word, const std::vector<std::string>& candidates) {
  const std::string lowered = toLowerAscii(word);
  const size_t allowed = word.size() >= 5 ? 2 : 1;
  std::string best;
  size_t bestDistance = allowed + 1;
  for (const auto& candidate : candidates) {
    const size_t distance = editDistance(lowered, toLowerAscii(candidate));
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best.empty() ? "" : " (did you mean '" + best + "'?)";
}

}  // namespace egressd::yaml
