/* direct.c — the direct producer (lg.h): a minimal Kafka producer for PLAINTEXT clusters, written
 * for the load generator's one job, so that the generator outruns the daemon it measures.
 *
 * What it speaks (blocking TCP sockets, one per producer thread and leader broker):
 *  - ApiVersions v0 to the bootstrap broker, then Metadata v1..v7 (the highest both sides have,
 *    at most 7: librdkafka 2.0.2's mock cluster writes v8's response without its authorized
 *    operations) for the topic's partition leaders, then ListOffsets v1 to each leader until
 *    every partition is ready (leaders_ready: a topic created a moment ago is not);
 *  - Produce v3..v7 (the highest both have, at most 7: the mock cluster supports 0..7, Kafka 4
 *    dropped 0..2; 7 is the last version before flexible encoding), acks=-1 (all, as the
 *    librdkafka path's acks=all), one record batch v2 (magic 2) per request: CRC-32C over
 *    attributes..end, producerId -1 (not idempotent: no retries either, see below), CreateTime
 *    timestamps (baseTimestamp = the first record's, deltas per record), keys as given (NULL:
 *    null key), no headers. Compression none or lz4 (LZ4 frame, independent blocks, like
 *    librdkafka's).
 *  - Up to LG_DIRECT_INFLIGHT requests in flight per connection, responses read in order; every
 *    partition response's error code is checked. Any error (Kafka's or the socket's) marks the
 *    producer failed: the messages of that request count as failed, the first error is kept,
 *    and lg_direct_add returns -1 from then on (the caller stops). No retries: a benchmark run
 *    that lost a request is a failed run, not one to patch up.
 *
 * Batching: one open batch per partition, closed (sent) when it holds batch_msgs records or
 * batch_bytes of records, when it is linger_ms old at a poll, or at lg_direct_send_all. A batch
 * holds one partition's messages in the order they were added, so the partition's bytes are
 * exactly the sequence of lg_direct_add calls.
 *
 * Not thread-safe: one owner thread. Delivery tracking (lg_track) is written as the librdkafka
 * path's delivery callback does: atomic max of the next offset, atomic counts, ring under its
 * mutex; `pending` (added, not yet answered) is atomic so that another thread can wait for 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <lz4frame.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h> /* rd_kafka_err2str: Kafka error names */

#include "lg.h"

#define LG_DIRECT_INFLIGHT 5
#define LG_DIRECT_SAMPLES 64 /* latency samples kept per batch (more are dropped) */
#define BATCH_HDR 61         /* record batch v2 header bytes before the records */
#define API_PRODUCE 0
#define API_LIST_OFFSETS 2
#define API_METADATA 3
#define API_VERSIONS 18
#define IO_TIMEOUT_S 60

/* realloc, or exit with a message: the load generator has no way to go on without the buffer
 * (a send batch, a response, the compression buffer), and a NULL written through would crash
 * without saying why. */
