// SPDX-License-Identifier: GPL-2.0
/*
 * cgroup/sendmsg4, sendmsg6: unconnected UDP (sendto/sendmsg/sendmmsg with
 * an address). Connected UDP was judged at connect. An IPv6 socket sending
 * to ::ffff:a.b.c.d runs sendmsg4 (the kernel converts first), so the v6
 * hook never sees v4-mapped destinations, and may not rewrite to one.
 */
#include "bpf/lib/sock_addr.h"

SEC("cgroup/sendmsg4")
int egressd_sendmsg4(struct bpf_sock_addr *ctx)
{
	struct egressd_flow f = {};

	__flow_from_ctx4(&f, ctx);
	return egressd_sock_addr(ctx, &f, 0, 0, EGRESSD_HOOK_SENDMSG);
}

SEC("cgroup/sendmsg6")
int egressd_sendmsg6(struct bpf_sock_addr *ctx)
{
	struct egressd_flow f = {};

	__flow_from_ctx6(&f, ctx);
	return egressd_sock_addr(ctx, &f, 1, 0, EGRESSD_HOOK_SENDMSG);
}

char LICENSE[] SEC("license") = "GPL";
