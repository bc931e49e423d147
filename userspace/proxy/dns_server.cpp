#include "proxy/dns_server.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

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
#include "metrics/metrics.h"
#include "policy/host_policy.h"
#include "proxy/dns_limits.h"
#include "proxy/dns_query_judge.h"
#include "proxy/stream_ops.h"

namespace egressd::proxy {

using asio::experimental::awaitable_operators::operator||;
using asio::ip::tcp;
using asio::ip::udp;

namespace {

// Limit refusals of one kind are audited once per this long (the first of a burst, then a
// line counting the ones left out).
constexpr auto kLimitAuditEvery = std::chrono::seconds(1);

struct DnsSandbox {
  std::shared_ptr<SandboxContext> context;
  QueryLimiter limiter;
  std::atomic<size_t> pending{0};
  std::atomic<size_t> tcpConnections{0};
  NameRuleTracker nameRules;  // name-based allow rules' live kernel entries

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
  // out. Fails when the kernel refused them.
  Status installNameRules(DnsSandbox& sb, const Pending& p, const std::vector<IpAddress>& addrs,
                          uint32_t ttl) {
    if (config.nameRules == nullptr || (p.q.qtype != dns::kTypeA && p.q.qtype != dns::kTypeAaaa)) {
      return okStatus();
    }
    return sb.nameRules.install(*config.nameRules, *sb.context, *p.view, p.name, addrs, ttl);
  }

  // Every sandbox's name-rule entries swept (NameRuleTracker::sweep).
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
      sb->nameRules.sweep(*config.nameRules, *sb->context, now);
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

  void count(DnsSandbox& sb, const DnsOutcome& o) {
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
             const DnsOutcome& o, std::chrono::steady_clock::time_point started) {
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

  // Everything before forwarding, synchronously: the policy's judgement (parse, limits,
  // type, name), then this server's own limit on queries waiting for an upstream.
  void judge(DnsSandbox& sb, Pending& p, bool overTcp) {
    p.view = sb.context->currentPolicy();
    DnsQueryJudgement judged = judgeDnsQuery(p.query, *p.view, sb.limiter);
    if (judged.action == DnsQueryJudgement::Action::kIgnore) {
      p.done = true;
      return;
    }
    if (!judged.query) {
      // Malformed: FORMERR, except to a flood refused by the rate limit (no reply at all).
      p.done = true;
      audit(sb, nullptr, "", overTcp, judged.outcome, p.started);
      if (!judged.outcome.limit) {
        p.reply = dns::buildFormErr(p.query);
      }
      return;
    }
    p.q = std::move(*judged.query);
    auto local = [&](const DnsOutcome& o) {
      audit(sb, &p.q, p.q.name, overTcp, o, p.started);
      p.reply = dns::buildLocalAnswer(p.query, p.q, o.rcode);
      p.done = true;
    };
    if (judged.action == DnsQueryJudgement::Action::kAnswer) {
      return local(judged.outcome);
    }
    p.name = std::move(judged.name);
    p.decision = std::move(judged.decision);
    if (sb.pending.load() >= config.maxPendingPerSandbox) {
      return local(DnsOutcome{
          "error", "too_many_pending", "",
          std::to_string(config.maxPendingPerSandbox) + " queries already wait for an upstream",
          dns::kRcodeServFail});
    }
  }

  // After forwarding: rebinding filter, the answer made the sandbox's, the audit line.
  std::vector<uint8_t> finish(DnsSandbox& sb, Pending& p, bool overTcp,
                              Result<dns::Forwarded>& forwarded) {
    const dns::ParsedQuery& q = p.q;
    auto local = [&](const DnsOutcome& o) {
      audit(sb, &q, p.name, overTcp, o, p.started);
      return dns::buildLocalAnswer(p.query, q, o.rcode);
    };
    if (!forwarded.ok()) {
      return local(DnsOutcome{"error", "upstream_failed", p.decision.rule,
                              forwarded.error().message(), dns::kRcodeServFail});
    }
    if (forwarded->cached) {
      if (sb.cacheHits != nullptr) {
        sb.cacheHits->inc();
      }
    } else if (sb.cacheMisses != nullptr) {
      sb.cacheMisses->inc();
    }
    const dns::ParsedAnswer& a = forwarded->answer;
    DnsOutcome o{"allow", p.decision.reason, p.decision.rule, "", a.rcode};
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
      if (Status installed = installNameRules(sb, p, kept, a.ttl); !installed.ok()) {
        return local(DnsOutcome{"error", "name_rule_failed", p.decision.rule,
                                installed.error().message(), dns::kRcodeServFail});
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
      return local(DnsOutcome{"error", "upstream_failed", p.decision.rule,
                              relayed.error().message(), dns::kRcodeServFail});
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
  return sb->nameRules.states(*sb->context->currentPolicy(), std::chrono::steady_clock::now());
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