static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (!q) {
        fprintf(stderr, "clickstage-loadgen: out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return q;
}

/* ---- CRC-32C (Castagnoli, reflected 0x82F63B78) ------------------------------------------- */

static uint32_t crc_tab[8][256];
static int crc_hw = -1;
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_tab[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_tab[t][i] = (crc_tab[t - 1][i] >> 8) ^ crc_tab[0][crc_tab[t - 1][i] & 0xff];
#if defined(__x86_64__)
    __builtin_cpu_init();
    crc_hw = __builtin_cpu_supports("sse4.2") ? 1 : 0;
#else
    crc_hw = 0;
#endif
}

static uint32_t crc_sw(uint32_t c, const uint8_t *p, size_t n)
{
    while (n && ((uintptr_t)p & 7)) {
        c = (c >> 8) ^ crc_tab[0][(c ^ *p++) & 0xff];
        n--;
    }
    while (n >= 8) { /* slicing-by-8 */
        uint64_t w;
        memcpy(&w, p, 8);
        w ^= c;
        c = crc_tab[7][w & 0xff] ^ crc_tab[6][(w >> 8) & 0xff] ^ crc_tab[5][(w >> 16) & 0xff] ^
            crc_tab[4][(w >> 24) & 0xff] ^ crc_tab[3][(w >> 32) & 0xff] ^
            crc_tab[2][(w >> 40) & 0xff] ^ crc_tab[1][(w >> 48) & 0xff] ^ crc_tab[0][w >> 56];
        p += 8;
        n -= 8;
    }
    while (n--)
        c = (c >> 8) ^ crc_tab[0][(c ^ *p++) & 0xff];
    return c;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc_sse42(uint32_t c, const uint8_t *p, size_t n)
{
    uint64_t c64 = c;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c64 = __builtin_ia32_crc32di(c64, w);
        p += 8;
        n -= 8;
    }
    c = (uint32_t)c64;
    while (n--)
        c = __builtin_ia32_crc32qi(c, *p++);
    return c;
}
#endif

uint32_t lg_crc32c_update(uint32_t crc, const void *data, size_t n)
{
    pthread_once(&crc_once, crc_init);
    uint32_t c = ~crc;
#if defined(__x86_64__)
    if (crc_hw)
        return ~crc_sse42(c, data, n);
#endif
    return ~crc_sw(c, data, n);
}

uint32_t lg_crc32c(const void *data, size_t n) { return lg_crc32c_update(0, data, n); }

/* ---- big-endian writers and readers, varints ---------------------------------------------- */
static inline uint8_t *w16(uint8_t *p, int16_t v)
{
    uint16_t u = (uint16_t)v;
    p[0] = (uint8_t)(u >> 8), p[1] = (uint8_t)u;
    return p + 2;
}
static inline uint8_t *w32(uint8_t *p, int32_t v)
{
    uint32_t u = (uint32_t)v;
    p[0] = (uint8_t)(u >> 24), p[1] = (uint8_t)(u >> 16), p[2] = (uint8_t)(u >> 8), p[3] = (uint8_t)u;
    return p + 4;
}
static inline uint8_t *w64(uint8_t *p, int64_t v)
{
    w32(p, (int32_t)((uint64_t)v >> 32));
    return w32(p + 4, (int32_t)(uint32_t)(uint64_t)v);
}
static inline uint8_t *wstr(uint8_t *p, const char *s)
{
    size_t n = strlen(s);
    p = w16(p, (int16_t)n);
    memcpy(p, s, n);
    return p + n;
}
static inline uint64_t zz(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }
static inline size_t vlen(int64_t v)
{
    uint64_t u = zz(v);
    size_t n = 1;
    while (u >= 0x80) {
        u >>= 7;
        n++;
    }
    return n;
}
static inline uint8_t *wvar(uint8_t *p, int64_t v)
{
    uint64_t u = zz(v);
    while (u >= 0x80) {
        *p++ = (uint8_t)(u | 0x80);
        u >>= 7;
    }
    *p++ = (uint8_t)u;
    return p;
}

typedef struct rd {
    const uint8_t *p, *end;
    int bad;
} rd;
static int64_t rn(rd *r, int n)
{
    if (r->bad || r->end - r->p < n) {
        r->bad = 1;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | r->p[i];
    r->p += n;
    if (n == 2)
        return (int16_t)v;
    if (n == 4)
        return (int32_t)v;
    return (int64_t)v;
}
/* a string (or nullable string): copied into out (truncated), or skipped when out is NULL */
static void rstr(rd *r, char *out, size_t cap)
{
    int64_t n = rn(r, 2);
    if (out && cap)
        out[0] = 0;
    if (n < 0)
        return;
    if (r->bad || r->end - r->p < n) {
        r->bad = 1;
        return;
    }
    if (out && cap) {
        size_t k = (size_t)n < cap - 1 ? (size_t)n : cap - 1;
        memcpy(out, r->p, k);
        out[k] = 0;
    }
    r->p += n;
}
static void rskip_i32_array(rd *r)
{
    int64_t n = rn(r, 4);
    for (int64_t i = 0; i < n && !r->bad; i++)
        rn(r, 4);
}

/* ---- connections -------------------------------------------------------------------------- */
typedef struct dsample {
    int32_t delta;
    int64_t t_us;
} dsample;

typedef struct dreq {
    int32_t corr, part, count;
    int nsamp;
    dsample samp[LG_DIRECT_SAMPLES];
} dreq;

typedef struct dconn {
    int fd, node;
    int32_t corr;
    dreq q[LG_DIRECT_INFLIGHT];
    int qhead, qn;
    uint8_t *rx;
    size_t rxlen, rxcap;
} dconn;

static int set_err(char *err, size_t n, const char *fmt, const char *a, const char *b)
{
    snprintf(err, n, fmt, a, b);
    return -1;
}

static int dial(const char *host, int port, char *err, size_t errlen)
{
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    int e = getaddrinfo(host, ps, &hints, &ai);
    if (e) {
        set_err(err, errlen, "resolve %s: %s", host, gai_strerror(e));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0)
            continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (fd < 0) {
        char hp[300];
        snprintf(hp, sizeof hp, "%s:%d", host, port);
        set_err(err, errlen, "connect %s: %s", hp, strerror(errno));
        return -1;
    }
    int one = 1, buf = 4 << 20;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    struct timeval tv = {IO_TIMEOUT_S, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return fd;
}

/* sendmsg with MSG_NOSIGNAL: a connection the broker closed is an error to report, not a
 * SIGPIPE that ends the process without a word */
static int write_all(int fd, struct iovec *iov, int n)
{
    while (n > 0) {
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        while (n > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
    return 0;
}

/* Reads one whole response frame into c->rx (blocking unless nonblock); returns its length
 * (the body after the size field, rx holds it from offset 4), 0 when nonblock and not complete,
 * -1 on an error. The caller consumes it with rx_consume. */
static int64_t rx_frame(dconn *c, int nonblock)
{
    for (;;) {
        if (c->rxlen >= 4) {
            uint32_t n = (uint32_t)c->rx[0] << 24 | (uint32_t)c->rx[1] << 16 |
                         (uint32_t)c->rx[2] << 8 | c->rx[3];
            if (n > (64u << 20)) {
                errno = EPROTO;
                return -1;
            }
            if (c->rxlen >= 4 + (size_t)n)
                return n;
            if (c->rxcap < 4 + (size_t)n) {
                c->rxcap = 4 + (size_t)n;
                c->rx = xrealloc(c->rx, c->rxcap);
            }
        }
        if (c->rxcap - c->rxlen < 4096) {
            c->rxcap = c->rxcap * 2 + 65536;
            c->rx = xrealloc(c->rx, c->rxcap);
        }
        ssize_t r = recv(c->fd, c->rx + c->rxlen, c->rxcap - c->rxlen, nonblock ? MSG_DONTWAIT : 0);
        if (r > 0) {
            c->rxlen += (size_t)r;
            continue;
        }
        if (r == 0) {
            errno = ECONNRESET;
            return -1;
        }
        if (errno == EINTR)
            continue;
        if (nonblock && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        return -1;
    }
}
static void rx_consume(dconn *c, size_t n)
{
    memmove(c->rx, c->rx + 4 + n, c->rxlen - 4 - n);
    c->rxlen -= 4 + n;
}

/* request header v1: api key, version, correlation id, client id */
static uint8_t *req_header(uint8_t *p, int16_t api, int16_t ver, int32_t corr)
{
    p = w16(p, api);
    p = w16(p, ver);
    p = w32(p, corr);
    return wstr(p, LG_NAME);
}

/* One synchronous request/response (metadata phase). Body of the response in *body (the
 * correlation id checked and skipped), valid until the next rx use. */
static int sync_call(dconn *c, const uint8_t *req, size_t len, rd *body, char *err, size_t errlen)
{
    uint8_t sz[4];
    c->rxlen = 0; /* the previous response (one at a time here) */
    w32(sz, (int32_t)len);
    struct iovec iov[2] = {{sz, 4}, {(void *)req, len}};
    if (write_all(c->fd, iov, 2) < 0)
        return set_err(err, errlen, "send: %s%s", strerror(errno), "");
    int64_t n = rx_frame(c, 0);
    if (n < 0)
        return set_err(err, errlen, "receive: %s%s", strerror(errno), "");
    *body = (rd){c->rx + 4, c->rx + 4 + n, 0};
    int32_t corr = (int32_t)rn(body, 4);
    if (corr != c->corr)
        return set_err(err, errlen, "response out of order%s%s", "", "");
    c->corr++;
    return 0;
}

/* ---- metadata ----------------------------------------------------------------------------- */
typedef struct dnode {
    int32_t id;
    char host[256];
    int32_t port;
} dnode;

struct lg_dmeta {
    char topic[256];
    int nparts;
    int32_t *leader; /* [nparts]: node id */
    int nnodes;
    dnode *nodes;
    int16_t produce_ver;
    int16_t list_offsets_max; /* the broker's highest ListOffsets version (-1: none) */
};

int lg_dmeta_nparts(const lg_dmeta *m) { return m->nparts; }
int lg_dmeta_produce_version(const lg_dmeta *m) { return m->produce_ver; }

void lg_dmeta_free(lg_dmeta *m)
{
    if (!m)
        return;
    free(m->leader);
    free(m->nodes);
    free(m);
}

/* ApiVersions and Metadata from one server. Returns 0, -1 an error, -2 a partition without a
 * leader (worth asking again) */
static int meta_from(const char *host, int port, const char *topic, lg_dmeta **out, char *err,
                     size_t errlen)
{
    dconn c = {.fd = dial(host, port, err, errlen)};
    if (c.fd < 0)
        return -1;
    uint8_t req[1024], *p;
    rd r;
    lg_dmeta *m = NULL;
    int16_t pmin = -1, pmax = -1, mmin = -1, mmax = -1, lmax = -1;
    int transient = 0;
    /* ApiVersions v0 */
    p = req_header(req, API_VERSIONS, 0, c.corr);
    if (sync_call(&c, req, (size_t)(p - req), &r, err, errlen) < 0)
        goto fail;
    int16_t ec = (int16_t)rn(&r, 2);
    int32_t n = (int32_t)rn(&r, 4);
    for (int32_t i = 0; i < n && !r.bad; i++) {
        int16_t k = (int16_t)rn(&r, 2), lo = (int16_t)rn(&r, 2), hi = (int16_t)rn(&r, 2);
        if (k == API_PRODUCE)
            pmin = lo, pmax = hi;
        else if (k == API_METADATA)
            mmin = lo, mmax = hi;
        else if (k == API_LIST_OFFSETS)
            lmax = hi;
    }
    if (r.bad || ec) {
        snprintf(err, errlen, "ApiVersions: %s", r.bad ? "malformed response" : rd_kafka_err2str(ec));
        goto fail;
    }
    int16_t pv = pmax < 7 ? pmax : 7, mv = mmax < 7 ? mmax : 7;
    if (pv < 3 || pv < pmin || mv < 1 || mv < mmin) {
        snprintf(err, errlen, "no common version: broker Produce %d..%d (need 3..7 in it), "
                 "Metadata %d..%d (need 1..7 in it)", pmin, pmax, mmin, mmax);
        goto fail;
    }
    /* Metadata vN for the one topic */
    if (strlen(topic) > 249) {
        snprintf(err, errlen, "topic name too long");
        goto fail;
    }
    p = req_header(req, API_METADATA, mv, c.corr);
    p = w32(p, 1);
    p = wstr(p, topic);
    if (mv >= 4)
        *p++ = 0; /* allow_auto_topic_creation: false */
    if (sync_call(&c, req, (size_t)(p - req), &r, err, errlen) < 0)
        goto fail;
    m = calloc(1, sizeof *m);
    snprintf(m->topic, sizeof m->topic, "%s", topic);
    m->produce_ver = pv;
    m->list_offsets_max = lmax;
    if (mv >= 3)
        rn(&r, 4); /* throttle */
    n = (int32_t)rn(&r, 4);
    if (n < 0 || n > 100000)
        r.bad = 1;
    if (!r.bad)
        m->nodes = calloc((size_t)n + 1, sizeof *m->nodes);
    for (int32_t i = 0; i < n && !r.bad; i++) {
        dnode *d = &m->nodes[m->nnodes++];
        d->id = (int32_t)rn(&r, 4);
        rstr(&r, d->host, sizeof d->host);
        d->port = (int32_t)rn(&r, 4);
        if (mv >= 1)
            rstr(&r, NULL, 0); /* rack */
    }
    if (mv >= 2)
        rstr(&r, NULL, 0); /* cluster id */
    if (mv >= 1)
        rn(&r, 4); /* controller */
    n = (int32_t)rn(&r, 4);
    for (int32_t i = 0; i < n && !r.bad; i++) {
        char name[256];
        int16_t te = (int16_t)rn(&r, 2);
        rstr(&r, name, sizeof name);
        if (mv >= 1)
            rn(&r, 1); /* is_internal */
        int32_t np = (int32_t)rn(&r, 4);
        int mine = !strcmp(name, topic);
        if (mine && te) {
            snprintf(err, errlen, "topic %s: %s", topic, rd_kafka_err2str(te));
            goto fail;
        }
        if (mine) {
            if (np <= 0 || np > 1000000)
                r.bad = 1;
            else {
                m->nparts = np;
                m->leader = malloc((size_t)np * sizeof *m->leader);
                for (int32_t k = 0; k < np; k++)
                    m->leader[k] = -1;
            }
        }
        for (int32_t k = 0; k < np && !r.bad; k++) {
            int16_t pe = (int16_t)rn(&r, 2);
            int32_t idx = (int32_t)rn(&r, 4), leader = (int32_t)rn(&r, 4);
            if (mv >= 7)
                rn(&r, 4); /* leader epoch */
            rskip_i32_array(&r); /* replicas */
            rskip_i32_array(&r); /* isr */
            if (mv >= 5)
                rskip_i32_array(&r); /* offline */
            if (mine && !r.bad && idx >= 0 && idx < m->nparts)
                m->leader[idx] = pe && pe != 9 /* REPLICA_NOT_AVAILABLE */ ? -1 : leader;
        }
    }
    if (r.bad) {
        snprintf(err, errlen, "Metadata v%d: malformed response", mv);
        goto fail;
    }
    if (!m->nparts) {
        snprintf(err, errlen, "topic %s not in the metadata", topic);
        goto fail;
    }
    for (int k = 0; k < m->nparts; k++) {
        int found = 0;
        for (int j = 0; j < m->nnodes; j++)
            found |= m->nodes[j].id == m->leader[k];
        if (!found) {
            snprintf(err, errlen, "topic %s partition %d has no leader", topic, k);
            transient = 1; /* a topic just created, or a leader election under way */
            goto fail;
        }
    }
    close(c.fd);
    free(c.rx);
    *out = m;
    return 0;
fail:
    close(c.fd);
    free(c.rx);
    lg_dmeta_free(m);
    return transient ? -2 : -1;
}

/* Is every partition's leader ready to take writes? A topic created a moment ago is in the
 * metadata (with its leader) before that broker has become the partition's leader: a Produce
 * then fails with NOT_LEADER_OR_FOLLOWER, and the direct producer does not retry (see the top of
 * this file). ListOffsets v1 (latest) asks each leader for its partitions without writing
 * anything; the same transient errors come back until it is ready. Returns 1 ready, 0 not yet
 * (a transient error: ask again), -1 an error to report. A broker without ListOffsets v1 is
 * taken as ready. */
static int leaders_ready(const lg_dmeta *m, char *err, size_t errlen)
{
    if (m->list_offsets_max < 1)
        return 1;
    for (int j = 0; j < m->nnodes; j++) {
        const dnode *nd = &m->nodes[j];
        int np = 0;
        for (int k = 0; k < m->nparts; k++)
            np += m->leader[k] == nd->id;
        if (!np)
            continue;
        size_t cap = 512 + strlen(m->topic) + (size_t)np * 12;
        uint8_t *req = malloc(cap), *p;
        if (!req)
            return set_err(err, errlen, "out of memory%s%s", "", "");
        dconn c = {.fd = dial(nd->host, nd->port, err, errlen)};
        if (c.fd < 0) {
            free(req);
            return -1;
        }
        p = req_header(req, API_LIST_OFFSETS, 1, c.corr);
        p = w32(p, -1); /* replica id: a client */
        p = w32(p, 1);
        p = wstr(p, m->topic);
        p = w32(p, np);
        for (int k = 0; k < m->nparts; k++)
            if (m->leader[k] == nd->id) {
                p = w32(p, k);
                p = w64(p, -1); /* latest */
            }
        rd r;
        int rc = sync_call(&c, req, (size_t)(p - req), &r, err, errlen) < 0 ? -1 : 1;
        free(req);
        int32_t nt = rc > 0 ? (int32_t)rn(&r, 4) : 0;
        for (int32_t t = 0; t < nt && !r.bad && rc > 0; t++) {
            rstr(&r, NULL, 0);
            int32_t n = (int32_t)rn(&r, 4);
            for (int32_t i = 0; i < n && !r.bad; i++) {
                int32_t part = (int32_t)rn(&r, 4);
                int16_t ec = (int16_t)rn(&r, 2);
                rn(&r, 8); /* timestamp */
                rn(&r, 8); /* offset */
                if (r.bad || !ec)
                    continue;
                if (ec == 3 || ec == 5 || ec == 6) { /* UNKNOWN_TOPIC_OR_PARTITION,
                                                      * LEADER_NOT_AVAILABLE, NOT_LEADER */
                    snprintf(err, errlen, "partition %d: %s", (int)part, rd_kafka_err2str(ec));
                    rc = 0;
                } else {
                    snprintf(err, errlen, "ListOffsets partition %d: %s", (int)part,
                             rd_kafka_err2str(ec));
                    rc = -1;
                }
            }
        }
        if (rc > 0 && r.bad) {
            snprintf(err, errlen, "ListOffsets v1: malformed response");
            rc = -1;
        }
        close(c.fd);
        free(c.rx);
        if (rc <= 0)
            return rc;
    }
    return 1;
}

/* the metadata from the first bootstrap server that answers (meta_from's return codes) */
static int meta_any(const char *brokers, const char *topic, lg_dmeta **out, char *err,
                    size_t errlen)
{
    char *dup = strdup(brokers), *save = NULL;
    int rc = -1, transient = 0;
    snprintf(err, errlen, "no bootstrap server");
    for (char *b = strtok_r(dup, ",", &save); b && rc < 0; b = strtok_r(NULL, ",", &save)) {
        while (*b == ' ')
            b++;
        if (!strncmp(b, "PLAINTEXT://", 12))
            b += 12;
        char host[256];
        int port = 9092;
        char *colon = strrchr(b, ':');
        if (b[0] == '[') { /* [v6]:port */
            char *rb = strchr(b, ']');
            if (!rb)
                continue;
            snprintf(host, sizeof host, "%.*s", (int)(rb - b - 1), b + 1);
            if (rb[1] == ':')
                port = atoi(rb + 2);
        } else if (colon) {
            snprintf(host, sizeof host, "%.*s", (int)(colon - b), b);
            port = atoi(colon + 1);
        } else
            snprintf(host, sizeof host, "%s", b);
        char e2[400];
        rc = meta_from(host, port, topic, out, e2, sizeof e2);
        if (rc < 0)
            snprintf(err, errlen, "%s: %s", b, e2);
        transient |= rc == -2;
    }
    free(dup);
    return rc < 0 && transient ? -2 : rc;
}

/* The metadata, once every partition's leader answers as the leader: a topic just created
 * becomes ready within a second or two; this waits up to LG_READY_WAIT_S for it. */
#define LG_READY_WAIT_S 30
int lg_dmeta_fetch(const char *brokers, const char *topic, lg_dmeta **out, char *err,
                   size_t errlen)
{
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        lg_dmeta *m = NULL;
        char e2[1024] = "";
        int rc = meta_any(brokers, topic, &m, e2, sizeof e2);
        if (rc == -1) {
            snprintf(err, errlen, "%s", e2);
            return -1;
        }
        int ready = rc == -2 ? 0 : leaders_ready(m, e2, sizeof e2);
        if (ready > 0) {
            *out = m;
            return 0;
        }
        lg_dmeta_free(m);
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (ready < 0 || now.tv_sec - t0.tv_sec >= LG_READY_WAIT_S) {
            if (ready < 0)
                snprintf(err, errlen, "topic %s: %s", topic, e2);
            else
                snprintf(err, errlen, "topic %s: %s (still, after %d s)", topic, e2,
                         LG_READY_WAIT_S);
            return -1;
        }
        struct timespec pause = {0, 100 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
}

/* ---- the producer ------------------------------------------------------------------------- */
typedef struct dpart {
    int conn; /* index in d->conns, -1 until first used */
    uint8_t *buf;
    size_t len, cap;
    int32_t count;
    int64_t base_ts, max_ts;
    double t_first;
    int nsamp;
    dsample samp[LG_DIRECT_SAMPLES];
} dpart;

struct lg_direct {
    const lg_dmeta *md;
    int comp; /* 0 none, 3 lz4 (the batch attributes' codec) */
    double linger_s;
    int64_t batch_msgs;
    size_t batch_bytes;
    lg_track *track;
    dpart **parts; /* [nparts], allocated on first use */
    dconn *conns;
    int nconns;
    uint8_t *zbuf; /* compressed records */
    size_t zcap;
    LZ4F_cctx *cctx;
    double last_poll;
    _Atomic int failed_state; /* set once, after first_error */
    _Atomic uint64_t pending, delivered, failed;
    char first_error[1024];
};

lg_direct *lg_direct_new(const lg_dmeta *md, const char *compression, int64_t linger_ms,
                         int64_t batch_msgs, lg_track *track)
{
    lg_direct *d = calloc(1, sizeof *d);
    d->md = md;
    d->comp = !strcmp(compression, "lz4") ? 3 : 0;
    d->linger_s = (double)linger_ms / 1000.0;
    d->batch_msgs = batch_msgs > 0 ? batch_msgs : 10000;
    /* uncompressed: under the broker's default 1 MiB max.message.bytes with the header; lz4:
     * 2 MB of records (~400 KB on the wire), the librdkafka path's batch.size */
    d->batch_bytes = d->comp ? 2000000 : 1000000;
    d->track = track;
    d->parts = calloc((size_t)md->nparts, sizeof *d->parts);
    if (d->comp && LZ4F_isError(LZ4F_createCompressionContext(&d->cctx, LZ4F_VERSION))) {
        free(d->parts);
        free(d);
        return NULL;
    }
    atomic_init(&d->failed_state, 0);
    atomic_init(&d->pending, 0);
    atomic_init(&d->delivered, 0);
    atomic_init(&d->failed, 0);
    return d;
}

static void fail_with(lg_direct *d, const char *fmt, int a, const char *s)
{
    if (!atomic_load_explicit(&d->failed_state, memory_order_relaxed)) {
        snprintf(d->first_error, sizeof d->first_error, fmt, a, s);
        atomic_store_explicit(&d->failed_state, 1, memory_order_release);
    }
}

/* the connection to the leader of partition part */
static int conn_for(lg_direct *d, int part)
{
    int32_t node = d->md->leader[part];
    for (int i = 0; i < d->nconns; i++)
        if (d->conns[i].node == node)
            return i;
    const dnode *nd = NULL;
    for (int j = 0; j < d->md->nnodes; j++)
        if (d->md->nodes[j].id == node)
            nd = &d->md->nodes[j];
    char err[400];
    int fd = nd ? dial(nd->host, nd->port, err, sizeof err) : -1;
    if (fd < 0) {
        fail_with(d, "broker %d: %s", node, nd ? err : "unknown");
        return -1;
    }
    d->conns = xrealloc(d->conns, (size_t)(d->nconns + 1) * sizeof *d->conns);
    d->conns[d->nconns] = (dconn){.fd = fd, .node = node};
    return d->nconns++;
}

/* Handles the oldest in-flight request's response on c (already in c->rx). */
static int on_response(lg_direct *d, dconn *c, size_t n)
{
    dreq *q = &c->q[c->qhead];
    rd r = {c->rx + 4, c->rx + 4 + n, 0};
    int16_t ver = d->md->produce_ver;
    int32_t corr = (int32_t)rn(&r, 4);
    int16_t ec = -1;
    int64_t base = -1;
    if (corr == q->corr) {
        int32_t nt = (int32_t)rn(&r, 4);
        for (int32_t i = 0; i < nt && !r.bad; i++) {
            rstr(&r, NULL, 0);
            int32_t np = (int32_t)rn(&r, 4);
            for (int32_t k = 0; k < np && !r.bad; k++) {
                int32_t idx = (int32_t)rn(&r, 4);
                int16_t e = (int16_t)rn(&r, 2);
                int64_t b = rn(&r, 8);
                rn(&r, 8); /* log append time */
                if (ver >= 5)
                    rn(&r, 8); /* log start offset */
                if (idx == q->part)
                    ec = e, base = b;
            }
        }
    }
    rx_consume(c, n);
    c->qhead = (c->qhead + 1) % LG_DIRECT_INFLIGHT;
    c->qn--;
    atomic_fetch_sub_explicit(&d->pending, (uint64_t)q->count, memory_order_release);
    if (corr != q->corr || r.bad || ec != 0) {
        atomic_fetch_add(&d->failed, (uint64_t)q->count);
        if (corr != q->corr || r.bad)
            fail_with(d, "Produce to partition %d: %s", q->part,
                      corr != q->corr ? "response out of order" : "malformed response");
        else if (ec == -1 && base == -1)
            fail_with(d, "Produce to partition %d: %s", q->part, "partition not in the response");
        else {
            char e[200];
            snprintf(e, sizeof e, "Kafka error %d: %s", ec, rd_kafka_err2str((rd_kafka_resp_err_t)ec));
            fail_with(d, "Produce to partition %d: %s", q->part, e);
        }
        return -1;
    }
    atomic_fetch_add_explicit(&d->delivered, (uint64_t)q->count, memory_order_relaxed);
    lg_track *tr = d->track;
    if (tr && q->part < tr->nparts) {
        lg_ptrack *pt = &tr->p[q->part];
        int64_t want = base + q->count,
                cur = atomic_load_explicit(&pt->next_offset, memory_order_relaxed);
        while (want > cur && !atomic_compare_exchange_weak_explicit(
                                 &pt->next_offset, &cur, want, memory_order_release,
                                 memory_order_relaxed))
            ;
        atomic_fetch_add_explicit(&pt->delivered, (uint64_t)q->count, memory_order_relaxed);
        if (q->nsamp && pt->ring) {
            pthread_mutex_lock(&pt->mu);
            for (int i = 0; i < q->nsamp; i++) {
                if (pt->head - pt->tail == LG_RING) {
                    pt->tail++;
                    pt->dropped++;
                }
                pt->ring[pt->head++ % LG_RING] = (lg_sample){base + q->samp[i].delta, q->samp[i].t_us};
            }
            pthread_mutex_unlock(&pt->mu);
        }
    }
    return 0;
}

/* Counts every request in flight on c as failed (the connection is lost). */
static void fail_inflight(lg_direct *d, dconn *c)
{
    int64_t lost = 0;
    for (int i = 0; i < c->qn; i++)
        lost += c->q[(c->qhead + i) % LG_DIRECT_INFLIGHT].count;
    atomic_fetch_add(&d->failed, (uint64_t)lost);
    atomic_fetch_sub(&d->pending, (uint64_t)lost);
    c->qn = 0;
}

/* Reads responses on c: while more than `keep` are in flight (blocking), then whatever has
 * already arrived (non-blocking). */
static int read_responses(lg_direct *d, dconn *c, int keep)
{
    while (c->qn > 0) {
        int block = c->qn > keep;
        int64_t n = rx_frame(c, !block);
        if (n == 0)
            return 0;
        if (n < 0) {
            int e = errno;
            fail_inflight(d, c);
            errno = e;
            fail_with(d, "broker %d: %s", c->node,
                      errno == EAGAIN || errno == EWOULDBLOCK ? "no response (timed out)"
                                                               : strerror(errno));
            return -1;
        }
        if (on_response(d, c, (size_t)n) < 0)
            return -1;
    }
    return 0;
}

/* Sends partition part's open batch as one Produce request. */
static int send_batch(lg_direct *d, int part)
{
    dpart *bp = d->parts[part];
    if (!bp || !bp->count)
        return 0;
    if (bp->conn < 0 && (bp->conn = conn_for(d, part)) < 0)
        return -1;
    dconn *c = &d->conns[bp->conn];
    if (c->qn == LG_DIRECT_INFLIGHT && read_responses(d, c, LG_DIRECT_INFLIGHT - 1) < 0)
        return -1;
    const uint8_t *recs = bp->buf;
    size_t rlen = bp->len;
    if (d->comp) {
        LZ4F_preferences_t prefs = {.frameInfo = {.blockMode = LZ4F_blockIndependent}};
        size_t need = LZ4F_compressBound(rlen, &prefs) + LZ4F_HEADER_SIZE_MAX + 64;
        if (d->zcap < need) {
            d->zcap = need;
            d->zbuf = xrealloc(d->zbuf, need);
        }
        size_t o = LZ4F_compressBegin(d->cctx, d->zbuf, d->zcap, &prefs), o2 = 0, o3 = 0;
        if (!LZ4F_isError(o))
            o2 = LZ4F_compressUpdate(d->cctx, d->zbuf + o, d->zcap - o, recs, rlen, NULL);
        if (!LZ4F_isError(o) && !LZ4F_isError(o2))
            o3 = LZ4F_compressEnd(d->cctx, d->zbuf + o + o2, d->zcap - o - o2, NULL);
        if (LZ4F_isError(o) || LZ4F_isError(o2) || LZ4F_isError(o3)) {
            fail_with(d, "lz4 (partition %d): %s", part,
                      LZ4F_getErrorName(LZ4F_isError(o) ? o : LZ4F_isError(o2) ? o2 : o3));
            return -1;
        }
        recs = d->zbuf;
        rlen = o + o2 + o3;
    }
    /* request header + produce body up to the records' size, then the batch header */
    uint8_t hdr[4 + 64 + 2 + 256 + 32 + BATCH_HDR], *p = hdr + 4;
    p = req_header(p, API_PRODUCE, d->md->produce_ver, c->corr);
    p = w16(p, -1);     /* transactional id: null */
    p = w16(p, -1);     /* acks: all */
    p = w32(p, 30000);  /* timeout ms */
    p = w32(p, 1);      /* topics */
    p = wstr(p, d->md->topic);
    p = w32(p, 1);      /* partitions */
    p = w32(p, part);
    p = w32(p, (int32_t)(BATCH_HDR + rlen)); /* records: bytes */
    uint8_t *b = p;
    p = w64(p, 0);                           /* base offset */
    p = w32(p, (int32_t)(BATCH_HDR - 12 + rlen)); /* batch length */
    p = w32(p, -1);                          /* partition leader epoch */
    *p++ = 2;                                /* magic */
    uint8_t *crcp = p;
    p += 4;
    uint8_t *attr = p;
    p = w16(p, (int16_t)d->comp);            /* attributes: codec, CreateTime */
    p = w32(p, bp->count - 1);               /* last offset delta */
    p = w64(p, bp->base_ts);
    p = w64(p, bp->max_ts);
    p = w64(p, -1);                          /* producer id */
    p = w16(p, -1);                          /* producer epoch */
    p = w32(p, -1);                          /* base sequence */
    p = w32(p, bp->count);
    uint32_t crc = lg_crc32c_update(lg_crc32c(attr, (size_t)(p - attr)), recs, rlen);
    w32(crcp, (int32_t)crc);
    (void)b;
    w32(hdr, (int32_t)((size_t)(p - hdr) - 4 + rlen));
    struct iovec iov[2] = {{hdr, (size_t)(p - hdr)}, {(void *)recs, rlen}};
    dreq *q = &c->q[(c->qhead + c->qn) % LG_DIRECT_INFLIGHT];
    q->corr = c->corr++;
    q->part = part;
    q->count = bp->count;
    q->nsamp = bp->nsamp;
    memcpy(q->samp, bp->samp, (size_t)bp->nsamp * sizeof *bp->samp);
    c->qn++;
    bp->len = 0;
    bp->count = 0;
    bp->nsamp = 0;
    if (write_all(c->fd, iov, 2) < 0) {
        int e = errno;
        fail_inflight(d, c); /* this request and those before it */
        fail_with(d, "broker %d: send: %s", c->node, strerror(e));
        return -1;
    }
    return 0;
}

int lg_direct_add(lg_direct *d, int part, const void *key, size_t keylen, const void *val,
                  size_t len, int64_t ts_ms, int64_t sample_us)
{
    if (d->failed_state)
        return -1;
    dpart *bp = d->parts[part];
    if (!bp) {
        bp = d->parts[part] = calloc(1, sizeof *bp);
        bp->conn = -1;
    }
    int64_t klen = key ? (int64_t)keylen : -1, vl = val ? (int64_t)len : -1;
    /* the record without its length: attributes, timestamp delta, offset delta, key, value,
     * headers */
    size_t worst = 1 + 10 + 5 + 5 + keylen + 5 + len + 1 + 5;
    if (bp->count && (bp->count >= d->batch_msgs || bp->len + worst > d->batch_bytes))
        if (send_batch(d, part) < 0)
            return -1;
    if (!bp->count) {
        bp->base_ts = bp->max_ts = ts_ms;
        bp->t_first = lg_now();
    }
    if (bp->cap - bp->len < worst) {
        size_t want = bp->len + worst;
        size_t cap = bp->cap ? bp->cap : 65536;
        while (cap < want)
            cap *= 2;
        bp->buf = xrealloc(bp->buf, cap);
        bp->cap = cap;
    }
    int64_t tsd = ts_ms - bp->base_ts;
    size_t body = 1 + vlen(tsd) + vlen(bp->count) + vlen(klen) + (key ? keylen : 0) + vlen(vl) +
                  (val ? len : 0) + 1;
    uint8_t *p = bp->buf + bp->len;
    p = wvar(p, (int64_t)body);
    *p++ = 0; /* attributes */
    p = wvar(p, tsd);
    p = wvar(p, bp->count);
    p = wvar(p, klen);
    if (key) {
        memcpy(p, key, keylen);
        p += keylen;
    }
    p = wvar(p, vl);
    if (val) {
        memcpy(p, val, len);
        p += len;
    }
    *p++ = 0; /* headers */
    bp->len = (size_t)(p - bp->buf);
    if (sample_us && bp->nsamp < LG_DIRECT_SAMPLES)
        bp->samp[bp->nsamp++] = (dsample){bp->count, sample_us};
    bp->count++;
    if (ts_ms > bp->max_ts)
        bp->max_ts = ts_ms;
    atomic_fetch_add_explicit(&d->pending, 1, memory_order_relaxed);
    return 0;
}

int lg_direct_poll(lg_direct *d)
{
    if (d->failed_state)
        return -1;
    double now = lg_now();
    /* called after every few dozen messages: look at the sockets at most every 0.5 ms (a
     * non-blocking recv per connection each time was measurable at a million events/s) */
    if (now - d->last_poll < 0.0005)
        return 0;
    d->last_poll = now;
    for (int k = 0; k < d->md->nparts; k++)
        if (d->parts[k] && d->parts[k]->count && now - d->parts[k]->t_first >= d->linger_s)
            if (send_batch(d, k) < 0)
                return -1;
    for (int i = 0; i < d->nconns; i++)
        if (read_responses(d, &d->conns[i], LG_DIRECT_INFLIGHT) < 0)
            return -1;
    return 0;
}

int lg_direct_send_all(lg_direct *d)
{
    if (d->failed_state)
        return -1;
    for (int k = 0; k < d->md->nparts; k++)
        if (send_batch(d, k) < 0)
            return -1;
    return 0;
}

int lg_direct_flush(lg_direct *d)
{
    if (lg_direct_send_all(d) < 0)
        return -1;
    for (int i = 0; i < d->nconns; i++)
        if (read_responses(d, &d->conns[i], 0) < 0)
            return -1;
    return 0;
}

uint64_t lg_direct_pending(const lg_direct *d)
{
    return atomic_load_explicit(&((lg_direct *)d)->pending, memory_order_acquire);
}

void lg_direct_stats(const lg_direct *d, uint64_t *delivered, uint64_t *failed, char *err,
                     size_t errlen)
{
    lg_direct *dd = (lg_direct *)d;
    *delivered = atomic_load(&dd->delivered);
    *failed = atomic_load(&dd->failed);
    if (err && errlen)
        snprintf(err, errlen, "%s",
                 atomic_load_explicit(&dd->failed_state, memory_order_acquire) ? dd->first_error : "");
}

int lg_direct_failed(const lg_direct *d)
{
    return atomic_load_explicit(&((lg_direct *)d)->failed_state, memory_order_acquire);
}

void lg_direct_free(lg_direct *d)
{
    if (!d)
        return;
    for (int i = 0; i < d->nconns; i++) {
        close(d->conns[i].fd);
        free(d->conns[i].rx);
    }
    free(d->conns);
    for (int k = 0; k < d->md->nparts; k++)
        if (d->parts[k]) {
            free(d->parts[k]->buf);
            free(d->parts[k]);
        }
    free(d->parts);
    free(d->zbuf);
    if (d->cctx)
        LZ4F_freeCompressionContext(d->cctx);
    free(d);
}
