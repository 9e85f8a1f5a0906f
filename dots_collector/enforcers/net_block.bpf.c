/* Connect enforcer: cgroup v2 sock_addr programs on the root of the cgroup2
 * hierarchy deny an enforced uid's connect() (TCP, connected UDP) and
 * sendmsg() (unconnected UDP) to a blocked address with EPERM (return 0).
 *
 * Blocked addresses live in an LPM trie keyed by (uid, 16-byte address):
 * IPv4 is stored IPv4-mapped (::ffff:a.b.c.d), so one trie holds CIDR
 * ranges of both families, and an IPv6 socket connecting to a mapped IPv4
 * address meets the IPv4 rules. Only uapi context fields and helpers are
 * used (struct bpf_sock_addr is stable ABI).
 */
#include "common.h"

#ifndef MAX_ENFORCED_UIDS
#define MAX_ENFORCED_UIDS 1024
#endif
#ifndef MAX_BLOCKED_NETS
#define MAX_BLOCKED_NETS 65536
#endif

#define OP_CONNECT 0
#define OP_SENDMSG 1

struct addr_key {
    u32 prefixlen;   /* 32 (uid) + 128 (address) for a lookup */
    u32 uid;
    u32 addr[4];     /* network byte order */
};

struct net_event {
    u64 ts_ns;
    u32 pid;
    u32 uid;
    u32 family;
    u32 op;
    u32 protocol;
    u32 dport;       /* host order */
    u32 daddr[4];
    char comm[TASK_COMM_LEN];
};

/* uid -> 1 when the uid has blocked addresses: everyone else costs one lookup */
BPF_F_TABLE("hash", u32, u8, enforced_uids, MAX_ENFORCED_UIDS, BPF_F_NO_PREALLOC);  /* grows with its entries */
BPF_LPM_TRIE(blocked_nets, struct addr_key, u8, MAX_BLOCKED_NETS);
/* [0] = connects and sends denied */
BPF_PERCPU_ARRAY(denied, u64, 1);

static __always_inline int judge(struct bpf_sock_addr *ctx, struct addr_key *key, u32 uid,
                                 u32 family, u32 op)
{
    if (!blocked_nets.lookup(key))
        return 1;
    u32 zero = 0;
    u64 *n = denied.lookup(&zero);
    if (n)
        *n += 1;
    struct net_event *e = events.ringbuf_reserve(sizeof(*e));
    if (!e) {
        count_lost();
        return 0;
    }
    e->ts_ns = bpf_ktime_get_boot_ns();
    e->pid = bpf_get_current_pid_tgid() >> 32;
    e->uid = uid;
    e->family = family;
    e->op = op;
    e->protocol = ctx->protocol;
    e->dport = bpf_ntohs(ctx->user_port);
    e->daddr[0] = key->addr[0];
    e->daddr[1] = key->addr[1];
    e->daddr[2] = key->addr[2];
    e->daddr[3] = key->addr[3];
    bpf_get_current_comm(&e->comm, sizeof(e->comm));
    events.ringbuf_submit(e, 0);
    return 0;
}

static __always_inline int judge4(struct bpf_sock_addr *ctx, u32 op)
{
    u32 uid = current_uid();
    if (!enforced_uids.lookup(&uid))
        return 1;
    struct addr_key key = {};
    key.prefixlen = 32 + 128;
    key.uid = uid;
    key.addr[2] = bpf_htonl(0xffff);
    key.addr[3] = ctx->user_ip4;
    return judge(ctx, &key, uid, 2, op);
}

static __always_inline int judge6(struct bpf_sock_addr *ctx, u32 op)
{
    u32 uid = current_uid();
    if (!enforced_uids.lookup(&uid))
        return 1;
    struct addr_key key = {};
    key.prefixlen = 32 + 128;
    key.uid = uid;
    key.addr[0] = ctx->user_ip6[0];
    key.addr[1] = ctx->user_ip6[1];
    key.addr[2] = ctx->user_ip6[2];
    key.addr[3] = ctx->user_ip6[3];
    return judge(ctx, &key, uid, 10, op);
}

int dots_connect4(struct bpf_sock_addr *ctx) { return judge4(ctx, OP_CONNECT); }
int dots_connect6(struct bpf_sock_addr *ctx) { return judge6(ctx, OP_CONNECT); }
int dots_sendmsg4(struct bpf_sock_addr *ctx) { return judge4(ctx, OP_SENDMSG); }
int dots_sendmsg6(struct bpf_sock_addr *ctx) { return judge6(ctx, OP_SENDMSG); }
