/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The one ABI between the BPF programs and the egressd userspace: every map key
 * and value, verdict reason, counter and pin name. Included by both sides
 * ("bpf/abi.h"); never mirrored. Fixed-width types, explicit padding, no bool,
 * no bitfields; every struct has its size asserted.
 *
 * Rules live in LPM tries shared by all sandboxes. A key starts with a
 * "ruleset" (sandbox slot * 2 + generation). The sandbox's configuration is
 * double-buffered the same way (egressd_sandboxes is indexed by ruleset). A
 * policy update writes the other generation's rules and configuration, then
 * flips egressd_active[slot] (one aligned __u32 store), then deletes the old
 * generation's rules: a sandbox never sees a mix of two policies.
 */
#ifndef EGRESSD_BPF_ABI_H
#define EGRESSD_BPF_ABI_H

#ifdef __cplusplus
#include <linux/types.h>
#define EGRESSD_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define EGRESSD_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

/* Limits. */
#define EGRESSD_MAX_SANDBOXES 1024
#define EGRESSD_MAX_PROXY_PORTS 8
#define EGRESSD_SANDBOX_ID_LEN 64
#define EGRESSD_MAX_RULES 262144 /* per address family, all sandboxes */
#define EGRESSD_REVNAT_ENTRIES 65536
#define EGRESSD_ORIG_DST_ENTRIES 65536

/* Pinned map names (under the pin root, default /sys/fs/bpf/egressd). */
#define EGRESSD_PIN_ROOT_DEFAULT "/sys/fs/bpf/egressd"
#define EGRESSD_MAP_SANDBOXES "egressd_sandboxes"
#define EGRESSD_MAP_ACTIVE "egressd_active"
#define EGRESSD_MAP_ALLOW4 "egressd_allow4"
#define EGRESSD_MAP_ALLOW6 "egressd_allow6"
#define EGRESSD_MAP_DENY4 "egressd_deny4"
#define EGRESSD_MAP_DENY6 "egressd_deny6"
#define EGRESSD_MAP_COUNTERS "egressd_counters"
#define EGRESSD_MAP_REVNAT "egressd_revnat"
#define EGRESSD_MAP_ORIG_DST "egressd_orig_dst"
#define EGRESSD_MAP_EVENTS "egressd_events"
#define EGRESSD_MAP_SK_STATE "egressd_sk_state"

/* egressd_rule_key.proto / flow protocol: IPPROTO numbers, 0 = any. */
#define EGRESSD_PROTO_ANY 0
#define EGRESSD_PROTO_TCP 6
#define EGRESSD_PROTO_UDP 17

/*
 * Verdict reasons: numbered once, never renumbered; retired ones stay as
 * comments. X(name, number, is_deny). Each also names one per-sandbox counter.
 */
#define EGRESSD_REASONS(X)                                                                         \
	X(allow_rule, 1, 0)	    /* an allow CIDR/port rule matched */                          \
	X(allow_default, 2, 0)	    /* enableInternet: true */                                     \
	X(redirect_proxy, 3, 0)	    /* proxied port -> sandbox proxy */                            \
	X(redirect_dns, 4, 0)	    /* port 53 -> pinned resolver */                               \
	X(deny_cidr, 5, 1)	    /* a deny CIDR matched */                                      \
	X(deny_default, 6, 1)	    /* enableInternet: false, no rule */                           \
	X(deny_special, 7, 1)	    /* loopback/link-local/multicast/... */                        \
	X(deny_embedded_v4, 8, 1)   /* NAT64/6to4/Teredo/v4-compatible */                          \
	X(deny_quic, 9, 1)	    /* UDP to a proxied port (QUIC) */                             \
	X(deny_proxy_direct, 10, 1) /* direct connect to the proxy target */                       \
	X(deny_no_resolver, 11, 1)  /* DNS but no resolver configured */                           \
	X(deny_no_proxy, 12, 1)	    /* proxied port but no proxy target */                         \
	X(deny_socket_kind, 13, 1)  /* socket(): raw/ping/sctp/... */                              \
	X(deny_sockopt, 14, 1)	    /* setsockopt(): rthdr/ip options/... */                       \
	X(deny_skb_options, 15, 1)  /* backstop: IPv4 options / IPv6 RH */                         \
	X(deny_skb_dest, 16, 1)	    /* backstop: destination not allowed */                        \
	X(deny_inactive, 17, 1)	    /* sandbox slot not active (teardown) */                       \
	X(revnat_restored, 18, 0)   /* recvmsg/getpeername showed original */                      \
	X(allow_skb, 19, 0)	    /* backstop passed a packet */

