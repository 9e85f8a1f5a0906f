/* Network enforcer: cgroup v2 sock_addr programs on the root of the cgroup2
 * hierarchy. For an enforced uid they
 *
 *  - deny connect() (TCP, connected UDP, QUIC) and sendmsg() (unconnected
 *    UDP) to a blocked address with EPERM (return 0);
 *  - redirect DNS (TCP and UDP port 53, to any address, both families) to
 *    the uid's filtering resolver on loopback (the policy daemon's), and
 *    give the replies their original source back (recvmsg4/6, and
 *    getpeername4/6 for TCP), so the child's programs see the server they
 *    asked;
 *  - refuse DNS over TLS/QUIC (port 853, TCP and UDP) while DNS is filtered;
 *  - outside internet hours ("offline") refuse every non-local address;
 *  - in site allow-list mode refuse every non-local address the filter has
 *    not answered for an allowed name (dyn_addrs, with the answer's TTL);
 *  - refuse addresses the filter answered for a blocked name (dyn_addrs);
 *  - forbid binding the resolvers' ports (a child cannot squat the filter's
 *    port while the policy daemon restarts) and asking another child's
 *    resolver directly (its port on loopback: its rules are not ours).
 *
 * Blocked networks live in an LPM trie keyed by (uid, 16-byte address):
 * IPv4 is stored IPv4-mapped (::ffff:a.b.c.d), so one trie holds CIDR
 * ranges of both families, and an IPv6 socket connecting to a mapped IPv4
 * address meets the IPv4 rules. Only uapi context fields and helpers are
 * used (struct bpf_sock_addr is stable ABI).
 */
#define DOTS_NO_UID_FILTER  /* enforced_uids is this object's filter */
#include "common.h"

#ifndef MAX_ENFORCED_UIDS
#error "the loader defines MAX_ENFORCED_UIDS"
#endif
#ifndef MAX_BLOCKED_NETS
#error "the loader defines MAX_BLOCKED_NETS"
#endif
#ifndef MAX_DYN_ADDRS
#error "the loader defines MAX_DYN_ADDRS"
#endif

#define OP_CONNECT 0
#define OP_SENDMSG 1

#define F_DNS        1   /* redirect DNS to dns_port, refuse port 853 */
#define F_OFFLINE    2   /* outside internet hours: only local addresses */
#define F_ALLOW_ONLY 4   /* only addresses answered for an allowed name */

#define KIND_DENY  0
#define KIND_ALLOW 1

struct uid_rules {
    u32 flags;
    u32 dns_port;    /* host order; the resolver listens on 127.0.0.1 and ::1 */
};

struct addr_key {
    u32 prefixlen;   /* 32 (uid) + 128 (address) for a lookup */
    u32 uid;
    u32 addr[4];     /* network byte order */
};

struct local_key {
    u32 prefixlen;
    u32 addr[4];
};

struct dyn_key {
    u32 uid;
    u32 kind;
    u32 addr[4];
};

