// Where a YAML document is wrong, in the form editors and compilers use
// ("FILE:LINE:COL: PATH: MESSAGE"), and the "did you mean" hint for a misspelt name. Free of
// yaml-cpp, so a model that keeps positions for later messages (policy.h) need not include it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace egressd::yaml {

// Where something was written, for messages about it after parsing (1-based; 0 = unknown).
struct SourcePos {
  int line = 0;
  int column = 0;
};

// One problem found in a document, with where it is.
struct Diagnostic {
  std::string source;  // the file name (or the API's "source"); "" when message names it
  SourcePos pos;       // 0:0 when the problem has no place (an unreadable file)
  std::string path;    // the key path, "allow[2].ports"; empty for the document itself
  std::string message;
  // "FILE:LINE:COL: PATH: MESSAGE"; the position and the path are left out when unknown.
  std::string text() const;
};

// Levenshtein distance (insert, delete, substitute each cost 1).
size_t editDistance(std::string_view a, std::string_view b);

// " (did you mean 'enableInternet'?)" naming the closest candidate (the earlier one on a tie)
// when it is close enough, case ignored: 1 edit for words under 5 characters, else 2. Else "".
std::string didYouMean(std::string_view word, const std::vector<std::string>& candidates);

}  // namespace egressd::yaml
