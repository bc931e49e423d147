#include "metrics/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace egressd::metrics {

namespace {

enum FamilyType { kCounterType, kGaugeType, kHistogramType };

std::string_view typeName(int type) {
  switch (type) {
    case kCounterType:
      return "counter";
    case kGaugeType:
      return "gauge";
    default:
      return "histogram";
  }
}

[[noreturn]] void misuse(const std::string& what) {
  std::fprintf(stderr, "egressd metrics registry misuse: %s\n", what.c_str());
  std::abort();
}

bool isAsciiAlpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool isAsciiDigit(char c) {
  return c >= '0' && c <= '9';
}

void checkBounds(const std::vector<double>& bounds, std::string_view what) {
  for (size_t i = 0; i < bounds.size(); ++i) {
    if (!std::isfinite(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1])) {
      misuse(std::string(what) + ": bucket bounds must be finite and strictly increasing");
    }
  }
}

// The label set as it appears between the braces, sorted by name so that the same labels in
// another order resolve to the same series: a="x",b="y".
std::string canonicalLabels(const std::string& metric, Labels labels, bool isHistogram) {
  std::sort(labels.begin(), labels.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::string out;
  for (size_t i = 0; i < labels.size(); ++i) {
    const auto& [name, value] = labels[i];
    if (!isValidLabelName(name) || name.starts_with("__")) {
      misuse(metric + ": invalid label name \"" + name + "\"");
    }
    if (isHistogram && name == "le") {
      misuse(metric + ": \"le\" is reserved for histogram buckets");
    }
    if (i > 0 && labels[i - 1].first == name) {
      misuse(metric + ": label \"" + name + "\" given twice");
    }
    if (i > 0) {
      out += ',';
    }
    out += name;
    out += "=\"";
    out += escapeLabelValue(value);
    out += '"';
  }
  return out;
}

// name{labels,extra} value
void appendLine(std::string& out, std::string_view name, std::string_view suffix,
                std::string_view labelText, std::string_view extraLabel, std::string_view value) {
  out += name;
  out += suffix;
  if (!labelText.empty() || !extraLabel.empty()) {
    out += '{';
    out += labelText;
    if (!labelText.empty() && !extraLabel.empty()) {
      out += ',';
    }
    out += extraLabel;
    out += '}';
  }
  out += ' ';
  out += value;
  out += '\n';
}

std::string labelText(const Labels& labels) {
  std::string out;
  for (const auto& [name, value] : labels) {
    if (!out.empty()) {
      out += ',';
    }
    out += name;
    out += "=\"";
    out += escapeLabelValue(value);
    out += '"';
  }
  return out;
}

}  // namespace

bool isValidMetricName(std::string_view name) {
  if (name.empty() || !(isAsciiAlpha(name[0]) || name[0] == '_' || name[0] == ':')) {
    return false;
  }
  return std::all_of(name.begin(), name.end(), [](char c) {
    return isAsciiAlpha(c) || isAsciiDigit(c) || c == '_' || c == ':';
  });
}

bool isValidLabelName(std::string_view name) {
  if (name.empty() || !(isAsciiAlpha(name[0]) || name[0] == '_')) {
    return false;
  }
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return isAsciiAlpha(c) || isAsciiDigit(c) || c == '_'; });
}

std::string escapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string formatValue(double value) {
  if (std::isnan(value)) {
    return "NaN";
  }
  if (std::isinf(value)) {
    return value > 0 ? "+Inf" : "-Inf";
  }
  char buf[64];
  // %g style, as Prometheus client_golang writes values: "0.0001", "1e+06".
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value, std::chars_format::general);
  if (ec != std::errc()) {
    return "NaN";  // cannot happen with 64 bytes; keeps the exposition parseable regardless
  }
  return std::string(buf, end);
}

