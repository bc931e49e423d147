#include "cli/render.h"

#include <algorithm>
#include <sstream>

#include "cli/commands.h"

namespace egressd::cli {

namespace render {

using nlohmann::json;

std::string str(const json& object, const char* key, const std::string& fallback) {
  if (!object.is_object()) {
    return fallback;
  }
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) {
    return fallback;
  }
  if (it->is_string()) {
    return it->get<std::string>();
  }
  return it->dump();
}

const json& member(const json& object, const char* key) {
  static const json kNull;
  if (!object.is_object()) {
    return kNull;
  }
  auto it = object.find(key);
  return it == object.end() ? kNull : *it;
}

std::string joinList(const json& list, const std::string& empty) {
  if (!list.is_array() || list.empty()) {
    return empty;
  }
  std::string out;
  for (const json& item : list) {
    out += (out.empty() ? "" : ", ") + (item.is_string() ? item.get<std::string>() : item.dump());
  }
  return out;
}

std::string paramsSuffix(const json& params) {
  if (!params.is_object() || params.empty()) {
    return "";
  }
  return " " + params.dump();
}

std::string fromSuffix(const json& entry) {
  const std::string from = str(entry, "from");
  return from.empty() || from == "instance" ? "" : " (from " + from + ")";
}

std::string table(const std::vector<std::string>& header,
                  const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths(header.size(), 0);
  auto measure = [&](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size() && i < widths.size(); ++i) {
      widths[i] = std::max(widths[i], row[i].size());
    }
  };
  measure(header);
  for (const auto& row : rows) {
    measure(row);
  }
  std::string out;
  auto line = [&](const std::vector<std::string>& row) {
    std::string text;
    for (size_t i = 0; i < row.size(); ++i) {
      text += row[i];
      if (i + 1 < row.size()) {
        text += std::string(widths[i] - row[i].size() + 2, ' ');
      }
    }
    out += text + "\n";
  };
  line(header);
  for (const auto& row : rows) {
    line(row);
  }
  return out;
}

namespace {

std::string overrideSummary(const char* name, const json& hosts) {
  std::string parts;
  if (member(hosts, "set").is_array()) {
    parts += " set to [" + joinList(member(hosts, "set"), "") + "]";
  }
  for (const json& added : member(hosts, "added")) {
    parts += " +" + (added.is_string() ? added.get<std::string>() : added.dump());
  }
  for (const json& removed : member(hosts, "removed")) {
    parts += " -" + (removed.is_string() ? removed.get<std::string>() : removed.dump());
  }
  return parts.empty() ? "" : std::string(name) + parts;
}

std::string handlerLines(const json& effective) {
  std::vector<std::string> lines;
  for (const json& entry : member(effective, "outboundByHost")) {
    lines.push_back(str(entry, "host") + " -> " + str(entry, "handler") +
                    paramsSuffix(member(entry, "params")) + fromSuffix(entry));
  }
  const json& outbound = member(effective, "outbound");
  if (outbound.is_object()) {
    lines.push_back("any other host -> " + str(outbound, "handler") +
                    paramsSuffix(member(outbound, "params")) + fromSuffix(outbound));
  }
  if (lines.empty()) {
    return "(none)\n";
  }
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    out += (i == 0 ? "" : std::string(20, ' ')) + lines[i] + "\n";
  }
  return out;
}

}  // namespace

