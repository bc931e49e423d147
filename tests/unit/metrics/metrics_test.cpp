#include "metrics/metrics.h"

#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <thread>
#include <vector>

namespace egressd::metrics {
namespace {

TEST(MetricsRegistryTest, RendersCountersExactly) {
  Registry registry;
  registry
      .counter("egressd_requests_total", "Requests decided by the proxy.",
               {{"sandbox", "ci-1"}, {"decision", "allow"}})
      .inc(3);
  registry
      .counter("egressd_requests_total", "Requests decided by the proxy.",
               {{"sandbox", "ci-1"}, {"decision", "deny"}})
      .inc();
  registry.counter("egressd_audit_dropped_total", "Audit records lost.").inc(0);
  EXPECT_EQ(registry.render(),
            "# HELP egressd_audit_dropped_total Audit records lost.\n"
            "# TYPE egressd_audit_dropped_total counter\n"
            "egressd_audit_dropped_total 0\n"
            "# HELP egressd_requests_total Requests decided by the proxy.\n"
            "# TYPE egressd_requests_total counter\n"
            "egressd_requests_total{decision=\"allow\",sandbox=\"ci-1\"} 3\n"
            "egressd_requests_total{decision=\"deny\",sandbox=\"ci-1\"} 1\n");
}

TEST(MetricsRegistryTest, EscapesLabelValuesAndHelp) {
  Registry registry;
  registry.counter("x_total", "first line\nback\\slash \"quoted\"", {{"v", "a\"b\\c\nd"}}).inc(7);
  EXPECT_EQ(registry.render(),
            "# HELP x_total first line\\nback\\\\slash \"quoted\"\n"
            "# TYPE x_total counter\n"
            "x_total{v=\"a\\\"b\\\\c\\nd\"} 7\n");
}

TEST(MetricsRegistryTest, RendersHistogramsWithCumulativeBuckets) {
  Registry registry;
  Histogram& h = registry.histogram("egressd_request_duration_seconds", "Request latency.",
                                    {{"sandbox", "s"}}, {0.125, 1, 2.5});
  h.observe(0.0625);
  h.observe(0.125);  // upper bounds are inclusive
  h.observe(0.5);
  h.observe(3.0);  // only in +Inf
  EXPECT_EQ(registry.render(),
            "# HELP egressd_request_duration_seconds Request latency.\n"
            "# TYPE egressd_request_duration_seconds histogram\n"
            "egressd_request_duration_seconds_bucket{sandbox=\"s\",le=\"0.125\"} 2\n"
            "egressd_request_duration_seconds_bucket{sandbox=\"s\",le=\"1\"} 3\n"
            "egressd_request_duration_seconds_bucket{sandbox=\"s\",le=\"2.5\"} 3\n"
            "egressd_request_duration_seconds_bucket{sandbox=\"s\",le=\"+Inf\"} 4\n"
            "egressd_request_duration_seconds_sum{sandbox=\"s\"} 3.6875\n"
            "egressd_request_duration_seconds_count{sandbox=\"s\"} 4\n");
}

TEST(MetricsRegistryTest, HistogramWithoutLabelsAndDurationObserve) {
  Registry registry;
  Histogram& h = registry.histogram("lat_seconds", "L.", {}, kLatencyBuckets);
  h.observe(std::chrono::microseconds(300));            // 0.0003 s: in le=0.0005, not le=0.00025
  h.observe(std::numeric_limits<double>::quiet_NaN());  // ignored
  const std::string text = registry.render();
  EXPECT_NE(text.find("lat_seconds_bucket{le=\"0.0001\"} 0\n"), std::string::npos) << text;
  EXPECT_NE(text.find("lat_seconds_bucket{le=\"0.00025\"} 0\n"), std::string::npos) << text;
  EXPECT_NE(text.find("lat_seconds_bucket{le=\"0.0005\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("lat_seconds_bucket{le=\"10\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("lat_seconds_bucket{le=\"+Inf\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("lat_seconds_sum 0.0003\n"), std::string::npos) << text;
  EXPECT_NE(text.find("lat_seconds_count 1\n"), std::string::npos) << text;
  EXPECT_EQ(kLatencyBuckets.size(), 16u);
  EXPECT_EQ(kLatencyBuckets.front(), 0.0001);
  EXPECT_EQ(kLatencyBuckets.back(), 10.0);
}

TEST(MetricsRegistryTest, SameNameAndLabelsGiveTheSameSeries) {
  Registry registry;
  Counter& a = registry.counter("c_total", "C.", {{"x", "1"}, {"y", "2"}});
  Counter& b = registry.counter("c_total", "C.", {{"y", "2"}, {"x", "1"}});
  Counter& other = registry.counter("c_total", "C.", {{"x", "1"}, {"y", "3"}});
  EXPECT_EQ(&a, &b) << "label order does not matter";
  EXPECT_NE(&a, &other);
  a.inc(2);
  b.inc();
  EXPECT_EQ(a.value(), 3u);
  EXPECT_EQ(other.value(), 0u);

  // Stable addresses: adding many more series does not move existing ones.
  for (int i = 0; i < 1000; ++i) {
    registry.counter("c_total", "C.", {{"x", std::to_string(i)}});
  }
  EXPECT_EQ(&registry.counter("c_total", "C.", {{"x", "1"}, {"y", "2"}}), &a);

  Histogram& h1 = registry.histogram("h_seconds", "H.", {{"s", "a"}}, {1, 2});
  Histogram& h2 = registry.histogram("h_seconds", "H.", {{"s", "a"}}, {1, 2});
  EXPECT_EQ(&h1, &h2);
  Gauge& g1 = registry.gauge("g", "G.", {});
  EXPECT_EQ(&g1, &registry.gauge("g", "G."));
}

TEST(MetricsRegistryTest, GaugesGoUpAndDown) {
  Registry registry;
  Gauge& open =
      registry.gauge("egressd_open_connections", "Open proxy connections.", {{"sandbox", "a"}});
  open.add(5);
  open.sub(7);
  EXPECT_EQ(open.value(), -2);
  EXPECT_EQ(registry.render(),
            "# HELP egressd_open_connections Open proxy connections.\n"
            "# TYPE egressd_open_connections gauge\n"
            "egressd_open_connections{sandbox=\"a\"} -2\n");
  open.set(42);
  EXPECT_NE(registry.render().find("egressd_open_connections{sandbox=\"a\"} 42\n"),
            std::string::npos);
}

TEST(MetricsRegistryTest, ConcurrentUpdatesAreNotLost) {
  Registry registry;
  Counter& shared = registry.counter("shared_total", "S.");
  Histogram& h = registry.histogram("h_seconds", "H.", {}, {0.5});
  constexpr int kThreads = 8;
  constexpr int kPerThread = 100000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // Each thread also resolves its own series while others update and render.
      Counter& mine = registry.counter("per_thread_total", "P.", {{"t", std::to_string(t)}});
      for (int i = 0; i < kPerThread; ++i) {
        shared.inc();
        mine.inc();
        h.observe((i % 2) == 0 ? 0.25 : 1.0);
      }
    });
  }
  std::thread renderer([&] {
    for (int i = 0; i < 20; ++i) {
      (void)registry.render();
    }
  });
  for (auto& t : threads) {
    t.join();
  }
  renderer.join();
  EXPECT_EQ(shared.value(), static_cast<uint64_t>(kThreads) * kPerThread);
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(registry.counter("per_thread_total", "P.", {{"t", std::to_string(t)}}).value(),
              static_cast<uint64_t>(kPerThread));
  }
  Histogram::Snapshot snap = h.snapshot();
  EXPECT_EQ(snap.count, static_cast<uint64_t>(kThreads) * kPerThread);
  EXPECT_EQ(snap.cumulative[0], snap.count / 2);
  EXPECT_EQ(snap.cumulative[1], snap.count);
  EXPECT_DOUBLE_EQ(snap.sum, kThreads * (kPerThread / 2) * 1.25);
}

TEST(MetricsRegistryTest, CollectorsAppendAfterRegisteredFamilies) {
  Registry registry;
  registry.counter("a_total", "A.").inc();
  registry.addCollector([](std::string& out) {
    appendFamilyHeader(out, "egressd_kernel_denied_total", "Connections denied in the kernel.",
                       "counter");
    appendSample(out, "egressd_kernel_denied_total", {{"sandbox", "x\"y"}, {"hook", "connect4"}},
                 uint64_t{12});
    appendSample(out, "egressd_kernel_denied_total", {}, 0.5);
  });
  EXPECT_EQ(registry.render(),
            "# HELP a_total A.\n"
            "# TYPE a_total counter\n"
            "a_total 1\n"
            "# HELP egressd_kernel_denied_total Connections denied in the kernel.\n"
            "# TYPE egressd_kernel_denied_total counter\n"
            "egressd_kernel_denied_total{sandbox=\"x\\\"y\",hook=\"connect4\"} 12\n"
            "egressd_kernel_denied_total 0.5\n");
}

TEST(MetricsRegistryTest, FormatsValues) {
  EXPECT_EQ(formatValue(1), "1");
  EXPECT_EQ(formatValue(0.25), "0.25");
  EXPECT_EQ(formatValue(0.1 + 0.2), "0.30000000000000004") << "round-trips exactly";
  EXPECT_EQ(formatValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(formatValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(formatValue(std::numeric_limits<double>::quiet_NaN()), "NaN");
  EXPECT_EQ(escapeLabelValue("plain"), "plain");
  EXPECT_EQ(escapeLabelValue("\\\"\n"), "\\\\\\\"\\n");
}

TEST(MetricsRegistryTest, ValidatesNames) {
  EXPECT_TRUE(isValidMetricName("egressd_requests_total"));
  EXPECT_TRUE(isValidMetricName("ns:sub_total"));
  EXPECT_FALSE(isValidMetricName(""));
  EXPECT_FALSE(isValidMetricName("1abc"));
  EXPECT_FALSE(isValidMetricName("with-dash"));
  EXPECT_TRUE(isValidLabelName("sandbox"));
  EXPECT_FALSE(isValidLabelName("a:b"));
  EXPECT_FALSE(isValidLabelName("9"));
}

using MetricsRegistryDeathTest = ::testing::Test;

TEST_F(MetricsRegistryDeathTest, MisuseAbortsWithAReason) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        Registry registry;
        registry.counter("m", "M.");
        registry.gauge("m", "M.");
      },
      "registered as a counter and as a gauge");
  EXPECT_DEATH(
      {
        Registry registry;
        registry.counter("bad-name", "B.");
      },
      "invalid metric name");
  EXPECT_DEATH(
      {
        Registry registry;
        registry.histogram("h", "H.", {{"le", "1"}}, {1});
      },
      "reserved");
  EXPECT_DEATH(
      {
        Registry registry;
        registry.histogram("h", "H.", {}, {1, 2});
        registry.histogram("h", "H.", {{"a", "b"}}, {1, 3});
      },
      "same buckets");
  EXPECT_DEATH(
      {
        Registry registry;
        registry.counter("c", "C.", {{"a", "1"}, {"a", "2"}});
      },
      "given twice");
}

TEST(MetricsRegistryTest, DropSeriesRemovesOnlyThatSandboxsSeries) {
  Registry registry;
  Counter& gone = registry.counter("egressd_x_total", "X.", {{"sandbox", "a"}, {"r", "1"}});
  registry.counter("egressd_x_total", "X.", {{"sandbox", "ab"}, {"r", "1"}}).inc();
  registry.histogram("egressd_h_seconds", "H.", {{"sandbox", "a"}}, {1.0}).observe(0.5);
  gone.inc();
  registry.dropSeries("sandbox", "a");
  const std::string text = registry.render();
  EXPECT_EQ(text.find("sandbox=\"a\""), std::string::npos) << text;
  EXPECT_NE(text.find("egressd_x_total{r=\"1\",sandbox=\"ab\"} 1"), std::string::npos) << text;
  // A session that still holds the dropped counter may go on using it.
  gone.inc();
  EXPECT_EQ(gone.value(), 2U);
  // The same labels later make a fresh series.
  registry.counter("egressd_x_total", "X.", {{"sandbox", "a"}, {"r", "1"}}).inc();
  EXPECT_NE(registry.render().find("egressd_x_total{r=\"1\",sandbox=\"a\"} 1"), std::string::npos);
}

}  // namespace
}  // namespace egressd::metrics