struct orig_dst {
    u32 addr[4];     /* IPv4 mapped */
    u32 port;        /* network order, as user_port */
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

/* uid -> its rules: everyone else costs one lookup */
BPF_F_TABLE("hash", u32, struct uid_rules, enforced_uids, MAX_ENFORCED_UIDS, BPF_F_NO_PREALLOC);
BPF_LPM_TRIE(blocked_nets, struct addr_key, u8, MAX_BLOCKED_NETS);
/* networks that are "this machine" (loopback by default): never offline */
BPF_LPM_TRIE(local_nets, struct local_key, u8, 64);
/* (uid, deny|allow, address) -> expiry (CLOCK_BOOTTIME ns), filled from the filter's answers */
BPF_F_TABLE("hash", struct dyn_key, u64, dyn_addrs, MAX_DYN_ADDRS, BPF_F_NO_PREALLOC);
/* socket cookie -> where its DNS query was going before the redirect */
BPF_TABLE("lru_hash", u64, struct orig_dst, dns_orig, 1024);  /* DNS sockets waiting for their answer */
/* resolver ports (host order) no enforced uid may bind */
BPF_F_TABLE("hash", u32, u8, reserved_ports, MAX_ENFORCED_UIDS, BPF_F_NO_PREALLOC);
/* [0] = connects and sends denied, [1] = DNS queries redirected */
BPF_PERCPU_ARRAY(denied, u64, 2);

static __always_inline void count(u32 i)
{
    u64 *n = denied.lookup(&i);
    if (n)
        *n += 1;
}

static __always_inline int deny(struct bpf_sock_addr *ctx, u32 *addr, u32 uid, u32 family, u32 op)
{
    count(0);
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
    e->daddr[0] = addr[0];
    e->daddr[1] = addr[1];
    e->daddr[2] = addr[2];
    e->daddr[3] = addr[3];
    bpf_get_current_comm(&e->comm, sizeof(e->comm));
    events.ringbuf_submit(e, 0);
    return 0;
}

static __always_inline int dyn_live(u32 uid, u32 kind, u32 *addr)
{
    struct dyn_key k = {};
    k.uid = uid;
    k.kind = kind;
    k.addr[0] = addr[0];
    k.addr[1] = addr[1];
    k.addr[2] = addr[2];
    k.addr[3] = addr[3];
    u64 *expires = dyn_addrs.lookup(&k);
    return expires && *expires > bpf_ktime_get_boot_ns();
}

static __always_inline int is_local(u32 *addr)
{
    struct local_key k = {};
    k.prefixlen = 128;
    k.addr[0] = addr[0];
    k.addr[1] = addr[1];
    k.addr[2] = addr[2];
    k.addr[3] = addr[3];
    return local_nets.lookup(&k) != 0;
}

static __always_inline int is_loopback(u32 *addr)
{
    if (addr[0] == 0 && addr[1] == 0 && addr[2] == 0 && addr[3] == bpf_htonl(1))
        return 1;                                               /* ::1 */
    return addr[0] == 0 && addr[1] == 0 && addr[2] == bpf_htonl(0xffff)
        && (bpf_ntohl(addr[3]) >> 24) == 127;                   /* 127.0.0.0/8 */
}

/* addr: 16 bytes (IPv4 mapped); 1 = let it through, 0 = EPERM */
static __always_inline int judge(struct bpf_sock_addr *ctx, struct uid_rules *rules, u32 *addr,
                                 u32 uid, u32 family, u32 op)
{
    struct addr_key key = {};
    key.prefixlen = 32 + 128;
    key.uid = uid;
    key.addr[0] = addr[0];
    key.addr[1] = addr[1];
    key.addr[2] = addr[2];
    key.addr[3] = addr[3];
    if (blocked_nets.lookup(&key))
        return deny(ctx, addr, uid, family, op);
    if (dyn_live(uid, KIND_DENY, addr))
        return deny(ctx, addr, uid, family, op);
    u32 flags = rules->flags;
    if ((flags & F_DNS) && ctx->user_port == bpf_htons(853))
        return deny(ctx, addr, uid, family, op);   /* DNS over TLS / QUIC */
    u32 port = bpf_ntohs(ctx->user_port);
    if (port != rules->dns_port && reserved_ports.lookup(&port) && is_loopback(addr))
        return deny(ctx, addr, uid, family, op);   /* another child's filter */
    if (!(flags & (F_OFFLINE | F_ALLOW_ONLY)) || is_local(addr))
        return 1;
    if (flags & F_OFFLINE)
        return deny(ctx, addr, uid, family, op);
    if (!dyn_live(uid, KIND_ALLOW, addr))
        return deny(ctx, addr, uid, family, op);
    return 1;
}

/* A DNS query (port 53, TCP or UDP) goes to the uid's resolver instead
 * (127.0.0.1 or ::1, the socket's family): 1 when redirected. v6 is a
 * constant after inlining, so each program keeps only its family's writes. */
static __always_inline int redirect(struct bpf_sock_addr *ctx, struct uid_rules *rules, u32 *addr,
                                    int v6)
{
    if (!(rules->flags & F_DNS) || ctx->user_port != bpf_htons(53))
        return 0;
    struct orig_dst o = {};
    o.addr[0] = addr[0];
    o.addr[1] = addr[1];
    o.addr[2] = addr[2];
    o.addr[3] = addr[3];
    o.port = ctx->user_port;
    u64 cookie = bpf_get_socket_cookie(ctx);
    dns_orig.update(&cookie, &o);
    if (v6) {
        ctx->user_ip6[0] = 0;
        ctx->user_ip6[1] = 0;
        ctx->user_ip6[2] = 0;
        ctx->user_ip6[3] = bpf_htonl(1);
    } else {
        ctx->user_ip4 = bpf_htonl(0x7f000001);
    }
    ctx->user_port = bpf_htons(rules->dns_port);
    count(1);
    return 1;
}

static __always_inline int judge4(struct bpf_sock_addr *ctx, u32 op)
{
    u32 uid = current_uid();
    struct uid_rules *rules = enforced_uids.lookup(&uid);
    if (!rules)
        return 1;
    u32 addr[4] = {0, 0, bpf_htonl(0xffff), ctx->user_ip4};
    if (redirect(ctx, rules, addr, 0))
        return 1;
    return judge(ctx, rules, addr, uid, 2, op);
}

static __always_inline int judge6(struct bpf_sock_addr *ctx, u32 op)
{
    u32 uid = current_uid();
    struct uid_rules *rules = enforced_uids.lookup(&uid);
    if (!rules)
        return 1;
    u32 addr[4] = {ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3]};
    if (redirect(ctx, rules, addr, 1))
        return 1;
    return judge(ctx, rules, addr, uid, 10, op);
}

