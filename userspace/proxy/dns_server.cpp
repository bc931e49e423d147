#include "proxy/dns_server.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ip/udp.hpp>
#include <asio/post.hpp>
#include <asio/read.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>

#include "audit/audit_log.h"
#include "common/io_thread.h"
#include "dns/message.h"
#include "handlers/host_binding.h"
#include "metrics/metrics.h"
#include "policy/host_policy.h"
#include "proxy/dns_limits.h"
#include "proxy/stream_ops.h"
#include "proxy/upstream_choice.h"

namespace egressd::proxy {

using asio::experimental::awaitable_operators::operator||;
using asio::ip::tcp;
using asio::ip::udp;

namespace {

// Limit refusals of one kind are audited once per this long (the first of a burst, then a
// line counting the ones left out).
constexpr auto kLimitAuditEvery = std::chrono::seconds(1);

std::vector<std::string> labelsOf(std::string_view name) {
  std::vector<std::string> labels;
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = name.find('.', start);
    if (end == std::string_view::npos) {
      end = name.size();
    }
    labels.emplace_back(name.substr(start, end - start));
    start = end + 1;
  }
  return labels;
}

bool isDecimalOctet(const std::string& s, int& out) {
  if (s.empty() || s.size() > 3 ||
      !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return false;
  }
  out = std::stoi(s);
  return out <= 255;
}

int nibble(const std::string& s) {
  if (s.size() != 1) {
    return -1;
  }
  const char c = s[0];
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  return -1;
}

}  // namespace

DnsNameDecision decideDnsName(const SandboxPolicyView& view, std::string_view name) {
  const policy::HostDecision host = view.hosts.decideName(name);
  if (host.allowed()) {
    return {true, host.reason, host.rule};
  }
  // A name-based allow rule makes its host resolvable (that is how its addresses reach the
  // kernel), unless deniedHosts names it.
  if (host.reason != "denied_host") {
    if (const policy::AllowRule* rule = policy::matchNameRule(view.nameRules, name)) {
      return {true, "allow_rule", policy::allowRuleName(*rule)};
    }
  }
  // The proxy's precedence: a per-host handler binding lets a name through that only the
  // default (internet disabled) denied; deniedHosts and allowedHosts still win.
  if (handlerMayApply(host)) {
    const handlers::HostBinding* binding = handlers::pickByHost(view.handlers.instanceByHost, name);
    if (binding == nullptr) {
      binding = handlers::pickByHost(view.handlers.policyByHost, name);
    }
    if (binding != nullptr) {
      return {true, "handler", "handler " + binding->handler};
    }
  }
  return {false, host.reason, host.rule};
}

bool isPrivateReverseName(std::string_view name) {
  std::vector<std::string> labels = labelsOf(name);
  if (labels.size() >= 2 && labels[labels.size() - 1] == "arpa" &&
      labels[labels.size() - 2] == "in-addr") {
    // d.c.b.a.in-addr.arpa: octets reversed; a shorter name is a whole range.
    std::vector<int> octets;
    for (size_t i = labels.size() - 2; i-- > 0;) {
      int octet = 0;
      if (!isDecimalOctet(labels[i], octet)) {
        return false;
      }
      octets.push_back(octet);
    }
    if (octets.empty() || octets.size() > 4) {
      return false;
    }
    const int a = octets[0];
    const int b = octets.size() > 1 ? octets[1] : -1;
    if (a == 0 || a == 10 || a == 127) {
      return true;
    }
    if (b < 0) {
      return false;
    }
    return (a == 169 && b == 254) || (a == 172 && b >= 16 && b <= 31) || (a == 192 && b == 168) ||
           (a == 100 && b >= 64 && b <= 127);
  }
  if (labels.size() >= 2 && labels[labels.size() - 1] == "arpa" &&
      labels[labels.size() - 2] == "ip6") {
    std::vector<int> nibbles;
    for (size_t i = labels.size() - 2; i-- > 0;) {
      const int n = nibble(labels[i]);
      if (n < 0) {
        return false;
      }
      nibbles.push_back(n);
    }
    if (nibbles.empty() || nibbles.size() > 32) {
      return false;
    }
    if (nibbles[0] == 0xf && nibbles.size() >= 2) {
      const int second = nibbles[1];
      if (second == 0xc || second == 0xd) {
        return true;  // fc00::/7
      }
      if (second == 0xe && nibbles.size() >= 3 && nibbles[2] >= 8 && nibbles[2] <= 0xb) {
        return true;  // fe80::/10
      }
      return false;
    }
    // ::1 and :: (all nibbles given)
    if (nibbles.size() == 32) {
      return std::all_of(nibbles.begin(), nibbles.end() - 1, [](int n) { return n == 0; }) &&
             nibbles.back() <= 1;
    }
    return false;
  }
  return false;
}

