#include "host_features.h"

#include <map>
#include <mutex>
#include <string>

namespace egressd::test {

const host::Feature& hostFeature(std::string_view name) {
  static std::mutex mu;
  static std::map<std::string, host::Feature, std::less<>> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(name);
  if (it == cache.end()) {
    it = cache.emplace(std::string(name), host::probeFeature(name)).first;
  }
  return it->second;
}

}  // namespace egressd::test
