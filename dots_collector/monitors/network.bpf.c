/* Network monitor: TCP connect / accept / close, IPv4 and IPv6, with the
 * bytes sent and received per socket aggregated in the kernel.
 *
 * inet_sock_set_state gives the socket and its old and new states; the
 * socket's family, protocol, ports and addresses are read from it at
 * offsets the loader takes from the running kernel's BTF (OFF_* macros,
 * network.py), as the tracepoint itself reads them. It is a raw
 * tracepoint: state changes run in softirq, and a (perf) tracepoint
 * program is skipped when it interrupts another BPF program on its CPU
 * (the kernel's per-CPU bpf_prog_active): 78 of ~400 runs were skipped for
 * 200 connections to a real host made beside a file loop, and their
 * connect and close events went missing uncounted. A raw tracepoint is
 * skipped only when it interrupts itself. sock_send_length /
 * sock_recv_length give the socket pointer and the byte count of each
 * sendmsg/recvmsg.
 *
 * Who owns a socket: state changes to ESTABLISHED or CLOSE often run in
 * softirq context, where "current" is whoever was interrupted. So the owner
 * is recorded where the process context is certain and kept in `socks`:
 * - outgoing: CLOSE -> SYN_SENT runs inside connect() of the owner;
 * - incoming: CLOSE -> LISTEN runs inside listen() of the server, which
 *   goes in `listeners` by (family, port); an accepted socket (SYN_RECV ->
 *   ESTABLISHED, usually softirq) takes the owner of the listener on its
 *   local port, then the first send/recv on it (always process context)
 *   names the process that really serves it (a pre-forked worker).
 * The uid filter is applied to the stored owner uid.
 *
 * Fewer, richer records: nothing is reported when a connection is
 * established. Its close is one record, which names the connection as
 * short (EV_CONNECT_CLOSE / EV_ACCEPT_CLOSE: established less than
 * SHORT_NS before, the connect or accept and the close in one) or not
 * (EV_CLOSE). A connection that lives longer is announced by user space
 * (network.py periodic() reads `socks` and reports the connect or accept
 * once the connection is SHORT_NS old), and a long one's close that comes
 * before such a look brings its connect or accept along (network.py
 * decode_rows). A loopback storm of short connections so makes two
 * records per connection instead of four.
 *
 * Totals are reported on close (and a failed connect); user space
 * (network.py periodic()) reports what live sockets moved in between and
 * subtracts it, without ever writing the kernel's counters.
 */
#include "common.h"

#define DOTS_AF_INET 2
#define DOTS_IPPROTO_TCP 6
#define DOTS_MSG_PEEK 2

/* include/net/tcp_states.h (uapi values, stable) */
#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_SYN_RECV 3
#define TCP_CLOSE 7
#define TCP_LISTEN 10

#define EV_CONNECT 0
#define EV_ACCEPT 1
#define EV_CLOSE 2
#define EV_CONNECT_FAILED 3
#define EV_CONNECT_CLOSE 4
#define EV_ACCEPT_CLOSE 5

#ifndef SHORT_NS
#error "the loader defines SHORT_NS"
#endif

#ifndef MAX_SOCKS
#error "the loader defines MAX_SOCKS"
#endif
/* listening TCP ports of the whole machine */
#define MAX_LISTENERS 512

struct owner {
    u32 pid;
    u32 uid;
    char comm[TASK_COMM_LEN];
};

struct sock_info {
    u64 sent;                /* added atomically */
    u64 received;
    u64 gen;                 /* when tracking began: tells a reused pointer apart */
    u64 opened;              /* when it was established (0: not yet) */
    struct owner o;
    u16 family;
    u16 sport;
    u16 dport;
    u8 provisional;          /* owner taken from the listener, not yet confirmed */
    u8 established;
    u8 accepted;             /* accepted on a listener (else our connect) */
    u8 saddr[16];
    u8 daddr[16];
};

struct listen_key {
    u16 family;
    u16 port;
};

struct listener {
    u64 sk;                  /* 0 when seeded by the loader from /proc/net */
    struct owner o;
};

struct net_event {
    u64 ts_ns;
    u64 sent;
    u64 received;
    u64 gen;
    u64 sk;
    u64 opened;
    u32 type;
    u32 pid;
    u32 uid;
    u16 family;
    u16 sport;
    u16 dport;
    u16 accepted;
    u8 saddr[16];
    u8 daddr[16];
    char comm[TASK_COMM_LEN];
};

