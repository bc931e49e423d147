#include "kubernetes/pod_watcher.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <mutex>

#include "kubernetes/pod_cgroup.h"
#include "kubernetes/pod_sandbox.h"

namespace egressd::kubernetes {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

bool isDirectory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string describeStatus(const ApiStatus& status) {
  return std::to_string(status.code) + (status.reason.empty() ? "" : " " + status.reason) +
         (status.message.empty() ? "" : ": " + status.message);
}

// What a create/rebind depends on: when any of it changes, a failed attempt is retried at
// once. The pod's resourceVersion is part of it, so any event about the pod (a Pending pod
// whose containers start, say) retries without waiting for the backoff.
std::string attemptOf(const DesiredSandbox& want) {
  return want.podUid + "|" + want.resourceVersion + "|" + want.policy + "|" +
         (want.outbound ? want.outbound->handler + want.outbound->params.dump() : "-");
}

}  // namespace

PodWatcher::PodWatcher(WatcherOptions options, SandboxBackend& backend)
    : options_(std::move(options)), backend_(backend), client_(options_.api) {}

std::string listPodsPath(const std::string& nodeName) {
  return "/api/v1/pods?fieldSelector=" + queryEscape("spec.nodeName=" + nodeName);
}

std::string watchPodsPath(const std::string& nodeName, const std::string& resourceVersion,
                          long timeoutSeconds) {
  return listPodsPath(nodeName) +
         "&watch=1&allowWatchBookmarks=true&resourceVersion=" + queryEscape(resourceVersion) +
         "&timeoutSeconds=" + std::to_string(timeoutSeconds);
}

bool PodWatcher::sleepUnlessStopped(const std::stop_token& stop, milliseconds delay) {
  std::mutex mutex;
  std::condition_variable_any wake;
  std::unique_lock lock(mutex);
  wake.wait_for(lock, stop, delay, [] { return false; });
  return !stop.stop_requested();
}

void PodWatcher::run(const std::stop_token& stop) {
  spdlog::info("kubernetes: watching the pods of node {} at {} (pod cgroups under {})",
               options_.nodeName, options_.api.server, options_.cgroupRoot);
  milliseconds backoff = options_.backoffMin;
  bool listed = false;
  while (!stop.stop_requested()) {
    if (!listed) {
      if (Status status = listPods(stop); !status.ok()) {
        if (stop.stop_requested()) {
          return;
        }
        spdlog::warn("kubernetes: listing the pods of node {}: {} (again in {} ms)",
                     options_.nodeName, status.error().message(), backoff.count());
        if (!sleepUnlessStopped(stop, backoff)) {
          return;
        }
        backoff = std::min(backoff * 2, options_.backoffMax);
        continue;
      }
      listed = true;
      backoff = options_.backoffMin;
      reconcile();
    }
    switch (watchOnce(stop)) {
      case WatchEnd::kStopped:
        return;
      case WatchEnd::kResume:
        backoff = options_.backoffMin;
        // Also between events: what changed outside the watcher (an operator's delete of a
        // pod's sandbox) is set right at least once per watch period.
        reconcile();
        break;
      case WatchEnd::kRelist:
        listed = false;
        break;
      case WatchEnd::kFailed:
        if (!sleepUnlessStopped(stop, backoff)) {
          return;
        }
        backoff = std::min(backoff * 2, options_.backoffMax);
        break;
    }
  }
}

Status PodWatcher::listPods(const std::stop_token& stop) {
  const std::function<bool()> notStopped = [&stop] { return !stop.stop_requested(); };
  auto response = client_.get(listPodsPath(options_.nodeName), &notStopped);
  if (!response.ok()) {
    return std::move(response).error();
  }
  if (response->status != 200) {
    return Error(EIO, "GET " + listPodsPath(options_.nodeName) + ": " +
                          describeStatus(parseApiStatus(response->body, response->status)));
  }
  auto list = parsePodList(response->body);
  if (!list.ok()) {
    return std::move(list).error();
  }
  pods_.clear();
  for (PodRecord& pod : list->pods) {
    if (pod.nodeName == options_.nodeName) {
      pods_.emplace(pod.uid, std::move(pod));
    }
  }
  resourceVersion_ = list->resourceVersion;
  spdlog::info("kubernetes: {} pods on node {} (resourceVersion {})", pods_.size(),
               options_.nodeName, resourceVersion_);
  return okStatus();
}

