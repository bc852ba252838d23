/*
 * blaze_green benchmark load generator.
 *
 * Single-threaded epoll, non-blocking sockets, TCP_NODELAY, hand-written
 * WebSocket client (RFC 6455): fixed valid Sec-WebSocket-Key, masked client
 * frames (fixed mask), parses unmasked server frames with 7/16/64-bit lengths,
 * fragmented messages and frames split across reads. Without -z no extension
 * is offered, so compression is off (and any RSV bit from the server is an error).
 *
 * Build:  gcc -O2 -o bench/build/loadgen bench/loadgen.c -lz
 *
 * Usage:  loadgen [-s] [-z] [-J] [-p PIDS] [-a PIDS] [-t TIMEOUT_S] [-w WARMUP_S]
 *                 [-d MAX_S] [-g GO_N] [-H] [-E] MODE ARGS...
 *   fanout HOST PORT N COUNT SIZE
 *   echo   HOST PORT CLIENTS SECONDS SIZE
 *   big    HOST PORT MSG_BYTES COUNT text|binary
 *   idle   HOST PORT N HOLD_S [PATH]   (SIGUSR1 ends the hold early)
 *
 *   -p  PID(s) of the server, comma-separated (gunicorn: every worker): their CPU
 *       time (utime+stime from /proc/PID/stat, summed) is sampled at the start and
 *       end of the measured window, next to this process's own CPU time
 *       (getrusage) over the same window.
 *   -a  PID(s) of helper processes (a Redis broker): their CPU, summed, over the
 *       same window, reported apart as "aux_cpu_pct".
 *   -s  Socket.IO (Engine.IO v4) over WebSocket, for Flask-SocketIO: path
 *       /socket.io/?EIO=4&transport=websocket&role=ROLE (ROLE feed, control, echo,
 *       idle); after the WebSocket handshake the server sends the Engine.IO open
 *       packet 0{...}, the client sends 40 (connect to "/"), the server answers
 *       40{...} and only then is the connection counted as open. Echo sends
 *       42["echo","<payload>"] and expects the same text back; the control
 *       connection sends 42["go","N COUNT SIZE"] and waits for 42["done"];
 *       subscribers receive 42["msg",{"seq":..,"ts":..,...}]. Engine.IO pings (2)
 *       are answered with pongs (3). fanout, echo and idle only.
 *   -g  fanout: the N written in the go command (default: N). A cluster run sends
 *       go 0 COUNT SIZE: every subscriber is connected before the control
 *       connection opens, and the server must not count its own (local) ones.
 *   -H  fanout: once every subscriber is open, print {"ready": N} and hold until
 *       SIGUSR1 (or -t) before opening the control connection, so that the
 *       caller can check the server side (say, every worker subscribed to Redis).
 *   -z  permessage-deflate (RFC 7692): every connection offers
 *       "permessage-deflate; client_max_window_bits". The server's answer is checked
 *       (only that extension, known parameters, window bits 8-15); where it accepted,
 *       every data message with RSV1 set is inflated (raw inflate, the 00 00 ff ff tail
 *       appended): with server_no_context_takeover by one inflater reset per message,
 *       otherwise by one inflater per connection kept for its lifetime (the window the
 *       server declared, else 15 bits). The inflated message is then checked as a plain
 *       one. Without context takeover, a message whose compressed bytes equal those of a
 *       recent one (a cache by crc32, checked byte for byte) reuses its output: a
 *       broadcast's shared frame is inflated about once per broadcast, not once per
 *       subscriber ("inflate_reused" counts the reuses). Echo clients on such connections send their messages compressed (each
 *       message deflated on its own, within the client_max_window_bits the server
 *       set; plain when it set 8, which zlib cannot deflate with). Where the server
 *       declined, the connection runs plain. Without -z an extension in the answer, or
 *       an RSV bit on a frame, fails the connection / the run.
 *   -J  JSON ticker payloads: fanout sends "go N COUNT SIZE ticker" (the server
 *       broadcasts ~SIZE-byte JSON ticker batches, every one different; each delivery
 *       must start with {"seq": and end with ]}); echo sends ~SIZE-byte ticker JSON
 *       texts, 64 different ones in turn, instead of a letter pattern.
 *   Every mode reports the data messages received from the server (fanout:
 *   subscribers; echo: clients), their WebSocket frame bytes on the wire (headers +
 *   payload, as received: compressed or not) and their payload bytes after inflating:
 *   rx_wire_bytes / rx_msgs is the bytes on the wire per delivery.
 *   -t  give up after this many seconds (connect phase; fanout delivery); default 60
 *   -w  echo warm-up seconds before the window opens; default 1
 *   -d  big: stop after this many seconds even if COUNT is not reached (at least 1 message)
 *   -E  idle: the server is expected to close the connections (a shutdown): a close frame
 *       or an EOF from the server is counted, not an error, and the hold ends once every
 *       connection is closed. The JSON gains "closes" (close frames), "close_1001" (those
 *       with code 1001), "eof_drops" (closed without a close frame) and "all_closed_s"
 *       (from the first close frame to the last connection closed).
 *
 * Every mode prints ONE line of JSON on stdout at the end (idle also prints
 * {"ready": N} when all connections are open). Exit status 0 on success,
 * 1 when the run did not complete (the JSON then carries "error").
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define WS_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define WS_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
#define MAX_INFLIGHT 128 /* handshakes in progress at once (keeps the accept backlog small) */
#define MAX_RETRIES 200
#define RBUF_SIZE (256 * 1024)
#define MAX_PIDS 64
#define SIO_PATH "/socket.io/?EIO=4&transport=websocket&role="

enum { ST_FREE, ST_CONNECTING, ST_HANDSHAKE, ST_OPEN, ST_CLOSING, ST_CLOSED };
enum { K_SUB, K_CONTROL, K_ECHO, K_BIG, K_IDLE };

typedef struct conn {
    int fd, state, kind, id, retries;
    const char *path;
    char *in; size_t in_len, in_cap;           /* unparsed input (partial frame / headers) */
    char *out; size_t out_len, out_off, out_cap; /* unsent output */
    char *msg; size_t msg_len, msg_cap; int msg_op, in_msg; /* fragmented message */
    int want_out;
    int64_t next_seq;
    uint64_t received;
    double sent_at;
    double retry_at;
    int sio_ready; /* Socket.IO: the 40{...} connect reply arrived */
    /* permessage-deflate (-z), as the server answered */
    unsigned char pmd;       /* negotiated */
    unsigned char pmd_reset; /* server_no_context_takeover: a fresh inflater per message */
    unsigned char pmd_cbits; /* client_max_window_bits the server set (0: none, 15) */
    unsigned char pmd_sbits; /* server_max_window_bits the server declared (0: none, 15) */
    unsigned char msg_z;     /* the message being reassembled had RSV1 on its first frame */
    z_stream *zin;           /* the connection's inflater (context takeover) */
    int e_var;               /* echo: the payload variant sent last */
    size_t msg_wire;         /* frame bytes of the message being reassembled */
} conn;

/* ---------------------------------------------------------------- globals */
static int ep = -1;
static struct sockaddr_in srv_addr;
static char host_hdr[128];
static conn *conns;            /* subscribers / clients */
static int nconns;
static conn control;           /* fanout control connection */
static int launched, opened, failed, inflight;
static int server_pids[MAX_PIDS], n_server_pids, aux_pids[MAX_PIDS], n_aux_pids;
static int opt_sio = 0, opt_hold = 0, opt_z = 0, opt_json = 0, opt_expect_close = 0; static long opt_go_n = -1;
static double opt_timeout = 60.0, opt_warmup = 1.0, opt_maxdur = 0.0;
static const char *mode;
static char errbuf[512];
static unsigned char mask_key[4] = {0x37, 0xfa, 0x21, 0x3d};
static char rbuf[RBUF_SIZE];
static int stop_flag = 0;

/* window measurement */
static double win_t0, win_t1, gen_cpu0, gen_cpu1, srv_cpu0 = -1, srv_cpu1 = -1, aux_cpu0 = -1, aux_cpu1 = -1;

/* latency samples (ms) */
static float *lat; static size_t lat_n, lat_cap;

/* fanout */
static long f_n, f_count, f_size;
static uint64_t f_deliveries, f_expected, f_order_errors, f_parse_errors;
static double f_go_t, f_last_t; static int f_go_sent, f_done_seen;

