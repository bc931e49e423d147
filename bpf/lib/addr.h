/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Address helpers. Internally every address is 16 bytes, IPv4 v4-mapped
 * (::ffff:a.b.c.d), so one decision path serves connect4, connect6 with
 * v4-mapped destinations, and the skb backstop.
 */
#ifndef EGRESSD_BPF_ADDR_H
#define EGRESSD_BPF_ADDR_H

#include "bpf/abi.h"
#include "bpf/lib/compat.h"

struct egressd_flow {
	struct egressd_addr addr; /* destination, v4-mapped for IPv4 */
	__u16 port;		  /* destination, host order */
	__u8 proto;		  /* IPPROTO_TCP / IPPROTO_UDP / other */
	__u8 is_v4;		  /* addr is v4-mapped */
};

static __always_inline void __addr_from_v4(struct egressd_addr *a, __u32 ip4_be)
{
	__builtin_memset(a, 0, sizeof(*a));
	a->bytes[10] = 0xff;
	a->bytes[11] = 0xff;
	__builtin_memcpy(&a->bytes[12], &ip4_be, 4);
}

static __always_inline __u32 __addr_v4(const struct egressd_addr *a)
{
	__u32 ip4;

	__builtin_memcpy(&ip4, &a->bytes[12], 4);
	return ip4;
}

static __always_inline int __addr_is_v4_mapped(const struct egressd_addr *a)
{
	__u64 hi;
	__u32 mid;

	__builtin_memcpy(&hi, &a->bytes[0], 8);
	__builtin_memcpy(&mid, &a->bytes[8], 4);
	return hi == 0 && mid == bpf_htonl(0x0000ffff);
}

static __always_inline int __addr_equal(const struct egressd_addr *a, const struct egressd_addr *b)
{
	__u64 a0, a1, b0, b1;

	__builtin_memcpy(&a0, &a->bytes[0], 8);
	__builtin_memcpy(&a1, &a->bytes[8], 8);
	__builtin_memcpy(&b0, &b->bytes[0], 8);
	__builtin_memcpy(&b1, &b->bytes[8], 8);
	return a0 == b0 && a1 == b1;
}

static __always_inline int __addr_is_zero(const struct egressd_addr *a)
{
	__u64 hi, lo;

	__builtin_memcpy(&hi, &a->bytes[0], 8);
	__builtin_memcpy(&lo, &a->bytes[8], 8);
	return hi == 0 && lo == 0;
}

/*
 * sock_addr user_ip6[] are four __u32 context fields. The barrier() between
 * reads keeps clang from merging them into one 8-byte load, which the
 * verifier refuses for this context (narrow/wide ctx access rules).
 */
static __always_inline void __addr_from_ctx6(struct egressd_addr *a,
					     const struct bpf_sock_addr *ctx)
{
	__u32 w0 = ctx->user_ip6[0];
	barrier();
	__u32 w1 = ctx->user_ip6[1];
	barrier();
	__u32 w2 = ctx->user_ip6[2];
	barrier();
	__u32 w3 = ctx->user_ip6[3];

	__builtin_memcpy(&a->bytes[0], &w0, 4);
	__builtin_memcpy(&a->bytes[4], &w1, 4);
	__builtin_memcpy(&a->bytes[8], &w2, 4);
	__builtin_memcpy(&a->bytes[12], &w3, 4);
}

static __always_inline void __addr_to_ctx6(struct bpf_sock_addr *ctx, const struct egressd_addr *a)
{
	__u32 w;

	__builtin_memcpy(&w, &a->bytes[0], 4);
	ctx->user_ip6[0] = w;
	barrier();
	__builtin_memcpy(&w, &a->bytes[4], 4);
	ctx->user_ip6[1] = w;
	barrier();
	__builtin_memcpy(&w, &a->bytes[8], 4);
	ctx->user_ip6[2] = w;
	barrier();
	__builtin_memcpy(&w, &a->bytes[12], 4);
	ctx->user_ip6[3] = w;
}

/* The ctx port is a __u32 holding a network-order __u16 (read it whole). */
static __always_inline __u16 __ctx_port(const struct bpf_sock_addr *ctx)
{
	return bpf_ntohs((__u16)ctx->user_port);
}

static __always_inline void __ctx_set_port(struct bpf_sock_addr *ctx, __u16 port)
{
	ctx->user_port = (__u32)bpf_htons(port);
}

/* 0.0.0.0/8, 127/8, 169.254/16 (link-local, cloud metadata), 224/4 multicast, 240/4 + broadcast. */
static __always_inline int __v4_is_special(__u32 ip4_be)
{
	__u32 ip = bpf_ntohl(ip4_be);
	__u32 first = ip >> 24;

	if (first == 0 || first == 127 || first >= 224)
		return 1;
	if ((ip >> 16) == ((169u << 8) | 254u))
		return 1;
	return 0;
}

/* ::, ::1, fe80::/10 link-local, fec0::/10 site-local, ff00::/8 multicast. */
static __always_inline int __v6_is_special(const struct egressd_addr *a)
{
	__u64 hi, lo;

	__builtin_memcpy(&hi, &a->bytes[0], 8);
	__builtin_memcpy(&lo, &a->bytes[8], 8);
	if (hi == 0 && (lo == 0 || lo == bpf_cpu_to_be64(1)))
		return 1;
	if (a->bytes[0] == 0xfe && (a->bytes[1] & 0xc0) == 0x80)
		return 1;
	if (a->bytes[0] == 0xfe && (a->bytes[1] & 0xc0) == 0xc0)
		return 1;
	if (a->bytes[0] == 0xff)
		return 1;
	return 0;
}

/*
 * IPv6 forms that carry an IPv4 address a translator or tunnel would reach:
 * NAT64 64:ff9b::/96 (RFC 6052) and 64:ff9b:1::/48 (RFC 8215), 6to4
 * 2002::/16 (RFC 3056), Teredo 2001::/32 (RFC 4380), and the deprecated
 * IPv4-compatible ::a.b.c.d (::/96 minus :: and ::1).
 */
static __always_inline int __v6_embeds_v4(const struct egressd_addr *a)
{
	const __u8 *b = a->bytes;
	__u64 hi;
	__u32 mid;

	/* All of 64:ff9b::/32: covers the /96 well-known and the :1::/48 local-use prefixes. */
	if (b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b)
		return 1;
	if (b[0] == 0x20 && b[1] == 0x02)
		return 1;
	if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x00 && b[3] == 0x00)
		return 1;
	__builtin_memcpy(&hi, &b[0], 8);
	__builtin_memcpy(&mid, &b[8], 4);
	if (hi == 0 && mid == 0)
		return 1; /* ::/96; :: and ::1 were caught as special first */
	return 0;
}

#endif /* EGRESSD_BPF_ADDR_H */
