// The seeded mutator every replay driver uses (replay_main.cpp for all targets, and the
// HTTP and ClientHello generators that add edits of their own): deterministic for a seed,
// so a failing mutation is reproduced by re-running with the same --seed.
#pragma once

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace egressd::fuzz {

class Mutator {
 public:
  // `specials`: the bytes that mean something to the parser under test (delimiters, escape
  // and length characters); a byte set picks from them half of the time.
  explicit Mutator(uint64_t seed,
                   std::string_view specials = std::string_view("\0\xff\x7f\x80\r\n \"${}%/.", 14))
      : rng_(seed), specials_(specials) {}

  uint64_t below(uint64_t bound) { return bound == 0 ? 0 : rng_() % bound; }

  // One edit (mostly) or a few. A target-specific `domainEdit` (length fields, framing,
  // dictionary tokens) is chosen `domainWeight` times in (domainWeight + 8), a generic
  // byte-level edit otherwise.
  std::string mutate(std::string input, const std::vector<std::string>& pool,
                     const std::function<void(std::string&)>& domainEdit = {},
                     uint64_t domainWeight = 0) {
    const int rounds = below(3) == 0 ? 2 + static_cast<int>(below(3)) : 1;
    for (int i = 0; i < rounds; ++i) {
      if (domainEdit && below(domainWeight + 8) < domainWeight) {
        domainEdit(input);
      } else {
        genericEdit(input, pool);
      }
    }
    return input;
  }

  // Bit flips, byte sets, inserted and erased runs, duplicated pieces, splices of two
  // inputs, small moves of a byte (length and count fields), truncations.
  void genericEdit(std::string& input, const std::vector<std::string>& pool) {
    const size_t pos = below(input.size() + 1);
    switch (below(8)) {
      case 0:
        if (!input.empty()) {
          input[pos % input.size()] ^= static_cast<char>(1u << below(8));
        }
        break;
      case 1:
        if (!input.empty()) {
          input[pos % input.size()] = below(2) == 0 || specials_.empty()
                                          ? static_cast<char>(below(256))
                                          : specials_[below(specials_.size())];
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
      case 5:
        if (!pool.empty()) {
          const std::string& other = pool[below(pool.size())];
          input = input.substr(0, pos) + other.substr(below(other.size() + 1));
        }
        break;
      case 6:
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

 private:
  std::mt19937_64 rng_;
  std::string specials_;
};

// Writes `seeds` as DIR/seed-N files for a libFuzzer corpus, N counting on from `next`;
// false and a message on the first file that cannot be written.
inline bool writeSeedFiles(const std::string& dir, const std::vector<std::string>& seeds,
                           int& next) {
  for (const std::string& seed : seeds) {
    const std::string path = dir + "/seed-" + std::to_string(next++);
    std::ofstream out(path, std::ios::binary);
    out.write(seed.data(), static_cast<std::streamsize>(seed.size()));
    if (!out) {
      std::fprintf(stderr, "cannot write %s\n", path.c_str());
      return false;
    }
  }
  return true;
}

}  // namespace egressd::fuzz
