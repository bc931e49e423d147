/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The connect/sendmsg path shared by the four sock_addr hooks: build the
 * flow from the context, decide, and either pass, rewrite (DNS to the
 * resolver, proxied ports to the proxy, recording the original for the
 * reverse path) or reject with EPERM.
 */
#ifndef EGRESSD_BPF_SOCK_ADDR_H
#define EGRESSD_BPF_SOCK_ADDR_H

#include "bpf/lib/common.h"

static __always_inline void __flow_from_ctx4(struct egressd_flow *f,
					     const struct bpf_sock_addr *ctx)
{
	__addr_from_v4(&f->addr, ctx->user_ip4);
	f->port = __ctx_port(ctx);
	f->proto = (__u8)ctx->protocol;
	f->is_v4 = 1;
}

static __always_inline void __flow_from_ctx6(struct egressd_flow *f,
					     const struct bpf_sock_addr *ctx)
{
	__addr_from_ctx6(&f->addr, ctx);
	f->port = __ctx_port(ctx);
	f->proto = (__u8)ctx->protocol;
	/* ::ffff:a.b.c.d from an IPv6 socket is IPv4 on the wire: judge it by the IPv4 rules. */
	f->is_v4 = __addr_is_v4_mapped(&f->addr);
}

/* v6_can_map: false for UDP sendmsg6, where the kernel refuses a v4-mapped rewrite. */
static __always_inline int egressd_sock_addr(struct bpf_sock_addr *ctx, struct egressd_flow *f,
					     int is_ctx_v6, int v6_can_map, __u8 hook)
{
	const struct egressd_sandbox_config *cfg = __sandbox_config();
	const struct egressd_addr *target;
	struct egressd_verdict v;
	__u16 target_port;

	if (!cfg) {
		egressd_count(EGRESSD_REASON_deny_inactive);
		return egressd_reject();
	}
	v = egressd_decide(cfg, f, EGRESSD_MODE_SOCKET);

	if (v.reason == EGRESSD_REASON_redirect_dns || v.reason == EGRESSD_REASON_redirect_proxy) {
		if (v.reason == EGRESSD_REASON_redirect_dns) {
			target = __resolver_target(cfg, f);
			target_port = cfg->resolver_port;
		} else {
			target = __proxy_target(cfg, f);
			target_port = cfg->proxy_port;
		}
		if (__addr_is_zero(target) ||
		    (is_ctx_v6 && !f->is_v4 && !v6_can_map && __addr_is_v4_mapped(target))) {
			/* No target for this family (e.g. an IPv6 flow, an IPv4-only target). */
			v.reason = v.reason == EGRESSD_REASON_redirect_dns
				       ? EGRESSD_REASON_deny_no_resolver
				       : EGRESSD_REASON_deny_no_proxy;
			goto deny;
		}
		if (is_ctx_v6)
			__addr_to_ctx6(ctx, target);
		else
			ctx->user_ip4 = __addr_v4(target);
		__ctx_set_port(ctx, target_port);
		egressd_revnat_record(bpf_get_socket_cookie(ctx), target, target_port, f);
		egressd_count(v.reason);
		return 1;
	}
	if (!__reason_is_deny(v.reason)) {
		egressd_count(v.reason);
		return 1;
	}
deny:
	egressd_count(v.reason);
	egressd_emit_denial(hook, v.reason, v.rule_id, f, 0);
	return egressd_reject();
}

/* recvmsg/getpeername: show the original peer instead of the rewritten one. */
static __always_inline int egressd_restore_peer(struct bpf_sock_addr *ctx, int is_ctx_v6)
{
	struct egressd_revnat_value *orig;
	struct egressd_addr seen;

	if (is_ctx_v6)
		__addr_from_ctx6(&seen, ctx);
	else
		__addr_from_v4(&seen, ctx->user_ip4);
	orig = egressd_revnat_lookup(bpf_get_socket_cookie(ctx), &seen, __ctx_port(ctx));
	if (!orig)
		return 1;
	if (is_ctx_v6)
		__addr_to_ctx6(ctx, &orig->addr);
	else
		ctx->user_ip4 = __addr_v4(&orig->addr);
	__ctx_set_port(ctx, orig->port);
	egressd_count(EGRESSD_REASON_revnat_restored);
	return 1;
}

#endif /* EGRESSD_BPF_SOCK_ADDR_H */
