/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* #defines that vmlinux.h cannot carry (it holds types only, no macros). */
#ifndef EGRESSD_BPF_COMPAT_H
#define EGRESSD_BPF_COMPAT_H

#define AF_INET 2
#define AF_INET6 10

#define SOCK_STREAM 1
#define SOCK_DGRAM 2
#define SOCK_RAW 3
#define SOCK_SEQPACKET 5

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD

#define EPERM 1

#define SOL_IP 0
#define SOL_TCP 6
#define SOL_IPV6 41
#define IP_OPTIONS 4
#define IPV6_2292RTHDR 5
#define IPV6_RTHDR 57
#define TCP_REPAIR 19
#define TCP_REPAIR_QUEUE 20
#define TCP_REPAIR_OPTIONS 22
#define TCP_REPAIR_WINDOW 29

#define IP_MF 0x2000
#define IP_OFFSET 0x1FFF

/* IPv6 extension header numbers (RFC 8200). */
#define NEXTHDR_HOP 0
#define NEXTHDR_ROUTING 43
#define NEXTHDR_FRAGMENT 44
#define NEXTHDR_ESP 50
#define NEXTHDR_AUTH 51
#define NEXTHDR_DEST 60

#ifndef barrier
#define barrier() asm volatile("" ::: "memory")
#endif

#endif /* EGRESSD_BPF_COMPAT_H */
