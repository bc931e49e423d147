// A small Prometheus registry built for a hot path. A label set is resolved once to a series
// object (Counter, Gauge, Histogram) whose address stays valid for the registry's lifetime;
// the proxy keeps those handles, and updating one is a relaxed atomic operation with no lock
// and no lookup. render() walks every series under the registry's lock and produces the text
// exposition format 0.0.4.
//
// Metric names, label names, types and histogram buckets are fixed by the code, not by input,
// so misusing them (an invalid name, one name registered with two types or two bucket sets,
// a duplicated label) is a programming error: the registry prints what is wrong and aborts,
// which the first test that registers the metric catches.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace egressd::metrics {

// Request latency buckets, in seconds: 100 µs to 10 s.
inline const std::vector<double> kLatencyBuckets = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                    0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                                    1,      2.5,     5,      10};

using Labels = std::vector<std::pair<std::string, std::string>>;

class Counter {
 public:
  void inc(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  // Own cache line: counters updated by different threads must not share one.
  alignas(64) std::atomic<uint64_t> value_{0};
};

// A value that goes up and down (open connections, queue depth).
class Gauge {
 public:
  void set(int64_t value) { value_.store(value, std::memory_order_relaxed); }
  void add(int64_t delta = 1) { value_.fetch_add(delta, std::memory_order_relaxed); }
  void sub(int64_t delta = 1) { value_.fetch_sub(delta, std::memory_order_relaxed); }
  int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  alignas(64) std::atomic<int64_t> value_{0};
};

class Histogram {
 public:
  // `upperBounds` strictly increasing and finite; +Inf is implicit.
  explicit Histogram(std::vector<double> upperBounds);

  // NaN is ignored (it would poison _sum for good); negative values land in the first bucket.
  void observe(double seconds);
  void observe(std::chrono::nanoseconds elapsed) {
    observe(std::chrono::duration<double>(elapsed).count());
  }

  struct Snapshot {
    std::vector<uint64_t> cumulative;  // one per upper bound, then +Inf (== count)
    uint64_t count = 0;
    double sum = 0;
  };
  // Consistent per bucket; count is derived from the buckets so _count always equals the +Inf
  // bucket even while other threads observe.
  Snapshot snapshot() const;
  const std::vector<double>& upperBounds() const { return upperBounds_; }

 private:
  std::vector<double> upperBounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> bucketCounts_;  // upperBounds_.size() + 1 (+Inf)
  std::atomic<double> sum_{0};
};

class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Same name + labels (in any order) -> same object, stable for the registry's lifetime.
  Counter& counter(const std::string& name, const std::string& help, const Labels& labels = {});
  Gauge& gauge(const std::string& name, const std::string& help, const Labels& labels = {});
  Histogram& histogram(const std::string& name, const std::string& help, const Labels& labels,
                       const std::vector<double>& buckets);

  // Stops rendering every series with label `name`="value" (a deleted sandbox's). The objects
  // stay alive (moved aside) because sessions of that sandbox may still hold pointers to
  // them; they are small and a sandbox is deleted once.
  void dropSeries(const std::string& name, const std::string& value);

  // Appends families computed at render time (per-sandbox kernel counters read from a BPF
  // map, ...) in text exposition format; see the helpers below. Called from render(), outside
  // the registry's lock, possibly from the metrics server's thread.
  void addCollector(std::function<void(std::string& out)> appendTextExposition);

  // Text exposition format 0.0.4: families sorted by name, then collectors' output.
  std::string render() const;

 private:
  struct Family;
  Family& family(const std::string& name, const std::string& help, int type);

  mutable std::mutex mutex_;
  std::map<std::string, std::unique_ptr<Family>> families_;
  std::vector<std::function<void(std::string&)>> collectors_;
  struct Retired;
  std::vector<std::unique_ptr<Retired>> retired_;
};

// Helpers for collectors, producing exactly what render() does.
// "# HELP name help\n# TYPE name type\n", help escaped (\\ and \n).
void appendFamilyHeader(std::string& out, std::string_view name, std::string_view help,
                        std::string_view type);
// "name{a="x",b="y"} value\n"; labels in the given order, values escaped (\\, \", \n).
void appendSample(std::string& out, std::string_view name, const Labels& labels, double value);
void appendSample(std::string& out, std::string_view name, const Labels& labels, uint64_t value);
void appendSample(std::string& out, std::string_view name, const Labels& labels, int64_t value);
// A label value with \\, \" and \n escaped (no quotes added).
std::string escapeLabelValue(std::string_view value);
// Shortest text that reads back as the same double; "+Inf", "-Inf", "NaN".
std::string formatValue(double value);
bool isValidMetricName(std::string_view name);
bool isValidLabelName(std::string_view name);

}  // namespace egressd::metrics
