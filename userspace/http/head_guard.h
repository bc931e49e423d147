// Internal to egressd_http. The byte-level gate in front of llhttp for message heads: line
// endings, the shape of the start line, obs-fold and the size limits. It sees every head byte
// before llhttp does and tells the parser where the head ends, so llhttp is only ever given
// approved head bytes, and every limit trips at the same byte however the input is split.
// llhttp alone is not enough here: even in its strict build it accepts RTSP/ICE request lines,
// double spaces in the request line and obs-fold, and the Debian build is the loose one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace egressd::http::detail {

class HeadGuard {
 public:
  enum class Kind { kRequest, kResponse };

  struct Limits {
    size_t maxHeadBytes = 0;
    size_t maxHeaders = SIZE_MAX;      // header lines after the start line
    size_t maxTargetBytes = SIZE_MAX;  // request-target (requests only)
  };

  struct Scan {
    size_t consumed = 0;     // head bytes approved (stops right after the blank line)
    bool headEnded = false;  // the blank line ending the head was among them
    int status = 0;          // non-zero: rejected at data[consumed]
    std::string_view reason;
  };

  HeadGuard(Kind kind, Limits limits) : kind_(kind), limits_(limits) {}

  Scan scan(const char* data, size_t len);
  void reset();

  // Head bytes seen for the current message, leading empty lines included.
  size_t bytesSeen() const { return seen_; }

 private:
  Scan reject(size_t at, int status, std::string_view reason) const;
  // Returns 0 or the status of a rejection (reason in failReason_).
  int onStartLineByte(unsigned char c);
  int onStartLineEnd();

  Kind kind_;
  Limits limits_;
  std::string_view failReason_;

  size_t seen_ = 0;
  bool prevCr_ = false;
  size_t lineLen_ = 0;  // bytes of the current line, CR excluded
  size_t lineNo_ = 0;   // 0: start line (not yet seen), 1..: header lines
  size_t headerLines_ = 0;

  // Request line: METHOD SP target SP protocol.
  size_t spaces_ = 0;
  char method_[8] = {};  // first bytes of the method (enough to recognize PRI)
  size_t methodLen_ = 0;
  size_t targetLen_ = 0;
  char targetFirst_ = 0;
  char protocol_[12] = {};
  size_t protocolLen_ = 0;
  // Status line: "HTTP/1.x SP".
  char statusPrefix_[9] = {};
};

}  // namespace egressd::http::detail