/* echo */
static long e_clients; static double e_seconds; static long e_size;
#define E_VARIANTS 64 /* -J: distinct echo payloads, sent in turn */
static int e_nvar = 1;
static char *e_payloads[E_VARIANTS]; static size_t e_sizes[E_VARIANTS];
static char *e_frames[E_VARIANTS]; static size_t e_flens[E_VARIANTS];
static char *e_zframes[16][E_VARIANTS]; static size_t e_zlens[16][E_VARIANTS]; /* by window bits */
static int e_phase; /* 0 connecting, 1 warmup, 2 window, 3 done */
static double e_warm_t; static uint64_t e_round_trips, e_bad;

/* big */
static long b_bytes, b_count; static int b_binary;
static char *b_frame; static size_t b_frame_len; static char *b_payload;
static long b_done; static uint64_t b_mismatch; static int b_finished;

/* idle */
static double i_hold; static int i_ready_printed; static double i_ready_t;
/* -E: the server's closes */
static uint64_t x_closes, x_1001, x_eof; static double x_first_t, x_last_t;

/* wire accounting (data messages on every connection but the fanout control one) and
   permessage-deflate */
static uint64_t rx_msgs, rx_wire, rx_payload, rx_z, tx_msgs, tx_wire, tx_z;
static uint64_t inflate_errors, proto_errors, content_errors;
static int pmd_conns; /* connections (but the control one) that negotiated permessage-deflate */
static char pmd_answer[160]; /* the first Sec-WebSocket-Extensions answer seen */
static z_stream zshared; static int zshared_init; /* reset per message (no context takeover) */
static unsigned char *zout; static size_t zout_cap;
#define ZOUT_MAX ((size_t)64 << 20)

/* ------------------------------------------------------------------ utils */
static double mono(void) {
    struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}
static double realtime(void) {
    struct timespec ts; clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}
static double self_cpu(void) {
    struct rusage r; getrusage(RUSAGE_SELF, &r);
    return r.ru_utime.tv_sec + r.ru_utime.tv_usec / 1e6 + r.ru_stime.tv_sec + r.ru_stime.tv_usec / 1e6;
}
static double proc_cpu(int pid) {
    if (pid <= 0) return -1;
    char p[64], buf[2048]; snprintf(p, sizeof p, "/proc/%d/stat", pid);
    FILE *f = fopen(p, "r"); if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f); fclose(f); buf[n] = 0;
    char *s = strrchr(buf, ')'); if (!s) return -1;
    s += 2; /* now at field 3 (state) */
    unsigned long long ut = 0, st = 0; int field = 3; char *tok = strtok(s, " ");
    while (tok) {
        if (field == 14) ut = strtoull(tok, NULL, 10);
        if (field == 15) { st = strtoull(tok, NULL, 10); break; }
        tok = strtok(NULL, " "); field++;
    }
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}
static double pids_cpu(const int *pids, int n) { /* sum over processes; -1 if any is gone */
    if (n <= 0) return -1;
    double t = 0;
    for (int i = 0; i < n; i++) { double c = proc_cpu(pids[i]); if (c < 0) return -1; t += c; }
    return t;
}
static int parse_pids(const char *s, int *out) {
    int n = 0; char *end;
    while (*s && n < MAX_PIDS) { long v = strtol(s, &end, 10); if (end == s) break; out[n++] = (int)v; s = *end == ',' ? end + 1 : end; }
    return n;
}
/* machine-wide jiffies from /proc/stat: all, steal (taken by the hypervisor), idle
   (idle+iowait) and busy (user+nice+system: every process, ours and others) */
typedef struct { double total, steal, idle, busy; } mstat;
static mstat ms0, ms1;
static int ncpu = 1;
static void stat_sample(mstat *m) {
    memset(m, 0, sizeof *m);
    FILE *f = fopen("/proc/stat", "r"); if (!f) return;
    unsigned long long v[10] = {0};
    if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]) >= 8) {
        for (int i = 0; i < 8; i++) m->total += v[i]; /* guest time is already in user */
        m->steal = v[7]; m->idle = v[3] + v[4]; m->busy = v[0] + v[1] + v[2];
    }
    fclose(f);
}
static void win_start(void) {
    stat_sample(&ms0); win_t0 = mono(); gen_cpu0 = self_cpu();
    srv_cpu0 = pids_cpu(server_pids, n_server_pids); aux_cpu0 = pids_cpu(aux_pids, n_aux_pids);
}
static void win_end(void) {
    win_t1 = mono(); gen_cpu1 = self_cpu();
    srv_cpu1 = pids_cpu(server_pids, n_server_pids); aux_cpu1 = pids_cpu(aux_pids, n_aux_pids);
    stat_sample(&ms1);
}

static void die(const char *fmt, ...) {
    va_list ap; va_start(ap, fmt); vfprintf(stderr, fmt, ap); va_end(ap); fputc('\n', stderr); exit(2);
}
static void set_error(const char *fmt, ...) {
    if (errbuf[0]) return;
    va_list ap; va_start(ap, fmt); vsnprintf(errbuf, sizeof errbuf, fmt, ap); va_end(ap);
}
static void *xrealloc(void *p, size_t n) { void *q = realloc(p, n); if (!q && n) die("out of memory"); return q; }

static void lat_add(double ms) {
    if (lat_n == lat_cap) { lat_cap = lat_cap ? lat_cap * 2 : 65536; lat = xrealloc(lat, lat_cap * sizeof *lat); }
    lat[lat_n++] = (float)ms;
}
static int fcmp(const void *a, const void *b) { float x = *(const float *)a, y = *(const float *)b; return (x > y) - (x < y); }
static double pct(double p) { /* nearest-rank percentile of sorted lat */
    if (!lat_n) return -1;
    double x = p / 100.0 * lat_n; size_t k = (size_t)x; if ((double)k < x) k++; if (k < 1) k = 1; if (k > lat_n) k = lat_n;
    return lat[k - 1];
}

/* buffers */
static void buf_append(char **b, size_t *len, size_t *cap, const char *d, size_t n) {
    if (*len + n > *cap) { size_t c = *cap ? *cap : 4096; while (c < *len + n) c *= 2; *b = xrealloc(*b, c); *cap = c; }
    memcpy(*b + *len, d, n); *len += n;
}

/* --------------------------------------------------------------- sockets */
static void ep_mod(conn *c, int want_out) {
    struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) die("epoll_ctl mod: %s", strerror(errno));
    c->want_out = want_out;
}

static void conn_close(conn *c) {
    if (c->fd >= 0) { epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL); close(c->fd); c->fd = -1; }
    c->in_len = c->out_len = c->out_off = c->msg_len = 0; c->in_msg = 0;
}

static int conn_flush(conn *c) {
    while (c->out_off < c->out_len) {
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            if (errno == EINTR) continue;
            return -1;
        }
        c->out_off += w;
    }
    if (c->out_off == c->out_len) { c->out_off = c->out_len = 0; if (c->want_out && c->state != ST_CONNECTING) ep_mod(c, 0); }
    else if (!c->want_out) ep_mod(c, 1);
    return 0;
}

static void send_raw(conn *c, const char *d, size_t n) {
    if (c->fd < 0) return;
    if (c->out_len == 0 && (c->state == ST_OPEN || c->state == ST_CLOSING)) { /* fast path: write straight from caller's buffer */
        ssize_t w;
        do { w = send(c->fd, d, n, MSG_NOSIGNAL); } while (w < 0 && errno == EINTR);
        if (w < 0) { if (errno != EAGAIN && errno != EWOULDBLOCK) return; w = 0; }
        d += w; n -= w;
        if (!n) return;
    }
    buf_append(&c->out, &c->out_len, &c->out_cap, d, n);
    if (c->state == ST_OPEN || c->state == ST_CLOSING) conn_flush(c);
}

