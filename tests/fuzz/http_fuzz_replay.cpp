// Deterministic stand-in for the libFuzzer targets, run by CTest with any compiler: the seed
// inputs plus ~20000 seeded mutations of them go through both parser checks. A failure
// prints the input and aborts, which makes the test fail with a reproducer in its log.
//
//   egressd_http_fuzz_replay [--iterations N] [--seed S]
//   egressd_http_fuzz_replay --write-seeds REQUEST_DIR RESPONSE_DIR   (libFuzzer corpora)
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "http_fuzz.h"
#include "http_seeds.h"
#include "mutator.h"

namespace {

using egressd::http::fuzz::dictionary;
using egressd::http::fuzz::requestSeeds;
using egressd::http::fuzz::responseSeeds;

// HTTP-specific edits on top of the generic ones: framing tokens from the dictionary and
// the bytes that delimit heads, headers and chunk sizes.
class HttpMutator {
 public:
  explicit HttpMutator(uint64_t seed)
      : mutator_(seed, std::string_view("\r\n \t:0;,", 8)), dictionary_(dictionary()) {}

  uint64_t below(uint64_t bound) { return mutator_.below(bound); }

  std::string mutate(const std::string& input, const std::vector<std::string>& pool) {
    return mutator_.mutate(
        input, pool,
        [this](std::string& s) {
          s.insert(mutator_.below(s.size() + 1), dictionary_[mutator_.below(dictionary_.size())]);
        },
        2);
  }

 private:
  egressd::fuzz::Mutator mutator_;
  std::vector<std::string> dictionary_;
};

void checkBoth(const std::string& input) {
  const auto* bytes = reinterpret_cast<const uint8_t*>(input.data());
  egressd::http::fuzz::checkRequestParser(bytes, input.size());
  egressd::http::fuzz::checkResponseParser(bytes, input.size());
}

int writeSeeds(const char* requestDir, const char* responseDir) {
  int count = 0;
  if (!egressd::fuzz::writeSeedFiles(requestDir, requestSeeds(), count) ||
      !egressd::fuzz::writeSeedFiles(responseDir, responseSeeds(), count)) {
    return 1;
  }
  std::printf("wrote %d seed files\n", count);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  size_t iterations = 20000;
  uint64_t seed = 0x6567726573736400ULL;  // "egressd"
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--write-seeds") == 0 && i + 2 < argc) {
      return writeSeeds(argv[i + 1], argv[i + 2]);
    }
    if (std::strcmp(argv[i], "--iterations") == 0 && i + 1 < argc) {
      iterations = std::strtoull(argv[++i], nullptr, 10);
    } else if (std::strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
      seed = std::strtoull(argv[++i], nullptr, 0);
    } else {
      std::fprintf(stderr,
                   "usage: %s [--iterations N] [--seed S] | --write-seeds REQUEST_DIR "
                   "RESPONSE_DIR\n",
                   argv[0]);
      return 2;
    }
  }

  const std::vector<std::string> requests = requestSeeds();
  const std::vector<std::string> responses = responseSeeds();
  std::vector<std::string> pool = requests;
  pool.insert(pool.end(), responses.begin(), responses.end());
  for (const std::string& input : pool) {
    checkBoth(input);
  }
  // Mostly mutations of a request for the request parser and of a response for the response
  // parser (mismatched inputs fail at their first byte and test little); every eighth input
  // goes to both.
  HttpMutator mutator(seed);
  for (size_t i = 0; i < iterations; ++i) {
    const bool request = (i & 1) == 0;
    const std::vector<std::string>& seeds = request ? requests : responses;
    const std::string input = mutator.mutate(seeds[mutator.below(seeds.size())], pool);
    const auto* bytes = reinterpret_cast<const uint8_t*>(input.data());
    if (i % 8 == 7) {
      checkBoth(input);
    } else if (request) {
      egressd::http::fuzz::checkRequestParser(bytes, input.size());
    } else {
      egressd::http::fuzz::checkResponseParser(bytes, input.size());
    }
  }
  std::printf("checked %zu seeds and %zu mutated inputs\n", pool.size(), iterations);
  return 0;
}
