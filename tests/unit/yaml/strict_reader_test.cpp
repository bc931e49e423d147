// The strict reader on its own: each accessor's accepted forms and its exact failure (place,
// path, message), the free-form JSON limits, the single-document rule, and how Diagnostics
// collects errors so that a walk reports every one of them.
#include "yaml/strict_reader.h"

#include <gtest/gtest.h>

#include <string>

namespace egressd::yaml {
namespace {

Field rootOf(const std::string& text) {
  const YAML::Node node = YAML::Load(text);
  return Field{node, "", positionOf(node.Mark())};
}

// The FieldError `check` throws; a test failure (and an empty error) when it throws none.
template <typename Check>
FieldError failureOf(Check&& check) {
  try {
    check();
  } catch (const FieldError& e) {
    return e;
  }
  ADD_FAILURE() << "no FieldError thrown";
  return {};
}

// "LINE:COL: PATH: MESSAGE" of a failure, for compact expectations.
template <typename Check>
std::string failureText(Check&& check) {
  const FieldError e = failureOf(std::forward<Check>(check));
  return Diagnostic{"f", e.pos, e.path, e.message}.text().substr(2);
}

TEST(StrictReaderTest, PositionIsOneBased) {
  YAML::Mark mark;
  mark.line = 0;
  mark.column = 4;
  EXPECT_EQ(positionOf(mark).line, 1);
  EXPECT_EQ(positionOf(mark).column, 5);
  EXPECT_EQ(positionOf(YAML::Mark::null_mark()).line, 0);
}

TEST(StrictReaderTest, EntriesKeepFileOrderPathsAndPositions) {
  const Field root = rootOf("b: 1\na:\n  c: x\n");
  const auto items = entries(root);
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[0].first.node.Scalar(), "b");
  EXPECT_EQ(items[0].second.path, "b");
  EXPECT_EQ(items[1].first.pos.line, 2);
  const auto inner = entries(items[1].second);
  ASSERT_EQ(inner.size(), 1u);
  EXPECT_EQ(inner[0].second.path, "a.c");
  EXPECT_EQ(inner[0].second.pos.line, 3);
  EXPECT_EQ(inner[0].second.pos.column, 6);
}

TEST(StrictReaderTest, EntriesPlaceANullValueAtItsKey) {
  const auto items = entries(rootOf("first: 1\nempty:\nlast: 2\n"));
  ASSERT_EQ(items.size(), 3u);
  EXPECT_TRUE(items[1].second.isNull());
  EXPECT_EQ(items[1].second.pos.line, 2);
  EXPECT_EQ(items[1].second.pos.column, 1);
}

TEST(StrictReaderTest, EntriesWithQuotedKeyPaths) {
  const Field hosts{YAML::Load("github.com: a\n"), "outboundByHost", {1, 1}};
  const auto items = entries(hosts, KeyPath::kQuoted);
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0].second.path, "outboundByHost[\"github.com\"]");
}

TEST(StrictReaderTest, EntriesRejectDuplicateAndNonScalarKeys) {
  EXPECT_EQ(failureText([] { entries(rootOf("a: 1\nb: 2\na: 3\n")); }),
            "3:1: a: duplicate key (first at line 1)");
  EXPECT_EQ(failureText([] { entries(rootOf("? [x]\n: 1\n")); }),
            "1:3: keys must be plain strings");
  EXPECT_EQ(failureText([] { entries(rootOf("- 1\n")); }), "1:1: expected a mapping (key: value)");
}

TEST(StrictReaderTest, ElementsAreIndexed) {
  const Field list{YAML::Load("[a, b]"), "hosts", {4, 2}};
  const auto items = elements(list, "hosts");
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[1].path, "hosts[1]");
  EXPECT_EQ(items[1].node.Scalar(), "b");
  EXPECT_EQ(failureText([] {
              elements(Field{YAML::Load("x"), "hosts", {2, 8}}, "host globs");
            }),
            "2:8: hosts: expected a list of host globs");
}

TEST(StrictReaderTest, ScalarNamesWhatWasExpected) {
  const Field value{YAML::Load("text"), "name", {1, 7}};
  EXPECT_EQ(scalar(value, "a name"), "text");
  EXPECT_EQ(failureText([] {
              scalar(Field{YAML::Node(), "name", {1, 1}}, "a name");
            }),
            "1:1: name: missing value (expected a name)");
  EXPECT_EQ(failureText([] {
              scalar(Field{YAML::Load("[1]"), "name", {1, 7}}, "a name");
            }),
            "1:7: name: expected a name");
}

