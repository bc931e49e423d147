/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Per-sandbox counters and the denial event stream (ring buffer). */
#ifndef EGRESSD_BPF_AUDIT_H
#define EGRESSD_BPF_AUDIT_H

#include "bpf/abi.h"
#include "bpf/lib/addr.h"
#include "bpf/lib/maps.h"

static __always_inline void egressd_count(__u32 reason)
{
	__u32 slot = g_sandbox_slot;
	struct egressd_counters *c = bpf_map_lookup_elem(&egressd_counters, &slot);

	if (c && reason < EGRESSD_REASON_MAX)
		c->by_reason[reason]++;
}

static __always_inline void egressd_emit_denial(__u8 hook, __u32 reason, __u32 rule_id,
						const struct egressd_flow *f, __u32 detail)
{
	struct egressd_event *e = bpf_ringbuf_reserve(&egressd_events, sizeof(*e), 0);

	if (!e)
		return; /* full: the counters still saw it */
	e->timestamp_ns = bpf_ktime_get_ns();
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->sandbox = g_sandbox_slot;
	e->reason = reason;
	e->rule_id = rule_id;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	if (f) {
		e->addr = f->addr;
		e->port = f->port;
		e->proto = f->proto;
	} else {
		__builtin_memset(&e->addr, 0, sizeof(e->addr));
		e->port = 0;
		e->proto = 0;
	}
	e->hook = hook;
	e->detail = detail;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
}

/* Denials return EPERM: explicit where the kernel can say so (5.18+), the default otherwise. */
static __always_inline int egressd_reject(void)
{
	if (g_has_set_retval)
		bpf_set_retval(-EPERM);
	return 0;
}

#endif /* EGRESSD_BPF_AUDIT_H */