void appendFamilyHeader(std::string& out, std::string_view name, std::string_view help,
                        std::string_view type) {
  out += "# HELP ";
  out += name;
  out += ' ';
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

void appendSample(std::string& out, std::string_view name, const Labels& labels, double value) {
  appendLine(out, name, "", labelText(labels), "", formatValue(value));
}

void appendSample(std::string& out, std::string_view name, const Labels& labels, uint64_t value) {
  appendLine(out, name, "", labelText(labels), "", std::to_string(value));
}

void appendSample(std::string& out, std::string_view name, const Labels& labels, int64_t value) {
  appendLine(out, name, "", labelText(labels), "", std::to_string(value));
}

Histogram::Histogram(std::vector<double> upperBounds)
    : upperBounds_(std::move(upperBounds)),
      bucketCounts_(std::make_unique<std::atomic<uint64_t>[]>(upperBounds_.size() + 1)) {
  checkBounds(upperBounds_, "histogram");
}

void Histogram::observe(double seconds) {
  if (std::isnan(seconds)) {
    return;
  }
  // Buckets are "less than or equal": the first bound >= the value counts it.
  size_t bucket = static_cast<size_t>(
      std::lower_bound(upperBounds_.begin(), upperBounds_.end(), seconds) - upperBounds_.begin());
  bucketCounts_[bucket].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(seconds, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot snap;
  snap.cumulative.reserve(upperBounds_.size() + 1);
  uint64_t running = 0;
  for (size_t i = 0; i <= upperBounds_.size(); ++i) {
    running += bucketCounts_[i].load(std::memory_order_relaxed);
    snap.cumulative.push_back(running);
  }
  snap.count = running;
  snap.sum = sum_.load(std::memory_order_relaxed);
  return snap;
}

struct Registry::Family {
  int type = kCounterType;
  std::string help;
  std::vector<double> bounds;  // histograms only
  // Keyed by canonical label text, which is also what render() prints.
  std::map<std::string, std::unique_ptr<Counter>> counters;
  std::map<std::string, std::unique_ptr<Gauge>> gauges;
  std::map<std::string, std::unique_ptr<Histogram>> histograms;
};

struct Registry::Retired {
  std::vector<std::unique_ptr<Counter>> counters;
  std::vector<std::unique_ptr<Gauge>> gauges;
  std::vector<std::unique_ptr<Histogram>> histograms;
};

Registry::Registry() = default;
Registry::~Registry() = default;

Registry::Family& Registry::family(const std::string& name, const std::string& help, int type) {
  if (!isValidMetricName(name)) {
    misuse("invalid metric name \"" + name + "\"");
  }
  auto& slot = families_[name];
  if (!slot) {
    slot = std::make_unique<Family>();
    slot->type = type;
    slot->help = help;
  } else if (slot->type != type) {
    misuse(name + " registered as a " + std::string(typeName(slot->type)) + " and as a " +
           std::string(typeName(type)));
  }
  return *slot;
}

namespace {

// The series stored under `key`, created on first use (stable address: held by pointer).
template <typename Series, typename Map, typename... Args>
Series& seriesAt(Map& map, const std::string& key, Args&&... args) {
  auto& series = map[key];
  if (!series) {
    series = std::make_unique<Series>(std::forward<Args>(args)...);
  }
  return *series;
}

}  // namespace

Counter& Registry::counter(const std::string& name, const std::string& help, const Labels& labels) {
  std::lock_guard lock(mutex_);
  Family& f = family(name, help, kCounterType);
  return seriesAt<Counter>(f.counters, canonicalLabels(name, labels, false));
}

Gauge& Registry::gauge(const std::string& name, const std::string& help, const Labels& labels) {
  std::lock_guard lock(mutex_);
  Family& f = family(name, help, kGaugeType);
  return seriesAt<Gauge>(f.gauges, canonicalLabels(name, labels, false));
}

Histogram& Registry::histogram(const std::string& name, const std::string& help,
                               const Labels& labels, const std::vector<double>& buckets) {
  checkBounds(buckets, name);
  std::lock_guard lock(mutex_);
  Family& f = family(name, help, kHistogramType);
  if (f.histograms.empty()) {
    f.bounds = buckets;
  } else if (f.bounds != buckets) {
    misuse(name + ": every series of a histogram needs the same buckets");
  }
  return seriesAt<Histogram>(f.histograms, canonicalLabels(name, labels, true), buckets);
}

void Registry::addCollector(std::function<void(std::string& out)> appendTextExposition) {
  std::lock_guard lock(mutex_);
  collectors_.push_back(std::move(appendTextExposition));
}

namespace {

// Whether canonical label text holds exactly the label `needle` (name="escaped value").
bool hasLabel(const std::string& labels, const std::string& needle) {
  for (size_t at = labels.find(needle); at != std::string::npos; at = labels.find(needle, at + 1)) {
    const bool startsLabel = at == 0 || labels[at - 1] == ',';
    const size_t end = at + needle.size();
    if (startsLabel && (end == labels.size() || labels[end] == ',')) {
      return true;
    }
  }
  return false;
}

template <typename Map, typename Vec>
void retireMatching(Map& series, Vec& into, const std::string& needle) {
  for (auto it = series.begin(); it != series.end();) {
    if (hasLabel(it->first, needle)) {
      into.push_back(std::move(it->second));
      it = series.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace

void Registry::dropSeries(const std::string& name, const std::string& value) {
  const std::string needle = name + "=\"" + escapeLabelValue(value) + "\"";
  auto retired = std::make_unique<Retired>();
  std::lock_guard lock(mutex_);
  for (auto& [familyName, f] : families_) {
    retireMatching(f->counters, retired->counters, needle);
    retireMatching(f->gauges, retired->gauges, needle);
    retireMatching(f->histograms, retired->histograms, needle);
  }
  retired_.push_back(std::move(retired));
}

std::string Registry::render() const {
  std::string out;
  std::vector<std::function<void(std::string&)>> collectors;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [name, f] : families_) {
      appendFamilyHeader(out, name, f->help, typeName(f->type));
      for (const auto& [labels, counter] : f->counters) {
        appendLine(out, name, "", labels, "", std::to_string(counter->value()));
      }
      for (const auto& [labels, gauge] : f->gauges) {
        appendLine(out, name, "", labels, "", std::to_string(gauge->value()));
      }
      for (const auto& [labels, histogram] : f->histograms) {
        Histogram::Snapshot snap = histogram->snapshot();
        for (size_t i = 0; i < f->bounds.size(); ++i) {
          appendLine(out, name, "_bucket", labels, "le=\"" + formatValue(f->bounds[i]) + "\"",
                     std::to_string(snap.cumulative[i]));
        }
        appendLine(out, name, "_bucket", labels, "le=\"+Inf\"", std::to_string(snap.count));
        appendLine(out, name, "_sum", labels, "", formatValue(snap.sum));
        appendLine(out, name, "_count", labels, "", std::to_string(snap.count));
      }
    }
    collectors = collectors_;
  }
  // Outside the lock: a collector may read BPF maps (slow-ish) or use the registry itself.
  for (const auto& collect : collectors) {
    collect(out);
  }
  return out;
}

}  // namespace egressd::metrics