/* build a masked client frame into a fresh malloc'd buffer */
static char *build_frame_rsv(int op, int rsv1, const char *payload, size_t n, size_t *out_len) {
    size_t hl = 2 + (n < 126 ? 0 : n < 65536 ? 2 : 8) + 4;
    unsigned char *f = malloc(hl + n); if (!f) die("out of memory");
    f[0] = 0x80 | (rsv1 ? 0x40 : 0) | op; size_t i = 2;
    if (n < 126) f[1] = 0x80 | n;
    else if (n < 65536) { f[1] = 0x80 | 126; f[2] = n >> 8; f[3] = n & 255; i = 4; }
    else { f[1] = 0x80 | 127; for (int k = 0; k < 8; k++) f[2 + k] = (uint64_t)n >> (56 - 8 * k); i = 10; }
    memcpy(f + i, mask_key, 4); i += 4;
    for (size_t k = 0; k < n; k++) f[i + k] = payload[k] ^ mask_key[k & 3];
    *out_len = hl + n; return (char *)f;
}
static char *build_frame(int op, const char *payload, size_t n, size_t *out_len) {
    return build_frame_rsv(op, 0, payload, n, out_len);
}

/* a masked client frame carrying `payload` deflated on its own (RSV1 set), with a
   `bits`-bit window; NULL when zlib cannot deflate with that window (8) */
static char *build_zframe(int op, int bits, const char *payload, size_t n, size_t *out_len) {
    if (bits < 9 || bits > 15) return NULL;
    z_stream s; memset(&s, 0, sizeof s);
    if (deflateInit2(&s, 6, Z_DEFLATED, -bits, 8, Z_DEFAULT_STRATEGY) != Z_OK) die("deflateInit2 failed");
    size_t cap = deflateBound(&s, n) + 16; unsigned char *z = malloc(cap); if (!z) die("out of memory");
    s.next_in = (Bytef *)payload; s.avail_in = n; s.next_out = z; s.avail_out = cap;
    if (deflate(&s, Z_SYNC_FLUSH) != Z_OK || s.avail_in) die("deflate failed");
    size_t zl = cap - s.avail_out; deflateEnd(&s);
    if (zl >= 4 && memcmp(z + zl - 4, "\x00\x00\xff\xff", 4) == 0) zl -= 4; /* RFC 7692 7.2.1 */
    char *f = build_frame_rsv(op, 1, (char *)z, zl, out_len); free(z); return f;
}

/* Inflated outputs of recent messages without context takeover, by the crc32 of their
   compressed bytes (direct-mapped; a hit is confirmed by comparing the bytes in full). */
#define ZCACHE_SLOTS 4096
#define ZCACHE_MAX_IN (64 * 1024)
typedef struct { unsigned char *in, *out; size_t in_len, out_len, in_cap, out_cap; int used; } zslot;
static zslot zcache[ZCACHE_SLOTS];
static uint64_t zcache_hits;
static unsigned char *zcache_last; /* where the last inflate_msg result is */
/* inflate one whole compressed message into zout (RFC 7692 7.2.2: the tail 00 00 ff ff
   appended); returns its length, or -1 on corrupt data */
static long inflate_msg(conn *c, const char *in, size_t n) {
    static const unsigned char tail[4] = {0x00, 0x00, 0xff, 0xff};
    z_stream *z;
    /* A broadcast without context takeover reaches every subscriber as the same bytes, so
       its inflated output is reused (a crc32 and a memcmp of a few hundred bytes instead of
       inflating again): this one process then keeps up with the server it measures, where
       real subscribers each inflate on their own machine. Every delivery is still compared
       in full and checked as a plain message. Large messages (the big scenario) skip it. */
    zslot *slot = NULL;
    if (c->pmd_reset && n <= ZCACHE_MAX_IN) {
        slot = &zcache[crc32(0L, (const Bytef *)in, (uInt)n) % ZCACHE_SLOTS];
        if (slot->used && slot->in_len == n && memcmp(slot->in, in, n) == 0) {
            zcache_hits++;
            zcache_last = slot->out;
            return (long)slot->out_len;
        }
    }
    if (c->pmd_reset) {
        z = &zshared;
        if (!zshared_init) { if (inflateInit2(z, -15) != Z_OK) die("inflateInit2 failed"); zshared_init = 1; }
        else inflateReset(z);
    } else {
        if (!c->zin) {
            c->zin = calloc(1, sizeof *c->zin); if (!c->zin) die("out of memory");
            if (inflateInit2(c->zin, -(c->pmd_sbits ? c->pmd_sbits : 15)) != Z_OK) die("inflateInit2 failed");
        }
        z = c->zin;
    }
    size_t out = 0;
    for (int part = 0; part < 2; part++) {
        z->next_in = part ? (Bytef *)tail : (Bytef *)in; z->avail_in = part ? 4 : (uInt)n;
        for (;;) {
            if (zout_cap - out < 1024) {
                size_t cap = zout_cap ? zout_cap * 2 : 256 * 1024;
                if (cap > ZOUT_MAX) return -1;
                zout = xrealloc(zout, cap); zout_cap = cap;
            }
            z->next_out = zout + out; z->avail_out = (uInt)(zout_cap - out);
            int r = inflate(z, Z_SYNC_FLUSH);
            out = (size_t)(z->next_out - zout);
            if (r == Z_STREAM_END) { inflateReset(z); if (part == 1 || z->avail_in == 0) break; continue; }
            if (r == Z_BUF_ERROR) { if (z->avail_out == 0) continue; break; } /* input used up */
            if (r != Z_OK) return -1;
            if (z->avail_in == 0 && z->avail_out > 0) break;
        }
        if (part == 0 && z->avail_in) return -1;
    }
    if (slot) {
        if (slot->in_cap < n) { slot->in_cap = n; slot->in = xrealloc(slot->in, n); }
        if (slot->out_cap < out) { slot->out_cap = out; slot->out = xrealloc(slot->out, out); }
        memcpy(slot->in, in, n); memcpy(slot->out, zout, out);
        slot->in_len = n; slot->out_len = out; slot->used = 1;
    }
    zcache_last = zout;
    return (long)out;
}
static void send_frame(conn *c, int op, const char *payload, size_t n) {
    size_t fl; char *f = build_frame(op, payload, n, &fl); send_raw(c, f, fl); free(f);
}

static void conn_start(conn *c) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket: %s (raise RLIMIT_NOFILE?)", strerror(errno));
    int one = 1; setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd; c->state = ST_CONNECTING; c->in_len = c->out_len = c->out_off = 0; c->in_msg = 0; c->msg_len = 0;
    int r = connect(fd, (struct sockaddr *)&srv_addr, sizeof srv_addr);
    if (r < 0 && errno != EINPROGRESS) die("connect: %s", strerror(errno));
    c->pmd = c->pmd_reset = c->pmd_cbits = c->pmd_sbits = c->msg_z = 0;
    if (c->zin) { inflateEnd(c->zin); free(c->zin); c->zin = NULL; }
    char req[640];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: " WS_KEY "\r\nSec-WebSocket-Version: 13\r\n%s\r\n", c->path, host_hdr,
                     opt_z ? "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" : "");
    buf_append(&c->out, &c->out_len, &c->out_cap, req, n);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl add: %s", strerror(errno));
    c->want_out = 1;
}

static void on_open(conn *c);
static void on_message(conn *c, int op, char *data, size_t n);

/* a connection failed before it was open: retry (refused / reset while the
   server is busy accepting) or give up */
static int pending_retries;
static void conn_failed_early(conn *c, const char *why) {
    conn_close(c); inflight--;
    if (++c->retries > MAX_RETRIES || c->kind == K_CONTROL) {
        c->state = ST_CLOSED; failed++;
        set_error("connection %d to %s failed after %d tries: %s", c->id, c->path, c->retries, why);
        return;
    }
    c->state = ST_FREE; c->retry_at = mono() + 0.01 * (c->retries < 10 ? c->retries : 10); pending_retries++;
}

static int lost; /* open connections the server dropped while measuring */
static void conn_lost(conn *c, const char *why) {
    if (opt_expect_close && c->state == ST_OPEN && c->kind == K_IDLE) { x_eof++; x_last_t = mono(); }
    else if (c->state == ST_OPEN && !stop_flag) { set_error("connection %d on %s lost: %s", c->id, c->path, why); lost++; }
    conn_close(c); c->state = ST_CLOSED;
}

/* window bits 8-15 (a token or a quoted string, no leading zero); -1 when invalid */
static int parse_bits(const char *v, size_t l) {
    if (l >= 2 && v[0] == '"' && v[l - 1] == '"') { v++; l -= 2; }
    if (l < 1 || l > 2 || v[0] == '0') return -1;
    int b = 0; for (size_t i = 0; i < l; i++) { if (v[i] < '0' || v[i] > '9') return -1; b = b * 10 + v[i] - '0'; }
    return b >= 8 && b <= 15 ? b : -1;
}
static void trim(const char **a, const char **b) {
    while (*a < *b && (**a == ' ' || **a == '\t')) (*a)++;
    while (*b > *a && ((*b)[-1] == ' ' || (*b)[-1] == '\t')) (*b)--;
}
/* one Sec-WebSocket-Extensions value of the 101 (v..e): only permessage-deflate, once, with
   the parameters of RFC 7692 7.1, each at most once. Returns 0, or -1 with `why` filled. */
