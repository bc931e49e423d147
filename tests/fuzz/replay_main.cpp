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
#include <random>
#include <string>
#include <vector>

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

class Mutator {
 public:
  explicit Mutator(uint64_t seed) : rng_(seed) {}

  uint64_t below(uint64_t bound) { return bound == 0 ? 0 : rng_() % bound; }

  std::string mutate(std::string input, const std::vector<std::string>& pool) {
    const int rounds = below(3) == 0 ? 2 + static_cast<int>(below(4)) : 1;
    for (int i = 0; i < rounds; ++i) {
      const size_t pos = below(input.size() + 1);
      switch (below(8)) {
        case 0:
          if (!input.empty()) {
            input[pos % input.size()] ^= static_cast<char>(1u << below(8));
          }
          break;
        case 1:
          if (!input.empty()) {
            static constexpr char kSpecial[] = {'\0', '\xff', '\x7f', '\x80', '\r', '\n', ' ',
                                                '"',  '$',    '{',    '}',    '%',  '/',  '.'};
            input[pos % input.size()] =
                below(2) == 0 ? static_cast<char>(below(256)) : kSpecial[below(sizeof(kSpecial))];
          }
          break;
        case 2:
          input.insert(pos, 1 + below(4), static_cast<char>(below(256)));
          break;
        case 3:
          input.erase(pos, 1 + below(8));
          break;
        case 4:
          if (pos < input.size()) {
            const std::string piece = input.substr(pos, 1 + below(32));
            input.insert(below(input.size() + 1), piece);
          }
          break;
        case 5: {
          const std::string& other = pool[below(pool.size())];
          input = input.substr(0, pos) + other.substr(below(other.size() + 1));
          break;
        }
        case 6:  // a length or count field moved by a small amount
          if (!input.empty()) {
            input[pos % input.size()] =
                static_cast<char>(input[pos % input.size()] + (below(2) == 0 ? 1 : -1));
          }
          break;
        default:
          input.resize(pos);
          break;
      }
    }
    return input;
  }

 private:
  std::mt19937_64 rng_;
};

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
  Mutator mutator(seed);
  for (size_t i = 0; i < iterations; ++i) {
    runOne(mutator.mutate(corpus[mutator.below(corpus.size())], corpus));
  }
  std::remove(failurePath.c_str());
  std::printf("%s: %zu corpus inputs and %zu mutations passed\n", name.c_str(), corpus.size(),
              iterations);
  return 0;
}
