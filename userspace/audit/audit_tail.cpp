#include "audit/audit_tail.h"

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <vector>

namespace egressd::audit {

Result<AuditTail> readAuditTail(const std::string& path, const AuditQuery& query) {
  AuditTail tail;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (errno == ENOENT) {
      tail.fileExists = false;
      return tail;
    }
    return lastSystemError("cannot read the audit log " + path);
  }
  // The tail only: the last 4 MiB hold far more lines than anyone asks for. A follower
  // reads from its offset, at most that much per call; a log that shrank was rotated or
  // truncated, and is read from its start.
  constexpr std::streamoff kWindow = 4 << 20;
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  std::streamoff from = size > kWindow ? size - kWindow : 0;
  bool partialFirst = from > 0;
  if (query.after) {
    from = static_cast<std::streamoff>(*query.after) <= size
               ? static_cast<std::streamoff>(*query.after)
               : 0;
    partialFirst = false;
  }
  const std::streamoff to = query.after ? std::min(size, from + kWindow) : size;
  in.seekg(from);
  std::string chunk(static_cast<size_t>(to - from), '\0');
  in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
  chunk.resize(static_cast<size_t>(in.gcount()));
  // Only complete lines: a record being written is read by the next call.
  const size_t complete = chunk.rfind('\n') == std::string::npos ? 0 : chunk.rfind('\n') + 1;
  std::vector<nlohmann::json> records;
  size_t start = 0;
  if (partialFirst) {
    start = chunk.find('\n') == std::string::npos ? complete : chunk.find('\n') + 1;
  }
  while (start < complete) {
    const size_t end = chunk.find('\n', start);
    auto j = nlohmann::json::parse(chunk.substr(start, end - start), nullptr, false);
    start = end + 1;
    if (j.is_discarded() || !j.is_object() ||
        (!query.sandbox.empty() && j.value("sandbox", "") != query.sandbox) ||
        (!query.layer.empty() && j.value("layer", "") != query.layer) ||
        (!query.decision.empty() && j.value("decision", "") != query.decision)) {
      continue;
    }
    records.push_back(std::move(j));
  }
  const size_t first =
      !query.after && records.size() > query.lines ? records.size() - query.lines : 0;
  for (size_t i = first; i < records.size(); ++i) {
    tail.records.push_back(std::move(records[i]));
  }
  tail.next = static_cast<uint64_t>(from) + complete;
  return tail;
}

}  // namespace egressd::audit