BPF_F_TABLE("hash", u64, struct sock_info, socks, MAX_SOCKS, BPF_F_NO_PREALLOC);  /* grows with its entries */
BPF_F_TABLE("hash", struct listen_key, struct listener, listeners, MAX_LISTENERS, BPF_F_NO_PREALLOC);  /* grows with its entries */
/* [0] = sockets not tracked because `socks` was full */
BPF_ARRAY(net_stats, u64, 1);
/* [0] = entries in `socks`. Every send and receive on the machine reads it
 * first: while no watched socket is tracked, one inlined array read (no
 * helper call, cheaper than the uid check) and out. */
BPF_ARRAY(live_socks, u64, 1);

static __always_inline void count_live(s64 delta)
{
    u32 zero = 0;
    u64 *n = live_socks.lookup(&zero);
    if (n)
        __sync_fetch_and_add(n, delta);
}

/* These run in softirq for every uid's sockets: no uid to check there. */
static __always_inline int no_live_socks(void)
{
    u32 zero = 0;
    u64 *n = live_socks.lookup(&zero);
    return !n || *n == 0;
}

/* Track sk (a new entry is counted in live_socks; a pointer reused
 * without a close we saw keeps its count). 0, or the update's error. */
static __always_inline int track_sock(u64 sk, struct sock_info *si)
{
    if (socks.insert(&sk, si) == 0) {
        count_live(1);
        return 0;
    }
    return socks.update(&sk, si);
}

static __always_inline void current_owner(struct owner *o)
{
    u64 ug = bpf_get_current_uid_gid();
    o->pid = bpf_get_current_pid_tgid() >> 32;
    o->uid = (u32)ug;
    bpf_get_current_comm(o->comm, sizeof(o->comm));
}

/* The socket's family, ports and addresses into si, read as the
 * tracepoint's TP_fast_assign reads them (include/trace/events/sock.h):
 * ports in host order; v4 addresses in the first 4 bytes (rest zero), v6
 * ones (and v4-mapped on a v6 socket) all 16. Read only where an event
 * may follow: the probe runs for every TCP state change on the machine. */
static __always_inline void copy_addrs(struct sock_info *si, void *sk)
{
    si->family = read_u16(sk + OFF_SK_FAMILY);
    si->sport = __builtin_bswap16(read_u16(sk + OFF_INET_SPORT));
    si->dport = __builtin_bswap16(read_u16(sk + OFF_SK_DPORT));
    __builtin_memset(si->saddr, 0, 16);
    __builtin_memset(si->daddr, 0, 16);
    if (si->family == DOTS_AF_INET) {
        bpf_probe_read_kernel(si->saddr, 4, sk + OFF_SK_RCV_SADDR);
        bpf_probe_read_kernel(si->daddr, 4, sk + OFF_SK_DADDR);
    } else {
        bpf_probe_read_kernel(si->saddr, 16, sk + OFF_SK_V6_RCV_SADDR);
        bpf_probe_read_kernel(si->daddr, 16, sk + OFF_SK_V6_DADDR);
    }
}

/* A listener's key: the socket's family and local port. */
static __always_inline void listen_key_of(struct listen_key *lk, void *sk)
{
    lk->family = read_u16(sk + OFF_SK_FAMILY);
    lk->port = __builtin_bswap16(read_u16(sk + OFF_INET_SPORT));
}

static __always_inline void emit(u32 type, u64 sk, struct sock_info *si, u64 now)
{
    struct net_event *e = events.ringbuf_reserve(sizeof(*e));
    if (!e) {
        count_lost();
        return;
    }
    e->ts_ns = now;
    e->sent = si->sent;
    e->received = si->received;
    e->gen = si->gen;
    e->sk = sk;
    e->opened = si->opened;
    e->type = type;
    e->pid = si->o.pid;
    e->uid = si->o.uid;
    e->family = si->family;
    e->sport = si->sport;
    e->dport = si->dport;
    e->accepted = si->accepted;
    __builtin_memcpy(e->saddr, si->saddr, sizeof(e->saddr));
    __builtin_memcpy(e->daddr, si->daddr, sizeof(e->daddr));
    __builtin_memcpy(e->comm, si->o.comm, sizeof(e->comm));
    submit_event(e, sizeof(*e));
}

static __always_inline void table_full(void)
{
    u32 zero = 0;
    u64 *n = net_stats.lookup(&zero);
    if (n)
        __sync_fetch_and_add(n, 1);
}

