// Reading the audit log back (GET /v1/audit, `egressctl audit tail [-f]`): the last records,
// or those written after a byte offset, filtered by sandbox, layer and decision. Only
// complete lines are read, so a record being written is read by the next call.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace egressd::audit {

struct AuditQuery {
  size_t lines = 50;
  std::string sandbox;  // "" = any; likewise layer and decision
  std::string layer;
  std::string decision;
  // Set: the records written after this byte offset of the log (a previous answer's
  // "next"), for `audit tail -f`; unset: the last `lines` records.
  std::optional<uint64_t> after;
};

struct AuditTail {
  nlohmann::json records = nlohmann::json::array();
  uint64_t next = 0;  // the offset to follow from
  // False when the log does not exist yet (nothing decided: it is created with its first
  // record).
  bool fileExists = true;
};

// Errors name the file and carry errno.
Result<AuditTail> readAuditTail(const std::string& path, const AuditQuery& query);

}  // namespace egressd::audit