bool isForwardedType(uint16_t qtype) {
  switch (qtype) {
    case dns::kTypeA:
    case dns::kTypeAaaa:
    case dns::kTypeCname:
    case dns::kTypeHttps:
    case dns::kTypeSvcb:
    case dns::kTypeMx:
    case dns::kTypeTxt:
    case dns::kTypeSrv:
      return true;
    default:
      return false;
  }
}

namespace {

// What one query came to, for the audit line and the metric.
struct Outcome {
  std::string decision;  // allow | deny | error
  std::string reason;
  std::string rule;
  std::string detail;
  int rcode = dns::kRcodeNoError;
  uint16_t answers = 0;
  bool limit = false;  // refused by dns.limits: audited once per burst
};

struct TrackedEntry {
  std::string name;
  std::chrono::steady_clock::time_point expires;
};

struct DnsSandbox {
  std::shared_ptr<SandboxContext> context;
  QueryLimiter limiter;
  std::atomic<size_t> pending{0};
  std::atomic<size_t> tcpConnections{0};
  // Name-based allow rules' live kernel entries (guarded by `mutex`).
  std::map<policy::NameRuleEntry, TrackedEntry> nameEntries;

  std::mutex mutex;  // the members below
  std::unordered_map<std::string, metrics::Counter*> counters;
  std::string lastLimitReason;
  std::chrono::steady_clock::time_point lastLimitAudit{};
  uint64_t limitSuppressed = 0;
  metrics::Counter* cacheHits = nullptr;
  metrics::Counter* cacheMisses = nullptr;
};

}  // namespace

struct DnsServer::Impl {
  struct Pending;
  DnsServerConfig config;
  asio::io_context io{1};
  asio::executor_work_guard<asio::io_context::executor_type> guard = asio::make_work_guard(io);
  std::thread thread;

  struct Serving {
    std::shared_ptr<DnsSandbox> sandbox;
    std::vector<std::shared_ptr<udp::socket>> udpSockets;
    std::vector<std::shared_ptr<tcp::acceptor>> acceptors;
  };
  mutable std::mutex mutex;
  std::map<std::string, Serving> sandboxes;
  asio::steady_timer sweepTimer{io};

  // Name-based allow rules: the answer's addresses into the kernel, before the answer goes
  // out. False (and `error`) when the kernel refused them.
  bool installNameRules(DnsSandbox& sb, const Pending& p, const std::vector<IpAddress>& addrs,
                        uint32_t ttl, std::string& error) {
    if (config.nameRules == nullptr || p.view->nameRules.empty() ||
        (p.q.qtype != dns::kTypeA && p.q.qtype != dns::kTypeAaaa)) {
      return true;
    }
    const auto expires = std::chrono::steady_clock::now() +
                         std::chrono::seconds(uint64_t{ttl} + p.view->dns.nameRuleGraceSeconds);
    std::vector<policy::NameRuleEntry> entries;
    for (const IpAddress& addr : addrs) {
      for (policy::NameRuleEntry& e : policy::nameRuleEntries(p.view->nameRules, p.name, addr)) {
        entries.push_back(e);
      }
    }
    if (entries.empty()) {
      return true;
    }
    {
      std::lock_guard lock(sb.mutex);
      for (const policy::NameRuleEntry& e : entries) {
        auto [it, inserted] = sb.nameEntries.try_emplace(e, TrackedEntry{p.name, expires});
        if (!inserted) {
          it->second.expires = std::max(it->second.expires, expires);
          it->second.name = p.name;
        }
      }
    }
    Status added = config.nameRules->add(sb.context->slot, entries);
    if (!added.ok()) {
      error = added.error().message();
      return false;
    }
    return true;
  }

