#include "prometheus.h"

#include <cmath>
#include <cstdlib>
#include <sstream>

namespace egressd::test {
namespace {

// Parses `{a="x",b="y"}` starting at text[pos] == '{'; pos ends after the '}'.
bool parseLabels(const std::string& text, size_t& pos, std::map<std::string, std::string>& out) {
  ++pos;
  while (pos < text.size() && text[pos] != '}') {
    const size_t eq = text.find('=', pos);
    if (eq == std::string::npos || eq + 1 >= text.size() || text[eq + 1] != '"') {
      return false;
    }
    std::string name = text.substr(pos, eq - pos);
    std::string value;
    size_t i = eq + 2;
    for (; i < text.size() && text[i] != '"'; ++i) {
      if (text[i] == '\\' && i + 1 < text.size()) {
        ++i;
        value += text[i] == 'n' ? '\n' : text[i];
      } else {
        value += text[i];
      }
    }
    if (i >= text.size()) {
      return false;
    }
    out[name] = value;
    pos = i + 1;
    if (pos < text.size() && text[pos] == ',') {
      ++pos;
    }
  }
  if (pos >= text.size()) {
    return false;
  }
  ++pos;
  return true;
}

}  // namespace

std::vector<PromSample> parsePrometheusText(const std::string& text) {
  std::vector<PromSample> samples;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') {
      continue;
    }
    PromSample s;
    size_t pos = line.find_first_of("{ ");
    if (pos == std::string::npos) {
      continue;
    }
    s.name = line.substr(0, pos);
    if (line[pos] == '{' && !parseLabels(line, pos, s.labels)) {
      continue;
    }
    while (pos < line.size() && line[pos] == ' ') {
      ++pos;
    }
    const std::string value = line.substr(pos, line.find(' ', pos) - pos);
    if (value == "+Inf") {
      s.value = HUGE_VAL;
    } else if (value == "-Inf") {
      s.value = -HUGE_VAL;
    } else {
      char* end = nullptr;
      s.value = std::strtod(value.c_str(), &end);
      if (end == value.c_str()) {
        continue;
      }
    }
    samples.push_back(std::move(s));
  }
  return samples;
}

std::optional<double> promValue(const std::vector<PromSample>& samples, const std::string& name,
                                const std::map<std::string, std::string>& labels) {
  std::optional<double> sum;
  for (const auto& s : samples) {
    if (s.name != name) {
      continue;
    }
    bool all = true;
    for (const auto& [k, v] : labels) {
      auto it = s.labels.find(k);
      if (it == s.labels.end() || it->second != v) {
        all = false;
        break;
      }
    }
    if (all) {
      sum = sum.value_or(0) + s.value;
    }
  }
  return sum;
}

}  // namespace egressd::test
