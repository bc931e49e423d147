/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The policy decision, as a pure function of (sandbox config, flow): the
 * order is the design's data path. Shared by the socket hooks and the skb
 * backstop so both judge a destination the same way.
 */
#ifndef EGRESSD_BPF_DECIDE_H
#define EGRESSD_BPF_DECIDE_H

#include "bpf/abi.h"
#include "bpf/lib/addr.h"
#include "bpf/lib/maps.h"

struct egressd_verdict {
	__u32 reason;  /* enum egressd_reason */
	__u32 rule_id; /* matching rule, 0 = none */
};

/* Socket hooks rewrite DNS/proxied flows; the backstop sees them already rewritten. */
#define EGRESSD_MODE_SOCKET 0
#define EGRESSD_MODE_SKB 1

static __always_inline const struct egressd_sandbox_config *__sandbox_config(void)
{
	__u32 slot = g_sandbox_slot;
	struct egressd_active *active = bpf_map_lookup_elem(&egressd_active, &slot);
	__u32 ruleset;

	if (!active || active->ruleset_plus_one == 0)
		return 0;
	ruleset = active->ruleset_plus_one - 1;
	return bpf_map_lookup_elem(&egressd_sandboxes, &ruleset);
}

static __always_inline int __reason_is_deny(__u32 reason)
{
	switch (reason) {
#define EGRESSD_X_DENY(name, num, deny)                                                            \
	case num:                                                                                  \
		return deny;
		EGRESSD_REASONS(EGRESSD_X_DENY)
#undef EGRESSD_X_DENY
	}
	return 1;
}

static __always_inline int __port_is_proxied(const struct egressd_sandbox_config *cfg, __u16 port)
{
#pragma unroll
	for (int i = 0; i < EGRESSD_MAX_PROXY_PORTS; i++) {
		if (cfg->proxied_ports[i] != 0 && cfg->proxied_ports[i] == port)
			return 1;
	}
	return 0;
}

static __always_inline const struct egressd_addr *
__proxy_target(const struct egressd_sandbox_config *cfg, const struct egressd_flow *f)
{
	return f->is_v4 ? &cfg->proxy4 : &cfg->proxy6;
}

static __always_inline const struct egressd_addr *
__resolver_target(const struct egressd_sandbox_config *cfg, const struct egressd_flow *f)
{
	return f->is_v4 ? &cfg->resolver4 : &cfg->resolver6;
}

static __always_inline int __lookup4(void *map, __u32 ruleset, __u8 proto, __u16 port, __u32 ip4,
				     __u32 *rule_id)
{
	struct egressd_rule4_key key = {
	    .prefixlen = EGRESSD_RULE_KEY_FIXED_BITS + 32,
	    .ruleset = ruleset,
	    .proto = proto,
	    .port = port,
	};
	struct egressd_rule_value *v;

	__builtin_memcpy(key.addr, &ip4, 4);
	v = bpf_map_lookup_elem(map, &key);
	if (!v)
		return 0;
	*rule_id = v->rule_id;
	return 1;
}

static __always_inline int __lookup6(void *map, __u32 ruleset, __u8 proto, __u16 port,
				     const struct egressd_addr *a, __u32 *rule_id)
{
	struct egressd_rule6_key key = {
	    .prefixlen = EGRESSD_RULE_KEY_FIXED_BITS + 128,
	    .ruleset = ruleset,
	    .proto = proto,
	    .port = port,
	};
	struct egressd_rule_value *v;

	__builtin_memcpy(key.addr, a->bytes, 16);
	v = bpf_map_lookup_elem(map, &key);
	if (!v)
		return 0;
	*rule_id = v->rule_id;
	return 1;
}

static __always_inline int __lookup(void *map4, void *map6, __u32 ruleset,
				    const struct egressd_flow *f, __u8 proto, __u16 port,
				    __u32 *rule_id)
{
	if (f->is_v4)
		return __lookup4(map4, ruleset, proto, port, __addr_v4(&f->addr), rule_id);
	return __lookup6(map6, ruleset, proto, port, &f->addr, rule_id);
}

/*
 * Allow rules may name a protocol and a port; try the exact pair and the
 * wildcards so that a narrow rule for a prefix never hides a broader rule.
 */