  // Expired (or no longer matching) name-rule entries out of the kernel; live ones put
  // back into the live rule generation (a policy swap starts the new one without them).
  void sweepNameRules() {
    std::vector<std::shared_ptr<DnsSandbox>> all;
    {
      std::lock_guard lock(mutex);
      for (const auto& [id, serving] : sandboxes) {
        all.push_back(serving.sandbox);
      }
    }
    const auto now = std::chrono::steady_clock::now();
    for (const auto& sb : all) {
      const auto view = sb->context->currentPolicy();
      std::vector<policy::NameRuleEntry> expired;
      std::vector<policy::NameRuleEntry> timedOut;  // expired by time, rule still there
      std::vector<policy::NameRuleEntry> live;
      {
        std::lock_guard lock(sb->mutex);
        for (const auto& [entry, tracked] : sb->nameEntries) {
          const auto current = policy::nameRuleEntries(view->nameRules, tracked.name, entry.addr);
          if (std::find(current.begin(), current.end(), entry) == current.end()) {
            expired.push_back(entry);  // the rule is gone: so is the entry, in use or not
          } else if (tracked.expires <= now) {
            timedOut.push_back(entry);
          }
        }
      }
      // Established connections are left alone: an entry they use stays until they end.
      std::vector<policy::NameRuleEntry> used;
      if (!timedOut.empty()) {
        used = config.nameRules->inUse(*sb->context, timedOut);
      }
      {
        std::lock_guard lock(sb->mutex);
        for (const policy::NameRuleEntry& e : timedOut) {
          if (std::find(used.begin(), used.end(), e) == used.end()) {
            expired.push_back(e);
          }
        }
        for (const policy::NameRuleEntry& e : expired) {
          sb->nameEntries.erase(e);
        }
        for (const auto& [entry, tracked] : sb->nameEntries) {
          live.push_back(entry);
        }
      }
      if (!expired.empty()) {
        if (Status st = config.nameRules->remove(sb->context->slot, expired); !st.ok()) {
          spdlog::warn("sandbox {}: removing expired name-rule entries: {}", sb->context->id,
                       st.error().message());
        }
      }
      if (!live.empty()) {
        if (Status st = config.nameRules->add(sb->context->slot, live); !st.ok()) {
          spdlog::warn("sandbox {}: re-asserting name-rule entries: {}", sb->context->id,
                       st.error().message());
        }
      }
    }
  }

  asio::awaitable<void> sweepLoop() {
    for (;;) {
      sweepTimer.expires_after(config.nameRuleSweep);
      auto [ec] = co_await sweepTimer.async_wait(kNoThrow);
      if (ec) {
        co_return;
      }
      try {
        sweepNameRules();
      } catch (const std::exception& e) {
        spdlog::error("name-rule sweep: {}", e.what());
      }
    }
  }

  void count(DnsSandbox& sb, const Outcome& o) {
    if (config.metrics == nullptr) {
      return;
    }
    const std::string key = o.decision + '/' + o.reason;
    metrics::Counter* counter = nullptr;
    {
      std::lock_guard lock(sb.mutex);
      auto it = sb.counters.find(key);
      if (it == sb.counters.end()) {
        counter = &config.metrics->counter(
            "egressd_dns_queries_total",
            "Queries to egressd's resolver, by sandbox, decision and reason.",
            {{"sandbox", sb.context->id}, {"decision", o.decision}, {"reason", o.reason}});
        sb.counters.emplace(key, counter);
      } else {
        counter = it->second;
      }
    }
    counter->inc();
  }