static int parse_ext_answer(conn *c, const char *v, const char *e, char *why, size_t wl) {
    if (!pmd_answer[0]) {
        const char *a = v, *b = e; trim(&a, &b);
        size_t l = (size_t)(b - a) < sizeof pmd_answer - 1 ? (size_t)(b - a) : sizeof pmd_answer - 1;
        memcpy(pmd_answer, a, l); pmd_answer[l] = 0;
    }
    const char *p = v;
    while (p < e) {
        const char *ext_end = memchr(p, ',', e - p); if (!ext_end) ext_end = e;
        const char *a = p, *b = ext_end; trim(&a, &b);
        if (a == b) { p = ext_end + 1; continue; }
        if (!opt_z) { snprintf(why, wl, "the server accepted an extension that was not offered: %.*s", (int)(b - a), a); return -1; }
        const char *semi = memchr(a, ';', b - a); const char *ne = semi ? semi : b; const char *na = a; trim(&na, &ne);
        if ((size_t)(ne - na) != 18 || strncasecmp(na, "permessage-deflate", 18) != 0) { snprintf(why, wl, "unexpected extension in the answer: %.*s", (int)(ne - na), na); return -1; }
        if (c->pmd) { snprintf(why, wl, "permessage-deflate answered twice"); return -1; }
        c->pmd = 1;
        int seen = 0;
        while (semi) {
            const char *pa = semi + 1; const char *pe = memchr(pa, ';', b - pa); semi = pe; if (!pe) pe = b;
            const char *eq = memchr(pa, '=', pe - pa);
            const char *ka = pa, *ke = eq ? eq : pe; trim(&ka, &ke);
            const char *va = eq ? eq + 1 : pe, *ve = pe; trim(&va, &ve);
            int bit, bits = -1;
#define IS(name) ((size_t)(ke - ka) == strlen(name) && strncasecmp(ka, name, ke - ka) == 0)
            if (IS("server_no_context_takeover")) bit = 1;
            else if (IS("client_no_context_takeover")) bit = 2;
            else if (IS("server_max_window_bits")) bit = 4;
            else if (IS("client_max_window_bits")) bit = 8;
            else { snprintf(why, wl, "unknown permessage-deflate parameter in the answer: %.*s", (int)(ke - ka), ka); return -1; }
#undef IS
            if (seen & bit) { snprintf(why, wl, "permessage-deflate parameter repeated in the answer: %.*s", (int)(ke - ka), ka); return -1; }
            seen |= bit;
            if (bit <= 2 && eq) { snprintf(why, wl, "%.*s takes no value", (int)(ke - ka), ka); return -1; }
            if (bit >= 4) {
                bits = eq ? parse_bits(va, ve - va) : -1;
                if (bits < 0) { snprintf(why, wl, "bad %.*s in the answer", (int)(ke - ka), ka); return -1; }
            }
            if (bit == 1) c->pmd_reset = 1;
            else if (bit == 4) c->pmd_sbits = (unsigned char)bits;
            else if (bit == 8) c->pmd_cbits = (unsigned char)bits;
            /* client_no_context_takeover: we deflate every message on its own anyway */
        }
        p = ext_end + 1;
    }
    return 0;
}

/* a complete data message: inflate it when it was compressed, count it, hand it on */
static void deliver(conn *c, int op, int z, char *d, size_t n, size_t wire) {
    if (z) {
        long m = inflate_msg(c, d, n);
        if (m < 0) { inflate_errors++; set_error("corrupt compressed message on %s connection %d", c->path, c->id); return; }
        d = (char *)zcache_last; n = (size_t)m;
    }
    if (c->kind != K_CONTROL) { rx_msgs++; rx_wire += wire; rx_payload += n; if (z) rx_z++; }
    on_message(c, op, d, n);
}

/* parse as much as possible from d[0..n); returns bytes consumed */
static size_t parse(conn *c, char *d, size_t n) {
    size_t pos = 0;
    if (c->state == ST_HANDSHAKE) {
        char *e = memmem(d, n, "\r\n\r\n", 4);
        if (!e) return 0;
        size_t hl = e - d + 4;
        if (n < 12 || memcmp(d, "HTTP/1.1 101", 12) != 0) {
            char line[128]; size_t l = 0; while (l < n && l < 100 && d[l] != '\r') { line[l] = d[l]; l++; } line[l] = 0;
            set_error("handshake on %s rejected: %s", c->path, line);
            conn_close(c); c->state = ST_CLOSED; failed++; inflight--;
            return n;
        }
        /* check Sec-WebSocket-Accept */
        int ok = 0;
        for (char *p = d; p < e; p++) {
            if ((p == d || p[-1] == '\n') && strncasecmp(p, "sec-websocket-accept:", 21) == 0) {
                char *v = p + 21; while (*v == ' ') v++;
                ok = strncmp(v, WS_ACCEPT, strlen(WS_ACCEPT)) == 0; break;
            }
        }
        if (!ok) { set_error("bad Sec-WebSocket-Accept on %s", c->path); conn_close(c); c->state = ST_CLOSED; failed++; inflight--; return n; }
        for (char *p = d; p < e; p++) { /* Sec-WebSocket-Extensions (every such line) */
            if ((p == d || p[-1] == '\n') && strncasecmp(p, "sec-websocket-extensions:", 25) == 0) {
                char *v = p + 25, *le = memmem(v, e + 2 - v, "\r\n", 2); if (!le) le = e;
                char why[200];
                if (parse_ext_answer(c, v, le, why, sizeof why) < 0) {
                    set_error("handshake on %s: %s", c->path, why);
                    conn_close(c); c->state = ST_CLOSED; failed++; inflight--; return n;
                }
            }
        }
        if (c->pmd && c->kind != K_CONTROL) pmd_conns++;
        c->state = ST_OPEN;
        pos = hl;
        if (c->out_len) conn_flush(c);
        if (!opt_sio) { inflight--; opened++; on_open(c); } /* Socket.IO: open once 40{...} arrives */
        if (c->state != ST_OPEN) return n;
    }
    while (c->state == ST_OPEN || c->state == ST_CLOSING) {
        size_t avail = n - pos;
        if (avail < 2) break;
        unsigned char *h = (unsigned char *)d + pos;
        int fin = h[0] & 0x80, op = h[0] & 0x0f, masked = h[1] & 0x80, rsv = h[0] & 0x70;
        uint64_t len = h[1] & 0x7f; size_t hl = 2;
        if (len == 126) { if (avail < 4) break; len = (h[2] << 8) | h[3]; hl = 4; }
        else if (len == 127) { if (avail < 10) break; len = 0; for (int k = 0; k < 8; k++) len = (len << 8) | h[2 + k]; hl = 10; }
        if (masked) hl += 4;
        if (avail < hl + len) break;
        char *pl = d + pos + hl;
        if (masked) { unsigned char *m = h + hl - 4; for (uint64_t k = 0; k < len; k++) pl[k] ^= m[k & 3]; }
        pos += hl + len;
        /* RSV1 only on the first frame of a data message, and only with permessage-deflate;
           RSV2/RSV3 never (no other extension is negotiated) */
        if (rsv && (op >= 8 || op == 0 || rsv != 0x40 || !c->pmd)) {
            proto_errors++;
            set_error("frame with RSV bits %#x (opcode %d) on %s connection %d%s", rsv, op, c->path, c->id,
                      c->pmd ? "" : " without permessage-deflate");
            if (op == 0 || op >= 8) continue;
            rsv = 0; /* a data frame: taken as plain, so the stream stays in step (the run fails) */
        }
        if (op >= 8) { /* control frames */
            if (op == 0x9) { if (c->state == ST_OPEN) send_frame(c, 0xA, pl, len); }
            else if (op == 0x8) {
                if (c->state == ST_CLOSING) { conn_close(c); c->state = ST_CLOSED; return n; }
                if (opt_expect_close && c->kind == K_IDLE) {
                    x_closes++; x_last_t = mono(); if (x_closes == 1) x_first_t = x_last_t;
                    if (len >= 2 && ((((unsigned char)pl[0]) << 8) | (unsigned char)pl[1]) == 1001) x_1001++;
                } else if (!stop_flag) { set_error("server closed %s connection %d (close frame)", c->path, c->id); lost++; }
                send_frame(c, 0x8, pl, len >= 2 ? 2 : 0);
                conn_close(c); c->state = ST_CLOSED;
                return n;
            }
            continue;
        }
        if (c->state == ST_CLOSING) continue;
        if (op == 0) { /* continuation */
            if (!c->in_msg) { set_error("unexpected continuation frame"); continue; }
            buf_append(&c->msg, &c->msg_len, &c->msg_cap, pl, len); c->msg_wire += hl + len;
            if (fin) { c->in_msg = 0; deliver(c, c->msg_op, c->msg_z, c->msg, c->msg_len, c->msg_wire); c->msg_len = 0; }
            continue;
        }
        if (!fin) {
            c->in_msg = 1; c->msg_op = op; c->msg_z = rsv != 0; c->msg_len = 0; c->msg_wire = hl + len;
            buf_append(&c->msg, &c->msg_len, &c->msg_cap, pl, len);
            continue;
        }
        deliver(c, op, rsv != 0, pl, len, hl + len);
    }
    return pos;
}

