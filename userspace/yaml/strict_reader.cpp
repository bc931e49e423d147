#include "yaml/strict_reader.h"

#include <yaml-cpp/eventhandler.h>

#include <algorithm>
#include <map>
#include <sstream>

namespace egressd::yaml {

namespace {

// Sees each document's start and whether it holds anything, without building nodes.
class DocumentScan : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override {
    start = mark;
    content = false;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override { content = true; }
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {
    content = true;
  }
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    content = true;
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    content = true;
  }
  void OnMapEnd() override {}

  YAML::Mark start;
  bool content = false;
};

nlohmann::json toJsonAt(const Field& field, int depth, size_t& budget) {
  if (depth > kMaxJsonDepth) {
    fail(field, "nested more than " + std::to_string(kMaxJsonDepth) + " levels deep");
  }
  if (budget == 0) {
    fail(field, "too large (more than " + std::to_string(kMaxJsonNodes) + " values)");
  }
  --budget;
  const YAML::Node& node = field.node;
  if (node.IsNull()) {
    return nullptr;
  }
  if (node.IsSequence()) {
    nlohmann::json array = nlohmann::json::array();
    for (const Field& element : elements(field, "values")) {
      array.push_back(toJsonAt(element, depth + 1, budget));
    }
    return array;
  }
  if (node.IsMap()) {
    nlohmann::json object = nlohmann::json::object();
    for (const auto& [key, value] : entries(field)) {
      object[key.node.Scalar()] = toJsonAt(value, depth + 1, budget);
    }
    return object;
  }
  const std::string text = node.Scalar();
  // Quoted scalars ("!" tag) and explicit tags stay strings; plain ones resolve as in the
  // YAML 1.2 core schema, so `status: 405` is a number and `value: "405"` a string.
  if (node.Tag() != "?") {
    return text;
  }
  if (text == "null" || text == "Null" || text == "NULL" || text == "~") {
    return nullptr;
  }
  if (text == "true" || text == "True" || text == "TRUE") {
    return true;
  }
  if (text == "false" || text == "False" || text == "FALSE") {
    return false;
  }
  nlohmann::json number = nlohmann::json::parse(text, nullptr, false);
  if (!number.is_discarded() && number.is_number()) {
    return number;
  }
  return text;
}

}  // namespace

SourcePos positionOf(const YAML::Mark& mark) {
  if (mark.line < 0 || mark.column < 0) {
    return {};
  }
  return {mark.line + 1, mark.column + 1};
}

std::string quote(std::string_view text) {
  return "\"" + std::string(text) + "\"";
}

void fail(const SourcePos& pos, const std::string& path, const std::string& message) {
  throw FieldError{pos, path, message};
}

std::vector<std::pair<Field, Field>> entries(const Field& map, KeyPath keyPath) {
  if (!map.node.IsMap()) {
    fail(map, "expected a mapping (key: value)");
  }
  std::vector<std::pair<Field, Field>> out;
  std::map<std::string, SourcePos> seen;
  for (auto it = map.node.begin(); it != map.node.end(); ++it) {
    const SourcePos keyPos = positionOf(it->first.Mark());
    if (!it->first.IsScalar()) {
      fail(keyPos, map.path, "keys must be plain strings");
    }
    const std::string key = it->first.Scalar();
    std::string childPath;
    if (keyPath == KeyPath::kQuoted) {
      childPath = map.path + "[" + quote(key) + "]";
    } else {
      childPath = map.path.empty() ? key : map.path + "." + key;
    }
    if (auto [prev, inserted] = seen.emplace(key, keyPos); !inserted) {
      fail(keyPos, childPath,
           "duplicate key (first at line " + std::to_string(prev->second.line) + ")");
    }
    // A null value's own mark points at whatever token follows; the key is where it is.
    const SourcePos valuePos = it->second.IsNull() ? keyPos : positionOf(it->second.Mark());
    out.push_back({Field{it->first, childPath, keyPos}, Field{it->second, childPath, valuePos}});
  }
  return out;
}

std::vector<Field> elements(const Field& seq, const std::string& what) {
  if (!seq.node.IsSequence()) {
    fail(seq, "expected a list of " + what);
  }
  std::vector<Field> out;
  size_t index = 0;
  for (const auto& element : seq.node) {
    SourcePos pos = positionOf(element.Mark());
    if (pos.line == 0) {
      pos = seq.pos;
    }
    out.push_back(Field{element, seq.path + "[" + std::to_string(index) + "]", pos});
    ++index;
  }
  return out;
}

std::string scalar(const Field& field, const std::string& what) {
  if (field.isNull()) {
    fail(field, "missing value (expected " + what + ")");
  }
  if (!field.node.IsScalar()) {
    fail(field, "expected " + what);
  }
  return field.node.Scalar();
}

bool boolean(const Field& field) {
  const std::string text = scalar(field, "true or false");
  if (text == "true" || text == "True" || text == "TRUE") {
    return true;
  }
  if (text == "false" || text == "False" || text == "FALSE") {
    return false;
  }
  fail(field, "expected true or false, got " + quote(text));
}

long integer(const Field& field, long min, long max) {
  const std::string range = std::to_string(min) + ".." + std::to_string(max);
  const std::string text = scalar(field, "an integer in " + range);
  bool digits = !text.empty() && text.size() <= 9 &&
                std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
  const long value = digits ? std::stol(text) : -1;
  if (!digits || value < min || value > max) {
    fail(field, "expected an integer in " + range + ", got " + quote(text));
  }
  return value;
}

nlohmann::json toJson(const Field& field, size_t& nodeBudget) {
  return toJsonAt(field, 0, nodeBudget);
}

// Not YAML::LoadAll: in yaml-cpp 0.7 a ',' at document level (",name: x") makes the parser
// yield an empty document without consuming anything, so LoadAll allocates documents until
// memory runs out. The event parser can be stopped, and a document that starts where the
// previous one did is exactly that stray token.
YAML::Node loadSingleDocument(const std::string& text, std::string_view where) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  DocumentScan scan;
  int previousStart = -1;
  for (int count = 0; parser.HandleNextDocument(scan); ++count) {
    if (scan.start.pos == previousStart) {
      const auto at = static_cast<size_t>(scan.start.pos);
      const char c = at < text.size() ? text[at] : '?';
      fail(positionOf(scan.start), "", std::string("YAML syntax error: unexpected '") + c + "'");
    }
    if (count > 0 && scan.content) {
      fail(positionOf(scan.start), "",
           "only one YAML document is allowed in " + std::string(where));
    }
    previousStart = scan.start.pos;
  }
  return YAML::Load(text);
}

void Diagnostics::warn(const SourcePos& pos, const std::string& path, const std::string& message) {
  warnings_.push_back(source_ + ":" + std::to_string(pos.line) + ":" + std::to_string(pos.column) +
                      ": " + path + ": " + message);
}

void Diagnostics::rejectUnknownKeys(const Field& map,
                                    const std::vector<std::pair<Field, Field>>& items,
                                    const std::vector<std::string>& known) {
  for (const auto& [key, value] : items) {
    const std::string name = key.node.Scalar();
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      error(key.pos, map.path, "unknown key '" + name + "'" + didYouMean(name, known));
    }
  }
}

}  // namespace egressd::yaml
