// Reading Prometheus text exposition (format 0.0.4) in tests: samples with their labels, so
// a test checks a counter by name and labels, not by the order the exporter printed them in.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace egressd::test {

struct PromSample {
  std::string name;
  std::map<std::string, std::string> labels;  // values unescaped
  double value = 0;
};

// Every sample line; comments, blank lines and lines that do not parse are skipped.
std::vector<PromSample> parsePrometheusText(const std::string& text);

// The sum of the samples named `name` whose labels include every pair in `labels`;
// nullopt when there is none (an absent series and a zero series are different things).
std::optional<double> promValue(const std::vector<PromSample>& samples, const std::string& name,
                                const std::map<std::string, std::string>& labels);

}  // namespace egressd::test