std::string renderDetail(const json& body) {
  const json& effective = member(body, "effective");
  const json& overrides = member(body, "overrides");
  const json& counters = member(body, "counters");
  std::ostringstream out;
  auto row = [&](const std::string& label, const std::string& value) {
    out << "  " << label << std::string(label.size() < 18 ? 18 - label.size() : 1, ' ') << value
        << "\n";
  };
  out << "sandbox " << str(body, "id") << "\n";
  row("policy:", str(body, "policy"));
  const bool created =
      member(body, "createdCgroup").is_boolean() && member(body, "createdCgroup").get<bool>();
  row("cgroup:", str(body, "cgroup") + (created ? " (created by egressd)" : ""));
  row("netns:", str(body, "netns").empty() ? "(host)" : str(body, "netns"));
  row("proxy port:", str(body, "proxyPort", "-"));
  row("resolver port:", str(body, "dnsPort", "-"));
  row("CA certificate:", str(body, "caCert", "-"));
  if (!str(body, "caBundle").empty()) {
    row("CA bundle:", str(body, "caBundle"));
  }
  const json& internet = member(effective, "enableInternet");
  row("internet:", internet.is_boolean() && internet.get<bool>() ? "enabled" : "disabled");
  const json& intercept = member(effective, "interceptHttps");
  row("intercept HTTPS:", intercept.is_boolean() && intercept.get<bool>() ? "yes" : "no");
  row("allowed hosts:", joinList(member(effective, "allowedHosts")));
  row("denied hosts:", joinList(member(effective, "deniedHosts")));
  out << "  handlers:" << std::string(9, ' ') << handlerLines(effective);
  std::vector<std::string> changed;
  for (const char* name : {"allowedHosts", "deniedHosts"}) {
    std::string summary = overrideSummary(name, member(overrides, name));
    if (!summary.empty()) {
      changed.push_back(summary);
    }
  }
  const json& byHost = member(overrides, "outboundByHost");
  if (byHost.is_object() && !byHost.empty()) {
    std::string hosts;
    for (const auto& [host, entry] : byHost.items()) {
      hosts += (hosts.empty() ? "" : ", ") + host + " -> " + str(entry, "handler");
    }
    changed.push_back("outboundByHost " + hosts);
  }
  if (member(overrides, "outbound").is_object()) {
    changed.push_back("outbound " + str(member(overrides, "outbound"), "handler"));
  }
  std::string changes;
  for (const std::string& change : changed) {
    changes += (changes.empty() ? "" : "; ") + change;
  }
  row("overrides:", changes.empty() ? "(none: the policy as is)" : changes);
  row("connections:", str(counters, "openConnections", "0") + " open");
  std::string kernel;
  const json& kernelCounters = member(counters, "kernel");
  if (kernelCounters.is_object()) {
    for (const auto& [name, value] : kernelCounters.items()) {
      kernel += (kernel.empty() ? "" : " ") + name + "=" + value.dump();
    }
  }
  row("kernel counters:", kernel.empty() ? "(none yet)" : kernel);
  // Name-based allow rules: the addresses the sandbox's DNS answers put in the kernel.
  const json& names = member(body, "nameRuleEntries");
  if (names.is_array() && !names.empty()) {
    bool first = true;
    for (const json& e : names) {
      const std::string port = str(e, "port", "0") == "0" ? "*" : str(e, "port");
      row(first ? "name rules:" : "", str(e, "name") + " -> " + str(e, "address") + " " +
                                          str(e, "protocol") + "/" + port + " (" + str(e, "rule") +
                                          ", expires in " + str(e, "expiresInSeconds") + " s)");
      first = false;
    }
  } else {
    row("name rules:", "(none live)");
  }
  for (const json& warning : member(body, "warnings")) {
    out << "  warning: " << (warning.is_string() ? warning.get<std::string>() : warning.dump())
        << "\n";
  }
  return out.str();
}

}  // namespace render

using nlohmann::json;
using render::member;
using render::str;

std::string renderDaemonStatus(const json& status) {
  std::ostringstream out;
  out << "daemon: egressd " << str(status, "version", "(unknown version)") << " on "
      << str(status, "socket") << "\n";
  out << "  sandboxes: " << str(status, "sandboxes", "0")
      << ", policies: " << str(status, "policies", "0") << "\n";
  out << "  state dir: " << str(status, "stateDir", "-")
      << ", pin root: " << str(status, "pinRoot", "-") << "\n";
  const json& persist = member(status, "persistSecrets");
  out << "  API-set secrets: "
      << (persist.is_boolean() && persist.get<bool>() ? "persisted in the state dir"
                                                      : "in memory only (lost on restart)")
      << "\n";
  return out.str();
}

namespace {

// Fixed widths, so that lines printed one by one while following still line up.
std::string column(const std::string& text, size_t width) {
  return text.size() >= width ? text + " " : text + std::string(width - text.size() + 1, ' ');
}

}  // namespace

std::string auditHeader() {
  return column("TIME", 27) + column("SANDBOX", 14) + column("LAYER", 6) + column("DECISION", 8) +
         "WHAT\n";
}

std::string renderAuditRecord(const json& record) {
  std::string what;
  const std::string host = str(record, "host");
  const std::string method = str(record, "method");
  if (!method.empty() || !host.empty()) {
    what = (method.empty() ? std::string() : method + " ") + host + str(record, "path");
    if (!str(record, "query_type").empty()) {
      what += " " + str(record, "query_type");
    }
  } else if (!str(record, "orig_dst").empty()) {
    what = str(record, "protocol") + " " + str(record, "orig_dst");
  } else {
    what = "-";
  }
  if (member(record, "status").is_number() && member(record, "status").get<long>() != 0) {
    what += " -> " + str(record, "status");
  }
  if (!str(record, "rcode").empty()) {
    what += " -> " + str(record, "rcode");
  }
  if (!str(record, "reason").empty()) {
    what += "  " + str(record, "reason");
  }
  if (!str(record, "rule").empty()) {
    what += " rule=\"" + str(record, "rule") + "\"";
  }
  if (!str(record, "handler").empty()) {
    what += " handler=" + str(record, "handler");
  }
  return column(str(record, "time", "-"), 27) + column(str(record, "sandbox", "-"), 14) +
         column(str(record, "layer", "-"), 6) + column(str(record, "decision", "-"), 8) + what +
         "\n";
}

}  // namespace egressd::cli