/* clang-format off */
enum egressd_reason {
	EGRESSD_REASON_NONE = 0,
#define EGRESSD_X_ENUM(name, num, deny) EGRESSD_REASON_##name = num,
	EGRESSD_REASONS(EGRESSD_X_ENUM)
#undef EGRESSD_X_ENUM
	EGRESSD_REASON_MAX = 20,
};
/* clang-format on */

/* Every reason indexes the counters: keep them below EGRESSD_REASON_MAX. */
/* clang-format off */
#define EGRESSD_X_RANGE(name, num, deny) \
	EGRESSD_STATIC_ASSERT(num > 0 && num < EGRESSD_REASON_MAX, "reason out of range: " #name);
EGRESSD_REASONS(EGRESSD_X_RANGE)
#undef EGRESSD_X_RANGE
/* clang-format on */

/* Per-sandbox counters, per CPU: one __u64 per reason (index = reason). */
struct egressd_counters {
	__u64 by_reason[EGRESSD_REASON_MAX];
};
EGRESSD_STATIC_ASSERT(sizeof(struct egressd_counters) == 8 * EGRESSD_REASON_MAX,
		      "egressd_counters size");

/* egressd_sandbox_config.flags */
#define EGRESSD_SB_ACTIVE (1u << 0)
#define EGRESSD_SB_ENABLE_INTERNET (1u << 1)
#define EGRESSD_SB_HAS_RESOLVER (1u << 2)
#define EGRESSD_SB_HAS_PROXY (1u << 3)
#define EGRESSD_SB_ALLOW_PING (1u << 4)	    /* ICMP/ICMPv6 datagram sockets */
#define EGRESSD_SB_ALLOW_RAW (1u << 5)	    /* SOCK_RAW */
#define EGRESSD_SB_ALLOW_OTHER_L4 (1u << 6) /* MPTCP, SCTP, UDP-Lite */
#define EGRESSD_SB_CAPS_WARNING (1u << 7)   /* processes held NET_RAW/NET_ADMIN at attach */
/*
 * Which rule shapes this generation holds (set by the loader from the rules), so the
 * hot path skips LPM lookups that cannot match: each costs a trie walk.
 */
#define EGRESSD_SB_HAS_DENY (1u << 8)
#define EGRESSD_SB_HAS_ALLOW_PROTO_PORT (1u << 9) /* proto != any, port != any */
#define EGRESSD_SB_HAS_ALLOW_PROTO (1u << 10)	  /* proto != any, every port */
#define EGRESSD_SB_HAS_ALLOW_PORT (1u << 11)	  /* any proto, port != any */
#define EGRESSD_SB_HAS_ALLOW_ANY (1u << 12)	  /* any proto, every port */

/*
 * Addresses are 16 bytes everywhere: IPv4 as v4-mapped (::ffff:a.b.c.d), so
 * one layout serves both families. Ports in host byte order.
 */
struct egressd_addr {
	__u8 bytes[16];
};
EGRESSD_STATIC_ASSERT(sizeof(struct egressd_addr) == 16, "egressd_addr size");

/* egressd_active: array indexed by slot; the sandbox's live ruleset + 1 (0 = none). */
struct egressd_active {
	__u32 ruleset_plus_one;
};
EGRESSD_STATIC_ASSERT(sizeof(struct egressd_active) == 4, "egressd_active size");

/* egressd_sandboxes: array indexed by ruleset (slot * 2 + generation). */
struct egressd_sandbox_config {
	__u32 active_ruleset;	    /* its own index: slot * 2 + generation */
	__u32 flags;		    /* EGRESSD_SB_* */
	__u64 cgroup_id;	    /* the sandbox cgroup (descendants inherit) */
	__u64 netns_cookie;	    /* netns of the proxy listener, 0 = not known */
	struct egressd_addr proxy4; /* v4-mapped IPv4 proxy target */
	struct egressd_addr proxy6; /* IPv6 proxy target (or v4-mapped proxy4) */
	struct egressd_addr resolver4;
	struct egressd_addr resolver6;
	__u16 proxy_port;
	__u16 resolver_port;
	__u16 proxied_ports[EGRESSD_MAX_PROXY_PORTS]; /* 0 = unused */
	__u32 generation_counter;		      /* bumped on every policy swap */
	char id[EGRESSD_SANDBOX_ID_LEN];
};
EGRESSD_STATIC_ASSERT(sizeof(struct egressd_sandbox_config) == 24 + 64 + 4 + 16 + 4 + 64,
		      "egressd_sandbox_config size");

/*
 * Rule tries (BPF_MAP_TYPE_LPM_TRIE). prefixlen counts bits from `ruleset`:
 * 64 fixed bits (ruleset, proto, pad, port) + the CIDR length. Allow rules
 * are looked up with the exact (proto, port) and with the "any" wildcards
 * (proto 0 / port 0), so a port-specific rule never hides a broader one.
 * Deny rules always use proto 0, port 0 (a deny is for every port).
 */
struct egressd_rule4_key {
	__u32 prefixlen;
	__u32 ruleset;
	__u8 proto;
	__u8 pad;
	__u16 port;
	__u8 addr[4];
};
EGRESSD_STATIC_ASSERT(sizeof(struct egressd_rule4_key) == 16, "egressd_rule4_key size");

struct egressd_rule6_key {
	__u32 prefixlen;
	__u32 ruleset;
	__u8 proto;
	__u8 pad;
	__u16 port;
	__u8 addr[16];
};
EGRESSD_STATIC_ASSERT(sizeof(struct egressd_rule6_key) == 28, "egressd_rule6_key size");

#define EGRESSD_RULE_KEY_FIXED_BITS 64

struct egressd_rule_value {
	__u32 rule_id; /* index into the policy's rule list, for audit */
	__u32 pad;
};
EGRESSD_STATIC_ASSERT(sizeof(struct egressd_rule_value) == 8, "egressd_rule_value size");

/*
 * egressd_revnat (LRU hash): a rewritten destination seen by one socket ->
 * what the application asked for. recvmsg/getpeername restore it; sockops
 * reads it to publish egressd_orig_dst for the proxy.
 */
struct egressd_revnat_key {
	__u64 cookie;		  /* socket cookie */
	struct egressd_addr addr; /* rewritten (v4-mapped for IPv4) */
	__u16 port;
	__u16 pad[3];
};
EGRESSD_STATIC_ASSERT(sizeof(struct egressd_revnat_key) == 32, "egressd_revnat_key size");

struct egressd_revnat_value {
	struct egressd_addr addr; /* original destination */
	__u16 port;
	__u16 pad;
	__u32 sandbox; /* slot */
};
EGRESSD_STATIC_ASSERT(sizeof(struct egressd_revnat_value) == 24, "egressd_revnat_value size");

/*
 * egressd_orig_dst (LRU hash), for the proxy: keyed by what the proxy sees
 * of an accepted connection (its netns cookie + the client's address and
 * port), which only the kernel writes, so the sandbox cannot forge it.
 */
struct egressd_orig_dst_key {
	__u64 netns_cookie;
	struct egressd_addr client_addr; /* v4-mapped for IPv4 */
	__u16 client_port;
	__u16 pad[3];
};
EGRESSD_STATIC_ASSERT(sizeof(struct egressd_orig_dst_key) == 32, "egressd_orig_dst_key size");

struct egressd_orig_dst_value {
	struct egressd_addr addr;
	__u16 port;
	__u16 pad;
	__u32 sandbox;
	__u64 cookie;
};
EGRESSD_STATIC_ASSERT(sizeof(struct egressd_orig_dst_value) == 32, "egressd_orig_dst_value size");

/*
 * egressd_sk_state (socket storage): marks accepted (passive) TCP sockets, whose
 * replies the skb backstop lets go back to whoever connected in. (A cache of
 * connect()'s verdict here was measured and dropped: the per-socket allocation cost
 * connect() ~1 us more than it saved per packet.)
 */
struct egressd_sk_state {
	__u32 passive;
	__u32 pad;
};
EGRESSD_STATIC_ASSERT(sizeof(struct egressd_sk_state) == 8, "egressd_sk_state size");

/* Which hook emitted an event. */
#define EGRESSD_HOOK_CONNECT 1
#define EGRESSD_HOOK_SENDMSG 2
#define EGRESSD_HOOK_SOCK_CREATE 3
#define EGRESSD_HOOK_SETSOCKOPT 4
#define EGRESSD_HOOK_SKB 5

/* egressd_events (ring buffer): one record per kernel denial, for the audit log. */
struct egressd_event {
	__u64 timestamp_ns; /* bpf_ktime_get_ns */
	__u64 cgroup_id;
	__u32 sandbox;
	__u32 reason;
	__u32 rule_id;
	__u32 pid;
	struct egressd_addr addr;
	__u16 port;
	__u8 proto;
	__u8 hook;
	__u32 detail; /* hook-specific: sock type/proto, sockopt level<<16|name */
	char comm[16];
};
EGRESSD_STATIC_ASSERT(sizeof(struct egressd_event) == 72, "egressd_event size");

#endif /* EGRESSD_BPF_ABI_H */
