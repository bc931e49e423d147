#include "policy/overrides.h"

#include <algorithm>
#include <set>
#include <tuple>

#include "policy/cidr.h"

namespace egressd::policy {

namespace {

nlohmann::json refJson(const HandlerRef& ref) {
  return {{"handler", ref.handler}, {"params", ref.params}};
}

Result<HandlerRef> refFromJson(const nlohmann::json& j) {
  if (!j.is_object() || !j.contains("handler") || !j["handler"].is_string()) {
    return Error(EINVAL, "a handler reference needs {\"handler\": NAME}");
  }
  HandlerRef ref;
  ref.handler = j["handler"].get<std::string>();
  if (j.contains("params") && !j["params"].is_null()) {
    if (!j["params"].is_object()) {
      return Error(EINVAL, "handler params must be an object");
    }
    ref.params = j["params"];
  }
  return ref;
}

nlohmann::json listOverrideJson(const HostListOverride& o) {
  return {{"set", o.set ? nlohmann::json(*o.set) : nlohmann::json(nullptr)},
          {"added", o.added},
          {"removed", o.removed}};
}

Result<HostListOverride> listOverrideFromJson(const nlohmann::json& j, const std::string& what) {
  HostListOverride o;
  if (j.is_null()) {
    return o;
  }
  auto strings = [&](const char* key) -> Result<std::vector<std::string>> {
    if (!j.contains(key) || j[key].is_null()) {
      return std::vector<std::string>{};
    }
    if (!j[key].is_array()) {
      return Error(EINVAL, what + "." + key + " must be a list");
    }
    std::vector<std::string> out;
    for (const auto& e : j[key]) {
      if (!e.is_string()) {
        return Error(EINVAL, what + "." + key + " must hold strings");
      }
      out.push_back(e.get<std::string>());
    }
    return out;
  };
  if (j.contains("set") && !j["set"].is_null()) {
    auto set = strings("set");
    if (!set.ok()) {
      return std::move(set).error();
    }
    o.set = std::move(*set);
  }
  auto added = strings("added");
  auto removed = strings("removed");
  if (!added.ok()) {
    return std::move(added).error();
  }
  if (!removed.ok()) {
    return std::move(removed).error();
  }
  o.added = std::move(*added);
  o.removed = std::move(*removed);
  return o;
}

}  // namespace

nlohmann::json InstanceOverrides::toJson() const {
  nlohmann::json byHost = nlohmann::json::object();
  for (const auto& [host, ref] : outboundByHost) {
    byHost[host] = refJson(ref);
  }
  return {{"allowedHosts", listOverrideJson(allowedHosts)},
          {"deniedHosts", listOverrideJson(deniedHosts)},
          {"outboundByHost", byHost},
          {"outbound", outbound ? refJson(*outbound) : nlohmann::json(nullptr)}};
}

Result<InstanceOverrides> InstanceOverrides::fromJson(const nlohmann::json& j) {
  InstanceOverrides o;
  if (!j.is_object()) {
    return Error(EINVAL, "overrides must be an object");
  }
  auto allowed = listOverrideFromJson(j.value("allowedHosts", nlohmann::json()), "allowedHosts");
  if (!allowed.ok()) {
    return std::move(allowed).error();
  }
  auto denied = listOverrideFromJson(j.value("deniedHosts", nlohmann::json()), "deniedHosts");
  if (!denied.ok()) {
    return std::move(denied).error();
  }
  o.allowedHosts = std::move(*allowed);
  o.deniedHosts = std::move(*denied);
  if (j.contains("outboundByHost") && j["outboundByHost"].is_object()) {
    for (const auto& [host, ref] : j["outboundByHost"].items()) {
      auto parsed = refFromJson(ref);
      if (!parsed.ok()) {
        return std::move(parsed).error().wrap("outboundByHost " + host);
      }
      o.outboundByHost[host] = std::move(*parsed);
    }
  }
  if (j.contains("outbound") && !j["outbound"].is_null()) {
    auto parsed = refFromJson(j["outbound"]);
    if (!parsed.ok()) {
      return std::move(parsed).error().wrap("outbound");
    }
    o.outbound = std::move(*parsed);
  }
  return o;
}

Result<std::string> hostEntryKey(std::string_view text) {
  if (looksLikeIpOrCidr(text)) {
    auto cidr = parseCidr(text);
    if (!cidr.ok()) {
      return std::move(cidr).error();
    }
    return cidr->toString();
  }
  return normalizeHostGlob(text);
}

std::vector<std::string> hostListTexts(const HostList& list) {
  using Key = std::tuple<int, int, size_t>;
  std::vector<std::pair<Key, std::string>> entries;
  for (const HostGlob& g : list.globs) {
    entries.push_back({Key{g.pos.line, g.pos.column, 0}, g.text});
  }
  for (const HostCidr& c : list.cidrs) {
    entries.push_back({Key{c.pos.line, c.pos.column, c.index}, c.text});
  }
  std::stable_sort(entries.begin(), entries.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::string> out;
  out.reserve(entries.size());
  for (auto& e : entries) {
    out.push_back(std::move(e.second));
  }
  return out;
}

std::vector<std::string> effectiveHostList(const HostList& base, const HostListOverride& o) {
  std::vector<std::string> start = o.set ? *o.set : hostListTexts(base);
  std::vector<std::string> out;
  std::set<std::string> seen;
  std::set<std::string> removed;
  for (const std::string& r : o.removed) {
    auto key = hostEntryKey(r);
    removed.insert(key.ok() ? *key : r);
  }
  auto add = [&](const std::string& text) {
    auto key = hostEntryKey(text);
    const std::string k = key.ok() ? *key : text;
    if (removed.count(k) == 0 && seen.insert(k).second) {
      out.push_back(text);
    }
  };
  for (const std::string& s : start) {
    add(s);
  }
  for (const std::string& a : o.added) {
    add(a);
  }
  return out;
}

Result<HostList> makeHostList(const std::vector<std::string>& texts, const std::string& what) {
  HostList list;
  list.present = true;
  size_t index = 0;
  for (const std::string& text : texts) {
    // Synthetic positions keep list order for hostListTexts (line 0: no file behind them).
    const SourcePos pos{0, static_cast<int>(index) + 1};
    if (looksLikeIpOrCidr(text)) {
      auto cidr = parseCidr(text);
      if (!cidr.ok()) {
        return Error(EINVAL, what + " entry \"" + text + "\": " + cidr.error().message());
      }
      list.cidrs.push_back(HostCidr{*cidr, text, index, pos});
    } else {
      auto glob = normalizeHostGlob(text);
      if (!glob.ok()) {
        return Error(EINVAL, what + " entry \"" + text + "\": " + glob.error().message());
      }
      list.globs.push_back(HostGlob{*glob, text, pos});
    }
    ++index;
  }
  return list;
}

Result<Policy> applyHostOverrides(const Policy& base, const InstanceOverrides& o) {
  Policy out = base;
  auto apply = [](const HostList& list, const HostListOverride& lo,
                  const std::string& what) -> Result<HostList> {
    if (lo.empty()) {
      return list;
    }
    auto made = makeHostList(effectiveHostList(list, lo), what);
    if (!made.ok()) {
      return made;
    }
    made->present = list.present || lo.set.has_value() || !lo.added.empty();
    return made;
  };
  auto allowed = apply(base.allowedHosts, o.allowedHosts, "allowedHosts");
  if (!allowed.ok()) {
    return std::move(allowed).error();
  }
  auto denied = apply(base.deniedHosts, o.deniedHosts, "deniedHosts");
  if (!denied.ok()) {
    return std::move(denied).error();
  }
  out.allowedHosts = std::move(*allowed);
  out.deniedHosts = std::move(*denied);
  return out;
}

}  // namespace egressd::policy
