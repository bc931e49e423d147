// Fuzz replay over parseResponse: mutations of valid responses (bit flips, cuts, inserted
// bytes, planted compression pointers, edited counts) from a fixed seed, so a failure
// reproduces exactly. The parser must return, never crash or hang (run it under ASan via
// scripts/test-sanitizers.sh for out-of-bounds reads), and what it accepts must make sense.
#include <gtest/gtest.h>

#include <chrono>
#include <random>
#include <vector>

#include "dns/message.h"
#include "dns_test_util.h"

namespace egressd::dns {
namespace {

using testing::aaaaRdata;
using testing::aRdata;
using testing::encode;
using testing::nameRdata;
using testing::Response;
using testing::Rr;

constexpr uint16_t kId = 0xa11c;

std::vector<std::vector<uint8_t>> seeds() {
  std::vector<std::vector<uint8_t>> out;
  Response a;
  a.id = kId;
  a.qname = "www.example.test";
  a.qtype = kTypeA;
  a.answers = {Rr{"www.example.test", kTypeCname, 60, nameRdata("cdn.example.test")},
               Rr{"cdn.example.test", kTypeA, 30, aRdata("198.18.0.1")},
               Rr{"cdn.example.test", kTypeA, 30, aRdata("198.18.0.2")}};
  out.push_back(encode(a));
  Response aaaa = a;
  aaaa.qtype = kTypeAaaa;
  aaaa.answers = {Rr{"www.example.test", kTypeAaaa, 60, aaaaRdata("2001:db8::1")}};
  out.push_back(encode(aaaa));
  Response nx = a;
  nx.flags = 0x8183;
  nx.answers.clear();
  out.push_back(encode(nx));
  // Compressed: owners point at the question, the CNAME target ends in a pointer.
  std::vector<uint8_t> compressed = {0xa1, 0x1c, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0};
  testing::appendName(compressed, "www.example.test");
  compressed.insert(compressed.end(), {0, 1, 0, 1});
  compressed.insert(compressed.end(),
                    {0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 6, 3, 'c', 'd', 'n', 0xc0, 16});
  const auto cdn = static_cast<uint8_t>(compressed.size() - 6);
  compressed.insert(compressed.end(), {0xc0, cdn, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 198, 18, 7, 7});
  out.push_back(compressed);
  return out;
}

std::vector<uint8_t> mutate(std::vector<uint8_t> msg, std::mt19937& rng) {
  const int rounds = 1 + static_cast<int>(rng() % 4);
  for (int round = 0; round < rounds; ++round) {
    if (msg.empty()) {
      msg.push_back(static_cast<uint8_t>(rng()));
    }
    const size_t at = rng() % msg.size();
    switch (rng() % 8) {
      case 0:  // flip a bit
        msg[at] ^= static_cast<uint8_t>(1u << (rng() % 8));
        break;
      case 1:  // random byte
        msg[at] = static_cast<uint8_t>(rng());
        break;
      case 2:  // cut
        msg.resize(at);
        break;
      case 3:  // insert bytes
        for (unsigned n = rng() % 8; n > 0; --n) {
          msg.insert(msg.begin() + static_cast<std::ptrdiff_t>(at), static_cast<uint8_t>(rng()));
        }
        break;
      case 4:  // plant a compression pointer anywhere in the message
        if (at + 1 < msg.size()) {
          const auto target = static_cast<uint16_t>(rng() % (msg.size() + 4));
          msg[at] = static_cast<uint8_t>(0xc0 | (target >> 8));
          msg[at + 1] = static_cast<uint8_t>(target & 0xff);
        }
        break;
      case 5:  // edit a section count
        if (msg.size() >= 12) {
          msg[4 + 2 * (rng() % 4) + 1] = static_cast<uint8_t>(rng() % 6);
        }
        break;
      case 6:  // a label length byte somewhere
        msg[at] = static_cast<uint8_t>(rng() % 70);
        break;
      default:  // duplicate a slice (more records, longer chains)
        if (msg.size() > 12 && at > 12) {
          const size_t length = 1 + rng() % std::min<size_t>(32, msg.size() - at);
          std::vector<uint8_t> slice(msg.begin() + static_cast<std::ptrdiff_t>(at),
                                     msg.begin() + static_cast<std::ptrdiff_t>(at + length));
          msg.insert(msg.end(), slice.begin(), slice.end());
        }
        break;
    }
  }
  return msg;
}

TEST(DnsFuzzReplayTest, MutatedResponsesNeverCrashOrHang) {
  std::mt19937 rng(20240611);
  const auto corpus = seeds();
  // The question's type follows the 18-byte name "www.example.test" at offset 12.
  auto seedType = [](const std::vector<uint8_t>& seed) {
    return static_cast<uint16_t>((seed[30] << 8) | seed[31]);
  };
  for (const auto& seed : corpus) {
    ASSERT_TRUE(parseResponse(seed, kId, "www.example.test", seedType(seed)).ok());
  }
  const auto start = std::chrono::steady_clock::now();
  int accepted = 0;
  int withAddresses = 0;
  for (int i = 0; i < 20000; ++i) {
    const std::vector<uint8_t>& seed = corpus[rng() % corpus.size()];
    const std::vector<uint8_t> msg = mutate(seed, rng);
    // Mostly the seed's own type, so that the answer-reading paths run.
    const uint16_t qtype = rng() % 8 == 0 ? kTypeCname : seedType(seed);
    auto parsed = parseResponse(msg, kId, "www.example.test", qtype);
    if (!parsed.ok()) {
      ASSERT_EQ(parsed.error().code(), EBADMSG) << parsed.error().message();
      ASSERT_FALSE(parsed.error().message().empty());
      continue;
    }
    ++accepted;
    // Whatever was accepted is consistent with the message it came from.
    ASSERT_GE(msg.size(), kHeaderSize);
    const size_t answerCount = static_cast<size_t>((msg[6] << 8) | msg[7]);
    ASSERT_LE(parsed->addresses.size(), answerCount);
    ASSERT_GE(parsed->rcode, 0);
    ASSERT_LE(parsed->rcode, 15);
    if (parsed->truncated || parsed->rcode != kRcodeNoError) {
      ASSERT_TRUE(parsed->addresses.empty());
    }
    if (parsed->addresses.empty()) {
      ASSERT_EQ(parsed->ttl, 0u);
    } else {
      ++withAddresses;
      ASSERT_LE(parsed->ttl, 0x7fffffffu);
    }
  }
  const auto elapsed = std::chrono::steady_clock::now() - start;
  // The mutations are mild enough that some messages survive: the accepting paths run too.
  EXPECT_GT(accepted, 100);
  EXPECT_GT(withAddresses, 50);
  EXPECT_LT(elapsed, std::chrono::seconds(3));
}

}  // namespace
}  // namespace egressd::dns
