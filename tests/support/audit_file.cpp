#include "audit_file.h"

#include <algorithm>
#include <sstream>
#include <thread>

#include "common/fs.h"

namespace egressd::test {

Result<std::vector<nlohmann::json>> readAuditRecords(const std::string& path) {
  std::vector<nlohmann::json> records;
  if (!pathExists(path)) {
    return records;  // nothing written yet
  }
  auto text = readFile(path);
  if (!text.ok()) {
    return std::move(text).error();
  }
  std::istringstream in(*text);
  std::string line;
  size_t lineNo = 0;
  while (std::getline(in, line)) {
    ++lineNo;
    if (in.eof()) {
      break;  // a line still being written (no newline yet)
    }
    auto record = nlohmann::json::parse(line, nullptr, false);
    if (record.is_discarded() || !record.is_object()) {
      return Error(EINVAL, path + ":" + std::to_string(lineNo) + ": not a JSON object: " + line);
    }
    records.push_back(std::move(record));
  }
  return records;
}

Result<std::vector<nlohmann::json>> pollAuditRecords(
    const std::string& path, const std::function<bool(const std::vector<nlohmann::json>&)>& done,
    milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto records = readAuditRecords(path);
    if (!records.ok() || done(*records) || std::chrono::steady_clock::now() >= deadline) {
      return records;
    }
    std::this_thread::sleep_for(milliseconds(50));
  }
}

Result<nlohmann::json> waitForAuditRecord(const std::string& path, const AuditMatch& match,
                                          milliseconds timeout) {
  auto anyMatch = [&](const std::vector<nlohmann::json>& records) {
    return std::any_of(records.begin(), records.end(), match);
  };
  auto records = pollAuditRecords(path, anyMatch, timeout);
  if (!records.ok()) {
    return std::move(records).error();
  }
  for (const auto& r : *records) {
    if (match(r)) {
      return r;
    }
  }
  std::string seen;
  for (const auto& r : *records) {
    seen += "\n  " + r.dump();
  }
  return Error(ETIMEDOUT, "no matching audit record within " + std::to_string(timeout.count()) +
                              " ms; records:" + (seen.empty() ? " none" : seen));
}

Result<size_t> waitForAuditRecordCount(const std::string& path, const AuditMatch& match,
                                       size_t count, milliseconds timeout) {
  auto countOf = [&](const std::vector<nlohmann::json>& records) {
    return static_cast<size_t>(std::count_if(records.begin(), records.end(), match));
  };
  auto records = pollAuditRecords(
      path, [&](const auto& r) { return countOf(r) >= count; }, timeout);
  if (!records.ok()) {
    return std::move(records).error();
  }
  return countOf(*records);
}

}  // namespace egressd::test
