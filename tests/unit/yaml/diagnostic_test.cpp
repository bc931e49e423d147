// Diagnostic text forms and the did-you-mean hint, independent of any schema.
#include "yaml/diagnostic.h"

#include <gtest/gtest.h>

namespace egressd::yaml {
namespace {

TEST(DiagnosticTest, TextHasFileLineColumnPathAndMessage) {
  EXPECT_EQ((Diagnostic{"p.yaml", {3, 7}, "allow[2].ports", "expected a list"}).text(),
            "p.yaml:3:7: allow[2].ports: expected a list");
}

TEST(DiagnosticTest, TextLeavesOutWhatIsUnknown) {
  EXPECT_EQ((Diagnostic{"p.yaml", {3, 7}, "", "bad"}).text(), "p.yaml:3:7: bad");
  EXPECT_EQ((Diagnostic{"p.yaml", {}, "name", "bad"}).text(), "p.yaml: name: bad");
  EXPECT_EQ((Diagnostic{"p.yaml", {}, "", "cannot read"}).text(), "p.yaml: cannot read");
  // No source: the message names its place itself, so nothing is added.
  EXPECT_EQ((Diagnostic{"", {3, 7}, "name", "whole message"}).text(), "whole message");
}

TEST(DiagnosticTest, EditDistanceCountsInsertDeleteSubstitute) {
  EXPECT_EQ(editDistance("", ""), 0u);
  EXPECT_EQ(editDistance("abc", ""), 3u);
  EXPECT_EQ(editDistance("", "abc"), 3u);
  EXPECT_EQ(editDistance("kitten", "sitting"), 3u);
  EXPECT_EQ(editDistance("allow", "alow"), 1u);
  EXPECT_EQ(editDistance("ab", "ba"), 2u);  // a transposition is two edits
}

TEST(DiagnosticTest, DidYouMeanNamesTheClosestCandidate) {
  const std::vector<std::string> keys = {"name", "enableInternet", "allow", "allowedHosts"};
  EXPECT_EQ(didYouMean("enableInternt", keys), " (did you mean 'enableInternet'?)");
  EXPECT_EQ(didYouMean("allowedHost", keys), " (did you mean 'allowedHosts'?)");
  EXPECT_EQ(didYouMean("alow", keys), " (did you mean 'allow'?)");
}

TEST(DiagnosticTest, DidYouMeanIgnoresCaseButKeepsTheCandidatesSpelling) {
  EXPECT_EQ(didYouMean("ENABLEINTERNET", {"enableInternet"}), " (did you mean 'enableInternet'?)");
}

TEST(DiagnosticTest, DidYouMeanAllowsOneEditForShortWordsAndTwoForLonger) {
  EXPECT_EQ(didYouMean("nam", {"name"}), " (did you mean 'name'?)");
  EXPECT_EQ(didYouMean("nm", {"name"}), "");  // 2 edits, under 5 characters
  EXPECT_EQ(didYouMean("allw", {"allow"}), " (did you mean 'allow'?)");
  EXPECT_EQ(didYouMean("alowd", {"allowed"}), " (did you mean 'allowed'?)");  // 2 edits
  EXPECT_EQ(didYouMean("xyzzy", {"allowed"}), "");
  EXPECT_EQ(didYouMean("anything", {}), "");
}

TEST(DiagnosticTest, DidYouMeanPrefersTheEarlierCandidateOnATie) {
  EXPECT_EQ(didYouMean("cat", {"bat", "hat"}), " (did you mean 'bat'?)");
  EXPECT_EQ(didYouMean("cat", {"hat", "bat"}), " (did you mean 'hat'?)");
}

}  // namespace
}  // namespace egressd::yaml
