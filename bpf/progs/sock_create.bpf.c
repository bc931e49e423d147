// SPDX-License-Identifier: GPL-2.0
/*
 * cgroup/sock_create: an allowlist of socket kinds. Only TCP and UDP over
 * IPv4/IPv6 have connect/sendmsg hooks that judge their destinations; raw,
 * ICMP "ping", MPTCP, SCTP and UDP-Lite sockets would send where no hook
 * looks, so they are refused unless the policy opts in.
 * (The kernel runs this hook for AF_INET/AF_INET6 only; other families are
 * the seccomp filter's job in `egressd run`.)
 */
#include "bpf/lib/common.h"

#define IPPROTO_ICMP_ 1
#define IPPROTO_TCP_ 6
#define IPPROTO_UDP_ 17
#define IPPROTO_ICMPV6_ 58
#define IPPROTO_SCTP_ 132
#define IPPROTO_UDPLITE_ 136
#define IPPROTO_MPTCP_ 262

static __always_inline int __kind_allowed(__u32 flags, __u32 type, __u32 protocol)
{
	if (type == SOCK_STREAM && (protocol == 0 || protocol == IPPROTO_TCP_))
		return 1;
	if (type == SOCK_DGRAM && (protocol == 0 || protocol == IPPROTO_UDP_))
		return 1;
	if (type == SOCK_DGRAM && (protocol == IPPROTO_ICMP_ || protocol == IPPROTO_ICMPV6_))
		return !!(flags & EGRESSD_SB_ALLOW_PING);
	if (type == SOCK_RAW)
		return !!(flags & EGRESSD_SB_ALLOW_RAW);
	if (protocol == IPPROTO_MPTCP_ || protocol == IPPROTO_SCTP_ || protocol == IPPROTO_UDPLITE_)
		return !!(flags & EGRESSD_SB_ALLOW_OTHER_L4);
	return 0;
}

SEC("cgroup/sock_create")
int egressd_sock_create(struct bpf_sock *sk)
{
	const struct egressd_sandbox_config *cfg = __sandbox_config();
	__u32 type = sk->type;
	__u32 protocol = sk->protocol;

	if (sk->family != AF_INET && sk->family != AF_INET6)
		return 1;
	if (cfg && (cfg->flags & EGRESSD_SB_ACTIVE) && __kind_allowed(cfg->flags, type, protocol))
		return 1;
	egressd_count(EGRESSD_REASON_deny_socket_kind);
	egressd_emit_denial(EGRESSD_HOOK_SOCK_CREATE, EGRESSD_REASON_deny_socket_kind, 0, 0,
			    (sk->family << 24) | ((type & 0xff) << 16) | (protocol & 0xffff));
	return egressd_reject();
}

char LICENSE[] SEC("license") = "GPL";
