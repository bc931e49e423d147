/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Every map, once. __weak so each per-hook object can include this file and
 * `bpftool gen object` links them into one; pinned by name under the pin
 * root so all sandboxes' program instances share them and a restarted
 * daemon (or bpftool) finds them.
 */
#ifndef EGRESSD_BPF_MAPS_H
#define EGRESSD_BPF_MAPS_H

#include "bpf/abi.h"

/* Which generation of a sandbox's configuration and rules is live, by slot. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, EGRESSD_MAX_SANDBOXES);
	__type(key, __u32);
	__type(value, struct egressd_active);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} egressd_active __weak SEC(".maps");

/* Per-sandbox configuration and identity, indexed by ruleset (slot * 2 + generation). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * EGRESSD_MAX_SANDBOXES);
	__type(key, __u32);
	__type(value, struct egressd_sandbox_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} egressd_sandboxes __weak SEC(".maps");

/* CIDR rules: cost of a lookup is bounded by the key length, not the rule count. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, EGRESSD_MAX_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct egressd_rule4_key);
	__type(value, struct egressd_rule_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} egressd_allow4 __weak SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, EGRESSD_MAX_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct egressd_rule6_key);
	__type(value, struct egressd_rule_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} egressd_allow6 __weak SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, EGRESSD_MAX_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct egressd_rule4_key);
	__type(value, struct egressd_rule_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} egressd_deny4 __weak SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, EGRESSD_MAX_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct egressd_rule6_key);
	__type(value, struct egressd_rule_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} egressd_deny6 __weak SEC(".maps");

/* Per-sandbox, per-reason counters; per CPU so the hot path takes no lock. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, EGRESSD_MAX_SANDBOXES);
	__type(key, __u32);
	__type(value, struct egressd_counters);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} egressd_counters __weak SEC(".maps");

/* Rewritten destination per socket -> original, for recvmsg/getpeername/sockops. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, EGRESSD_REVNAT_ENTRIES);
	__type(key, struct egressd_revnat_key);
	__type(value, struct egressd_revnat_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} egressd_revnat __weak SEC(".maps");

/* Original destination of proxied connections, keyed by what the proxy sees. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, EGRESSD_ORIG_DST_ENTRIES);
	__type(key, struct egressd_orig_dst_key);
	__type(value, struct egressd_orig_dst_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} egressd_orig_dst __weak SEC(".maps");

/* Kernel denials for the audit log. Dropped (and counted) when full, never blocking. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} egressd_events __weak SEC(".maps");

/* Per-socket state for the skb backstop (struct egressd_sk_state in abi.h). */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct egressd_sk_state);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} egressd_sk_state __weak SEC(".maps");

#endif /* EGRESSD_BPF_MAPS_H */
