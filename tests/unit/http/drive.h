// Test helper: runs a parser over an input delivered in chunks of a given size the way the
// proxy does (unconsumed bytes stay buffered and are fed again with the next chunk) and
// records what happened as short strings, so different splits can be compared exactly.
#pragma once

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "http/parser.h"

namespace egressd::http::testing {

inline std::string describeHead(const RequestHead& head) {
  std::string text = "HEAD " + head.method + " " + head.path + " host=" + head.host;
  for (const Header& header : head.headers) {
    text += " [" + header.name + ": " + header.value + "]";
  }
  return text;
}

inline std::string describeHead(const ResponseHead& head) {
  std::string text = "HEAD " + std::to_string(head.status);
  for (const Header& header : head.headers) {
    text += " [" + header.name + ": " + header.value + "]";
  }
  return text;
}

// Events: "HEAD ..." (with " +END" when the head ends a bodiless message), "BODY <bytes>"
// (all body bytes of a message, merged), "END", "ERROR <status>". chunk 0 = all at once.
template <typename Parser>
std::vector<std::string> drive(Parser& parser, std::string_view input, size_t chunk) {
  std::vector<std::string> events;
  std::string pending;
  std::string body;
  bool inBody = false;
  size_t offset = 0;
  if (chunk == 0) {
    chunk = input.size();
  }
  while (offset < input.size()) {
    const size_t take = std::min(chunk, input.size() - offset);
    pending.append(input.substr(offset, take));
    offset += take;
    for (int guard = 0; guard < 1000000; ++guard) {
      const auto step = parser.feed(pending.data(), pending.size());
      if (step.consumed > pending.size()) {
        events.push_back("CONSUMED TOO MUCH");
        return events;
      }
      const std::string taken = pending.substr(0, step.consumed);
      pending.erase(0, step.consumed);
      using Kind = ParseStep::Kind;
      if (step.kind == Kind::kError) {
        events.push_back("ERROR " + std::to_string(step.status));
        return events;
      }
      if (step.kind == Kind::kHead) {
        events.push_back(describeHead(parser.head()) + (step.endsMessage ? " +END" : ""));
        inBody = !step.endsMessage;
        body.clear();
        continue;
      }
      if (step.kind == Kind::kBody || step.kind == Kind::kMessageEnd) {
        body += taken;
      }
      if (step.kind == Kind::kMessageEnd) {
        events.push_back("BODY " + body);
        events.push_back("END");
        body.clear();
        inBody = false;
        continue;
      }
      if (!pending.empty()) {
        events.push_back("LEFT BYTES BEHIND");  // kNeedMore and kBody take all they are given
      }
      break;  // kNeedMore or kBody: everything fed was taken, wait for more input
    }
  }
  if (inBody && !body.empty()) {
    events.push_back("BODY " + body);
  }
  return events;
}

}  // namespace egressd::http::testing