static __always_inline int __allowed(const struct egressd_sandbox_config *cfg,
				     const struct egressd_flow *f, __u32 *rule_id)
{
	__u32 rs = cfg->active_ruleset;
	__u32 flags = cfg->flags;

	if ((flags & EGRESSD_SB_HAS_ALLOW_PROTO_PORT) &&
	    __lookup(&egressd_allow4, &egressd_allow6, rs, f, f->proto, f->port, rule_id))
		return 1;
	if ((flags & EGRESSD_SB_HAS_ALLOW_PROTO) &&
	    __lookup(&egressd_allow4, &egressd_allow6, rs, f, f->proto, 0, rule_id))
		return 1;
	if ((flags & EGRESSD_SB_HAS_ALLOW_PORT) &&
	    __lookup(&egressd_allow4, &egressd_allow6, rs, f, EGRESSD_PROTO_ANY, f->port, rule_id))
		return 1;
	return (flags & EGRESSD_SB_HAS_ALLOW_ANY) &&
	       __lookup(&egressd_allow4, &egressd_allow6, rs, f, EGRESSD_PROTO_ANY, 0, rule_id);
}

static __always_inline struct egressd_verdict
egressd_decide(const struct egressd_sandbox_config *cfg, const struct egressd_flow *f, int mode)
{
	struct egressd_verdict v = {};
	int is_tcp = f->proto == EGRESSD_PROTO_TCP;
	int is_udp = f->proto == EGRESSD_PROTO_UDP;
	int to_proxy, to_resolver;

	if (!(cfg->flags & EGRESSD_SB_ACTIVE)) {
		v.reason = EGRESSD_REASON_deny_inactive;
		return v;
	}

	/* The proxy/resolver targets are reached only through the rewrite. */
	to_proxy = (cfg->flags & EGRESSD_SB_HAS_PROXY) && is_tcp && f->port == cfg->proxy_port &&
		   __addr_equal(&f->addr, __proxy_target(cfg, f));
	to_resolver = (cfg->flags & EGRESSD_SB_HAS_RESOLVER) && (is_tcp || is_udp) &&
		      f->port == cfg->resolver_port &&
		      __addr_equal(&f->addr, __resolver_target(cfg, f));
	if (mode == EGRESSD_MODE_SKB) {
		if (to_proxy || to_resolver) {
			v.reason = EGRESSD_REASON_allow_skb;
			return v;
		}
	} else if (to_proxy) {
		v.reason = EGRESSD_REASON_deny_proxy_direct;
		return v;
	}

	/* 1. deniedHosts IPs/CIDRs: every port, every protocol. */
	if ((cfg->flags & EGRESSD_SB_HAS_DENY) &&
	    __lookup(&egressd_deny4, &egressd_deny6, cfg->active_ruleset, f, EGRESSD_PROTO_ANY, 0,
		     &v.rule_id)) {
		v.reason = EGRESSD_REASON_deny_cidr;
		return v;
	}

	if (mode == EGRESSD_MODE_SOCKET) {
		/* 2. DNS always goes to the pinned resolver. */
		if ((is_tcp || is_udp) && f->port == 53) {
			v.reason = (cfg->flags & EGRESSD_SB_HAS_RESOLVER)
				       ? EGRESSD_REASON_redirect_dns
				       : EGRESSD_REASON_deny_no_resolver;
			return v;
		}
		/* 3. Proxied TCP ports go to the sandbox's proxy (fails closed without one). */
		if (is_tcp && __port_is_proxied(cfg, f->port)) {
			v.reason = (cfg->flags & EGRESSD_SB_HAS_PROXY)
				       ? EGRESSD_REASON_redirect_proxy
				       : EGRESSD_REASON_deny_no_proxy;
			return v;
		}
	}

	/* 4. Allow rules. */
	if (__allowed(cfg, f, &v.rule_id)) {
		v.reason = EGRESSD_REASON_allow_rule;
		return v;
	}

	/* 5. Destinations that need an explicit rule whatever enableInternet says. */
	if (f->is_v4 ? __v4_is_special(__addr_v4(&f->addr)) : __v6_is_special(&f->addr)) {
		v.reason = EGRESSD_REASON_deny_special;
		return v;
	}
	if (!f->is_v4 && __v6_embeds_v4(&f->addr)) {
		v.reason = EGRESSD_REASON_deny_embedded_v4;
		return v;
	}
	if (is_udp && __port_is_proxied(cfg, f->port)) {
		v.reason = EGRESSD_REASON_deny_quic;
		return v;
	}
	/* In the backstop, a flow the socket hooks would have rewritten must not leave as is. */
	if (mode == EGRESSD_MODE_SKB && (is_tcp || is_udp) &&
	    (f->port == 53 || (is_tcp && __port_is_proxied(cfg, f->port)))) {
		v.reason = EGRESSD_REASON_deny_skb_dest;
		return v;
	}

	/* 6. The default. */
	v.reason = (cfg->flags & EGRESSD_SB_ENABLE_INTERNET) ? EGRESSD_REASON_allow_default
							     : EGRESSD_REASON_deny_default;
	return v;
}

#endif /* EGRESSD_BPF_DECIDE_H */
