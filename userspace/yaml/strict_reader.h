// A strict walk over a yaml-cpp document that reports every mistake with its place: each
// value is a Field (node, key path, position); the accessors below check its kind and throw
// FieldError with a "FILE:LINE:COL: PATH: MESSAGE"-ready reason when it is wrong, and
// Diagnostics collects those errors so a walk can go on after one and report them all. A
// schema (policy.cpp) says which keys exist and what they mean; this layer only says what a
// well-formed mapping, list, scalar, boolean or integer is, and how deep or large a free-form
// value (turned into JSON) may be.
//
// Strict on purpose: duplicate keys, non-scalar keys, YAML 1.1 booleans ("yes", "on"), empty
// values and a second document are errors, because a configuration that silently means
// something other than what its author wrote is a security bug.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstddef>
#include <new>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "yaml/diagnostic.h"

namespace egressd::yaml {

// yaml-cpp's 0-based mark as a 1-based SourcePos (0:0 when yaml-cpp has none).
SourcePos positionOf(const YAML::Mark& mark);

// `text` in double quotes, for values named in messages.
std::string quote(std::string_view text);

// A YAML node with the path that names it in messages ("allow[0].cidr") and its position.
struct Field {
  YAML::Node node;
  std::string path;
  SourcePos pos;

  bool isNull() const { return node.IsNull(); }
};

// A failed check: thrown by the accessors below and by a schema's own checks, which usually
// sit several levels deep in the walk; Diagnostics::recovering and Diagnostics::run catch it.
struct FieldError {
  SourcePos pos;
  std::string path;
  std::string message;
};
[[noreturn]] void fail(const SourcePos& pos, const std::string& path, const std::string& message);
[[noreturn]] inline void fail(const Field& field, const std::string& message) {
  fail(field.pos, field.path, message);
}

// How a mapping's values are named in paths: "dns.limits" (keys are field names) or
// `outboundByHost["github.com"]` (keys are data, such as host names).
enum class KeyPath { kDotted, kQuoted };

// A mapping's entries in file order, each key and value with its path and position (a null
// value is placed at its key). Fails unless `map` is a mapping with plain, unique keys.
std::vector<std::pair<Field, Field>> entries(const Field& map, KeyPath keyPath = KeyPath::kDotted);

// A list's elements, "path[i]"; `what` names them in "expected a list of WHAT".
std::vector<Field> elements(const Field& seq, const std::string& what);

// A scalar's text; `what` names the expected value in messages ("expected WHAT").
std::string scalar(const Field& field, const std::string& what);

// true/True/TRUE or false/False/FALSE: the YAML 1.2 core schema only, as "yes" or "on"
// would be strings there and guessing would be a bug.
bool boolean(const Field& field);

// Plain decimal digits (at most 9) within [min, max].
long integer(const Field& field, long min, long max);

// A free-form value (handler actions and parameters) as JSON. Plain scalars resolve as in the
// YAML 1.2 core schema (`405` is a number, `"405"` a string). Aliases that expand
// exponentially ("billion laughs") or refer to themselves, which yaml-cpp accepts, are stopped
// by the limits: at most kMaxJsonDepth levels, and `nodeBudget` values in all (shared by
// every call that passes the same budget).
inline constexpr int kMaxJsonDepth = 32;
inline constexpr size_t kMaxJsonNodes = 100000;
nlohmann::json toJson(const Field& field, size_t& nodeBudget);

// The one document in `text`; a second one with content fails with "only one YAML document
// is allowed in WHERE" (a trailing "---" or "..." is harmless). yaml-cpp's syntax errors are
// thrown as YAML::Exception.
YAML::Node loadSingleDocument(const std::string& text, std::string_view where);

// Every error and warning of one document named `source`.
class Diagnostics {
 public:
  explicit Diagnostics(std::string source) : source_(std::move(source)) {}

  const std::string& source() const { return source_; }
  const std::vector<Diagnostic>& errors() const { return errors_; }
  std::vector<std::string> takeWarnings() { return std::move(warnings_); }

  // An error that does not stop the walk.
  void error(const SourcePos& pos, const std::string& path, const std::string& message) {
    errors_.push_back(Diagnostic{source_, pos, path, message});
  }
  // "FILE:LINE:COL: PATH: MESSAGE": valid, but probably not what the author meant.
  void warn(const SourcePos& pos, const std::string& path, const std::string& message);

  // One error per key of `items` (entries of `map`) not in `known`, with a did-you-mean
  // hint; the walk then skips those keys and checks the rest of the mapping too.
  void rejectUnknownKeys(const Field& map, const std::vector<std::pair<Field, Field>>& items,
                         const std::vector<std::string>& known);

  // Runs one independent part of the walk; its FieldError is recorded, the walk goes on.
  template <typename Part>
  void recovering(Part&& part) {
    try {
      part();
    } catch (const FieldError& e) {
      record(e);
    }
  }

  // Runs a whole walk of a document named `documentName` ("policy"). A FieldError or a
  // yaml-cpp exception that escapes it ends it and is recorded after the errors found so far.
  // Running out of memory, or any other exception, replaces them: the walk was cut short at
  // an arbitrary point.
  template <typename Walk>
  void run(std::string_view documentName, Walk&& walk) {
    try {
      walk();
    } catch (const FieldError& e) {
      record(e);
    } catch (const YAML::Exception& e) {
      error(positionOf(e.mark), "", "YAML syntax error: " + e.msg);
    } catch (const std::bad_alloc&) {
      errors_.clear();
      error({}, "", "out of memory while parsing the " + std::string(documentName));
    } catch (const std::exception& e) {
      errors_.clear();
      error({}, "", e.what());
    }
  }

 private:
  void record(const FieldError& e) { error(e.pos, e.path, e.message); }

  std::string source_;
  std::vector<Diagnostic> errors_;
  std::vector<std::string> warnings_;
};

}  // namespace egressd::yaml
