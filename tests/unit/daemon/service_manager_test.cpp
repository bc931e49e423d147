// Whether stderr is the journal: JOURNAL_STREAM must name stderr's very file.
#include "daemon/service_manager.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

namespace egressd::daemon {
namespace {

TEST(JournalStream, MatchesOnlyTheNamedDeviceAndInode) {
  EXPECT_TRUE(journalStreamNames("8:12345", 8, 12345));
  EXPECT_FALSE(journalStreamNames("8:12345", 8, 12346));
  EXPECT_FALSE(journalStreamNames("9:12345", 8, 12345));
}

TEST(JournalStream, UnsetOrMalformedIsNotTheJournal) {
  EXPECT_FALSE(journalStreamNames(nullptr, 8, 12345));
  EXPECT_FALSE(journalStreamNames("", 8, 12345));
  EXPECT_FALSE(journalStreamNames("8", 8, 12345));
  EXPECT_FALSE(journalStreamNames("8:12345x", 8, 12345));
  EXPECT_FALSE(journalStreamNames("8:12345:1", 8, 12345));
  EXPECT_FALSE(journalStreamNames("x:y", 0, 0));
}

TEST(JournalStream, StderrIsJournalComparesWithTheRealStderr) {
  struct stat st {};
  ASSERT_EQ(::fstat(STDERR_FILENO, &st), 0);
  const std::string mine = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
  ASSERT_EQ(::setenv("JOURNAL_STREAM", mine.c_str(), 1), 0);
  EXPECT_TRUE(stderrIsJournal());
  const std::string other = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino + 1);
  ASSERT_EQ(::setenv("JOURNAL_STREAM", other.c_str(), 1), 0);
  EXPECT_FALSE(stderrIsJournal());
  ASSERT_EQ(::unsetenv("JOURNAL_STREAM"), 0);
  EXPECT_FALSE(stderrIsJournal());
}

}  // namespace
}  // namespace egressd::daemon