PodWatcher::WatchEnd PodWatcher::watchOnce(const std::stop_token& stop) {
  bool relist = false;
  bool failed = false;  // an ERROR event other than 410: the server ends the watch
  size_t lines = 0;
  const auto started = Clock::now();
  const std::string path =
      watchPodsPath(options_.nodeName, resourceVersion_, options_.watchTimeoutSeconds);
  spdlog::debug("kubernetes: GET {}", path);
  auto onLine = [&](std::string_view line) {
    auto event = parseWatchEvent(line);
    if (!event.ok()) {
      spdlog::warn("kubernetes: watch: {} (event skipped)", event.error().message());
      return true;
    }
    ++lines;
    switch (applyEvent(*event)) {
      case EventOutcome::kApplied:
        return true;
      case EventOutcome::kFailed:
        failed = true;
        return true;
      case EventOutcome::kRelist:
        relist = true;
        return false;
    }
    return true;
  };
  auto onTick = [&] {
    if (stop.stop_requested()) {
      return false;
    }
    retryDue();
    return true;
  };
  auto response = client_.stream(path, onLine, onTick, options_.watchTimeoutSeconds + 60);
  if (stop.stop_requested()) {
    return WatchEnd::kStopped;
  }
  if (relist) {
    return WatchEnd::kRelist;
  }
  if (!response.ok()) {
    spdlog::warn("kubernetes: watch: {}", response.error().message());
    return WatchEnd::kFailed;
  }
  if (response->status == 410) {
    spdlog::info(
        "kubernetes: watch from resourceVersion {} refused as too old (410); listing "
        "again",
        resourceVersion_);
    return WatchEnd::kRelist;
  }
  if (response->status < 200 || response->status >= 300) {
    spdlog::warn("kubernetes: watch: {}",
                 describeStatus(parseApiStatus(response->body, response->status)));
    return WatchEnd::kFailed;
  }
  if (failed) {
    return WatchEnd::kFailed;
  }
  // A watch that ends at once with nothing in it, again and again, would be a busy loop.
  if (lines == 0 && Clock::now() - started < std::chrono::seconds(1)) {
    spdlog::warn("kubernetes: the watch ended at once without events; resuming after a pause");
    return WatchEnd::kFailed;
  }
  spdlog::debug("kubernetes: watch ended at resourceVersion {}; resuming", resourceVersion_);
  return WatchEnd::kResume;
}

PodWatcher::EventOutcome PodWatcher::applyEvent(const WatchEvent& event) {
  switch (event.type) {
    case WatchEventType::kError:
      if (event.status.code == 410) {
        spdlog::info("kubernetes: watch: {}; listing again", describeStatus(event.status));
        return EventOutcome::kRelist;
      }
      spdlog::warn("kubernetes: watch error event: {}", describeStatus(event.status));
      return EventOutcome::kFailed;
    case WatchEventType::kBookmark:
      resourceVersion_ = event.pod.resourceVersion;
      return EventOutcome::kApplied;
    case WatchEventType::kAdded:
    case WatchEventType::kModified:
      if (event.pod.nodeName == options_.nodeName) {
        pods_[event.pod.uid] = event.pod;
      } else {
        pods_.erase(event.pod.uid);
      }
      break;
    case WatchEventType::kDeleted:
      pods_.erase(event.pod.uid);
      break;
  }
  if (!event.pod.resourceVersion.empty()) {
    resourceVersion_ = event.pod.resourceVersion;
  }
  reconcile();
  return EventOutcome::kApplied;
}

std::string PodWatcher::findPodCgroup(const DesiredSandbox& want) const {
  for (const std::string& path :
       podCgroupCandidates(options_.cgroupRoot, want.podUid, qosClassFromStatus(want.qosClass))) {
    if (isDirectory(path)) {
      return path;
    }
  }
  return "";
}

bool PodWatcher::waitingToRetry(const std::string& key, const std::string& attempt) const {
  auto it = failures_.find(key);
  return it != failures_.end() && it->second.attempt == attempt && Clock::now() < it->second.next;
}