/* TP_PROTO(const struct sock *sk, const int oldstate, const int newstate) */
RAW_TRACEPOINT_PROBE(inet_sock_set_state)
{
    void *skp = (void *)ctx->args[0];
    if (read_u16(skp + OFF_SK_PROTOCOL) != DOTS_IPPROTO_TCP)
        return 0;
    int old = (int)ctx->args[1], new = (int)ctx->args[2];
    u64 sk = (u64)skp;

    if (new == TCP_SYN_SENT) {              /* inside connect(): the owner */
        if (!uid_wanted(current_uid()))
            return 0;
        struct sock_info si = {};
        current_owner(&si.o);
        si.gen = bpf_ktime_get_boot_ns();
        if (track_sock(sk, &si) != 0)
            table_full();
        return 0;
    }

    if (new == TCP_LISTEN) {                /* inside listen(): every uid */
        struct listen_key lk = {};
        listen_key_of(&lk, skp);
        struct listener l = {.sk = sk};
        current_owner(&l.o);
        listeners.update(&lk, &l);
        return 0;
    }

    if (old == TCP_LISTEN && new == TCP_CLOSE) {   /* listener closed */
        struct listen_key lk = {};
        listen_key_of(&lk, skp);
        struct listener *l = listeners.lookup(&lk);
        if (l && (l->sk == sk || l->sk == 0))
            listeners.delete(&lk);
        return 0;
    }

    if (new == TCP_ESTABLISHED) {
        if (old == TCP_SYN_SENT) {          /* our connect() completed */
            if (no_live_socks())
                return 0;
            struct sock_info *si = socks.lookup(&sk);
            if (!si)
                return 0;
            copy_addrs(si, skp);
            si->opened = bpf_ktime_get_boot_ns();
            si->established = 1;
            return 0;
        }
        if (old != TCP_SYN_RECV)
            return 0;
        /* a connection accepted on a listener: softirq, owner from listener */
        struct listen_key lk = {};
        listen_key_of(&lk, skp);
        struct listener *l = listeners.lookup(&lk);
        if (!l || !uid_wanted(l->o.uid))
            return 0;
        struct sock_info si = {};
        si.o = l->o;
        si.gen = bpf_ktime_get_boot_ns();
        si.opened = si.gen;
        si.provisional = 1;
        si.established = 1;
        si.accepted = 1;
        copy_addrs(&si, skp);
        if (track_sock(sk, &si) != 0)
            table_full();
        return 0;
    }

    if (new == TCP_CLOSE) {
        if (no_live_socks())
            return 0;
        struct sock_info *si = socks.lookup(&sk);
        if (!si)
            return 0;
        if (uid_wanted(si->o.uid)) {
            u64 now = bpf_ktime_get_boot_ns();
            u32 type = EV_CLOSE;
            if (!si->established) {
                copy_addrs(si, skp);    /* a failed connect never got them */
                type = EV_CONNECT_FAILED;
            } else if (now - si->opened < SHORT_NS) {
                type = si->accepted ? EV_ACCEPT_CLOSE : EV_CONNECT_CLOSE;
            }
            emit(type, sk, si, now);
        }
        if (socks.delete(&sk) == 0)
            count_live(-1);
    }
    return 0;
}

#ifndef DOTS_NO_SOCK_LENGTH   /* defined by the loader on kernels without them */
/* The hot path, on every send and receive of any socket on the machine:
 * raw tracepoints (the tracepoint's arguments as the kernel passes them,
 * sock_*_length(sk, ret, flags), without the perf machinery that copies
 * them into a record first), the count of tracked sockets (none: out),
 * then the uid check (both tracepoints fire in the process doing the I/O,
 * so bytes count when a watched user's process moves them), then one hash
 * lookup by socket pointer and one atomic add. `socks` holds only TCP
 * sockets (inet_sock_set_state), so a lookup also stands for the
 * tracepoint record's protocol check. */
static __always_inline void count_bytes(u64 sk, int ret, int is_send)
{
    if (ret <= 0)
        return;
    if (no_live_socks())
        return;
    if (!uid_wanted(current_uid()))
        return;
    struct sock_info *si = socks.lookup(&sk);
    if (!si)
        return;
    if (is_send)
        __sync_fetch_and_add(&si->sent, ret);
    else
        __sync_fetch_and_add(&si->received, ret);
    if (si->provisional) {                  /* process context: the real server */
        si->provisional = 0;
        current_owner(&si->o);
    }
}

RAW_TRACEPOINT_PROBE(sock_send_length)
{
    count_bytes(ctx->args[0], (int)ctx->args[1], 1);
    return 0;
}

RAW_TRACEPOINT_PROBE(sock_recv_length)
{
    if (ctx->args[2] & DOTS_MSG_PEEK)       /* peeked bytes are read again */
        return 0;
    count_bytes(ctx->args[0], (int)ctx->args[1], 0);
    return 0;
}
#endif /* DOTS_NO_SOCK_LENGTH */