TEST(StrictReaderTest, BooleanIsTheYaml12CoreSchemaOnly) {
  for (const char* yes : {"true", "True", "TRUE"}) {
    EXPECT_TRUE(boolean(Field{YAML::Load(yes), "x", {1, 1}})) << yes;
  }
  for (const char* no : {"false", "False", "FALSE"}) {
    EXPECT_FALSE(boolean(Field{YAML::Load(no), "x", {1, 1}})) << no;
  }
  EXPECT_EQ(failureText([] {
              boolean(Field{YAML::Load("yes"), "x", {1, 4}});
            }),
            "1:4: x: expected true or false, got \"yes\"");
}

TEST(StrictReaderTest, IntegerIsPlainDigitsInRange) {
  EXPECT_EQ(integer(Field{YAML::Load("443"), "p", {1, 1}}, 1, 65535), 443);
  EXPECT_EQ(integer(Field{YAML::Load("0"), "p", {1, 1}}, 0, 5), 0);
  for (const char* bad : {"0", "65536", "-1", "+1", "0x10", "1e3", "1234567890", "12 "}) {
    EXPECT_EQ(failureOf([&] {
                integer(Field{YAML::Load(std::string("\"") + bad + "\""), "p", {1, 1}}, 1, 65535);
              }).message,
              std::string("expected an integer in 1..65535, got \"") + bad + "\"")
        << bad;
  }
}

TEST(StrictReaderTest, ToJsonResolvesPlainScalarsAndKeepsQuotedOnesStrings) {
  size_t budget = kMaxJsonNodes;
  const nlohmann::json json =
      toJson(rootOf("{n: 405, s: \"405\", t: true, f: false, z: null, e: ~, f2: 1.5, w: word, "
                    "l: [1, x], m: {k: v}}"),
             budget);
  EXPECT_EQ(json, nlohmann::json::parse(R"({"n": 405, "s": "405", "t": true, "f": false,
      "z": null, "e": null, "f2": 1.5, "w": "word", "l": [1, "x"], "m": {"k": "v"}})"));
  EXPECT_EQ(budget, kMaxJsonNodes - 14);  // the root, 10 values, 2 list elements, 1 map value
}

TEST(StrictReaderTest, ToJsonStopsDeepNesting) {
  std::string deep = "x";
  for (int i = 0; i <= kMaxJsonDepth; ++i) {
    deep = "[" + deep + "]";
  }
  size_t budget = kMaxJsonNodes;
  EXPECT_EQ(failureOf([&] { toJson(rootOf(deep), budget); }).message,
            "nested more than 32 levels deep");
  std::string allowed = "x";
  for (int i = 0; i < kMaxJsonDepth; ++i) {
    allowed = "[" + allowed + "]";
  }
  budget = kMaxJsonNodes;
  EXPECT_NO_THROW(toJson(rootOf(allowed), budget));
}

