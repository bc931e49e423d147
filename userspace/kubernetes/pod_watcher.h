// `egressd daemon --kubernetes`: the pods scheduled on this node, kept in step with the
// daemon's sandboxes. The watcher lists the node's pods (fieldSelector spec.nodeName), then
// watches from the list's resourceVersion (bookmarks on), keeping a cache of the node's pods;
// after the list and after every event it plans (reconcile.h) and carries out the changes
// through a SandboxBackend, which the daemon implements on its SandboxManager (the same
// in-process service the control API uses).
//
// Failure handling, as client-go's reflector does it: a watch that ends normally is resumed
// from the last resourceVersion seen (an event's or a bookmark's); a watch that fails (the
// connection, a non-2xx answer) is resumed after a backoff (0.5 s doubling to 30 s); a 410
// (resourceVersion too old: an ERROR event or the watch request's status) means events were
// missed, so the pods are listed again and everything reconciled against the new list. A pod
// whose sandbox could not be made (its cgroup not there yet, an unknown policy) is tried
// again with its own backoff (1 s doubling to 10 s), and at once when an event about the pod
// arrives (a Pending pod whose containers start), until it works.
//
// The watcher runs on a thread of its own: libcurl's transfers block, and the watch's tick
// (about once a second) runs the retries and notices a stop request.
#pragma once

#include <chrono>
#include <map>
#include <stop_token>
#include <string>
#include <vector>

#include "common/result.h"
#include "kubernetes/api_client.h"
#include "kubernetes/pod_events.h"
#include "kubernetes/reconcile.h"

namespace egressd::kubernetes {

// The list request's path: /api/v1/pods?fieldSelector=spec.nodeName%3D<node>.
std::string listPodsPath(const std::string& nodeName);
// The watch request's path: the list's, watching from `resourceVersion` with bookmarks.
std::string watchPodsPath(const std::string& nodeName, const std::string& resourceVersion,
                          long timeoutSeconds);

// The daemon's side: its sandboxes and the three changes the watcher makes to them.
class SandboxBackend {
 public:
  virtual ~SandboxBackend() = default;
  // Every sandbox of the daemon, the operators' included (reconcile leaves those alone).
  virtual std::vector<ExistingSandbox> sandboxes() = 0;
  // A sandbox for `want` on the pod's cgroup `cgroupPath`, in the network namespace of the
  // pod's processes, owned by want.owner(); audited with the pod's name.
  virtual Status create(const DesiredSandbox& want, const std::string& cgroupPath) = 0;
  // The sandbox's catch-all handler set to want.outbound (or its override removed).
  virtual Status rebind(const DesiredSandbox& want) = 0;
  // Deletes the sandbox if the watcher still owns it (`owner`); audited with the pod's name.
  virtual Status remove(const Removal& removal, const std::string& owner) = 0;
};

struct WatcherOptions {
  std::string nodeName;
  std::string cgroupRoot;  // the kubelet's cgroup root (normally the cgroup2 mount)
  ApiConfig api;
  long watchTimeoutSeconds = 300;  // asked of the server; each watch then ends and resumes
  std::chrono::milliseconds backoffMin{500};
  std::chrono::milliseconds backoffMax{30000};
  std::chrono::milliseconds retryMin{1000};
  std::chrono::milliseconds retryMax{10000};
};

class PodWatcher {
 public:
  PodWatcher(WatcherOptions options, SandboxBackend& backend);

  // Lists, watches and reconciles until `stop` is requested.
  void run(const std::stop_token& stop);

 private:
  enum class WatchEnd { kResume, kFailed, kRelist, kStopped };
  enum class EventOutcome { kApplied, kFailed, kRelist };

  Status listPods(const std::stop_token& stop);
  WatchEnd watchOnce(const std::stop_token& stop);
  // kRelist: a 410, events were missed; kFailed: another ERROR event (resumed after a backoff).
  EventOutcome applyEvent(const WatchEvent& event);
  void reconcile();
  void retryDue();
  // Waits `delay` unless a stop is requested first; false when stopping.
  static bool sleepUnlessStopped(const std::stop_token& stop, std::chrono::milliseconds delay);
  // The first existing cgroup of the pod's candidates, or "" (not made yet).
  std::string findPodCgroup(const DesiredSandbox& want) const;
  // A failed create/rebind: logged (warn the first time and when the reason changes; only
  // debug while `expected`, a Pending pod not started yet) and scheduled again with a growing
  // delay.
  void noteFailure(const std::string& key, const std::string& attempt, const std::string& message,
                   bool expected = false);
  // Whether `attempt` on `key` failed before and is not due again yet.
  bool waitingToRetry(const std::string& key, const std::string& attempt) const;

  struct Failure {
    std::string attempt;  // what was tried (pod uid, policy, binding): a change retries at once
    std::string message;
    bool warned = false;  // `message` was logged as a warning
    std::chrono::milliseconds delay{0};
    std::chrono::steady_clock::time_point next;
  };

  WatcherOptions options_;
  SandboxBackend& backend_;
  ApiClient client_;
  std::map<std::string, PodRecord> pods_;  // uid -> the node's pods as last seen
  std::string resourceVersion_;
  std::map<std::string, std::string> podKeyOfId_;  // sandbox id -> namespace/name, for audit
  std::map<std::string, Failure> failures_;        // "create:<id>" / "rebind:<id>"
};

}  // namespace egressd::kubernetes
