#include "http_fuzz.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "http/http.h"

namespace egressd::http::fuzz {
namespace {

using Kind = ParseStep::Kind;

// The input being checked, for the failure report.
std::string_view currentInput;

[[noreturn]] void fail(const char* what, const std::string& detail = "") {
  std::fprintf(stderr, "HTTP parser property violated: %s %s\ninput (%zu bytes): \"", what,
               detail.c_str(), currentInput.size());
  for (char ch : currentInput) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '\\' || c == '"') {
      std::fprintf(stderr, "\\%c", c);
    } else if (c >= 0x20 && c < 0x7f) {
      std::fputc(c, stderr);
    } else {
      std::fprintf(stderr, "\\x%02x", c);
    }
  }
  std::fprintf(stderr, "\"\n");
  std::abort();
}

void check(bool condition, const char* what, const std::string& detail = "") {
  if (!condition) {
    fail(what, detail);
  }
}

uint64_t fnv1a(const uint8_t* data, size_t size) {
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < size; ++i) {
    hash = (hash ^ data[i]) * 0x100000001b3ULL;
  }
  return hash;
}

uint64_t splitmix(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::string describe(const RequestHead& head) {
  std::string text = head.method + " " + head.path + " " + head.authority + "|" + head.host + "|" +
                     std::to_string(head.versionMinor) + (head.keepAlive ? "k" : "") +
                     (head.chunked ? "c" : "") + (head.hasBody ? "b" : "") +
                     (head.upgrade ? "u" : "") + (head.expectContinue ? "e" : "") +
                     (head.contentLength ? std::to_string(*head.contentLength) : "-");
  for (const Header& header : head.headers) {
    text += "|" + header.name + ":" + header.value;
  }
  return text;
}

std::string describe(const ResponseHead& head) {
  std::string text = std::to_string(head.status) + " " + std::to_string(head.versionMinor) +
                     (head.keepAlive ? "k" : "");
  for (const Header& header : head.headers) {
    text += "|" + header.name + ":" + header.value;
  }
  return text;
}

void checkHeaders(const std::vector<Header>& headers) {
  for (const Header& header : headers) {
    check(isToken(header.name), "header name is not a token", header.name);
    for (char c : header.value) {
      const auto u = static_cast<unsigned char>(c);
      check(!((u < 0x20 && c != '\t') || u == 0x7f), "CTL in header value");
    }
    check(header.value.empty() || (header.value.front() != ' ' && header.value.front() != '\t' &&
                                   header.value.back() != ' ' && header.value.back() != '\t'),
          "header value not trimmed", header.value);
  }
}

// The proxy forwards serializeRequestHead(head): it must mean the same thing upstream.
void checkRoundTrip(const RequestHead& head) {
  check(!head.method.empty(), "empty method");
  check(!head.path.empty() && (head.path.front() == '/' || head.path == "*"),
        "path not in origin-form", head.path);
  checkHeaders(head.headers);
  const std::string wire = serializeRequestHead(head);
  RequestParser again;
  const ParseStep step = again.feed(wire.data(), wire.size());
  check(step.kind == Kind::kHead, "re-serialized head does not parse", wire + " " + step.reason);
  check(step.consumed == wire.size(), "re-serialized head not consumed whole");
  check(step.endsMessage == !head.hasBody, "re-serialized head changes body framing");
  RequestHead expected = head;
  expected.target = head.path;
  expected.authority.clear();
  check(describe(again.head()) == describe(expected), "re-serialized head differs",
        describe(again.head()) + " vs " + describe(expected));
}

struct Outcome {
  std::vector<std::string> events;
  bool failed = false;
  bool endState = false;  // betweenMessages() / finishAtEof()
};

template <typename Parser>
class Runner {
 public:
  explicit Runner(Parser& parser) : parser_(parser) {}

  // Feeds one chunk (as the proxy would: buffered bytes not yet consumed come first).
  void deliver(std::string_view chunk) {
    pending_.append(chunk);
    for (int rounds = 0; !outcome_.failed; ++rounds) {
      check(rounds < 1000000, "parser makes no progress");
      // A separate exact-size allocation per feed: ASan flags any read past its end.
      const size_t len = pending_.size();
      std::unique_ptr<char[]> buffer(new char[len == 0 ? 1 : len]);
      if (len > 0) {
        std::memcpy(buffer.get(), pending_.data(), len);
      }
      const ParseStep step = parser_.feed(len == 0 ? nullptr : buffer.get(), len);
      check(step.consumed <= len, "consumed more than given");
      const std::string taken = pending_.substr(0, step.consumed);
      pending_.erase(0, step.consumed);
      switch (step.kind) {
        case Kind::kError: {
          check(step.status >= 400 && step.status <= 599, "error without an error status");
          check(!step.reason.empty(), "error without a reason");
          const ParseStep again = parser_.feed("x", 1);
          check(again.kind == Kind::kError && again.consumed == 0 && again.status == step.status,
                "kError is not final");
          outcome_.events.push_back("ERROR");
          outcome_.failed = true;
          return;
        }
        case Kind::kHead:
          check(!inBody_, "kHead inside a message body");
          onHead(step);
          if (step.endsMessage) {
            outcome_.events.push_back("END");
          } else {
            inBody_ = true;
            body_.clear();
          }
          continue;
        case Kind::kBody:
          check(inBody_, "kBody outside a message body");
          check(pending_.empty(), "kBody left bytes behind");
          body_ += taken;
          return;
        case Kind::kMessageEnd:
          check(inBody_, "kMessageEnd outside a message body");
          body_ += taken;
          outcome_.events.push_back("BODY " + body_);
          outcome_.events.push_back("END");
          body_.clear();
          inBody_ = false;
          continue;
        case Kind::kNeedMore:
          check(!inBody_, "kNeedMore inside a message body");
          check(pending_.empty(), "kNeedMore left bytes behind");
          return;
      }
    }
  }

  Outcome finish(bool endState) {
    if (!outcome_.failed) {
      if (inBody_ && !body_.empty()) {
        outcome_.events.push_back("BODY " + body_);
      }
      outcome_.endState = endState;
    }
    return outcome_;
  }

 private:
  void onHead(const ParseStep& step) {
    check(step.consumed > 0, "empty head");
    outcome_.events.push_back("HEAD " + describe(parser_.head()));
    if constexpr (std::is_same_v<Parser, RequestParser>) {
      checkRoundTrip(parser_.head());
    } else {
      const int status = parser_.head().status;
      check(status >= 100 && status <= 999, "status out of range");
      checkHeaders(parser_.head().headers);
    }
  }

  Parser& parser_;
  std::string pending_;
  std::string body_;
  bool inBody_ = false;
  Outcome outcome_;
};

// How to split: 0 = whole, 1 = byte by byte, otherwise pseudo-random pieces from `seed`.
std::vector<size_t> splits(size_t size, int mode, uint64_t seed) {
  std::vector<size_t> pieces;
  if (mode == 0) {
    pieces.push_back(size);
    return pieces;
  }
  size_t left = size;
  while (left > 0) {
    size_t piece = 1;
    if (mode != 1) {
      const uint64_t r = splitmix(seed);
      piece = (r & 3) == 0 ? 1 + (r >> 8) % 3 : 1 + (r >> 8) % 64;
    }
    piece = std::min(piece, left);
    pieces.push_back(piece);
    left -= piece;
  }
  return pieces;
}

void compareOutcomes(const Outcome& a, const Outcome& b, const char* what) {
  if (a.failed != b.failed || a.events != b.events || a.endState != b.endState) {
    std::string detail = std::string(what) + ":";
    for (const auto* o : {&a, &b}) {
      detail += "\n  [";
      for (const std::string& e : o->events) {
        detail += e.substr(0, 200) + ", ";
      }
      detail += o->failed ? "failed" : (o->endState ? "end" : "open");
      detail += "]";
    }
    fail("splits disagree", detail);
  }
}

}  // namespace

