// SPDX-License-Identifier: GPL-2.0
/* cgroup/getpeername4, getpeername6: the peer is the address the application connected to. */
#include "bpf/lib/sock_addr.h"

SEC("cgroup/getpeername4")
int egressd_getpeername4(struct bpf_sock_addr *ctx)
{
	return egressd_restore_peer(ctx, 0);
}

SEC("cgroup/getpeername6")
int egressd_getpeername6(struct bpf_sock_addr *ctx)
{
	return egressd_restore_peer(ctx, 1);
}

char LICENSE[] SEC("license") = "GPL";
