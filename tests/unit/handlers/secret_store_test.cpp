// The secret store: API values, policy file/env sources, resolution order, rotation of files
// (rewritten in place and renamed over), per-sandbox names and paths, errors that never carry
// a value, and concurrent use from proxy and API threads.
#include "handlers/secret_store.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <set>
#include <thread>

#include "test_util.h"

namespace egressd::handlers {
namespace {

using testing::TempDir;
using Sources = std::map<std::string, policy::SecretSource>;

policy::SecretSource fileSource(const std::string& path) {
  return policy::SecretSource{policy::SecretSource::Kind::kFile, path, {}};
}

policy::SecretSource envSource(const std::string& variable) {
  return policy::SecretSource{policy::SecretSource::Kind::kEnv, variable, {}};
}

// Rewrites in place: same inode, O_TRUNC.
void writeInPlace(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  ASSERT_TRUE(out.good()) << path;
}

// The way most rotation tools do it: a new file renamed over the old one.
void renameOver(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".new";
  writeInPlace(tmp, content);
  ASSERT_EQ(::rename(tmp.c_str(), path.c_str()), 0) << path;
}

// Backdates mtime, so the store may trust its cached copy (its racy window has passed).
void makeOld(const std::string& path) {
  struct timespec times[2];
  ::clock_gettime(CLOCK_REALTIME, &times[0]);
  times[0].tv_sec -= 3600;
  times[1] = times[0];
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0) << path;
}

std::string getOk(const SecretStore& store, std::string_view name, const Sources& sources,
                  std::string_view sandbox = "sb1") {
  auto value = store.get(name, sandbox, sources);
  EXPECT_TRUE(value.ok()) << name << ": " << value.error().message();
  return value.ok() ? *value : "<error>";
}

Error getError(const SecretStore& store, std::string_view name, const Sources& sources,
               std::string_view sandbox = "sb1") {
  auto value = store.get(name, sandbox, sources);
  EXPECT_FALSE(value.ok()) << name << " resolved";
  return value.ok() ? Error(0, "") : value.error();
}

TEST(SecretStoreTest, ApiValuesSetGetRemoveAndList) {
  SecretStore store;
  ASSERT_TRUE(store.set("B_TOKEN", "b-value").ok());
  ASSERT_TRUE(store.set("A_TOKEN/sb-1.x", "a-value").ok());
  ASSERT_TRUE(store.set("B_TOKEN", "b-value-2").ok());  // replaces
  EXPECT_EQ(getOk(store, "B_TOKEN", {}), "b-value-2");
  EXPECT_EQ(getOk(store, "A_TOKEN/sb-1.x", {}), "a-value");
  EXPECT_EQ(store.apiNames(), (std::vector<std::string>{"A_TOKEN/sb-1.x", "B_TOKEN"}));
  EXPECT_EQ(store.apiValues(), (std::map<std::string, std::string>{{"A_TOKEN/sb-1.x", "a-value"},
                                                                   {"B_TOKEN", "b-value-2"}}));
  EXPECT_TRUE(store.remove("B_TOKEN"));
  EXPECT_FALSE(store.remove("B_TOKEN"));
  const Error gone = getError(store, "B_TOKEN", {});
  EXPECT_EQ(gone.code(), ENOENT);
  EXPECT_EQ(gone.message(),
            "secret B_TOKEN is not set (no API value and no policy source for B_TOKEN)");
}

TEST(SecretStoreTest, SetRejectsBadInputWithoutEchoingTheValue) {
  SecretStore store;
  const std::string value = "hunter2-very-secret";
  for (const std::string name : {"", "A-B", "A/", "A/..", "A/b/c", "/sb", "A B"}) {
    const Status status = store.set(name, value);
    ASSERT_FALSE(status.ok()) << name;
    EXPECT_NE(status.error().message().find("invalid secret name"), std::string::npos);
    EXPECT_EQ(status.error().message().find(value), std::string::npos);
  }
  const std::vector<std::pair<std::string, std::string>> badValues = {
      {"", "the value is empty"},
      {value + "\r\nX-Evil: 1", "the value holds CR, LF or NUL"},
      {value + "\n", "the value holds CR, LF or NUL"},
      {value + std::string(1, '\0'), "the value holds CR, LF or NUL"},
      {value + std::string(kMaxSecretBytes, 'x'), "the value is longer than 8192 bytes"},
  };
  for (const auto& [bad, reason] : badValues) {
    const Status status = store.set("K", bad);
    ASSERT_FALSE(status.ok());
    EXPECT_EQ(status.error().message(), "secret K: " + reason);
  }
  EXPECT_TRUE(store.set("K", std::string(kMaxSecretBytes, 'x')).ok());
  EXPECT_EQ(store.apiNames(), std::vector<std::string>{"K"});
}

TEST(SecretStoreTest, ApiValueBeatsPolicySource) {
  TempDir dir;
  writeInPlace(dir.file("gh"), "from-file\n");
  const Sources sources = {{"GH", fileSource(dir.file("gh"))}};
  SecretStore store;
  EXPECT_EQ(getOk(store, "GH", sources), "from-file");
  ASSERT_TRUE(store.set("GH", "from-api").ok());
  EXPECT_EQ(getOk(store, "GH", sources), "from-api");
  store.remove("GH");
  EXPECT_EQ(getOk(store, "GH", sources), "from-file");
}

TEST(SecretStoreTest, PerSandboxNamesNeverFallBackToTheSharedApiValue) {
  TempDir dir;
  writeInPlace(dir.file("key-sbA"), "file-a\n");
  const Sources sources = {{"KEY", fileSource(dir.path() + "/key-${sandbox}")}};
  SecretStore store;
  ASSERT_TRUE(store.set("KEY", "shared-api").ok());
  ASSERT_TRUE(store.set("KEY/sbB", "api-b").ok());
  EXPECT_EQ(getOk(store, "KEY/sbB", sources), "api-b");
  EXPECT_EQ(getOk(store, "KEY/sbA", sources), "file-a");  // not "shared-api"
  const Error none = getError(store, "KEY/sbC", sources);
  EXPECT_EQ(none.code(), ENOENT);
  EXPECT_NE(none.message().find(dir.path() + "/key-sbC"), std::string::npos) << none.message();
  EXPECT_EQ(getError(store, "OTHER/sbA", {}).message(),
            "secret OTHER/sbA is not set (no API value for OTHER/sbA and no policy source for "
            "OTHER)");
}

TEST(SecretStoreTest, SandboxPlaceholderInFilePaths) {
  TempDir dir;
  writeInPlace(dir.file("sb1.token"), "t1");
  writeInPlace(dir.file("sb2.token"), "t2");
  const Sources sources = {{"T", fileSource(dir.path() + "/${sandbox}.token")}};
  SecretStore store;
  // "T": the sandbox asking; "T/sb2": the sandbox named in the secret.
  EXPECT_EQ(getOk(store, "T", sources, "sb1"), "t1");
  EXPECT_EQ(getOk(store, "T", sources, "sb2"), "t2");
  EXPECT_EQ(getOk(store, "T/sb2", sources, "sb1"), "t2");
  // An id that could climb out of the directory is refused before any path is built.
  const Error climb = getError(store, "T", sources, "..");
  EXPECT_EQ(climb.code(), EINVAL);
  EXPECT_NE(climb.message().find("needs a sandbox id"), std::string::npos);
  EXPECT_FALSE(store.get("T", "", sources).ok());
  EXPECT_FALSE(store.get("T", "a/b", sources).ok());
}

TEST(SecretStoreTest, FileSourceStripsOneTrailingNewline) {
  TempDir dir;
  const Sources sources = {{"F", fileSource(dir.file("f"))}};
  SecretStore store;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"abc", "abc"}, {"abc\n", "abc"}, {"abc\r\n", "abc"}, {"a b\t", "a b\t"}};
  for (const auto& [content, expected] : cases) {
    renameOver(dir.file("f"), content);
    EXPECT_EQ(getOk(store, "F", sources), expected);
  }
  renameOver(dir.file("f"), "abc\n\n");
  const Error twice = getError(store, "F", sources);
  EXPECT_EQ(twice.message(), "secret F: file " + dir.file("f") +
                                 " holds CR, LF or NUL (only one trailing newline is removed)");
  renameOver(dir.file("f"), "\n");
  EXPECT_EQ(getError(store, "F", sources).message(),
            "secret F: file " + dir.file("f") + " is empty");
}

