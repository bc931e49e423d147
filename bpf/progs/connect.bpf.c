// SPDX-License-Identifier: GPL-2.0
/*
 * cgroup/connect4, connect6: TCP connect (incl. Fast Open's implicit connect
 * and io_uring's) and UDP connect. Every destination is judged; DNS and
 * proxied ports are rewritten here so no byte goes direct.
 */
#include "bpf/lib/sock_addr.h"

SEC("cgroup/connect4")
int egressd_connect4(struct bpf_sock_addr *ctx)
{
	struct egressd_flow f = {};

	__flow_from_ctx4(&f, ctx);
	return egressd_sock_addr(ctx, &f, 0, 1, EGRESSD_HOOK_CONNECT);
}

SEC("cgroup/connect6")
int egressd_connect6(struct bpf_sock_addr *ctx)
{
	struct egressd_flow f = {};

	__flow_from_ctx6(&f, ctx);
	return egressd_sock_addr(ctx, &f, 1, 1, EGRESSD_HOOK_CONNECT);
}

char LICENSE[] SEC("license") = "GPL";