static void conn_readable(conn *c) {
    for (int iter = 0; iter < 4 && c->fd >= 0; iter++) {
        ssize_t r = recv(c->fd, rbuf, sizeof rbuf, 0);
        if (r < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            if (errno == EINTR) continue;
            if (c->state == ST_HANDSHAKE || c->state == ST_CONNECTING) conn_failed_early(c, strerror(errno));
            else if (c->state == ST_CLOSING) { conn_close(c); c->state = ST_CLOSED; }
            else conn_lost(c, strerror(errno));
            return;
        }
        if (r == 0) {
            if (c->state == ST_HANDSHAKE || c->state == ST_CONNECTING) conn_failed_early(c, "eof during handshake");
            else if (c->state == ST_CLOSING) { conn_close(c); c->state = ST_CLOSED; }
            else conn_lost(c, "eof");
            return;
        }
        if (c->in_len == 0) {
            size_t used = parse(c, rbuf, r);
            if (c->fd >= 0 && used < (size_t)r) buf_append(&c->in, &c->in_len, &c->in_cap, rbuf + used, r - used);
        } else {
            buf_append(&c->in, &c->in_len, &c->in_cap, rbuf, r);
            size_t used = parse(c, c->in, c->in_len);
            if (c->fd >= 0) {
                if (used < c->in_len) memmove(c->in, c->in + used, c->in_len - used);
                c->in_len -= used;
            }
        }
        if ((size_t)r < sizeof rbuf) return;
    }
}

static void conn_event(conn *c, uint32_t evs) {
    if (c->state == ST_CONNECTING) {
        if (evs & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
            int err = 0; socklen_t l = sizeof err; getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
            if (err) { conn_failed_early(c, strerror(err)); return; }
            c->state = ST_HANDSHAKE;
            if (conn_flush(c) < 0) { conn_failed_early(c, strerror(errno)); return; }
        }
        return;
    }
    if (evs & EPOLLOUT) {
        if (conn_flush(c) < 0) {
            if (c->state == ST_OPEN) conn_lost(c, strerror(errno));
            else if (c->state == ST_CLOSING) { conn_close(c); c->state = ST_CLOSED; }
            else conn_failed_early(c, strerror(errno));
            return;
        }
    }
    if (evs & (EPOLLIN | EPOLLERR | EPOLLHUP)) conn_readable(c);
}

/* ------------------------------------------------------- connection pool */
static void pool_init(int n, const char *path, int kind) {
    nconns = n; conns = calloc(n, sizeof *conns); if (!conns && n) die("out of memory");
    for (int i = 0; i < n; i++) { conns[i].fd = -1; conns[i].state = ST_FREE; conns[i].path = path; conns[i].kind = kind; conns[i].id = i; }
}
/* start connections that are due; returns nothing */
static int next_fresh;
static void pool_pump(void) {
    double now = mono();
    /* retries first */
    if (pending_retries && inflight < MAX_INFLIGHT) {
        for (int i = 0; i < next_fresh && inflight < MAX_INFLIGHT; i++) {
            conn *c = &conns[i];
            if (c->state == ST_FREE && c->retries && c->retry_at <= now) { conn_start(c); inflight++; pending_retries--; }
        }
    }
    while (next_fresh < nconns && inflight < MAX_INFLIGHT) { conn_start(&conns[next_fresh++]); inflight++; launched++; }
}

/* ----------------------------------------------------------- mode logic */
static void on_open(conn *c) {
    if (c->kind == K_CONTROL) {
        char cmd[128]; long go_n = opt_go_n >= 0 ? opt_go_n : f_n;
        const char *kind = opt_json ? " ticker" : "";
        int n = opt_sio ? snprintf(cmd, sizeof cmd, "42[\"go\",\"go %ld %ld %ld%s\"]", go_n, f_count, f_size, kind)
                        : snprintf(cmd, sizeof cmd, "go %ld %ld %ld%s", go_n, f_count, f_size, kind);
        win_start(); f_go_t = win_t0; f_go_sent = 1;
        send_frame(c, 0x1, cmd, n);
    } else if (c->kind == K_ECHO) {
        /* the first message goes out when every client is connected (main loop) */
    } else if (c->kind == K_BIG) {
        win_start(); c->sent_at = mono();
        send_raw(c, b_frame, b_frame_len);
    }
}

static void app_message(conn *c, int op, char *d, size_t n);

/* echo: the next payload variant, compressed when the connection negotiated
   permessage-deflate (deflated once per variant and window size, then reused) */
static void send_echo(conn *c) {
    int v = c->e_var = (c->e_var + 1) % e_nvar;
    const char *f = e_frames[v]; size_t fl = e_flens[v]; int z = 0;
    if (c->pmd) {
        int bits = c->pmd_cbits ? c->pmd_cbits : 15;
        if (!e_zframes[bits][v] && bits >= 9) e_zframes[bits][v] = build_zframe(0x1, bits, e_payloads[v], e_sizes[v], &e_zlens[bits][v]);
        if (e_zframes[bits][v]) { f = e_zframes[bits][v]; fl = e_zlens[bits][v]; z = 1; }
    }
    tx_msgs++; tx_wire += fl; if (z) tx_z++;
    send_raw(c, f, fl);
}

/* Engine.IO / Socket.IO layer (-s): the open packet, the namespace connect, pings;
   events (42[...]) go on to the mode logic as they are */
static void on_message(conn *c, int op, char *d, size_t n) {
    if (!opt_sio) { app_message(c, op, d, n); return; }
    if (op != 0x1 || n < 1) { set_error("unexpected non-text Socket.IO frame on %s", c->path); return; }
    if (d[0] == '2') { send_frame(c, 0x1, "3", 1); return; } /* Engine.IO ping -> pong */
    if (!c->sio_ready) {
        if (d[0] == '0') { send_frame(c, 0x1, "40", 2); return; }        /* open -> connect "/" */
        if (n >= 2 && d[0] == '4' && d[1] == '0') { c->sio_ready = 1; inflight--; opened++; on_open(c); return; }
        if (n >= 2 && d[0] == '4' && d[1] == '4') {
            set_error("Socket.IO connect refused on %s: %.*s", c->path, (int)(n > 80 ? 80 : n), d);
            conn_close(c); c->state = ST_CLOSED; failed++; inflight--; return;
        }
        set_error("unexpected Socket.IO packet before connect: %.*s", (int)(n > 40 ? 40 : n), d);
        return;
    }
    if (n >= 2 && d[0] == '4' && d[1] == '2') { app_message(c, op, d, n); return; }
    /* other packets (3 pong, 6 noop, 40 again...) are ignored */
}