TEST(SecretStoreTest, FileRewrittenInPlaceIsPickedUpAtOnce) {
  TempDir dir;
  const std::string path = dir.file("token");
  writeInPlace(path, "value-1\n");
  const Sources sources = {{"TOK", fileSource(path)}};
  SecretStore store;
  EXPECT_EQ(getOk(store, "TOK", sources), "value-1");
  struct stat before {};
  ASSERT_EQ(::stat(path.c_str(), &before), 0);
  // Same size, same inode, within the same clock tick as the first write most likely.
  writeInPlace(path, "value-2\n");
  struct stat after {};
  ASSERT_EQ(::stat(path.c_str(), &after), 0);
  ASSERT_EQ(before.st_ino, after.st_ino);
  EXPECT_EQ(getOk(store, "TOK", sources), "value-2");
}

TEST(SecretStoreTest, FileRenamedOverIsPickedUp) {
  TempDir dir;
  const std::string path = dir.file("token");
  writeInPlace(path, "old-value");
  makeOld(path);
  const Sources sources = {{"TOK", fileSource(path)}};
  SecretStore store;
  EXPECT_EQ(getOk(store, "TOK", sources), "old-value");
  renameOver(path, "new-value");
  makeOld(path);  // even an old mtime: the inode changed
  EXPECT_EQ(getOk(store, "TOK", sources), "new-value");
}

