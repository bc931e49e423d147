// SPDX-License-Identifier: GPL-2.0
/*
 * cgroup/setsockopt: options that would send packets somewhere other than
 * the destination the connect/sendmsg hooks judged. An unprivileged process
 * may set an IPv6 routing header (segment routing: the packet visits the
 * listed hops first); IP_OPTIONS carries source routing; TCP_REPAIR
 * rewrites a socket's state without connect().
 */
#include "bpf/lib/common.h"

SEC("cgroup/setsockopt")
int egressd_setsockopt(struct bpf_sockopt *ctx)
{
	int level = ctx->level;
	int name = ctx->optname;
	int refused = 0;

	if (level == SOL_IPV6 && (name == IPV6_RTHDR || name == IPV6_2292RTHDR))
		refused = 1;
	else if (level == SOL_IP && name == IP_OPTIONS)
		refused = 1;
	else if (level == SOL_TCP && (name == TCP_REPAIR || name == TCP_REPAIR_QUEUE ||
				      name == TCP_REPAIR_OPTIONS || name == TCP_REPAIR_WINDOW))
		refused = 1;

#ifdef EGRESSD_WEAKEN_SETSOCKOPT
	/* cmake -DEGRESSD_WEAKEN_FOR_VERIFY=setsockopt: a deliberate hole for `egressd verify`
	 * to find (never in Release, see the top CMakeLists.txt). */
	refused = 0;
#endif
	if (!refused) {
		/* Leave large option buffers to the kernel (the program sees one page at most). */
		if (ctx->optlen > 4096)
			ctx->optlen = -1;
		return 1;
	}
	egressd_count(EGRESSD_REASON_deny_sockopt);
	egressd_emit_denial(EGRESSD_HOOK_SETSOCKOPT, EGRESSD_REASON_deny_sockopt, 0, 0,
			    ((__u32)level << 16) | ((__u32)name & 0xffff));
	return egressd_reject();
}

char LICENSE[] SEC("license") = "GPL";