static void app_message(conn *c, int op, char *d, size_t n) {
    switch (c->kind) {
    case K_SUB: {
        double now = realtime();
        /* {"seq":I,"ts":T,...}, possibly inside a Socket.IO event; tolerant of a payload that
           was embedded as a JSON string (quotes escaped: \"seq\":) */
        char tmp[96]; size_t k = n < sizeof tmp - 1 ? n : sizeof tmp - 1; memcpy(tmp, d, k); tmp[k] = 0;
        char *s = strstr(tmp, "seq"), *t = strstr(tmp, "ts");
        while (s && !(s[3] == '"' || (s[3] == '\\' && s[4] == '"'))) s = strstr(s + 3, "seq");
        while (t && !(t[2] == '"' || (t[2] == '\\' && t[3] == '"'))) t = strstr(t + 2, "ts");
        if (s) { s += 3; while (*s == '"' || *s == '\\' || *s == ':' || *s == ' ') s++; }
        if (t) { t += 2; while (*t == '"' || *t == '\\' || *t == ':' || *t == ' ') t++; }
        if (op != 0x1 || !s || !t) { f_parse_errors++; set_error("unparsable fan-out message"); break; }
        if (opt_json && (n < 9 || memcmp(d, "{\"seq\":", 7) != 0 || d[n - 2] != ']' || d[n - 1] != '}')) {
            content_errors++; set_error("fan-out message is not a ticker batch: %.*s", (int)(n > 60 ? 60 : n), d); break;
        }
        long long seq = strtoll(s, NULL, 10); double ts = strtod(t, NULL);
        if (seq != c->next_seq) f_order_errors++;
        c->next_seq = seq + 1; c->received++; f_deliveries++;
        lat_add((now - ts) * 1000.0);
        if (f_deliveries == f_expected) { win_end(); f_last_t = win_t1; }
        break;
    }
    case K_CONTROL:
        if ((n == 4 && memcmp(d, "done", 4) == 0) || (n >= 9 && memcmp(d, "42[\"done\"", 9) == 0)) f_done_seen = 1;
        break;
    case K_ECHO: {
        double now = mono();
        int v = c->e_var;
        if (op != 0x1 || n != e_sizes[v] || memcmp(d, e_payloads[v], n) != 0) e_bad++;
        if (e_phase == 2) { e_round_trips++; lat_add((now - c->sent_at) * 1000.0); }
        if (e_phase == 1 || e_phase == 2) { c->sent_at = now; send_echo(c); }
        break;
    }
    case K_BIG: {
        if (op != (b_binary ? 0x2 : 0x1) || (size_t)n != (size_t)b_bytes || memcmp(d, b_payload, n) != 0) b_mismatch++;
        double now = mono();
        lat_add((now - c->sent_at) * 1000.0);
        b_done++;
        if (b_done >= b_count || (opt_maxdur > 0 && now - win_t0 >= opt_maxdur)) { win_end(); b_finished = 1; break; }
        c->sent_at = now; send_raw(c, b_frame, b_frame_len);
        break;
    }
    default: break;
    }
}

/* ---------------------------------------------------------------- output */
static void json_cpu(FILE *o) {
    double w = win_t1 - win_t0;
    fprintf(o, ",\"window_s\":%.6f,\"gen_cpu_s\":%.4f,\"gen_cpu_pct\":%.1f", w, gen_cpu1 - gen_cpu0,
            w > 0 ? 100.0 * (gen_cpu1 - gen_cpu0) / w : 0.0);
    double dt = ms1.total - ms0.total;
    if (dt > 0) /* steal/idle: % of all CPU time; machine_busy: % of one core (all processes) */
        fprintf(o, ",\"steal_pct\":%.1f,\"idle_pct\":%.1f,\"machine_busy_pct\":%.1f,\"ncpu\":%d",
                100.0 * (ms1.steal - ms0.steal) / dt, 100.0 * (ms1.idle - ms0.idle) / dt,
                100.0 * ncpu * (ms1.busy - ms0.busy) / dt, ncpu);
    if (n_server_pids > 0 && srv_cpu0 >= 0 && srv_cpu1 >= 0)
        fprintf(o, ",\"server_cpu_s\":%.4f,\"server_cpu_pct\":%.1f,\"server_procs\":%d", srv_cpu1 - srv_cpu0,
                w > 0 ? 100.0 * (srv_cpu1 - srv_cpu0) / w : 0.0, n_server_pids);
    if (n_aux_pids > 0 && aux_cpu0 >= 0 && aux_cpu1 >= 0)
        fprintf(o, ",\"aux_cpu_s\":%.4f,\"aux_cpu_pct\":%.1f", aux_cpu1 - aux_cpu0,
                w > 0 ? 100.0 * (aux_cpu1 - aux_cpu0) / w : 0.0);
}
static void json_str(FILE *o, const char *s) {
    fputc('"', o);
    for (const char *p = s; *p; p++) { if (*p == '"' || *p == '\\') fputc('\\', o); fputc((unsigned char)*p < 32 ? ' ' : *p, o); }
    fputc('"', o);
}
static void json_wire(FILE *o) {
    fprintf(o, ",\"deflate_offered\":%s,\"deflate_conns\":%d,\"rx_msgs\":%llu,\"rx_wire_bytes\":%llu,"
            "\"rx_payload_bytes\":%llu,\"rx_compressed\":%llu,\"tx_msgs\":%llu,\"tx_wire_bytes\":%llu,"
            "\"tx_compressed\":%llu,\"inflate_reused\":%llu,\"inflate_errors\":%llu,\"proto_errors\":%llu,"
            "\"content_errors\":%llu",
            opt_z ? "true" : "false", pmd_conns, (unsigned long long)rx_msgs, (unsigned long long)rx_wire,
            (unsigned long long)rx_payload, (unsigned long long)rx_z, (unsigned long long)tx_msgs,
            (unsigned long long)tx_wire, (unsigned long long)tx_z, (unsigned long long)zcache_hits,
            (unsigned long long)inflate_errors,
            (unsigned long long)proto_errors, (unsigned long long)content_errors);
    if (rx_msgs)
        fprintf(o, ",\"wire_bytes_per_msg\":%.1f,\"payload_bytes_per_msg\":%.1f,\"compressed_pct\":%.1f,\"wire_pct\":%.1f",
                (double)rx_wire / rx_msgs, (double)rx_payload / rx_msgs, 100.0 * rx_z / rx_msgs,
                rx_payload ? 100.0 * rx_wire / rx_payload : 0.0);
    if (tx_msgs) fprintf(o, ",\"tx_wire_bytes_per_msg\":%.1f", (double)tx_wire / tx_msgs);
    if (pmd_answer[0]) { fputs(",\"deflate_answer\":", o); json_str(o, pmd_answer); }
}
static int wire_failed(void) { return inflate_errors || proto_errors || content_errors; }
static void json_err(FILE *o) {
    if (errbuf[0]) {
        fputs(",\"error\":\"", o);
        for (char *p = errbuf; *p; p++) { if (*p == '"' || *p == '\\') fputc('\\', o); fputc((unsigned char)*p < 32 ? ' ' : *p, o); }
        fputc('"', o);
    }
}

/* ----------------------------------------------------------------- main */
static void setup_addr(const char *host, const char *port) {
    memset(&srv_addr, 0, sizeof srv_addr);
    srv_addr.sin_family = AF_INET; srv_addr.sin_port = htons(atoi(port));
    if (inet_pton(AF_INET, host, &srv_addr.sin_addr) != 1) die("HOST must be an IPv4 address: %s", host);
    snprintf(host_hdr, sizeof host_hdr, "%s:%s", host, port);
}

static void on_signal(int s) { (void)s; stop_flag = 2; }
static volatile sig_atomic_t end_hold = 0;
static void on_usr1(int s) { (void)s; end_hold = 1; }

static void loop_once(int timeout_ms) {
    static struct epoll_event evs[1024];
    int n = epoll_wait(ep, evs, 1024, timeout_ms);
    if (n < 0) { if (errno == EINTR) return; die("epoll_wait: %s", strerror(errno)); }
    for (int i = 0; i < n; i++) conn_event((conn *)evs[i].data.ptr, evs[i].events);
}

/* connect all pool connections; returns 0 ok, -1 failure/timeout */
static int connect_all(double *connect_s) {
    double t0 = mono();
    while (opened + failed < nconns) {
        pool_pump();
        loop_once(10);
        if (failed || lost) return -1;
        if (stop_flag == 2) { set_error("interrupted"); return -1; }
        if (mono() - t0 > opt_timeout) { set_error("timeout: %d of %d connections open after %.0f s", opened, nconns, opt_timeout); return -1; }
    }
    *connect_s = mono() - t0;
    return 0;
}

/* closing handshake on every open connection (code 1000), wait up to max_wait
   for the server's close frames / EOFs, then drop whatever is left */
