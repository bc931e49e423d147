// The replay driver every fuzz target is also linked into (any compiler, no libFuzzer): runs
// each file of the given corpus directories (or files) through LLVMFuzzerTestOneInput, then
// `--iterations` seeded mutations of them (bit flips, byte sets, inserted and erased runs,
// duplicated pieces, splices of two inputs, truncations). CTest runs it over the committed
// corpus as `fuzz.<target>`, so the properties each target checks hold in every build, and
// a libFuzzer finding added to the corpus stays a regression test. A violated property
// aborts (after the target printed what and on which input); the mutated input that did it
// is written to ./fuzz-replay-failure-<target> first.
//
//   egressd_fuzz_<target>_replay [--iterations N] [--seed S] CORPUS_DIR_OR_FILE...
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "mutator.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

std::string currentInput;
std::string failurePath;

// Written before each run, removed after: what remains after an abort is the reproducer.
void runOne(const std::string& input) {
  currentInput = input;
  {
    std::ofstream out(failurePath, std::ios::binary | std::ios::trunc);
    out.write(input.data(), static_cast<std::streamsize>(input.size()));
  }
  // An exact-size heap copy, as libFuzzer passes it: ASan sees any read past the end.
  std::vector<uint8_t> copy(input.begin(), input.end());
  LLVMFuzzerTestOneInput(copy.data(), copy.size());
}

std::string readFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "cannot read %s\n", path.c_str());
    std::exit(2);
  }
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

int main(int argc, char** argv) {
  size_t iterations = 2000;
  uint64_t seed = 0x6567726573736402ULL;
  std::vector<std::string> paths;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--iterations") == 0 && i + 1 < argc) {
      iterations = std::strtoull(argv[++i], nullptr, 10);
    } else if (std::strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
      seed = std::strtoull(argv[++i], nullptr, 0);
    } else if (argv[i][0] == '-') {
      std::fprintf(stderr, "usage: %s [--iterations N] [--seed S] CORPUS_DIR_OR_FILE...\n",
                   argv[0]);
      return 2;
    } else {
      paths.emplace_back(argv[i]);
    }
  }
  const std::string name = std::filesystem::path(argv[0]).filename().string();
  failurePath = "fuzz-replay-failure-" + name;

  std::vector<std::string> corpus;
  for (const std::string& path : paths) {
    if (std::filesystem::is_directory(path)) {
      std::vector<std::filesystem::path> files;
      for (const auto& entry : std::filesystem::directory_iterator(path)) {
        if (entry.is_regular_file()) {
          files.push_back(entry.path());
        }
      }
      std::sort(files.begin(), files.end());  // the same mutations on every machine
      for (const auto& file : files) {
        corpus.push_back(readFile(file));
      }
    } else {
      corpus.push_back(readFile(path));
    }
  }
  if (corpus.empty()) {
    std::fprintf(stderr, "%s: no corpus inputs in the given paths\n", name.c_str());
    return 2;
  }
  for (const std::string& input : corpus) {
    runOne(input);
  }
  egressd::fuzz::Mutator mutator(seed);
  for (size_t i = 0; i < iterations; ++i) {
    runOne(mutator.mutate(corpus[mutator.below(corpus.size())], corpus));
  }
  std::remove(failurePath.c_str());
  std::printf("%s: %zu corpus inputs and %zu mutations passed\n", name.c_str(), corpus.size(),
              iterations);
  return 0;
}
