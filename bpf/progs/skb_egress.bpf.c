// SPDX-License-Identifier: GPL-2.0
/*
 * cgroup_skb/egress: the backstop. Every packet a sandbox socket sends is
 * checked once more after the socket hooks: IPv4 options and IPv6 routing
 * (and fragment/IPsec) headers are dropped, and the destination must be
 * allowed or be the sandbox's proxy/resolver target. The hook runs before
 * the IP layer fragments, so a locally built packet never arrives here as a
 * fragment; one that does was crafted and is dropped.
 */
#include "bpf/lib/common.h"

#define IPPROTO_TCP_ 6
#define IPPROTO_UDP_ 17
#define EGRESSD_MAX_EXT_HEADERS 6

#define SKB_PASS 1
#define SKB_DROP 0

static __always_inline int __drop(__u32 reason, __u32 detail, const struct egressd_flow *f)
{
	egressd_count(reason);
	egressd_emit_denial(EGRESSD_HOOK_SKB, reason, 0, f, detail);
	return SKB_DROP;
}

static __always_inline int __load_ports(struct __sk_buff *skb, __u32 off, struct egressd_flow *f)
{
	__u16 ports[2];

	if (f->proto != IPPROTO_TCP_ && f->proto != IPPROTO_UDP_) {
		f->port = 0;
		return 0;
	}
	if (bpf_skb_load_bytes(skb, off, ports, sizeof(ports)) < 0)
		return -1;
	f->port = bpf_ntohs(ports[1]);
	return 0;
}

static __always_inline int __parse_v4(struct __sk_buff *skb, struct egressd_flow *f)
{
	struct iphdr iph;

	if (bpf_skb_load_bytes(skb, 0, &iph, sizeof(iph)) < 0)
		return EGRESSD_REASON_deny_skb_options;
	if (iph.ihl != 5)
		return EGRESSD_REASON_deny_skb_options;
	if (iph.frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return EGRESSD_REASON_deny_skb_options;
	__addr_from_v4(&f->addr, iph.daddr);
	f->is_v4 = 1;
	f->proto = iph.protocol;
	if (__load_ports(skb, sizeof(iph), f) < 0)
		return EGRESSD_REASON_deny_skb_options;
	return 0;
}

static __always_inline int __parse_v6(struct __sk_buff *skb, struct egressd_flow *f)
{
	struct ipv6hdr ip6h;
	__u32 off = sizeof(ip6h);
	__u8 next;

	if (bpf_skb_load_bytes(skb, 0, &ip6h, sizeof(ip6h)) < 0)
		return EGRESSD_REASON_deny_skb_options;
	__builtin_memcpy(f->addr.bytes, &ip6h.daddr, 16);
	f->is_v4 = 0;
	next = ip6h.nexthdr;

#pragma unroll
	for (int i = 0; i < EGRESSD_MAX_EXT_HEADERS; i++) {
		__u8 ext[2];

		if (next == NEXTHDR_ROUTING || next == NEXTHDR_FRAGMENT || next == NEXTHDR_ESP ||
		    next == NEXTHDR_AUTH)
			return EGRESSD_REASON_deny_skb_options;
		if (next != NEXTHDR_HOP && next != NEXTHDR_DEST)
			break;
		if (bpf_skb_load_bytes(skb, off, ext, sizeof(ext)) < 0)
			return EGRESSD_REASON_deny_skb_options;
		next = ext[0];
		off += ((__u32)ext[1] + 1) * 8;
	}
	if (next == NEXTHDR_HOP || next == NEXTHDR_DEST)
		return EGRESSD_REASON_deny_skb_options; /* deeper chains than any stack builds */
	f->proto = next;
	if (__load_ports(skb, off, f) < 0)
		return EGRESSD_REASON_deny_skb_options;
	return 0;
}

/* Replies of accepted connections (and SYN-ACKs of listeners) go back to whoever connected. */
static __always_inline int __is_passive_reply(struct __sk_buff *skb)
{
	struct bpf_sock *sk = skb->sk;
	struct egressd_sk_state *st;

	if (!sk)
		return 0;
	if (sk->state == BPF_TCP_NEW_SYN_RECV || sk->state == BPF_TCP_LISTEN)
		return 1;
	sk = bpf_sk_fullsock(sk);
	if (!sk)
		return 0;
	st = bpf_sk_storage_get(&egressd_sk_state, sk, 0, 0);
	return st && st->passive;
}

SEC("cgroup_skb/egress")
int egressd_skb_egress(struct __sk_buff *skb)
{
	const struct egressd_sandbox_config *cfg = __sandbox_config();
	struct egressd_flow f = {};
	struct egressd_verdict v;
	int bad;

	if (!cfg)
		return __drop(EGRESSD_REASON_deny_inactive, 0, 0);
	if (skb->protocol == bpf_htons(ETH_P_IP))
		bad = __parse_v4(skb, &f);
	else if (skb->protocol == bpf_htons(ETH_P_IPV6))
		bad = __parse_v6(skb, &f);
	else
		return __drop(EGRESSD_REASON_deny_skb_options, skb->protocol, 0);
	if (bad)
		return __drop(bad, 0, &f);

	v = egressd_decide(cfg, &f, EGRESSD_MODE_SKB);
	if (!__reason_is_deny(v.reason))
		return SKB_PASS;
	if (__is_passive_reply(skb))
		return SKB_PASS;
	return __drop(EGRESSD_REASON_deny_skb_dest, v.reason, &f);
}

char LICENSE[] SEC("license") = "GPL";
