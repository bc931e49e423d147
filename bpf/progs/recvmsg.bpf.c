// SPDX-License-Identifier: GPL-2.0
/* cgroup/recvmsg4, recvmsg6: DNS replies appear to come from the server the application asked. */
#include "bpf/lib/sock_addr.h"

SEC("cgroup/recvmsg4")
int egressd_recvmsg4(struct bpf_sock_addr *ctx)
{
	return egressd_restore_peer(ctx, 0);
}

SEC("cgroup/recvmsg6")
int egressd_recvmsg6(struct bpf_sock_addr *ctx)
{
	return egressd_restore_peer(ctx, 1);
}

char LICENSE[] SEC("license") = "GPL";