TEST(SecretStoreTest, UnchangedFileIsReadOnceAndChangesAreSeen) {
  TempDir dir;
  const std::string path = dir.file("token");
  writeInPlace(path, "cached-1");
  makeOld(path);
  const Sources sources = {{"TOK", fileSource(path)}};
  SecretStore store;
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(getOk(store, "TOK", sources), "cached-1");
  }
  EXPECT_EQ(store.fileReads(), 1u);
  // Rewritten in place with the same size and its mtime set back to the old value: the
  // ctime still changed, so the store reads it again.
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  writeInPlace(path, "cached-2");
  const struct timespec times[2] = {st.st_atim, st.st_mtim};
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0);
  EXPECT_EQ(getOk(store, "TOK", sources), "cached-2");
  EXPECT_EQ(store.fileReads(), 2u);
  // A recently changed file is re-read until it has been stable for a while.
  writeInPlace(path, "fresh-3");
  EXPECT_EQ(getOk(store, "TOK", sources), "fresh-3");
  EXPECT_EQ(getOk(store, "TOK", sources), "fresh-3");
  EXPECT_EQ(store.fileReads(), 4u);
}

TEST(SecretStoreTest, EnvSource) {
  const char* variable = "EGRESSD_HANDLERS_TEST_SECRET";
  const Sources sources = {{"E", envSource(variable)}};
  SecretStore store;
  ::unsetenv(variable);
  const Error unset = getError(store, "E", sources);
  EXPECT_EQ(unset.code(), ENOENT);
  EXPECT_EQ(unset.message(),
            "secret E: environment variable EGRESSD_HANDLERS_TEST_SECRET is not set");
  ASSERT_EQ(::setenv(variable, "env-value", 1), 0);
  EXPECT_EQ(getOk(store, "E", sources), "env-value");
  EXPECT_EQ(getOk(store, "E/sb9", sources), "env-value");  // per-sandbox name, base source
  ASSERT_EQ(::setenv(variable, "env-value\nX: y", 1), 0);
  const Error broken = getError(store, "E", sources);
  EXPECT_EQ(broken.message(),
            "secret E: environment variable EGRESSD_HANDLERS_TEST_SECRET holds CR or LF");
  ASSERT_EQ(::setenv(variable, "", 1), 0);
  EXPECT_NE(getError(store, "E", sources).message().find("is empty"), std::string::npos);
  ::unsetenv(variable);
}