void PodWatcher::noteFailure(const std::string& key, const std::string& attempt,
                             const std::string& message, bool expected) {
  Failure& f = failures_[key];
  if (f.message != message) {
    f.warned = false;
  }
  f.delay = f.attempt != attempt ? options_.retryMin : std::min(f.delay * 2, options_.retryMax);
  f.attempt = attempt;
  f.message = message;
  f.next = Clock::now() + f.delay;
  // A warning once per reason, however often retried.
  if (!expected && !f.warned) {
    f.warned = true;
    spdlog::warn("kubernetes: {} (trying again)", message);
  } else {
    spdlog::debug("kubernetes: {} (again in {} ms)", message, f.delay.count());
  }
}

void PodWatcher::retryDue() {
  const auto now = Clock::now();
  if (std::any_of(failures_.begin(), failures_.end(),
                  [&](const auto& entry) { return entry.second.next <= now; })) {
    reconcile();
  }
}

void PodWatcher::reconcile() {
  std::vector<DesiredSandbox> desired;
  for (const auto& [uid, pod] : pods_) {
    if (auto want = desiredSandbox(pod, options_.nodeName)) {
      desired.push_back(std::move(*want));
    }
  }
  const std::vector<ExistingSandbox> existing = backend_.sandboxes();
  const ReconcilePlan plan = planReconcile(desired, existing);
  for (const Conflict& conflict : plan.conflicts) {
    if (!waitingToRetry("conflict:" + conflict.id, conflict.why)) {
      noteFailure("conflict:" + conflict.id, conflict.why, conflict.why);
    }
  }
  for (Removal removal : plan.remove) {
    if (removal.podKey.empty()) {
      auto known = podKeyOfId_.find(removal.id);
      removal.podKey = known != podKeyOfId_.end() ? known->second : "";
    }
    // The owner is re-checked by the backend: an operator's sandbox is never deleted here.
    std::string owner;
    for (const ExistingSandbox& s : existing) {
      if (s.id == removal.id) {
        owner = s.owner;
      }
    }
    if (Status removed = backend_.remove(removal, owner); !removed.ok()) {
      spdlog::warn("kubernetes: sandbox {}: delete: {}", removal.id, removed.error().message());
    }
    podKeyOfId_.erase(removal.id);
    failures_.erase("rebind:" + removal.id);
  }
  for (const DesiredSandbox& want : plan.create) {
    const std::string key = "create:" + want.id;
    const std::string attempt = attemptOf(want);
    if (waitingToRetry(key, attempt)) {
      continue;
    }
    const std::string cgroup = findPodCgroup(want);
    if (cgroup.empty() && want.terminating) {
      // Being deleted and its cgroup gone (or never made): nothing left to confine.
      spdlog::debug("kubernetes: pod {} is terminating without a cgroup; no sandbox", want.podKey);
      continue;
    }
    if (cgroup.empty()) {
      noteFailure(key, attempt,
                  "pod " + want.podKey + ": no cgroup yet (looked for " +
                      podCgroupPath(options_.cgroupRoot, want.podUid,
                                    qosClassFromStatus(want.qosClass), CgroupDriver::kSystemd) +
                      " and the other layouts)",
                  want.pending);
      continue;
    }
    if (Status made = backend_.create(want, cgroup); !made.ok()) {
      noteFailure(key, attempt,
                  "pod " + want.podKey + ": sandbox " + want.id + ": " + made.error().message(),
                  want.pending);
      continue;
    }
    for (const std::string& problem : want.problems) {
      spdlog::warn("kubernetes: pod {}: {}", want.podKey, problem);
    }
    failures_.erase(key);
    podKeyOfId_[want.id] = want.podKey;
  }
  for (const DesiredSandbox& want : plan.rebind) {
    const std::string key = "rebind:" + want.id;
    const std::string attempt = attemptOf(want);
    if (waitingToRetry(key, attempt)) {
      continue;
    }
    if (Status bound = backend_.rebind(want); !bound.ok()) {
      noteFailure(key, attempt,
                  "pod " + want.podKey + ": sandbox " + want.id +
                      ": outbound handler: " + bound.error().message());
      continue;
    }
    failures_.erase(key);
    podKeyOfId_[want.id] = want.podKey;
  }
  // Failures of sandboxes no pod wants any more are forgotten.
  for (auto it = failures_.begin(); it != failures_.end();) {
    const std::string id = it->first.substr(it->first.find(':') + 1);
    const bool wanted = std::any_of(desired.begin(), desired.end(),
                                    [&](const DesiredSandbox& d) { return d.id == id; });
    it = wanted ? std::next(it) : failures_.erase(it);
  }
}

}  // namespace egressd::kubernetes
