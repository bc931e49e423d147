/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Invisible rewrites: connect/sendmsg record {socket cookie, rewritten
 * destination} -> original destination; recvmsg and getpeername put the
 * original back so the application sees the address it asked for.
 */
#ifndef EGRESSD_BPF_REVNAT_H
#define EGRESSD_BPF_REVNAT_H

#include "bpf/abi.h"
#include "bpf/lib/addr.h"
#include "bpf/lib/maps.h"

static __always_inline void egressd_revnat_record(__u64 cookie, const struct egressd_addr *new_addr,
						  __u16 new_port, const struct egressd_flow *orig)
{
	struct egressd_revnat_key key = {.cookie = cookie, .port = new_port};
	struct egressd_revnat_value val = {.port = orig->port, .sandbox = g_sandbox_slot};

	key.addr = *new_addr;
	val.addr = orig->addr;
	bpf_map_update_elem(&egressd_revnat, &key, &val, BPF_ANY);
}

/* Returns the original destination for what the socket now sees, or NULL. */
static __always_inline struct egressd_revnat_value *
egressd_revnat_lookup(__u64 cookie, const struct egressd_addr *seen, __u16 seen_port)
{
	struct egressd_revnat_key key = {.cookie = cookie, .port = seen_port};

	key.addr = *seen;
	return bpf_map_lookup_elem(&egressd_revnat, &key);
}

#endif /* EGRESSD_BPF_REVNAT_H */
