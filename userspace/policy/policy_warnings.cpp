#include "policy/policy_warnings.h"

#include <string>
#include <string_view>

#include "policy/host_policy.h"

namespace egressd::policy {

namespace {

// An allow rule for a port the proxy or DNS pinning always takes first.
void addAllowWarnings(const Policy& policy, yaml::Diagnostics& diagnostics) {
  for (const AllowRule& rule : policy.allow) {
    const std::string path = "allow[" + std::to_string(rule.index) + "]";
    for (const PortRange& range : rule.ports) {
      if (range.first <= kDnsPort && kDnsPort <= range.last) {
        diagnostics.warn(
            rule.pos, path,
            "port 53 always goes to the pinned DNS resolver; this rule never applies to it");
      }
      if (rule.protocol == Protocol::kUdp) {
        continue;
      }
      for (uint16_t proxied : policy.proxyPorts) {
        if (range.first <= proxied && proxied <= range.last) {
          diagnostics.warn(
              rule.pos, path,
              "TCP port " + std::to_string(proxied) +
                  " is in proxyPorts and always goes through the proxy, where this rule " +
                  "only opens requests to the address itself (an IP-literal Host, TLS " +
                  "without a server name)" +
                  (rule.protocol == Protocol::kTcp ? "" : "; for UDP it applies as written"));
        }
      }
    }
  }
}

// Names served by CDNs that route on the Host header inside TLS: a connection whose SNI is
// one of them may carry requests for any other customer of that CDN (domain fronting),
// which passthrough cannot see. Suffixes, lowercase.
constexpr std::string_view kFrontingCdnSuffixes[] = {
    "cloudfront.net",        "azureedge.net",      "azurefd.net",  "fastly.net",
    "fastlylb.net",          "akamaized.net",      "akamaihd.net", "edgekey.net",
    "edgesuite.net",         "googleapis.com",     "appspot.com",  "cdn.cloudflare.net",
    "workers.dev",           "pages.dev",          "b-cdn.net",    "cdn77.org",
    "stackpathcdn.com",      "herokuapp.com",      "vercel.app",   "netlify.app",
    "blob.core.windows.net", "trafficmanager.net", "msecnd.net",
};

void addFrontingWarnings(const Policy& policy, yaml::Diagnostics& diagnostics) {
  if (policy.interceptHttps.all || policy.outbound) {
    return;  // every TLS connection is intercepted (a catch-all handler forces it)
  }
  // Whether interception (interceptHttps list or a handler bound by name) covers `name`.
  auto intercepted = [&policy](const std::string& name) {
    for (const HostGlob& glob : policy.interceptHttps.hosts) {
      if (hostGlobMatches(glob.pattern, name)) {
        return true;
      }
    }
    for (const HostHandler& h : policy.outboundByHost) {
      if (hostGlobMatches(h.host.pattern, name)) {
        return true;
      }
    }
    return false;
  };
  for (const HostGlob& glob : policy.allowedHosts.globs) {
    for (std::string_view suffix : kFrontingCdnSuffixes) {
      const std::string dotted = "." + std::string(suffix);
      const bool under = glob.pattern == suffix ||
                         (glob.pattern.size() > dotted.size() && glob.pattern.ends_with(dotted));
      // A name the glob allows under this CDN: the glob itself when it is one (its '*'
      // standing for one label), else a sample name under the suffix it matches.
      std::string sample;
      if (under) {
        sample = glob.pattern;
        for (size_t star = sample.find('*'); star != std::string::npos; star = sample.find('*')) {
          sample.replace(star, 1, "egressd-fronting-probe");
        }
      } else if (hostGlobMatches(glob.pattern, "egressd-fronting-probe" + dotted)) {
        sample = "egressd-fronting-probe" + dotted;
      } else {
        continue;
      }
      if (intercepted(sample)) {
        continue;
      }
      diagnostics.warn(
          glob.pos, "allowedHosts",
          yaml::quote(glob.text) + " allows names on " + std::string(suffix) +
              ", a CDN that routes on the Host header inside TLS: under passthrough a "
              "connection for an allowed name can carry requests for any other site on it "
              "(domain fronting); list it in interceptHttps if that matters "
              "(docs/https.md#domain-fronting)");
      break;  // one warning per entry
    }
  }
}

}  // namespace

void addPolicyWarnings(const Policy& policy, yaml::Diagnostics& diagnostics) {
  addAllowWarnings(policy, diagnostics);
  addFrontingWarnings(policy, diagnostics);
}

}  // namespace egressd::policy
