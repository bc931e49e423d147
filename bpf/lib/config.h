/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Load-time knobs (rodata), set by the loader through the skeleton before
 * load(). Each sandbox gets its own program instances, so the slot is a
 * constant: a socket is judged by the sandbox whose cgroup created it, even
 * after it is passed to another process (no current-task lookups).
 * `volatile` keeps clang from folding the default values in.
 */
#ifndef EGRESSD_BPF_CONFIG_H
#define EGRESSD_BPF_CONFIG_H

/* The sandbox slot (index into egressd_sandboxes) these programs serve. */
__weak const volatile __u32 g_sandbox_slot = 0;
/* 1 when the kernel has bpf_set_retval (5.18+); otherwise a plain reject (EPERM). */
__weak const volatile __u32 g_has_set_retval = 0;

#endif /* EGRESSD_BPF_CONFIG_H */
