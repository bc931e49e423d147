#include "kubernetes/pod_events.h"

#include <cerrno>

#include <nlohmann/json.hpp>

namespace egressd::kubernetes {
namespace {

using nlohmann::json;

Error malformed(const std::string& what) {
  return Error(EBADMSG, what);
}

std::string stringAt(const json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

const json& objectAt(const json& object, const char* key) {
  static const json kEmpty = json::object();
  auto it = object.find(key);
  return it != object.end() && it->is_object() ? *it : kEmpty;
}

Result<json> parseJson(std::string_view text, const char* what) {
  json parsed = json::parse(text, nullptr, false);
  if (parsed.is_discarded() || !parsed.is_object()) {
    return malformed(std::string(what) + " is not a JSON object");
  }
  return parsed;
}

// `requireIdentity`: a pod (not a bookmark's stub) must name itself.
Result<PodRecord> podFromJson(const json& pod, bool requireIdentity) {
  if (!pod.is_object()) {
    return malformed("a pod is not a JSON object");
  }
  const json& metadata = objectAt(pod, "metadata");
  PodRecord record;
  record.uid = stringAt(metadata, "uid");
  record.ns = stringAt(metadata, "namespace");
  record.name = stringAt(metadata, "name");
  record.resourceVersion = stringAt(metadata, "resourceVersion");
  auto deletion = metadata.find("deletionTimestamp");
  record.terminating = deletion != metadata.end() && deletion->is_string();
  for (const auto& [key, value] : objectAt(metadata, "annotations").items()) {
    if (value.is_string()) {
      record.annotations.emplace(key, value.get<std::string>());
    }
  }
  record.nodeName = stringAt(objectAt(pod, "spec"), "nodeName");
  const json& status = objectAt(pod, "status");
  record.phase = stringAt(status, "phase");
  record.qosClass = stringAt(status, "qosClass");
  if (requireIdentity && (record.uid.empty() || record.ns.empty() || record.name.empty())) {
    return malformed("a pod without metadata.uid, .namespace or .name (" + record.ns + "/" +
                     record.name + ")");
  }
  return record;
}

ApiStatus statusFromJson(const json& object, int fallbackCode) {
  ApiStatus status;
  auto code = object.find("code");
  status.code = code != object.end() && code->is_number_integer() ? code->get<int>() : fallbackCode;
  status.reason = stringAt(object, "reason");
  status.message = stringAt(object, "message");
  return status;
}

}  // namespace

Result<PodList> parsePodList(std::string_view body) {
  auto parsed = parseJson(body, "the pod list");
  if (!parsed.ok()) {
    return std::move(parsed).error();
  }
  if (stringAt(*parsed, "kind") != "PodList") {
    return malformed("expected kind PodList, got '" + stringAt(*parsed, "kind") + "'");
  }
  PodList list;
  list.resourceVersion = stringAt(objectAt(*parsed, "metadata"), "resourceVersion");
  if (list.resourceVersion.empty()) {
    return malformed("the pod list has no metadata.resourceVersion to watch from");
  }
  auto items = parsed->find("items");
  if (items == parsed->end() || items->is_null()) {
    return list;  // an empty list may come as "items": null
  }
  if (!items->is_array()) {
    return malformed("the pod list's items is not an array");
  }
  for (const json& item : *items) {
    auto pod = podFromJson(item, true);
    if (!pod.ok()) {
      return std::move(pod).error().wrap("pod list");
    }
    list.pods.push_back(std::move(*pod));
  }
  return list;
}

Result<WatchEvent> parseWatchEvent(std::string_view line) {
  auto parsed = parseJson(line, "a watch event");
  if (!parsed.ok()) {
    return std::move(parsed).error();
  }
  const std::string type = stringAt(*parsed, "type");
  auto object = parsed->find("object");
  if (object == parsed->end() || !object->is_object()) {
    return malformed("watch event " + type + " has no object");
  }
  WatchEvent event;
  if (type == "ERROR") {
    event.type = WatchEventType::kError;
    event.status = statusFromJson(*object, 0);
    return event;
  }
  if (type == "BOOKMARK") {
    event.type = WatchEventType::kBookmark;
    event.pod.resourceVersion = stringAt(objectAt(*object, "metadata"), "resourceVersion");
    if (event.pod.resourceVersion.empty()) {
      return malformed("a BOOKMARK without metadata.resourceVersion");
    }
    return event;
  }
  if (type == "ADDED") {
    event.type = WatchEventType::kAdded;
  } else if (type == "MODIFIED") {
    event.type = WatchEventType::kModified;
  } else if (type == "DELETED") {
    event.type = WatchEventType::kDeleted;
  } else {
    return malformed("unknown watch event type '" + type + "'");
  }
  if (stringAt(*object, "kind") != "Pod") {
    return malformed("watch event " + type + " carries a '" + stringAt(*object, "kind") +
                     "', not a Pod");
  }
  auto pod = podFromJson(*object, true);
  if (!pod.ok()) {
    return std::move(pod).error().wrap("watch event " + type);
  }
  event.pod = std::move(*pod);
  return event;
}

ApiStatus parseApiStatus(std::string_view body, int httpStatus) {
  json parsed = json::parse(body, nullptr, false);
  if (parsed.is_object() && stringAt(parsed, "kind") == "Status") {
    return statusFromJson(parsed, httpStatus);
  }
  ApiStatus status;
  status.code = httpStatus;
  status.message = std::string(body.substr(0, 512));
  return status;
}

}  // namespace egressd::kubernetes
