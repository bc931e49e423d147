// Reading a daemon's JSON-lines audit log from a test, as it is being written: complete
// lines only, every one a JSON object (the log promises valid JSON whatever the sandbox
// sent), polled until a record shows up. Shared by both daemon fixtures.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "process.h"

namespace egressd::test {

using AuditMatch = std::function<bool(const nlohmann::json&)>;

// Every complete line of `path` parsed ("" or a missing file: none yet); a line that is
// not a JSON object is an error naming FILE:LINE.
Result<std::vector<nlohmann::json>> readAuditRecords(const std::string& path);
// Polls until `done(records)` or the timeout; the last records read.
Result<std::vector<nlohmann::json>> pollAuditRecords(
    const std::string& path, const std::function<bool(const std::vector<nlohmann::json>&)>& done,
    milliseconds timeout);
// The first record that matches; the error lists every record seen.
Result<nlohmann::json> waitForAuditRecord(const std::string& path, const AuditMatch& match,
                                          milliseconds timeout);
// How many match once at least `count` do or the timeout passes.
Result<size_t> waitForAuditRecordCount(const std::string& path, const AuditMatch& match,
                                       size_t count, milliseconds timeout);

}  // namespace egressd::test
