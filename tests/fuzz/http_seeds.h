// Seed inputs for the HTTP parser fuzzers: valid traffic and the smuggling shapes the unit
// tests reject, so mutations start next to the interesting boundaries.
#pragma once

#include <string>
#include <vector>

namespace egressd::http::fuzz {

std::vector<std::string> requestSeeds();
std::vector<std::string> responseSeeds();

// Fragments that mutations splice in: framing tokens, line endings, separators.
std::vector<std::string> dictionary();

}  // namespace egressd::http::fuzz
