// SPDX-License-Identifier: GPL-2.0
/*
 * sockops: bookkeeping at TCP state changes.
 *  - Active connect (SYN about to leave, local port now known): if connect
 *    rewrote this socket to the proxy, publish the original destination in
 *    egressd_orig_dst keyed by {netns cookie, client addr, client port} -
 *    exactly what the proxy sees on accept, and written only by the kernel.
 *  - Passive establish: mark the socket so the skb backstop lets replies of
 *    an accepted connection go back to whoever connected in.
 */
#include "bpf/lib/common.h"

/*
 * Every ctx field is read once, unconditionally, with barrier() between reads:
 * otherwise clang selects between field addresses (ctx+24 / ctx+28) and
 * dereferences the computed pointer, which the verifier refuses for ctx.
 */
static __always_inline void __publish_orig_dst(struct bpf_sock_ops *skops)
{
	struct egressd_addr remote = {}, local = {};
	struct egressd_revnat_value *orig;
	struct egressd_orig_dst_key key = {};
	struct egressd_orig_dst_value val = {};
	__u32 family = skops->family;
	barrier();
	__u16 remote_port = (__u16)bpf_ntohl(skops->remote_port);
	barrier();
	__u32 local_port = skops->local_port; /* host order in sock_ops */
	barrier();
	__u32 remote4 = skops->remote_ip4;
	barrier();
	__u32 local4 = skops->local_ip4;
	__u32 r6[4], l6[4];

	r6[0] = skops->remote_ip6[0];
	barrier();
	r6[1] = skops->remote_ip6[1];
	barrier();
	r6[2] = skops->remote_ip6[2];
	barrier();
	r6[3] = skops->remote_ip6[3];
	barrier();
	l6[0] = skops->local_ip6[0];
	barrier();
	l6[1] = skops->local_ip6[1];
	barrier();
	l6[2] = skops->local_ip6[2];
	barrier();
	l6[3] = skops->local_ip6[3];

	if (family == AF_INET) {
		__addr_from_v4(&remote, remote4);
		__addr_from_v4(&local, local4);
	} else if (family == AF_INET6) {
		__builtin_memcpy(remote.bytes, r6, 16);
		__builtin_memcpy(local.bytes, l6, 16);
	} else {
		return;
	}
	orig = egressd_revnat_lookup(bpf_get_socket_cookie(skops), &remote, remote_port);
	if (!orig)
		return;
	key.netns_cookie = bpf_get_netns_cookie(skops);
	key.client_addr = local;
	key.client_port = (__u16)local_port;
	val.addr = orig->addr;
	val.port = orig->port;
	val.sandbox = orig->sandbox;
	val.cookie = bpf_get_socket_cookie(skops);
	bpf_map_update_elem(&egressd_orig_dst, &key, &val, BPF_ANY);
}

SEC("sockops")
int egressd_sockops(struct bpf_sock_ops *skops)
{
	struct egressd_sk_state *st;
	struct bpf_sock *sk;

	switch (skops->op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		__publish_orig_dst(skops);
		break;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		sk = skops->sk;
		if (!sk)
			break;
		st = bpf_sk_storage_get(&egressd_sk_state, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		if (st)
			st->passive = 1;
		break;
	}
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