/* The reply's source: our resolver -> the server the query was sent to. */
static __always_inline struct orig_dst *orig_of(struct bpf_sock_addr *ctx)
{
    u32 uid = current_uid();
    struct uid_rules *rules = enforced_uids.lookup(&uid);
    if (!rules || !(rules->flags & F_DNS) || ctx->user_port != bpf_htons(rules->dns_port))
        return 0;
    u64 cookie = bpf_get_socket_cookie(ctx);
    return dns_orig.lookup(&cookie);
}

/* recvmsg (UDP replies) and getpeername (a TCP or connected UDP socket)
 * of a redirected socket show the server the query was sent to. */
static __always_inline int restore4(struct bpf_sock_addr *ctx)
{
    if (ctx->user_ip4 != bpf_htonl(0x7f000001))
        return 1;
    struct orig_dst *o = orig_of(ctx);
    if (o && o->addr[0] == 0 && o->addr[1] == 0 && o->addr[2] == bpf_htonl(0xffff)) {
        ctx->user_ip4 = o->addr[3];
        ctx->user_port = o->port;
    }
    return 1;
}

static __always_inline int restore6(struct bpf_sock_addr *ctx)
{
    u32 a0 = ctx->user_ip6[0], a1 = ctx->user_ip6[1], a2 = ctx->user_ip6[2], a3 = ctx->user_ip6[3];
    int loop6 = a0 == 0 && a1 == 0 && a2 == 0 && a3 == bpf_htonl(1);
    int loop4 = a0 == 0 && a1 == 0 && a2 == bpf_htonl(0xffff) && a3 == bpf_htonl(0x7f000001);
    if (!loop6 && !loop4)
        return 1;
    struct orig_dst *o = orig_of(ctx);
    if (o) {
        ctx->user_ip6[0] = o->addr[0];
        ctx->user_ip6[1] = o->addr[1];
        ctx->user_ip6[2] = o->addr[2];
        ctx->user_ip6[3] = o->addr[3];
        ctx->user_port = o->port;
    }
    return 1;
}

static __always_inline int judge_bind(struct bpf_sock_addr *ctx)
{
    u32 uid = current_uid();
    if (!enforced_uids.lookup(&uid))
        return 1;
    u32 port = bpf_ntohs(ctx->user_port);
    return reserved_ports.lookup(&port) ? 0 : 1;
}

int dots_recvmsg4(struct bpf_sock_addr *ctx) { return restore4(ctx); }
int dots_recvmsg6(struct bpf_sock_addr *ctx) { return restore6(ctx); }
int dots_getpeername4(struct bpf_sock_addr *ctx) { return restore4(ctx); }
int dots_getpeername6(struct bpf_sock_addr *ctx) { return restore6(ctx); }
int dots_connect4(struct bpf_sock_addr *ctx) { return judge4(ctx, OP_CONNECT); }
int dots_connect6(struct bpf_sock_addr *ctx) { return judge6(ctx, OP_CONNECT); }
int dots_sendmsg4(struct bpf_sock_addr *ctx) { return judge4(ctx, OP_SENDMSG); }
int dots_sendmsg6(struct bpf_sock_addr *ctx) { return judge6(ctx, OP_SENDMSG); }
int dots_bind4(struct bpf_sock_addr *ctx) { return judge_bind(ctx); }
int dots_bind6(struct bpf_sock_addr *ctx) { return judge_bind(ctx); }
