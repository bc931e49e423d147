// Deterministic stand-in for the ClientHello libFuzzer target, run by CTest with any
// compiler: real hellos written by OpenSSL plus synthetic ones, then seeded mutations of
// them (bit flips, byte sets, truncations, length-field edits, inserted/removed/duplicated
// bytes, re-framing, splices) go through checkClientHelloParser. A failure prints the input
// and aborts.
//
//   egressd_client_hello_fuzz_replay [--iterations N] [--seed S]
//   egressd_client_hello_fuzz_replay --write-seeds DIR     (libFuzzer corpus)
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "client_hello_check.h"
#include "client_hello_seeds.h"
#include "mutator.h"
#include "tls/client_hello.h"

namespace {

using egressd::tls::fuzz::clientHelloSeeds;

// ClientHello-specific edits on top of the generic ones: record, handshake and inner length
// fields moved by small and boundary amounts, and the handshake re-framed into records of
// random sizes.
class HelloMutator {
 public:
  explicit HelloMutator(uint64_t seed) : mutator_(seed) {}

  uint64_t below(uint64_t bound) { return mutator_.below(bound); }

  std::string mutate(const std::string& input, const std::vector<std::string>& pool) {
    return mutator_.mutate(
        input, pool, [this](std::string& s) { helloEdit(s); }, 5);
  }

 private:
  // Adds `delta` to the big-endian number of `width` bytes at `pos`.
  static void addTo(std::string& input, size_t pos, size_t width, int64_t delta) {
    if (pos + width > input.size()) {
      return;
    }
    uint64_t value = 0;
    for (size_t i = 0; i < width; ++i) {
      value = (value << 8) | static_cast<uint8_t>(input[pos + i]);
    }
    value += static_cast<uint64_t>(delta);
    for (size_t i = width; i-- > 0;) {
      input[pos + i] = static_cast<char>(value & 0xff);
      value >>= 8;
    }
  }

  void helloEdit(std::string& input) {
    static constexpr int64_t kDeltas[] = {-1, 1, -2, 2, -4, 4, 255, -256, 0x4000, 0x10000};
    const int64_t delta = kDeltas[below(sizeof(kDeltas) / sizeof(kDeltas[0]))];
    switch (below(3)) {
      case 0:  // the record or handshake length of the first record
        if (below(2) == 0) {
          addTo(input, 3, 2, delta);
        } else {
          addTo(input, 6, 3, delta);
        }
        break;
      case 1:  // some 1- or 2-byte length further in (extension and list lengths)
        addTo(input, below(input.size() + 1), below(2) == 0 ? 2 : 1, delta);
        break;
      default: {  // re-frame the handshake bytes into records of random sizes
        const std::string message = egressd::tls::fuzz::handshakeBytes(input);
        if (!message.empty()) {
          std::vector<size_t> sizes;
          for (size_t i = 0, n = 1 + below(4); i < n; ++i) {
            sizes.push_back(1 + below(message.size()));
          }
          input = egressd::tls::fuzz::reframe(message, sizes);
        }
        break;
      }
    }
  }

  egressd::fuzz::Mutator mutator_;
};

void checkOne(const std::string& input) {
  egressd::tls::fuzz::checkClientHelloParser(reinterpret_cast<const uint8_t*>(input.data()),
                                             input.size());
}

int writeSeeds(const char* dir) {
  int count = 0;
  if (!egressd::fuzz::writeSeedFiles(dir, clientHelloSeeds(), count)) {
    return 1;
  }
  std::printf("wrote %d seed files\n", count);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  size_t iterations = 10000;
  uint64_t seed = 0x6567726573736401ULL;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--write-seeds") == 0 && i + 1 < argc) {
      return writeSeeds(argv[i + 1]);
    }
    if (std::strcmp(argv[i], "--iterations") == 0 && i + 1 < argc) {
      iterations = std::strtoull(argv[++i], nullptr, 10);
    } else if (std::strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
      seed = std::strtoull(argv[++i], nullptr, 0);
    } else {
      std::fprintf(stderr, "usage: %s [--iterations N] [--seed S] | --write-seeds DIR\n", argv[0]);
      return 2;
    }
  }

  const std::vector<std::string> seeds = clientHelloSeeds();
  size_t complete = 0;
  for (const std::string& input : seeds) {
    checkOne(input);
  }
  HelloMutator mutator(seed);
  size_t statuses[5] = {};
  for (size_t i = 0; i < iterations; ++i) {
    const std::string input = mutator.mutate(seeds[mutator.below(seeds.size())], seeds);
    checkOne(input);
    const auto status = egressd::tls::parseClientHello(input).status;
    ++statuses[static_cast<int>(status)];
    complete += status == egressd::tls::ClientHelloParse::Status::kComplete ? 1 : 0;
  }
  std::printf(
      "checked %zu seeds and %zu mutated inputs (needMore %zu, complete %zu, notTls %zu, "
      "malformed %zu, tooLarge %zu)\n",
      seeds.size(), iterations, statuses[0], statuses[1], statuses[2], statuses[3], statuses[4]);
  // A mutator that never produced a valid hello would test only the error paths.
  if (iterations >= 1000 && complete * 20 < iterations) {
    std::fprintf(stderr, "too few mutated inputs parsed completely (%zu)\n", complete);
    return 1;
  }
  return 0;
}