static void close_all(double max_wait) {
    static const char code[2] = {0x03, (char)0xe8};
    stop_flag = 1;
    int n = nconns + 1, pending = 0;
    for (int i = 0; i < n; i++) {
        conn *c = i < nconns ? &conns[i] : &control;
        if (c->fd < 0) continue;
        if (c->state == ST_OPEN) { send_frame(c, 0x8, code, 2); c->state = ST_CLOSING; pending++; }
        else { conn_close(c); c->state = ST_CLOSED; }
    }
    double t0 = mono();
    while (pending && mono() - t0 < max_wait) {
        loop_once(10);
        pending = 0;
        for (int i = 0; i < n; i++) { conn *c = i < nconns ? &conns[i] : &control; if (c->fd >= 0) pending++; }
    }
    for (int i = 0; i < n; i++) { conn *c = i < nconns ? &conns[i] : &control; if (c->fd >= 0) { conn_close(c); c->state = ST_CLOSED; } }
}

/* -H: report that every subscriber is open, then wait for SIGUSR1 (connections are
   serviced meanwhile: pings answered, closes noticed) */
static int hold_until_usr1(long n) {
    if (!opt_hold) return 0;
    printf("{\"ready\": %ld}\n", n); fflush(stdout);
    double t0 = mono();
    while (!end_hold) {
        loop_once(20);
        if (failed || lost) return -1;
        if (stop_flag == 2) { set_error("interrupted"); return -1; }
        if (mono() - t0 > opt_timeout) { set_error("timeout: no SIGUSR1 within %.0f s of ready", opt_timeout); return -1; }
    }
    return 0;
}

static void usage(void) {
    fprintf(stderr,
            "usage: loadgen [-s] [-z] [-J] [-p PIDS] [-a PIDS] [-t TIMEOUT_S] [-w WARMUP_S] [-d MAX_S] [-g GO_N] [-H] [-E] MODE ARGS\n"
            "  fanout HOST PORT N COUNT SIZE\n  echo HOST PORT CLIENTS SECONDS SIZE\n"
            "  big HOST PORT MSG_BYTES COUNT text|binary\n  idle HOST PORT N HOLD_S [PATH]\n");
    exit(2);
}

/* -J echo: a JSON ticker batch of at most `size` bytes (at least one entry), like the
   fan-out's (bench/servers/_proto.py), variant `v` with its own prices; returns its length */
static size_t fill_ticker(char *p, size_t size, int v) {
    static const char *sym[] = {"BTC-USD", "ETH-USD", "SOL-USD", "XRP-USD", "ADA-USD", "DOGE-USD",
                                "AVAX-USD", "LINK-USD", "DOT-USD", "LTC-USD", "BCH-USD", "UNI-USD"};
    static const double base[] = {64000.0, 3400.0, 145.0, 0.52, 0.45, 0.12, 35.0, 14.5, 6.8, 82.0, 480.0, 9.6};
    unsigned long long r = 0x9e3779b97f4a7c15ULL * (unsigned)(v + 1);
#define RND() (r = r * 6364136223846793005ULL + 1442695040888963407ULL, (double)(r >> 11) / 9007199254740992.0)
    char e[256], head[96];
    int hl = snprintf(head, sizeof head, "{\"type\":\"ticker\",\"exchange\":\"coinbase\",\"batch\":%d,\"data\":[", v);
    size_t len = hl; memcpy(p, head, hl);
    int k = (int)(RND() * 12), first = 1; long t_ms = 1000L * v + (long)(RND() * 900);
    for (;;) {
        int j = k++ % 12;
        double px = base[j] * (1 + (RND() - 0.5) * 0.002), tick = px >= 10 ? 0.01 : 0.0001;
        int dec = px >= 10 ? 2 : 4;
        int el = snprintf(e, sizeof e,
                          "%s{\"product_id\":\"%s\",\"price\":\"%.*f\",\"best_bid\":\"%.*f\",\"best_ask\":\"%.*f\","
                          "\"side\":\"%s\",\"time\":\"2025-12-02T09:%02ld:%02ld.%03ldZ\"}",
                          first ? "" : ",", sym[j], dec, px, dec, px - tick, dec, px + tick, RND() < 0.5 ? "buy" : "sell",
                          t_ms / 60000 % 60, t_ms / 1000 % 60, t_ms % 1000);
        if (!first && len + el + 2 > size) break;
        memcpy(p + len, e, el); len += el; first = 0;
        if (len + 2 > size) break;
    }
#undef RND
    memcpy(p + len, "]}", 2); return len + 2;
}

/* valid UTF-8 text of exactly n bytes with 1-4 byte characters */
static void fill_utf8(char *p, size_t n) {
    static const char *chars[] = {"a", "\xc3\xa9", "\xe2\x9c\x93", "\xf0\x9f\x9a\x80", "Z", " ", "\xd0\x96", "\xe4\xb8\xad"};
    size_t i = 0, k = 0;
    while (i < n) {
        const char *ch = chars[k++ % 8]; size_t l = strlen(ch);
        if (i + l > n) { p[i++] = 'x'; continue; }
        memcpy(p + i, ch, l); i += l;
    }
}

