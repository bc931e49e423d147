/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Includes every program needs, in the order vmlinux.h requires. */
#ifndef EGRESSD_BPF_COMMON_H
#define EGRESSD_BPF_COMMON_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "bpf/abi.h"
#include "bpf/lib/compat.h"
#include "bpf/lib/config.h"
#include "bpf/lib/maps.h"
#include "bpf/lib/addr.h"
#include "bpf/lib/decide.h"
#include "bpf/lib/audit.h"
#include "bpf/lib/revnat.h"

#endif /* EGRESSD_BPF_COMMON_H */
