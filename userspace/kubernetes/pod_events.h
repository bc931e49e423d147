// The Kubernetes API's pod documents as egressd reads them: a PodList (GET /api/v1/pods) and
// the lines of a watch stream (?watch=1), each line one event {"type", "object"}. Pure: JSON
// text in, records out; nothing here talks to a server (api_client does, pod_watcher uses
// both). Only the fields egressd acts on are kept; everything else is ignored, so a newer API
// server adding fields changes nothing.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace egressd::kubernetes {

struct PodRecord {
  std::string uid;
  std::string ns;  // metadata.namespace
  std::string name;
  std::string nodeName;         // spec.nodeName
  std::string phase;            // status.phase: Pending, Running, Succeeded, Failed, Unknown
  std::string qosClass;         // status.qosClass: Guaranteed, Burstable, BestEffort ("" = unset)
  std::string resourceVersion;  // metadata.resourceVersion
  bool terminating = false;     // metadata.deletionTimestamp is set (graceful deletion)
  std::map<std::string, std::string> annotations;

  // "namespace/name", as kubectl names a pod.
  std::string key() const { return ns + "/" + name; }
};

struct PodList {
  std::string resourceVersion;  // the list's metadata.resourceVersion: where a watch starts
  std::vector<PodRecord> pods;
};

// A Status object (an API error: the body of a non-2xx answer, or a watch ERROR event).
struct ApiStatus {
  int code = 0;        // HTTP-like code: 410 = the resourceVersion is too old (Gone/Expired)
  std::string reason;  // "Expired", "Gone", "Forbidden", ...
  std::string message;
};

enum class WatchEventType { kAdded, kModified, kDeleted, kBookmark, kError };

struct WatchEvent {
  WatchEventType type = WatchEventType::kError;
  // ADDED/MODIFIED/DELETED: the pod. BOOKMARK: only pod.resourceVersion is meaningful.
  PodRecord pod;
  ApiStatus status;  // ERROR
};

// Errors (EBADMSG) say what is missing or malformed; a pod without uid, namespace or name is
// malformed (every pod the API server sends has them).
Result<PodList> parsePodList(std::string_view body);
Result<WatchEvent> parseWatchEvent(std::string_view line);
// A Status body; one that is not JSON or not a Status gives code 0 and the text as message.
ApiStatus parseApiStatus(std::string_view body, int httpStatus);

}  // namespace egressd::kubernetes