  void audit(DnsSandbox& sb, const dns::ParsedQuery* q, const std::string& name, bool overTcp,
             const Outcome& o, std::chrono::steady_clock::time_point started) {
    count(sb, o);
    if (config.audit == nullptr) {
      return;
    }
    std::string suppressedNote;
    if (o.limit) {
      const auto now = std::chrono::steady_clock::now();
      std::lock_guard lock(sb.mutex);
      if (o.reason == sb.lastLimitReason && now - sb.lastLimitAudit < kLimitAuditEvery) {
        ++sb.limitSuppressed;
        return;
      }
      if (sb.limitSuppressed > 0) {
        suppressedNote = "; " + std::to_string(sb.limitSuppressed) +
                         " more refused by limits since the last line";
      }
      sb.lastLimitReason = o.reason;
      sb.lastLimitAudit = now;
      sb.limitSuppressed = 0;
    }
    audit::AuditRecord r;
    r.sandbox = sb.context->id;
    r.layer = "dns";
    r.protocol = overTcp ? "tcp" : "udp";
    r.host = name;
    if (q != nullptr) {
      r.queryType = dns::typeName(q->qtype);
    }
    r.rcode = dns::rcodeName(o.rcode);
    r.answers = o.answers;
    r.decision = o.decision;
    r.reason = o.reason;
    r.rule = o.rule;
    r.duration = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - started);
    r.detail = o.detail + suppressedNote;
    config.audit->write(r);
  }

  // One query on its way through answer(): what judge() found out, for finish().
  struct Pending {
    std::chrono::steady_clock::time_point started;
    std::vector<uint8_t> query;
    dns::ParsedQuery q;
    std::shared_ptr<const SandboxPolicyView> view;
    std::string name;  // normalized
    DnsNameDecision decision;
    std::vector<uint8_t> reply;  // set: answered locally, nothing to forward
    bool done = false;
  };

  // Everything before forwarding, synchronously: parse, limits, type, name policy.
  void judge(DnsSandbox& sb, Pending& p, bool overTcp) {
    p.view = sb.context->currentPolicy();
    const policy::DnsLimits& limits = p.view->dns.limits;
    // Every message takes a token, well-formed or not: a flood is refused before it costs
    // more than that (and is audited once per burst).
    const std::string_view limited = sb.limiter.admitQuery(limits);
    auto parsed = dns::parseQuery(p.query);
    if (!parsed.ok()) {
      p.done = true;
      if (!dns::headerUsable(p.query)) {
        return;
      }
      Outcome o{"deny", "malformed_query", "", parsed.error().message(), dns::kRcodeFormErr};
      if (!limited.empty()) {
        o = Outcome{"deny", std::string(limited), "dns.limits.qps", "", dns::kRcodeRefused};
        o.limit = true;
      }
      audit(sb, nullptr, "", overTcp, o, p.started);
      if (limited.empty()) {
        p.reply = dns::buildFormErr(p.query);
      }
      return;
    }
    p.q = std::move(*parsed);
    const dns::ParsedQuery& q = p.q;
    auto local = [&](const Outcome& o) {
      audit(sb, &q, q.name, overTcp, o, p.started);
      p.reply = dns::buildLocalAnswer(p.query, q, o.rcode);
      p.done = true;
    };
    const int refusedRcode = dns::kRcodeRefused;
    const int deniedRcode = p.view->dns.deniedAnswer == policy::DnsDeniedAnswer::kRefused
                                ? dns::kRcodeRefused
                                : dns::kRcodeNxDomain;

    if (!limited.empty()) {
      Outcome o{"deny", std::string(limited), "dns.limits.qps", "", refusedRcode};
      o.limit = true;
      return local(o);
    }
    if (q.opcode != 0) {
      return local(Outcome{"deny", "unsupported_opcode", "", "opcode " + std::to_string(q.opcode),
                           dns::kRcodeNotImp});
    }
    if (q.qclass != dns::kClassIn) {
      return local(Outcome{"deny", "unsupported_class", "", "class " + std::to_string(q.qclass),
                           refusedRcode});
    }
    // Presentation length without the trailing dot: wire length minus the first length byte
    // and the root label.
    const size_t nameLength = q.nameWireLength >= 2 ? q.nameWireLength - 2 : 0;
    if (nameLength > limits.maxNameLength) {
      Outcome o{"deny", "name_too_long", "dns.limits.maxNameLength",
                std::to_string(nameLength) + " characters", refusedRcode};
      o.limit = true;
      return local(o);
    }
    if (q.longestLabel > limits.maxLabelLength) {
      Outcome o{"deny", "label_too_long", "dns.limits.maxLabelLength",
                "a label of " + std::to_string(q.longestLabel) + " characters", refusedRcode};
      o.limit = true;
      return local(o);
    }
    if (q.qtype == dns::kTypeAny) {
      return local(Outcome{"deny", "type_refused", "", "ANY", refusedRcode});
    }
    if (q.qtype == dns::kTypePtr) {
      if (isPrivateReverseName(q.name)) {
        return local(Outcome{"allow", "private_ptr", "", "answered locally", dns::kRcodeNxDomain});
      }
      return local(Outcome{"deny", "type_refused", "", "PTR", refusedRcode});
    }
    if (!isForwardedType(q.qtype)) {
      return local(Outcome{"deny", "type_refused", "", dns::typeName(q.qtype), refusedRcode});
    }

    auto host = policy::normalizeHost(q.name);
    if (!host.ok() || host->ip || host->port) {
      return local(Outcome{"deny", "invalid_host", "",
                           host.ok() ? "an address, not a name" : host.error().message(),
                           deniedRcode});
    }
    p.name = host->name;
    p.decision = decideDnsName(*p.view, p.name);
    if (!p.decision.allowed) {
      return local(Outcome{"deny", p.decision.reason, p.decision.rule, "", deniedRcode});
    }
    const size_t queryBytes = dns::kHeaderSize + q.nameWireLength + 4;
    if (std::string_view over = sb.limiter.admitForward(limits, p.name, queryBytes);
        !over.empty()) {
      Outcome o{"deny", std::string(over),
                over == "unique_names_limited" ? "dns.limits.uniqueNamesPerMinute"
                                               : "dns.limits.queryBytesPerMinute",
                "registered domain " + registeredDomain(p.name), refusedRcode};
      o.limit = true;
      return local(o);
    }
    if (sb.pending.load() >= config.maxPendingPerSandbox) {
      return local(Outcome{
          "error", "too_many_pending", "",
          std::to_string(config.maxPendingPerSandbox) + " queries already wait for an upstream",
          dns::kRcodeServFail});
    }
  }

  // After forwarding: rebinding filter, the answer made the sandbox's, the audit line.
  std::vector<uint8_t> finish(DnsSandbox& sb, Pending& p, bool overTcp,
                              Result<dns::Forwarded>& forwarded) {
    const dns::ParsedQuery& q = p.q;
    auto local = [&](const Outcome& o) {
      audit(sb, &q, p.name, overTcp, o, p.started);
      return dns::buildLocalAnswer(p.query, q, o.rcode);
    };
    if (!forwarded.ok()) {
      return local(Outcome{"error", "upstream_failed", p.decision.rule, forwarded.error().message(),
                           dns::kRcodeServFail});
    }
    if (forwarded->cached) {
      if (sb.cacheHits != nullptr) {
        sb.cacheHits->inc();
      }
    } else if (sb.cacheMisses != nullptr) {
      sb.cacheMisses->inc();
    }
    const dns::ParsedAnswer& a = forwarded->answer;
    Outcome o{"allow", p.decision.reason, p.decision.rule, "", a.rcode};
    o.answers = a.answerCount;
    o.detail = forwarded->cached ? "cached" : "upstream " + forwarded->server;
    const size_t maxSize = overTcp ? 65535 : dns::maxUdpAnswer(q);

    // Rebinding: addresses the policy refuses are dropped from the answer.
    std::vector<IpAddress> kept;
    std::string dropped;
    for (const IpAddress& address : a.addresses) {
      const policy::HostDecision judged = p.view->hosts.judgeAnswerAddress(address);
      if (judged.allowed()) {
        kept.push_back(address);
      } else if (dropped.empty()) {
        dropped = address.toString() + " (" + judged.reason +
                  (judged.rule.empty() ? "" : ", " + judged.rule) + ")";
      }
    }
    // SVCB/HTTPS address hints are addresses too: one the policy refuses takes the records
    // out (an empty NOERROR answer; the client falls back to A/AAAA, filtered above).
    for (const IpAddress& hint : a.hintAddresses) {
      const policy::HostDecision judged = p.view->hosts.judgeAnswerAddress(hint);
      if (!judged.allowed()) {
        o.answers = 0;
        o.reason = "answer_filtered";
        o.detail = "dropped the SVCB/HTTPS records: hint " + hint.toString() + " (" +
                   judged.reason + (judged.rule.empty() ? "" : ", " + judged.rule) + ")";
        audit(sb, &q, p.name, overTcp, o, p.started);
        return dns::buildLocalAnswer(p.query, q, dns::kRcodeNoError);
      }
    }
    if (a.rcode == dns::kRcodeNoError && !kept.empty() &&
        (q.qtype == dns::kTypeA || q.qtype == dns::kTypeAaaa)) {
      sb.context->resolved.record(
          kept, std::chrono::steady_clock::now() +
                    std::chrono::seconds(uint64_t{a.ttl} + p.view->dns.nameRuleGraceSeconds));
    }
    if (a.rcode == dns::kRcodeNoError) {
      std::string error;
      if (!installNameRules(sb, p, kept, a.ttl, error)) {
        return local(
            Outcome{"error", "name_rule_failed", p.decision.rule, error, dns::kRcodeServFail});
      }
    }
    if (!dropped.empty()) {
      o.answers = static_cast<uint16_t>(kept.size());
      o.reason = "answer_filtered";
      o.detail = "dropped " + dropped + (kept.size() + 1 < a.addresses.size() ? " and more" : "");
      audit(sb, &q, p.name, overTcp, o, p.started);
      std::vector<uint8_t> rebuilt = dns::buildAddressAnswer(p.query, q, kept, a.ttl);
      if (rebuilt.size() > maxSize) {
        rebuilt = dns::buildLocalAnswer(p.query, q, dns::kRcodeNoError);
        rebuilt[2] = static_cast<uint8_t>(rebuilt[2] | 0x02);
      }
      return rebuilt;
    }
    auto relayed = dns::relayAnswer(*forwarded->message, p.query, q, maxSize);
    if (!relayed.ok()) {
      return local(Outcome{"error", "upstream_failed", p.decision.rule, relayed.error().message(),
                           dns::kRcodeServFail});
    }
    audit(sb, &q, p.name, overTcp, o, p.started);
    return std::move(*relayed);
  }

  // The answer to one query (empty: nothing to send back).
  asio::awaitable<std::vector<uint8_t>> answer(std::shared_ptr<DnsSandbox> sb,
                                               std::vector<uint8_t> query, bool overTcp) {
    auto p = std::make_unique<Pending>();
    p->started = std::chrono::steady_clock::now();
    p->query = std::move(query);
    judge(*sb, *p, overTcp);
    if (p->done) {
      co_return std::move(p->reply);
    }
    ++sb->pending;
    Result<dns::Forwarded> forwarded = co_await sb->context->resolver->forward(p->name, p->q.qtype);
    --sb->pending;
    co_return finish(*sb, *p, overTcp, forwarded);
  }

  asio::awaitable<void> answerUdp(std::shared_ptr<udp::socket> socket,
                                  std::shared_ptr<DnsSandbox> sb, std::vector<uint8_t> query,
                                  udp::endpoint peer) {
    try {
      std::vector<uint8_t> reply = co_await answer(sb, std::move(query), false);
      if (!reply.empty() && socket->is_open()) {
        co_await socket->async_send_to(asio::buffer(reply), peer, kNoThrow);
      }
    } catch (const std::exception& e) {
      spdlog::error("sandbox {}: DNS query: {}", sb->context->id, e.what());
    }
  }

  asio::awaitable<void> udpLoop(std::shared_ptr<udp::socket> socket,
                                std::shared_ptr<DnsSandbox> sb) {
    std::vector<uint8_t> buffer(65536);
    for (;;) {
      udp::endpoint peer;
      auto [ec, length] = co_await socket->async_receive_from(asio::buffer(buffer), peer, kNoThrow);
      if (ec == asio::error::operation_aborted || !socket->is_open()) {
        co_return;
      }
      if (ec) {
        continue;  // e.g. ECONNREFUSED from an earlier reply's ICMP: not ours to act on
      }
      asio::co_spawn(
          io,
          answerUdp(socket, sb,
                    std::vector<uint8_t>(buffer.begin(),
                                         buffer.begin() + static_cast<std::ptrdiff_t>(length)),
                    peer),
          asio::detached);
    }
  }

  asio::awaitable<void> tcpConnection(tcp::socket socket, std::shared_ptr<DnsSandbox> sb) {
    struct Count {
      std::atomic<size_t>& n;
      ~Count() { --n; }
    } count{sb->tcpConnections};
    try {
      asio::steady_timer deadline(io);
      for (;;) {
        std::array<uint8_t, 2> prefix{};
        deadline.expires_after(config.tcpIdleTimeout);
        auto header = co_await (asio::async_read(socket, asio::buffer(prefix), kNoThrow) ||
                                deadline.async_wait(kNoThrow));
        if (header.index() == 1 || std::get<0>(std::get<0>(header))) {
          co_return;
        }
        std::vector<uint8_t> query(static_cast<size_t>((prefix[0] << 8) | prefix[1]));
        auto body = co_await (asio::async_read(socket, asio::buffer(query), kNoThrow) ||
                              deadline.async_wait(kNoThrow));
        if (body.index() == 1 || std::get<0>(std::get<0>(body))) {
          co_return;
        }
        std::vector<uint8_t> reply = co_await answer(sb, std::move(query), true);
        if (reply.empty()) {
          co_return;
        }
        std::vector<uint8_t> framed;
        framed.reserve(reply.size() + 2);
        framed.push_back(static_cast<uint8_t>(reply.size() >> 8));
        framed.push_back(static_cast<uint8_t>(reply.size() & 0xff));
        framed.insert(framed.end(), reply.begin(), reply.end());
        auto [writeError, written] =
            co_await asio::async_write(socket, asio::buffer(framed), kNoThrow);
        if (writeError) {
          co_return;
        }
      }
    } catch (const std::exception& e) {
      spdlog::error("sandbox {}: DNS over TCP: {}", sb->context->id, e.what());
    }
  }

  asio::awaitable<void> acceptLoop(std::shared_ptr<tcp::acceptor> acceptor,
                                   std::shared_ptr<DnsSandbox> sb) {
    for (;;) {
      auto [ec, socket] = co_await acceptor->async_accept(kNoThrow);
      if (ec == asio::error::operation_aborted || !acceptor->is_open()) {
        co_return;
      }
      if (ec) {
        asio::steady_timer pause(io, std::chrono::milliseconds(50));
        co_await pause.async_wait(kNoThrow);
        continue;
      }
      if (sb->tcpConnections.load() >= config.maxTcpPerSandbox) {
        asio::error_code ignored;
        socket.close(ignored);  // a flood of idle connections must not exhaust egressd
        continue;
      }
      ++sb->tcpConnections;
      asio::co_spawn(io, tcpConnection(std::move(socket), sb), asio::detached);
    }
  }
};