TEST(SecretStoreTest, ErrorsNameTheSourceButNeverTheContent) {
  TempDir dir;
  const std::string content = "top-secret-content";
  SecretStore store;

  const Sources missing = {{"M", fileSource(dir.file("absent"))}};
  const Error absent = getError(store, "M", missing);
  EXPECT_EQ(absent.code(), ENOENT);
  EXPECT_EQ(absent.message(),
            "secret M: file " + dir.file("absent") + ": No such file or directory");

  writeInPlace(dir.file("crlf"), content + "\r" + content + "\n");
  const Error crlf = getError(store, "C", {{"C", fileSource(dir.file("crlf"))}});
  EXPECT_NE(crlf.message().find(dir.file("crlf")), std::string::npos);
  EXPECT_EQ(crlf.message().find(content), std::string::npos);

  writeInPlace(dir.file("big"), content + std::string(kMaxSecretBytes, 'x'));
  const Error big = getError(store, "B", {{"B", fileSource(dir.file("big"))}});
  EXPECT_EQ(big.code(), EFBIG);
  EXPECT_EQ(big.message(), "secret B: file " + dir.file("big") + " is larger than 8192 bytes");

  ASSERT_EQ(::mkdir(dir.file("adir").c_str(), 0700), 0);
  EXPECT_EQ(getError(store, "D", {{"D", fileSource(dir.file("adir"))}}).message(),
            "secret D: file " + dir.file("adir") + " is not a regular file");

  // A FIFO where the file should be: refused, not a hang.
  ASSERT_EQ(::mkfifo(dir.file("fifo").c_str(), 0600), 0);
  EXPECT_NE(getError(store, "P", {{"P", fileSource(dir.file("fifo"))}})
                .message()
                .find("is not a regular file"),
            std::string::npos);

  EXPECT_EQ(getError(store, "bad name", {}).message(), "invalid secret name \"bad name\"");
}

TEST(SecretStoreTest, FileDeletedAfterUseIsAnErrorNotAStaleValue) {
  TempDir dir;
  const std::string path = dir.file("token");
  writeInPlace(path, "was-here");
  makeOld(path);
  const Sources sources = {{"TOK", fileSource(path)}};
  SecretStore store;
  EXPECT_EQ(getOk(store, "TOK", sources), "was-here");
  ASSERT_EQ(::unlink(path.c_str()), 0);
  EXPECT_EQ(getError(store, "TOK", sources).code(), ENOENT);
}

TEST(SecretStoreTest, ConcurrentGetSetAndRotation) {
  TempDir dir;
  const std::string path = dir.file("token");
  writeInPlace(path, "file-a");
  const Sources sources = {{"TOK", fileSource(path)}};
  SecretStore store;
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0};
  std::atomic<long> reads{0};

  std::vector<std::thread> readers;
  for (int t = 0; t < 4; ++t) {
    readers.emplace_back([&] {
      while (!stop.load()) {
        auto value = store.get("TOK", "sb1", sources);
        // A rename is atomic, so there is always a whole file or an API value to be had.
        const bool sane = value.ok() && (*value == "file-a" || *value == "file-b" ||
                                         (value->rfind("api-", 0) == 0 && value->size() == 8));
        if (!sane) {
          bad.fetch_add(1);
        }
        reads.fetch_add(1);
      }
    });
  }
  std::thread apiWriter([&] {
    for (int i = 0; i < 2000; ++i) {
      char value[16];
      std::snprintf(value, sizeof(value), "api-%04d", i);
      EXPECT_TRUE(store.set("TOK", value).ok());
      store.apiNames();
      store.apiValues();
      if (i % 2 == 0) {
        store.remove("TOK");
      }
    }
  });
  std::thread rotator([&] {
    for (int i = 0; i < 300; ++i) {
      renameOver(path, i % 2 == 0 ? "file-b" : "file-a");
    }
  });
  apiWriter.join();
  rotator.join();
  stop.store(true);
  for (std::thread& reader : readers) {
    reader.join();
  }
  EXPECT_EQ(bad.load(), 0);
  EXPECT_GT(reads.load(), 0);
}

}  // namespace
}  // namespace egressd::handlers