int main(int argc, char **argv) {
    int opt;
    while ((opt = getopt(argc, argv, "+p:a:t:w:d:g:sHzJE")) != -1) {
        switch (opt) {
        case 'p': n_server_pids = parse_pids(optarg, server_pids); break;
        case 'a': n_aux_pids = parse_pids(optarg, aux_pids); break;
        case 's': opt_sio = 1; break;
        case 'g': opt_go_n = atol(optarg); break;
        case 'H': opt_hold = 1; break;
        case 'z': opt_z = 1; break;
        case 'J': opt_json = 1; break;
        case 'E': opt_expect_close = 1; break;
        case 't': opt_timeout = atof(optarg); break;
        case 'w': opt_warmup = atof(optarg); break;
        case 'd': opt_maxdur = atof(optarg); break;
        default: usage();
        }
    }
    if (argc - optind < 3) usage();
    mode = argv[optind];
    char **a = argv + optind + 1; int na = argc - optind - 1;
    setup_addr(a[0], a[1]);
    signal(SIGPIPE, SIG_IGN); signal(SIGINT, on_signal); signal(SIGTERM, on_signal); signal(SIGUSR1, on_usr1);
    control.fd = -1; control.state = ST_FREE;
    ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN); if (ncpu < 1) ncpu = 1;
    ep = epoll_create1(EPOLL_CLOEXEC); if (ep < 0) die("epoll_create1: %s", strerror(errno));
    srand((unsigned)time(NULL) ^ getpid());
    int rc = 0; double connect_s = 0;

    if (strcmp(mode, "fanout") == 0) {
        if (na != 5) usage();
        f_n = atol(a[2]); f_count = atol(a[3]); f_size = atol(a[4]);
        f_expected = (uint64_t)f_n * f_count;
        lat_cap = f_expected ? f_expected : 1; lat = malloc(lat_cap * sizeof *lat);
        pool_init(f_n, opt_sio ? SIO_PATH "feed" : "/feed", K_SUB);
        if (connect_all(&connect_s) == 0 && hold_until_usr1(f_n) == 0) {
            control.fd = -1; control.path = opt_sio ? SIO_PATH "control" : "/control"; control.kind = K_CONTROL; control.id = -1;
            conn_start(&control); inflight++;
            double t0 = mono();
            while (f_deliveries < f_expected && !failed && !lost && stop_flag != 2) {
                loop_once(20);
                if (control.state == ST_CLOSED && !f_go_sent) break;
                if (mono() - t0 > opt_timeout) { set_error("timeout: %llu of %llu deliveries after %.0f s", (unsigned long long)f_deliveries, (unsigned long long)f_expected, opt_timeout); break; }
            }
            if (f_deliveries < f_expected) { win_end(); f_last_t = win_t1; rc = 1; if (stop_flag == 2) set_error("interrupted"); }
        } else rc = 1;
        stop_flag = 1;
        qsort(lat, lat_n, sizeof *lat, fcmp);
        double el = f_go_sent ? f_last_t - f_go_t : 0;
        if (f_order_errors) set_error("%llu order errors", (unsigned long long)f_order_errors);
        printf("{\"mode\":\"fanout\",\"n\":%ld,\"count\":%ld,\"size\":%ld,\"deliveries\":%llu,\"expected\":%llu,"
               "\"elapsed_s\":%.6f,\"deliveries_per_s\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,"
               "\"order_errors\":%llu,\"parse_errors\":%llu,\"done_received\":%s,\"connect_s\":%.3f",
               f_n, f_count, f_size, (unsigned long long)f_deliveries, (unsigned long long)f_expected, el,
               el > 0 ? f_deliveries / el : 0.0, pct(50), pct(99), lat_n ? lat[lat_n - 1] : -1.0,
               (unsigned long long)f_order_errors, (unsigned long long)f_parse_errors, f_done_seen ? "true" : "false", connect_s);
        json_wire(stdout); json_cpu(stdout); json_err(stdout); puts("}");
        if (f_order_errors || f_deliveries != f_expected || wire_failed()) rc = 1;
    } else if (strcmp(mode, "echo") == 0) {
        if (na != 5) usage();
        e_clients = atol(a[2]); e_seconds = atof(a[3]); e_size = atol(a[4]);
        if (opt_json && opt_sio) die("-J echo: no Socket.IO mode (the JSON would need escaping)");
        e_nvar = opt_json ? E_VARIANTS : 1;
        for (int v = 0; v < e_nvar; v++) {
            char *pay = malloc((e_size > 512 ? e_size : 512) + 32); if (!pay) die("out of memory"); /* -J: one entry at least */
            size_t len = e_size;
            if (opt_json) len = fill_ticker(pay, e_size, v);
            else for (long i = 0; i < e_size; i++) pay[i] = 'a' + (i % 26);
            if (opt_sio) { /* 42["echo","<payload>"]: the expected echo is the same text */
                static const char pre[] = "42[\"echo\",\""; size_t pl = sizeof pre - 1;
                memmove(pay + pl, pay, len); memcpy(pay, pre, pl);
                memcpy(pay + pl + len, "\"]", 2); len += pl + 2;
            }
            e_payloads[v] = pay; e_sizes[v] = len;
            e_frames[v] = build_frame(0x1, pay, len, &e_flens[v]);
        }
        long e_req = e_size; e_size = (long)e_sizes[0];
        pool_init(e_clients, opt_sio ? SIO_PATH "echo" : "/echo", K_ECHO);
        if (connect_all(&connect_s) == 0) {
            e_phase = 1; e_warm_t = mono();
            for (int i = 0; i < nconns; i++) { conns[i].e_var = i % e_nvar; conns[i].sent_at = mono(); send_echo(&conns[i]); }
            while (!failed && !lost && stop_flag != 2) {
                double now = mono();
                if (e_phase == 1 && now - e_warm_t >= opt_warmup) { e_phase = 2; win_start(); }
                if (e_phase == 2 && now - win_t0 >= e_seconds) { win_end(); e_phase = 3; break; }
                loop_once(e_phase == 2 ? 5 : 10);
            }
            if (e_phase != 3) { win_end(); rc = 1; if (stop_flag == 2) set_error("interrupted"); }
        } else rc = 1;
        stop_flag = 1;
        qsort(lat, lat_n, sizeof *lat, fcmp);
        double w = win_t1 - win_t0;
        if (e_bad) set_error("%llu echoes differed from what was sent", (unsigned long long)e_bad);
        printf("{\"mode\":\"echo\",\"clients\":%ld,\"seconds\":%.3f,\"size\":%ld,\"round_trips\":%llu,\"rtt_per_s\":%.1f,"
               "\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,\"bad_echoes\":%llu,\"connect_s\":%.3f",
               e_clients, e_seconds, e_size - (opt_sio ? 13 : 0), (unsigned long long)e_round_trips, w > 0 ? e_round_trips / w : 0.0,
               pct(50), pct(99), lat_n ? lat[lat_n - 1] : -1.0, (unsigned long long)e_bad, connect_s);
        fprintf(stdout, ",\"requested_size\":%ld,\"payload\":\"%s\"", e_req, opt_json ? "ticker" : "letters");
        json_wire(stdout); json_cpu(stdout); json_err(stdout); puts("}");
        if (e_bad || wire_failed()) rc = 1;
    } else if (strcmp(mode, "big") == 0) {
        if (na != 5) usage();
        b_bytes = atol(a[2]); b_count = atol(a[3]);
        if (strcmp(a[4], "binary") == 0) b_binary = 1; else if (strcmp(a[4], "text") == 0) b_binary = 0; else usage();
        b_payload = malloc(b_bytes + 1);
        if (b_binary) for (long i = 0; i < b_bytes; i++) b_payload[i] = rand() & 0xff;
        else fill_utf8(b_payload, b_bytes);
        b_frame = build_frame(b_binary ? 0x2 : 0x1, b_payload, b_bytes, &b_frame_len);
        if (opt_sio) die("big: no Socket.IO mode");
        pool_init(1, "/echo", K_BIG);
        if (connect_all(&connect_s) == 0) {
            double t0 = mono();
            while (!b_finished && !failed && !lost && stop_flag != 2 && conns[0].state == ST_OPEN) {
                loop_once(20);
                if (mono() - t0 > opt_timeout) { set_error("timeout after %.0f s (%ld of %ld messages)", opt_timeout, b_done, b_count); break; }
            }
            if (!b_finished) { win_end(); rc = 1; if (stop_flag == 2) set_error("interrupted"); }
        } else rc = 1;
        stop_flag = 1;
        qsort(lat, lat_n, sizeof *lat, fcmp);
        double w = win_t1 - win_t0;
        if (b_mismatch) set_error("%llu echoes differed from what was sent", (unsigned long long)b_mismatch);
        printf("{\"mode\":\"big\",\"msg_bytes\":%ld,\"type\":\"%s\",\"count\":%ld,\"requested_count\":%ld,\"elapsed_s\":%.6f,"
               "\"mib_per_s\":%.2f,\"p50_ms\":%.3f,\"max_ms\":%.3f,\"mismatches\":%llu,\"connect_s\":%.3f",
               b_bytes, b_binary ? "binary" : "text", b_done, b_count, w, w > 0 ? (double)b_bytes * b_done / w / 1048576.0 : 0.0,
               pct(50), lat_n ? lat[lat_n - 1] : -1.0, (unsigned long long)b_mismatch, connect_s);
        json_wire(stdout); json_cpu(stdout); json_err(stdout); puts("}");
        if (b_mismatch || wire_failed()) rc = 1;
    } else if (strcmp(mode, "idle") == 0) {
        if (na != 4 && na != 5) usage();
        int n = atoi(a[2]); i_hold = atof(a[3]);
        pool_init(n, na == 5 ? a[4] : opt_sio ? SIO_PATH "idle" : "/echo", K_IDLE);
        if (connect_all(&connect_s) == 0) {
            printf("{\"ready\": %d, \"connect_s\": %.3f}\n", opened, connect_s); fflush(stdout);
            i_ready_printed = 1; i_ready_t = mono();
            while (mono() - i_ready_t < i_hold && stop_flag != 2 && !end_hold) {
                loop_once(50);
                if (opt_expect_close) { /* ends once the server has closed every connection */
                    int open_n = 0; for (int i = 0; i < nconns; i++) if (conns[i].fd >= 0) open_n++;
                    if (open_n == 0) break;
                }
            }
        } else rc = 1;
        stop_flag = 1;
        int alive = 0; for (int i = 0; i < nconns; i++) if (conns[i].state == ST_OPEN) alive++;
        if (!rc && alive != n && !opt_expect_close) { set_error("%d of %d connections survived the hold", alive, n); rc = 1; }
        printf("{\"mode\":\"idle\",\"n\":%d,\"opened\":%d,\"alive_at_end\":%d,\"hold_s\":%.1f,\"held_s\":%.3f,\"connect_s\":%.3f",
               n, opened, alive, i_hold, i_ready_printed ? mono() - i_ready_t : 0.0, connect_s);
        if (opt_expect_close)
            printf(",\"closes\":%llu,\"close_1001\":%llu,\"eof_drops\":%llu,\"all_closed_s\":%.3f",
                   (unsigned long long)x_closes, (unsigned long long)x_1001, (unsigned long long)x_eof,
                   x_closes ? x_last_t - x_first_t : -1.0);
        json_wire(stdout); json_err(stdout); puts("}");
        if (wire_failed()) rc = 1;
    } else usage();
    fflush(stdout);
    if (stop_flag != 2) close_all(3.0);
    return rc;
}