DnsServer::DnsServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<DnsServer>> DnsServer::start(DnsServerConfig config) {
  auto impl = std::make_unique<Impl>();
  impl->config = config;
  if (config.nameRules != nullptr) {
    asio::co_spawn(impl->io, impl->sweepLoop(), asio::detached);
  }
  impl->thread = startIoThread(impl->io, "DNS server thread");
  return std::unique_ptr<DnsServer>(new DnsServer(std::move(impl)));
}

DnsServer::~DnsServer() {
  {
    std::lock_guard lock(impl_->mutex);
    impl_->sandboxes.clear();
  }
  impl_->io.stop();
  if (impl_->thread.joinable()) {
    impl_->thread.join();
  }
}

Status DnsServer::addSandbox(const std::shared_ptr<SandboxContext>& sandbox, DnsSockets sockets) {
  auto sb = std::make_shared<DnsSandbox>();
  sb->context = sandbox;
  if (impl_->config.metrics != nullptr) {
    const std::string help = "Answers of egressd's resolver from its cache or an upstream.";
    sb->cacheHits = &impl_->config.metrics->counter("egressd_dns_cache_total", help,
                                                    {{"sandbox", sandbox->id}, {"result", "hit"}});
    sb->cacheMisses = &impl_->config.metrics->counter(
        "egressd_dns_cache_total", help, {{"sandbox", sandbox->id}, {"result", "miss"}});
  }
  Impl::Serving serving;
  serving.sandbox = sb;
  for (UniqueFd* fd : {&sockets.udp4, &sockets.udp6}) {
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    ::getsockname(fd->get(), reinterpret_cast<sockaddr*>(&ss), &len);
    auto socket = std::make_shared<udp::socket>(impl_->io);
    asio::error_code ec;
    socket->assign(ss.ss_family == AF_INET6 ? udp::v6() : udp::v4(), fd->get(), ec);
    if (ec) {
      return Error(ec.value(),
                   "serve the resolver of sandbox " + sandbox->id + ": " + ec.message());
    }
    fd->release();
    serving.udpSockets.push_back(socket);
  }
  for (UniqueFd* fd : {&sockets.tcp4, &sockets.tcp6}) {
    if (::listen(fd->get(), 1024) != 0) {
      return lastSystemError("listen on the resolver port " + std::to_string(sockets.port) +
                             " of sandbox " + sandbox->id);
    }
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    ::getsockname(fd->get(), reinterpret_cast<sockaddr*>(&ss), &len);
    auto acceptor = std::make_shared<tcp::acceptor>(impl_->io);
    asio::error_code ec;
    acceptor->assign(ss.ss_family == AF_INET6 ? tcp::v6() : tcp::v4(), fd->get(), ec);
    if (ec) {
      return Error(ec.value(),
                   "serve the resolver of sandbox " + sandbox->id + ": " + ec.message());
    }
    fd->release();
    serving.acceptors.push_back(acceptor);
  }
  for (const auto& socket : serving.udpSockets) {
    asio::co_spawn(impl_->io, impl_->udpLoop(socket, sb), asio::detached);
  }
  for (const auto& acceptor : serving.acceptors) {
    asio::co_spawn(impl_->io, impl_->acceptLoop(acceptor, sb), asio::detached);
  }
  std::lock_guard lock(impl_->mutex);
  impl_->sandboxes.insert_or_assign(sandbox->id, std::move(serving));
  return okStatus();
}

