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
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "http_fuzz.h"
#include "http_seeds.h"

namespace {

using egressd::http::fuzz::dictionary;
using egressd::http::fuzz::requestSeeds;
using egressd::http::fuzz::responseSeeds;

class Mutator {
 public:
  explicit Mutator(uint64_t seed) : rng_(seed), dictionary_(dictionary()) {}

  std::string mutate(std::string input, const std::vector<std::string>& pool) {
    // Mostly a single mutation: a head with several is rarely still valid enough to reach
    // the body and pipelining logic.
    const int rounds = below(4) == 0 ? 2 + static_cast<int>(below(3)) : 1;
    for (int i = 0; i < rounds; ++i) {
      mutateOnce(input, pool);
    }
    return input;
  }

  uint64_t below(uint64_t bound) { return bound == 0 ? 0 : rng_() % bound; }

 private:
  void mutateOnce(std::string& input, const std::vector<std::string>& pool) {
    const size_t pos = below(input.size() + 1);
    switch (below(8)) {
      case 0:
        if (!input.empty()) {
          input[pos % input.size()] ^= static_cast<char>(1u << below(8));
        }
        break;
      case 1:
        if (!input.empty()) {
          input[pos % input.size()] = static_cast<char>(below(256));
        }
        break;
      case 2:
        input.insert(pos, dictionary_[below(dictionary_.size())]);
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
      case 6:
        if (!input.empty()) {
          static constexpr char kSpecial[] = {'\r', '\n', ' ', '\t', ':', '0', ';', ','};
          input[pos % input.size()] = kSpecial[below(sizeof(kSpecial))];
        }
        break;
      default:
        input.resize(pos);
        break;
    }
  }

  std::mt19937_64 rng_;
  std::vector<std::string> dictionary_;
};

void checkBoth(const std::string& input) {
  const auto* bytes = reinterpret_cast<const uint8_t*>(input.data());
  egressd::http::fuzz::checkRequestParser(bytes, input.size());
  egressd::http::fuzz::checkResponseParser(bytes, input.size());
}

int writeSeeds(const char* requestDir, const char* responseDir) {
  int count = 0;
  for (const auto& [dir, seeds] :
       {std::pair{requestDir, requestSeeds()}, std::pair{responseDir, responseSeeds()}}) {
    for (const std::string& seed : seeds) {
      const std::string path = std::string(dir) + "/seed-" + std::to_string(count++);
      std::ofstream out(path, std::ios::binary);
      out.write(seed.data(), static_cast<std::streamsize>(seed.size()));
      if (!out) {
        std::fprintf(stderr, "cannot write %s\n", path.c_str());
        return 1;
      }
    }
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
  Mutator mutator(seed);
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