TEST(StrictReaderTest, ToJsonStopsExponentialAliasesWithTheSharedBudget) {
  // Each level doubles: 2^20 values from a few lines ("billion laughs").
  std::string yaml = "a0: &a0 [x, x]\n";
  for (int i = 1; i <= 20; ++i) {
    yaml += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [*a" + std::to_string(i - 1) +
            ", *a" + std::to_string(i - 1) + "]\n";
  }
  size_t budget = kMaxJsonNodes;
  EXPECT_EQ(failureOf([&] { toJson(rootOf(yaml), budget); }).message,
            "too large (more than 100000 values)");
  // The budget is the caller's: what one value used is gone for the next one.
  budget = 3;
  EXPECT_NO_THROW(toJson(rootOf("[a, b]"), budget));
  EXPECT_EQ(budget, 0u);
  EXPECT_EQ(failureOf([&] { toJson(rootOf("c"), budget); }).message,
            "too large (more than 100000 values)");
}

TEST(StrictReaderTest, SingleDocumentAllowsATrailingMarkerOnly) {
  EXPECT_EQ(loadSingleDocument("a: 1\n", "a file")["a"].as<int>(), 1);
  EXPECT_EQ(loadSingleDocument("a: 1\n---\n", "a file")["a"].as<int>(), 1);
  EXPECT_EQ(loadSingleDocument("a: 1\n...\n", "a file")["a"].as<int>(), 1);
  EXPECT_EQ(failureText([] { loadSingleDocument("a: 1\n---\nb: 2\n", "a test file"); }),
            "2:1: only one YAML document is allowed in a test file");
}

TEST(StrictReaderTest, SingleDocumentStopsOnAStrayComma) {
  // yaml-cpp's LoadAll would allocate empty documents here until memory ran out.
  EXPECT_EQ(failureText([] { loadSingleDocument(",name: x\n", "a file"); }),
            "1:1: YAML syntax error: unexpected ','");
}

TEST(StrictReaderTest, DiagnosticsRecoveringRecordsAndGoesOn) {
  Diagnostics diagnostics("f.yaml");
  int partsRun = 0;
  diagnostics.recovering([&] {
    ++partsRun;
    fail(SourcePos{2, 3}, "a", "first");
  });
  diagnostics.recovering([&] { ++partsRun; });
  diagnostics.recovering([&] {
    ++partsRun;
    fail(SourcePos{5, 1}, "b", "second");
  });
  EXPECT_EQ(partsRun, 3);
  ASSERT_EQ(diagnostics.errors().size(), 2u);
  EXPECT_EQ(diagnostics.errors()[0].text(), "f.yaml:2:3: a: first");
  EXPECT_EQ(diagnostics.errors()[1].text(), "f.yaml:5:1: b: second");
}

TEST(StrictReaderTest, DiagnosticsRejectEveryUnknownKeyWithAHint) {
  Diagnostics diagnostics("f.yaml");
  const Field root = rootOf("name: x\nenableInternt: true\nbogus: 1\n");
  diagnostics.rejectUnknownKeys(root, entries(root), {"name", "enableInternet"});
  ASSERT_EQ(diagnostics.errors().size(), 2u);
  EXPECT_EQ(diagnostics.errors()[0].text(),
            "f.yaml:2:1: unknown key 'enableInternt' (did you mean 'enableInternet'?)");
  EXPECT_EQ(diagnostics.errors()[1].text(), "f.yaml:3:1: unknown key 'bogus'");
}

TEST(StrictReaderTest, DiagnosticsWarningsAreFormattedAndTakenOnce) {
  Diagnostics diagnostics("f.yaml");
  diagnostics.warn({4, 5}, "allow[0]", "odd");
  EXPECT_EQ(diagnostics.takeWarnings(), std::vector<std::string>{"f.yaml:4:5: allow[0]: odd"});
  EXPECT_TRUE(diagnostics.takeWarnings().empty());
  EXPECT_TRUE(diagnostics.errors().empty());
}

TEST(StrictReaderTest, DiagnosticsRunAppendsTheErrorThatEndedTheWalk) {
  Diagnostics diagnostics("f.yaml");
  diagnostics.run("test document", [&] {
    diagnostics.error({1, 1}, "a", "recorded");
    fail(SourcePos{2, 1}, "b", "fatal");
  });
  ASSERT_EQ(diagnostics.errors().size(), 2u);
  EXPECT_EQ(diagnostics.errors()[1].text(), "f.yaml:2:1: b: fatal");
}

TEST(StrictReaderTest, DiagnosticsRunReportsYamlSyntaxErrorsWithTheirPlace) {
  Diagnostics diagnostics("f.yaml");
  diagnostics.run("test document", [] { loadSingleDocument("a: [1, 2\n", "a file"); });
  ASSERT_EQ(diagnostics.errors().size(), 1u);
  EXPECT_EQ(diagnostics.errors()[0].text().rfind("f.yaml:", 0), 0u);
  EXPECT_NE(diagnostics.errors()[0].text().find(": YAML syntax error: "), std::string::npos);
}

TEST(StrictReaderTest, DiagnosticsRunReplacesEverythingWhenMemoryRanOut) {
  Diagnostics diagnostics("f.yaml");
  diagnostics.run("test document", [&] {
    diagnostics.error({1, 1}, "a", "recorded");
    throw std::bad_alloc();
  });
  ASSERT_EQ(diagnostics.errors().size(), 1u);
  EXPECT_EQ(diagnostics.errors()[0].text(),
            "f.yaml: out of memory while parsing the test document");
}

}  // namespace
}  // namespace egressd::yaml