std::vector<NameRuleState> DnsServer::nameRuleEntries(const std::string& id) const {
  std::shared_ptr<DnsSandbox> sb;
  {
    std::lock_guard lock(impl_->mutex);
    auto it = impl_->sandboxes.find(id);
    if (it == impl_->sandboxes.end()) {
      return {};
    }
    sb = it->second.sandbox;
  }
  const auto view = sb->context->currentPolicy();
  const auto now = std::chrono::steady_clock::now();
  std::vector<NameRuleState> out;
  std::lock_guard lock(sb->mutex);
  for (const auto& [entry, tracked] : sb->nameEntries) {
    NameRuleState state;
    state.name = tracked.name;
    state.entry = entry;
    for (const policy::AllowRule& rule : view->nameRules) {
      if (rule.index + 1 == entry.ruleId) {
        state.rule = policy::allowRuleName(rule);
      }
    }
    state.expiresIn =
        std::chrono::duration_cast<std::chrono::seconds>(tracked.expires - now).count();
    out.push_back(std::move(state));
  }
  return out;
}

void DnsServer::removeSandbox(const std::string& id) {
  std::lock_guard lock(impl_->mutex);
  auto it = impl_->sandboxes.find(id);
  if (it == impl_->sandboxes.end()) {
    return;
  }
  Impl::Serving serving = std::move(it->second);
  impl_->sandboxes.erase(it);
  asio::post(impl_->io, [serving = std::move(serving)] {
    asio::error_code ignored;
    for (const auto& socket : serving.udpSockets) {
      socket->close(ignored);
    }
    for (const auto& acceptor : serving.acceptors) {
      acceptor->close(ignored);
    }
  });
}

}  // namespace egressd::proxy