void checkRequestParser(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  currentInput = input;
  const uint64_t hash = fnv1a(data, size);
  // Small limits for some inputs, so the limit paths get exercised by short inputs too.
  RequestLimits limits;
  if ((hash & 7) == 0) {
    limits.maxHeadBytes = 40 + (hash >> 8) % 200;
    limits.maxHeaders = 1 + (hash >> 16) % 8;
    limits.maxTargetBytes = 1 + (hash >> 24) % 40;
  }
  Outcome reference;
  for (int mode = 0; mode < 3; ++mode) {
    RequestParser parser(limits);
    Runner<RequestParser> runner(parser);
    size_t offset = 0;
    for (size_t piece : splits(size, mode, hash)) {
      runner.deliver(input.substr(offset, piece));
      offset += piece;
    }
    const Outcome outcome = runner.finish(parser.betweenMessages());
    if (mode == 0) {
      reference = outcome;
    } else {
      compareOutcomes(reference, outcome, mode == 1 ? "whole vs byte-by-byte" : "whole vs random");
    }
  }
}

void checkResponseParser(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  currentInput = input;
  const uint64_t hash = fnv1a(data, size);
  const size_t maxHead = (hash & 7) == 0 ? 40 + (hash >> 8) % 200 : 64 * 1024;
  static constexpr const char* kMethods[] = {"GET", "HEAD", "POST", "CONNECT"};
  const char* method = kMethods[(hash >> 32) % 4];
  Outcome reference;
  for (int mode = 0; mode < 3; ++mode) {
    ResponseParser parser(maxHead);
    parser.expectResponseTo(method);
    Runner<ResponseParser> runner(parser);
    size_t offset = 0;
    for (size_t piece : splits(size, mode, hash)) {
      runner.deliver(input.substr(offset, piece));
      offset += piece;
    }
    const Outcome outcome = runner.finish(parser.finishAtEof());
    if (mode == 0) {
      reference = outcome;
    } else {
      compareOutcomes(reference, outcome, mode == 1 ? "whole vs byte-by-byte" : "whole vs random");
    }
  }
}

}  // namespace egressd::http::fuzz
