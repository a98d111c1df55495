/* decode.c — single-pass, path-directed JSON decoder (see decode.h and docs/decoder.md).
 *
 * How it works
 *  - A plan's dotted paths are compiled into a trie of path segments. Each trie node is one
 *    path prefix ("context", "context.page", "context.page.url"); a node that ends one or more
 *    paths carries "targets" (field id, priority = index of the path in that field's list).
 *  - Child look-up is one open-addressing hash table for the whole trie, keyed by
 *    (parent node, segment bytes): one hash + one memcmp per key of a tracked object.
 *  - The scanner is an explicit state machine (no recursion) with a stack of containers. Each
 *    open object remembers the trie node it corresponds to, or NONE when nothing below it is
 *    wanted; keys of NONE objects are never looked up, their values are only validated.
 *  - String bodies are scanned 16 bytes at a time (SSE2) for '"', '\\' and control bytes; the
 *    rare escapes are validated (and, for extracted values only, undone) on a slow path.
 *  - Duplicate keys: the first occurrence of a tracked key wins. Every trie node is reachable at
 *    most once per message (its parent object is itself a first occurrence), so a per-decoder
 *    generation stamp per node is enough to recognise a second occurrence.
 */
#include "decode.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define NONE 0xFFFFFFFFu
#define ROOT 0u
/* Internal limits (documented in docs/decoder.md). */
#define MAX_NODES 4096      /* trie nodes (distinct path prefixes) in one plan */
#define MAX_DEPTH_CAP 1024  /* max_depth is clamped to 1..MAX_DEPTH_CAP */

#define STK_ARR 0x80000000u /* stack entry flag: container is an array */
#define STK_NODE 0x7FFFFFFFu
#define STK_NONE STK_NODE /* "no trie node" inside a stack entry */

typedef struct tnode {
    const char *seg; /* segment bytes (points into a path string owned by the plan) */
    uint32_t parent;
    uint16_t seg_len;
    uint16_t nchildren;
    uint16_t ntargets;
    uint16_t tgt_off;
} tnode;

typedef struct ttarget {
    uint8_t field;
    uint8_t prio;
} ttarget;

typedef struct hslot {
    _Alignas(16) uint8_t key[16]; /* first 16 bytes of the segment, zero padded */
    const char *seg;              /* the whole segment (for segments of 16 bytes or more) */
    uint32_t parent;
    uint32_t child; /* NONE = empty slot */
    uint32_t len;
} hslot;

typedef struct pfield {
    int n;
    char *paths[CS_MAX_PATHS];
} pfield;

struct cs_decode_plan {
    int nfields;
    pfield fields[CS_MAX_FIELDS];
    size_t max_bytes;
    int max_depth;
    /* compiled trie */
    tnode *nodes;
    uint32_t nnodes;
    ttarget *targets;
    uint32_t ntargets;
    hslot *hash;
    uint32_t hmask;
    uint32_t hshift; /* 64 - log2(table size) */
};

/* A present value met at a trie node that ends some path; resolved into fields after the scan. */
typedef struct hit {
    const uint8_t *s;
    uint32_t len;
    uint32_t node;
    uint8_t vk;  /* VK_* */
    uint8_t esc; /* string with escapes still to undo */
} hit;

#define MAX_HITS (CS_MAX_FIELDS * CS_MAX_PATHS) /* every trie node is hit at most once */

struct cs_decoder {
    const cs_decode_plan *plan;
    char *scratch;
    size_t cap;
    uint32_t gen;
    uint8_t best[CS_MAX_FIELDS];
    char keybuf[CS_MAX_PATH_LEN];
    uint32_t stack[MAX_DEPTH_CAP + 1];
    uint32_t seen[MAX_NODES];
    hit hits[MAX_HITS];
};

/* ------------------------------------------------------------------------------------------ */
/* character classes                                                                            */

/* 1 for bytes that end the fast scan of a string body: '"', '\\', and controls < 0x20. */
static const uint8_t str_stop[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    ['"'] = 1, ['\\'] = 1,
};

static const uint8_t is_ws[256] = {[' '] = 1, ['\t'] = 1, ['\n'] = 1, ['\r'] = 1};

static inline int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static inline long hex4(const uint8_t *p)
{
    int a = hexval(p[0]), b = hexval(p[1]), c = hexval(p[2]), d = hexval(p[3]);
    if ((a | b | c | d) < 0)
        return -1;
    return (long)((a << 12) | (b << 8) | (c << 4) | d);
}

/* p points at a backslash inside a string. Returns the byte after the escape sequence (a
 * surrogate pair counts as one), or NULL if the escape is invalid. */
static const uint8_t *scan_escape(const uint8_t *p, const uint8_t *e)
{
    if (e - p < 2)
        return NULL;
    switch (p[1]) {
    case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
        return p + 2;
    case 'u': {
        if (e - p < 6)
            return NULL;
        long cp = hex4(p + 2);
        if (cp < 0 || (cp >= 0xDC00 && cp <= 0xDFFF))
            return NULL; /* bad hex or lone low surrogate */
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (e - p < 12 || p[6] != '\\' || p[7] != 'u')
                return NULL; /* lone high surrogate */
            long lo = hex4(p + 8);
            if (lo < 0xDC00 || lo > 0xDFFF)
                return NULL;
            return p + 12;
        }
        return p + 6;
    }
    default:
        return NULL;
    }
}

/* p points just after an opening quote. Returns the closing quote, or NULL if the string is
 * invalid or unterminated. *esc is set to 1 if the string contains escapes. */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static const uint8_t *scan_string(const uint8_t *p, const uint8_t *e, int *esc)
{
    for (;;) {
#ifdef __SSE2__
        {
            const __m128i vq = _mm_set1_epi8('"');
            const __m128i vb = _mm_set1_epi8('\\');
            const __m128i vc = _mm_set1_epi8(0x1F);
            while (e - p >= 16) {
                __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
                __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, vq), _mm_cmpeq_epi8(x, vb)),
                                         _mm_cmpeq_epi8(_mm_min_epu8(x, vc), x));
                unsigned mask = (unsigned)_mm_movemask_epi8(m);
                if (mask) {
                    p += __builtin_ctz(mask);
                    goto stop;
                }
                p += 16;
            }
        }
#endif
        while (p < e && !str_stop[*p])
            p++;
        if (p == e)
            return NULL;
#ifdef __SSE2__
    stop:
#endif
        if (*p == '"')
            return p;
        if (*p != '\\')
            return NULL; /* raw control character */
        *esc = 1;
        p = scan_escape(p, e);
        if (!p)
            return NULL;
    }
}

static inline void put_utf8(uint8_t **o, uint32_t cp)
{
    uint8_t *d = *o;
    if (cp < 0x80) {
        *d++ = (uint8_t)cp;
    } else if (cp < 0x800) {
        *d++ = (uint8_t)(0xC0 | (cp >> 6));
        *d++ = (uint8_t)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *d++ = (uint8_t)(0xE0 | (cp >> 12));
        *d++ = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        *d++ = (uint8_t)(0x80 | (cp & 0x3F));
    } else {
        *d++ = (uint8_t)(0xF0 | (cp >> 18));
        *d++ = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
        *d++ = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        *d++ = (uint8_t)(0x80 | (cp & 0x3F));
    }
    *o = d;
}

/* Undo the escapes of an already validated string body [s, s+n). Writes at most n bytes to
 * out (every escape is at least as long as its UTF-8 result) unless `cap` is smaller, in which
 * case it returns -1 when the result would not fit. Returns the output length. */
static long unescape(const uint8_t *s, size_t n, uint8_t *out, size_t cap)
{
    const uint8_t *e = s + n;
    uint8_t *o = out;
    uint8_t *oe = out + cap;
    while (s < e) {
        const uint8_t *bs = memchr(s, '\\', (size_t)(e - s));
        size_t run = bs ? (size_t)(bs - s) : (size_t)(e - s);
        if ((size_t)(oe - o) < run)
            return -1;
        memcpy(o, s, run);
        o += run;
        if (!bs)
            break;
        s = bs;
        uint8_t c = s[1];
        if (c == 'u') {
            uint32_t cp = (uint32_t)hex4(s + 2);
            s += 6;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                uint32_t lo = (uint32_t)hex4(s + 2);
                s += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            size_t need = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
            if ((size_t)(oe - o) < need)
                return -1;
            put_utf8(&o, cp);
            continue;
        }
        if (o == oe)
            return -1;
        switch (c) {
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        default: *o++ = c; break; /* '"', '\\', '/' */
        }
        s += 2;
    }
    return (long)(o - out);
}

/* ------------------------------------------------------------------------------------------ */
/* trie                                                                                         */

static inline uint64_t rd64(const uint8_t *k)
{
    uint64_t v;
    memcpy(&v, k, 8);
    return v;
}

/* Hash of (parent node, first 16 bytes of the key zero padded past its end, key length). The
 * decoder computes it straight from an SSE register for keys shorter than 16 bytes. */
static inline uint64_t khash(uint32_t parent, uint64_t lo, uint64_t hi, uint32_t len)
{
    uint64_t h = lo ^ ((hi << 31) | (hi >> 33)) ^ ((uint64_t)(parent + 1) * 0x9E3779B97F4A7C15u) ^
                 ((uint64_t)len << 56);
    h *= 0xD6E8FEB86659FD93u;
    return h ^ (h >> 32);
}

static inline void key16(const uint8_t *k, size_t len, uint8_t out[16])
{
    memset(out, 0, 16);
    memcpy(out, k, len < 16 ? len : 16);
}

static inline uint32_t hidx(const cs_decode_plan *pl, uint64_t h)
{
    return (uint32_t)(h >> pl->hshift) & pl->hmask;
}

/* Portable look-up of key [k, k+len) under `parent`. */
static uint32_t trie_lookup(const cs_decode_plan *pl, uint32_t parent, const uint8_t *k, size_t len)
{
    if (len == 0 || len >= CS_MAX_PATH_LEN)
        return NONE;
    uint8_t kb[16];
    key16(k, len, kb);
    uint32_t i = hidx(pl, khash(parent, rd64(kb), rd64(kb + 8), (uint32_t)len));
    for (;;) {
        const hslot *s = &pl->hash[i];
        if (s->child == NONE)
            return NONE;
        if (s->parent == parent && s->len == len && memcmp(s->key, kb, 16) == 0 &&
            (len <= 16 || memcmp(s->seg, k, len) == 0))
            return s->child;
        i = (i + 1) & pl->hmask;
    }
}

#ifdef __SSE2__
/* Look-up of a key shorter than 16 bytes whose bytes, zero padded, are in `xk`. */
static inline uint32_t trie_lookup_short(const cs_decode_plan *pl, uint32_t parent, __m128i xk,
                                         uint32_t len)
{
    uint64_t lo = (uint64_t)_mm_cvtsi128_si64(xk);
    uint64_t hi = (uint64_t)_mm_cvtsi128_si64(_mm_unpackhi_epi64(xk, xk));
    uint32_t i = hidx(pl, khash(parent, lo, hi, len));
    for (;;) {
        const hslot *s = &pl->hash[i];
        if (s->child == NONE)
            return NONE;
        if (s->parent == parent && s->len == len &&
            _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_load_si128((const __m128i *)(const void *)s->key),
                                             xk)) == 0xFFFF)
            return s->child;
        i = (i + 1) & pl->hmask;
    }
}
#endif

static void set_err(char *errstr, size_t errlen, const char *msg, const char *path)
{
    if (!errstr || errlen == 0)
        return;
    if (path)
        snprintf(errstr, errlen, "%s: \"%.*s\"", msg, 200, path);
    else
        snprintf(errstr, errlen, "%s", msg);
}

static int check_path(const char *path, char *errstr, size_t errlen)
{
    if (!path) {
        set_err(errstr, errlen, "path is NULL", NULL);
        return -1;
    }
    size_t n = strlen(path);
    if (n == 0) {
        set_err(errstr, errlen, "empty path", NULL);
        return -1;
    }
    if (n >= CS_MAX_PATH_LEN) {
        set_err(errstr, errlen, "path too long (max 255 bytes)", path);
        return -1;
    }
    if (path[0] == '.' || path[n - 1] == '.' || strstr(path, "..")) {
        set_err(errstr, errlen, "empty segment in path", path);
        return -1;
    }
    return 0;
}

typedef struct tbuild {
    uint32_t node, field, prio;
} tbuild;

/* Rebuild nodes/targets/hash from p->fields. On failure p is unchanged and -1 is returned. */
static int trie_build(cs_decode_plan *p, char *errstr, size_t errlen)
{
    tnode *nodes = calloc(MAX_NODES, sizeof *nodes);
    tbuild *tb = malloc((size_t)CS_MAX_FIELDS * CS_MAX_PATHS * sizeof *tb);
    ttarget *targets = NULL;
    hslot *hash = NULL;
    uint32_t nn = 1, ntb = 0;
    if (!nodes || !tb) {
        set_err(errstr, errlen, "out of memory", NULL);
        goto fail;
    }
    nodes[ROOT].parent = NONE;
    for (int f = 0; f < p->nfields; f++) {
        for (int k = 0; k < p->fields[f].n; k++) {
            const char *s = p->fields[f].paths[k];
            uint32_t cur = ROOT;
            for (;;) {
                const char *dot = strchr(s, '.');
                size_t sl = dot ? (size_t)(dot - s) : strlen(s);
                uint32_t child = NONE;
                /* linear search: plans are small and built once per rule load */
                for (uint32_t c = 1; c < nn && child == NONE; c++)
                    if (nodes[c].parent == cur && nodes[c].seg_len == sl &&
                        memcmp(nodes[c].seg, s, sl) == 0)
                        child = c;
                if (child == NONE) {
                    if (nn >= MAX_NODES) {
                        set_err(errstr, errlen, "too many distinct path segments in plan", NULL);
                        goto fail;
                    }
                    child = nn++;
                    nodes[child].seg = s;
                    nodes[child].seg_len = (uint16_t)sl;
                    nodes[child].parent = cur;
                    nodes[cur].nchildren++;
                }
                cur = child;
                if (!dot)
                    break;
                s = dot + 1;
            }
            tb[ntb].node = cur;
            tb[ntb].field = (uint32_t)f;
            tb[ntb].prio = (uint32_t)k;
            ntb++;
        }
    }
    /* targets grouped by node (counting sort) */
    targets = malloc((ntb ? ntb : 1) * sizeof *targets);
    if (!targets) {
        set_err(errstr, errlen, "out of memory", NULL);
        goto fail;
    }
    for (uint32_t i = 0; i < ntb; i++)
        nodes[tb[i].node].ntargets++;
    {
        uint32_t off = 0;
        for (uint32_t i = 0; i < nn; i++) {
            nodes[i].tgt_off = (uint16_t)off;
            off += nodes[i].ntargets;
            nodes[i].ntargets = 0;
        }
        for (uint32_t i = 0; i < ntb; i++) {
            tnode *n = &nodes[tb[i].node];
            targets[n->tgt_off + n->ntargets].field = (uint8_t)tb[i].field;
            targets[n->tgt_off + n->ntargets].prio = (uint8_t)tb[i].prio;
            n->ntargets++;
        }
    }
    /* hash of all non-root nodes: a power of two >= 2 * nodes, at least 32 slots */
    uint32_t hsize = 32, hbits = 5;
    while (hsize < 2 * nn) {
        hsize <<= 1;
        hbits++;
    }
    hash = aligned_alloc(16, (size_t)hsize * sizeof *hash);
    if (!hash) {
        set_err(errstr, errlen, "out of memory", NULL);
        goto fail;
    }
    memset(hash, 0, (size_t)hsize * sizeof *hash);
    for (uint32_t i = 0; i < hsize; i++)
        hash[i].child = NONE;
    for (uint32_t c = 1; c < nn; c++) {
        const tnode *n = &nodes[c];
        uint8_t kb[16];
        key16((const uint8_t *)n->seg, n->seg_len, kb);
        uint64_t h = khash(n->parent, rd64(kb), rd64(kb + 8), n->seg_len);
        uint32_t i = (uint32_t)(h >> (64 - hbits)) & (hsize - 1);
        while (hash[i].child != NONE)
            i = (i + 1) & (hsize - 1);
        memcpy(hash[i].key, kb, 16);
        hash[i].seg = n->seg;
        hash[i].len = n->seg_len;
        hash[i].parent = n->parent;
        hash[i].child = c;
    }
    free(tb);
    free(p->nodes);
    free(p->targets);
    free(p->hash);
    p->nodes = nodes;
    p->nnodes = nn;
    p->targets = targets;
    p->ntargets = ntb;
    p->hash = hash;
    p->hmask = hsize - 1;
    p->hshift = 64 - hbits;
    return 0;
fail:
    free(nodes);
    free(tb);
    free(targets);
    free(hash);
    return -1;
}

/* ------------------------------------------------------------------------------------------ */
/* plan API                                                                                     */

static const char *const default_paths[CS_F_NSTD][CS_MAX_PATHS] = {
    [CS_F_CUSTOMER] = {"userId", "user_id", "customer_id", "anonymousId", "anonymous_id"},
    [CS_F_EVENT] = {"event", "type"},
    [CS_F_TIME] = {"timestamp", "ts", "originalTimestamp"},
    [CS_F_URL] = {"url", "context.page.url", "properties.url"},
    [CS_F_CHANNEL] = {"channel", "context.campaign.medium", "properties.channel"},
};

static void free_field(pfield *f)
{
    for (int i = 0; i < f->n; i++)
        free(f->paths[i]);
    f->n = 0;
}

cs_decode_plan *cs_decode_plan_new(void)
{
    cs_decode_plan *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->max_bytes = CS_DEFAULT_MAX_BYTES;
    p->max_depth = CS_DEFAULT_MAX_DEPTH;
    p->nfields = CS_F_NSTD;
    for (int f = 0; f < CS_F_NSTD; f++) {
        for (int k = 0; k < CS_MAX_PATHS && default_paths[f][k]; k++) {
            p->fields[f].paths[k] = strdup(default_paths[f][k]);
            if (!p->fields[f].paths[k]) {
                cs_decode_plan_destroy(p);
                return NULL;
            }
            p->fields[f].n = k + 1;
        }
    }
    if (trie_build(p, NULL, 0) != 0) {
        cs_decode_plan_destroy(p);
        return NULL;
    }
    return p;
}

void cs_decode_plan_destroy(cs_decode_plan *p)
{
    if (!p)
        return;
    for (int f = 0; f < CS_MAX_FIELDS; f++)
        free_field(&p->fields[f]);
    free(p->nodes);
    free(p->targets);
    free(p->hash);
    free(p);
}

/* Validate and copy n paths into *out. */
static int copy_paths(pfield *out, const char *const *paths, int n, char *errstr, size_t errlen)
{
    if (n < 1 || !paths) {
        set_err(errstr, errlen, "a field needs at least one path", NULL);
        return -1;
    }
    if (n > CS_MAX_PATHS) {
        set_err(errstr, errlen, "too many paths for one field (max 8)", NULL);
        return -1;
    }
    for (int i = 0; i < n; i++)
        if (check_path(paths[i], errstr, errlen) != 0)
            return -1;
    out->n = 0;
    for (int i = 0; i < n; i++) {
        out->paths[i] = strdup(paths[i]);
        if (!out->paths[i]) {
            free_field(out);
            set_err(errstr, errlen, "out of memory", NULL);
            return -1;
        }
        out->n = i + 1;
    }
    return 0;
}

int cs_decode_plan_set_paths(cs_decode_plan *p, int field, const char *const *paths, int n,
                             char *errstr, size_t errlen)
{
    if (!p || field < 0 || field >= p->nfields) {
        set_err(errstr, errlen, "no such field", NULL);
        return -1;
    }
    pfield nf = {0};
    if (copy_paths(&nf, paths, n, errstr, errlen) != 0)
        return -1;
    pfield old = p->fields[field];
    p->fields[field] = nf;
    if (trie_build(p, errstr, errlen) != 0) {
        p->fields[field] = old;
        free_field(&nf);
        return -1;
    }
    free_field(&old);
    return 0;
}

int cs_decode_plan_add_field(cs_decode_plan *p, const char *const *paths, int n, char *errstr,
                             size_t errlen)
{
    if (!p) {
        set_err(errstr, errlen, "no plan", NULL);
        return -1;
    }
    pfield nf = {0};
    if (copy_paths(&nf, paths, n, errstr, errlen) != 0)
        return -1;
    /* the same path list as an already added field: that field */
    for (int f = CS_F_NSTD; f < p->nfields; f++) {
        if (p->fields[f].n != n)
            continue;
        int same = 1;
        for (int i = 0; i < n && same; i++)
            same = strcmp(p->fields[f].paths[i], nf.paths[i]) == 0;
        if (same) {
            free_field(&nf);
            return f;
        }
    }
    if (p->nfields >= CS_MAX_FIELDS) {
        free_field(&nf);
        set_err(errstr, errlen, "too many fields in plan (max 64)", NULL);
        return -1;
    }
    int id = p->nfields;
    p->fields[id] = nf;
    p->nfields++;
    if (trie_build(p, errstr, errlen) != 0) {
        p->nfields--;
        p->fields[id].n = 0;
        free_field(&nf);
        return -1;
    }
    return id;
}

int cs_decode_plan_nfields(const cs_decode_plan *p)
{
    return p ? p->nfields : 0;
}

void cs_decode_plan_set_limits(cs_decode_plan *p, size_t max_bytes, int max_depth)
{
    if (!p)
        return;
    if (max_depth < 1)
        max_depth = 1;
    if (max_depth > MAX_DEPTH_CAP)
        max_depth = MAX_DEPTH_CAP;
    p->max_bytes = max_bytes;
    p->max_depth = max_depth;
}

/* ------------------------------------------------------------------------------------------ */
/* decoder                                                                                      */

cs_decoder *cs_decoder_new(const cs_decode_plan *p)
{
    if (!p)
        return NULL;
    cs_decoder *d = malloc(sizeof *d);
    if (!d)
        return NULL;
    d->scratch = malloc(p->max_bytes ? p->max_bytes : 1);
    if (!d->scratch) {
        free(d);
        return NULL;
    }
    d->cap = p->max_bytes;
    d->plan = p;
    d->gen = 1;
    memset(d->seen, 0, sizeof d->seen);
    return d;
}

void cs_decoder_destroy(cs_decoder *d)
{
    if (!d)
        return;
    free(d->scratch);
    free(d);
}

void cs_decoder_set_plan(cs_decoder *d, const cs_decode_plan *p)
{
    if (d && p)
        d->plan = p;
}

const char *cs_invalid_name(cs_invalid r)
{
    static const char *const names[CS_INV__COUNT] = {
        [CS_DECODE_OK] = "ok",
        [CS_INV_NOT_JSON] = "not_json",
        [CS_INV_NOT_OBJECT] = "not_object",
        [CS_INV_TOO_LARGE] = "too_large",
        [CS_INV_TOO_DEEP] = "too_deep",
        [CS_INV_NO_CUSTOMER] = "no_customer",
        [CS_INV_NO_EVENT] = "no_event",
        [CS_INV_BAD_TIME] = "bad_time",
    };
    if ((unsigned)r >= CS_INV__COUNT)
        return "unknown";
    return names[r];
}

/* value kinds seen by the scanner */
enum { VK_STR, VK_INT, VK_FLOAT, VK_BOOL };

/* Does field f take a present value of kind vk? */
static inline int field_accepts(int f, int vk)
{
    switch (f) {
    case CS_F_CUSTOMER: return vk == VK_STR || vk == VK_INT;
    case CS_F_EVENT: return vk == VK_STR;
    default: return 1;
    }
}

/* Turn the hits of a successful scan into fields: per field, the hit of its best (lowest)
 * path priority whose kind the field accepts. Escaped strings are undone into the scratch
 * buffer, once per hit: the unescaped text is never longer than its source and sources do not
 * overlap, so the scratch buffer (max_bytes >= message length) always has room. */
static void resolve(cs_decoder *d, const cs_decode_plan *pl, cs_decoded *out, unsigned nh)
{
    uint16_t win[CS_MAX_FIELDS];
    uint8_t *best = d->best;
    const int nf = pl->nfields;
    memset(best, 0xFF, (size_t)nf);
    for (unsigned h = 0; h < nh; h++) {
        const hit *x = &d->hits[h];
        const tnode *t = &pl->nodes[x->node];
        const ttarget *tg = pl->targets + t->tgt_off;
        for (unsigned i = 0; i < t->ntargets; i++) {
            unsigned f = tg[i].field;
            if (tg[i].prio < best[f] && field_accepts((int)f, x->vk)) {
                best[f] = tg[i].prio;
                win[f] = (uint16_t)h;
            }
        }
    }
    size_t used = 0;
    for (int f = 0; f < nf; f++) {
        if (best[f] == 0xFF)
            continue;
        hit *x = &d->hits[win[f]];
        if (x->esc) {
            char *o = d->scratch + used;
            long m = unescape(x->s, x->len, (uint8_t *)o, d->cap - used);
            if (m < 0)
                continue; /* cannot happen (see above); stay safe */
            used += (size_t)m;
            x->s = (const uint8_t *)o;
            x->len = (uint32_t)m;
            x->esc = 0;
        }
        out->f[f].p = (const char *)x->s;
        out->f[f].len = x->len;
        out->f[f].kind = x->vk == VK_STR ? CS_SV_STR : x->vk == VK_BOOL ? CS_SV_BOOL : CS_SV_NUM;
    }
}

/* -?[0-9]+ (digits only when !allow_sign) into an int64; -1 if not that or out of range. */
static int parse_epoch(const char *s, size_t n, int allow_sign, int64_t *ms)
{
    size_t i = 0;
    int neg = 0;
    if (allow_sign && n > 0 && s[0] == '-') {
        neg = 1;
        i = 1;
    }
    if (i == n)
        return -1;
    uint64_t v = 0;
    for (; i < n; i++) {
        unsigned c = (unsigned char)s[i] - '0';
        if (c > 9)
            return -1;
        if (v > (UINT64_C(9223372036854775807) - c) / 10)
            return -1;
        v = v * 10 + c;
    }
    *ms = neg ? -(int64_t)v : (int64_t)v;
    return 0;
}

static void clear_fields(cs_decoded *out, int nf)
{
    for (int i = 0; i < nf; i++) {
        out->f[i].p = NULL;
        out->f[i].len = 0;
        out->f[i].kind = CS_SV_STR;
    }
}

#define HIT(S, N, VK, ESC)                                                                         \
    do {                                                                                           \
        hit *h_ = &hits[nh++];                                                                     \
        h_->s = (S);                                                                               \
        h_->len = (uint32_t)(N);                                                                   \
        h_->node = vnode;                                                                          \
        h_->vk = (uint8_t)(VK);                                                                    \
        h_->esc = (uint8_t)(ESC);                                                                  \
    } while (0)

#define SKIP_WS()                                                                                  \
    do {                                                                                           \
        while (p < e && is_ws[*p])                                                                 \
            p++;                                                                                   \
    } while (0)

#if defined(__GNUC__)
#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define LIKELY(x) (x)
#define UNLIKELY(x) (x)
#endif

#ifdef __SSE2__
/* bit i set when byte i of x is '"', '\\' or a control character */
static inline unsigned stopmask(__m128i x)
{
    const __m128i vq = _mm_set1_epi8('"');
    const __m128i vb = _mm_set1_epi8('\\');
    const __m128i vc = _mm_set1_epi8(0x1F);
    __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, vq), _mm_cmpeq_epi8(x, vb)),
                             _mm_cmpeq_epi8(_mm_min_epu8(x, vc), x));
    return (unsigned)_mm_movemask_epi8(m);
}
/* 16 x 0xFF then 16 x 0: loading at (16 - n) gives a mask of the first n bytes */
static const uint8_t ones_zeros[32] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                                       0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
#endif

/* Slow path of a key: escapes and/or 16 bytes or more. */
static uint32_t key_lookup_slow(cs_decoder *d, const cs_decode_plan *pl, uint32_t parent,
                                const uint8_t *s, size_t n, int esc)
{
    if (!esc)
        return trie_lookup(pl, parent, s, n);
    long m = unescape(s, n, (uint8_t *)d->keybuf, sizeof d->keybuf);
    return m < 0 ? NONE : trie_lookup(pl, parent, (const uint8_t *)d->keybuf, (size_t)m);
}

cs_invalid cs_decode(cs_decoder *d, const char *buf, size_t len, int64_t fallback_ts_ms,
                     cs_decoded *out)
{
    const cs_decode_plan *pl = d->plan;
    const int nf = pl->nfields;
    clear_fields(out, nf);
    out->ts_ms = fallback_ts_ms;
    out->ts_from_msg = 0;

    size_t maxb = pl->max_bytes < d->cap ? pl->max_bytes : d->cap;
    if (len > maxb)
        return CS_INV_TOO_LARGE;

    if (UNLIKELY(++d->gen == 0)) {
        memset(d->seen, 0, sizeof d->seen);
        d->gen = 1;
    }
    const uint32_t gen = d->gen;
    uint32_t *const seen = d->seen;
    uint32_t *const stk = d->stack;
    const int maxdepth = pl->max_depth;
    const tnode *const nodes = pl->nodes;
    hit *const hits = d->hits;
    unsigned nh = 0;
    cs_invalid err = CS_INV_NOT_JSON;

    const uint8_t *p = (const uint8_t *)buf;
    const uint8_t *const e = p + len;
    int depth = 0;
    uint32_t vnode; /* trie node of the value about to be scanned, or NONE */
    unsigned c;

    /* a UTF-8 byte order mark is ignored (RFC 8259 §8.1 allows it; cJSON does the same) */
    if (len >= 3 && p[0] == 0xEF && p[1] == 0xBB && p[2] == 0xBF)
        p += 3;
    SKIP_WS();
    if (p == e)
        goto bad;
    const int top_object = *p == '{';
    vnode = top_object ? ROOT : NONE;

value: /* p < e, *p is the first byte of a value */
    c = *p;
    if (c == '"') {
        const uint8_t *s = p + 1, *q;
        int esc = 0;
#ifdef __SSE2__
        if (LIKELY(e - s >= 16)) {
            unsigned m = stopmask(_mm_loadu_si128((const __m128i *)(const void *)s));
            if (LIKELY(m)) {
                q = s + __builtin_ctz(m);
                if (UNLIKELY(*q != '"'))
                    q = scan_string(q, e, &esc);
            } else {
                q = scan_string(s + 16, e, &esc);
            }
        } else
#endif
            q = scan_string(s, e, &esc);
        if (UNLIKELY(!q))
            goto bad;
        if (vnode != NONE && q != s && nodes[vnode].ntargets)
            HIT(s, q - s, VK_STR, esc);
        p = q + 1;
        goto after;
    }
    if (c == '{') {
        if (UNLIKELY(depth >= maxdepth)) {
            err = CS_INV_TOO_DEEP;
            goto bad;
        }
        stk[depth++] = (vnode != NONE && nodes[vnode].nchildren) ? vnode : STK_NONE;
        p++;
        SKIP_WS();
        if (p == e)
            goto bad;
        if (*p == '}') {
            p++;
            depth--;
            goto after;
        }
        goto key;
    }
    switch (c) {
    case '[':
        if (UNLIKELY(depth >= maxdepth)) {
            err = CS_INV_TOO_DEEP;
            goto bad;
        }
        stk[depth++] = STK_ARR | STK_NONE;
        p++;
        SKIP_WS();
        if (p == e)
            goto bad;
        if (*p == ']') {
            p++;
            depth--;
            goto after;
        }
        vnode = NONE;
        goto value;
    case 't':
        if (e - p < 4 || memcmp(p, "true", 4) != 0)
            goto bad;
        if (vnode != NONE && nodes[vnode].ntargets)
            HIT(p, 4, VK_BOOL, 0);
        p += 4;
        goto after;
    case 'f':
        if (e - p < 5 || memcmp(p, "false", 5) != 0)
            goto bad;
        if (vnode != NONE && nodes[vnode].ntargets)
            HIT(p, 5, VK_BOOL, 0);
        p += 5;
        goto after;
    case 'n':
        if (e - p < 4 || memcmp(p, "null", 4) != 0)
            goto bad;
        p += 4;
        goto after;
    case '-': case '0': case '1': case '2': case '3': case '4': case '5': case '6': case '7':
    case '8': case '9': {
        const uint8_t *q = p;
        int vk = VK_INT;
        if (*q == '-' && ++q == e)
            goto bad;
        if (*q == '0') {
            q++;
        } else if ((unsigned)(*q - '1') <= 8) {
            q++;
            while (q < e && (unsigned)(*q - '0') <= 9)
                q++;
        } else {
            goto bad;
        }
        if (q < e && *q == '.') {
            vk = VK_FLOAT;
            q++;
            if (q == e || (unsigned)(*q - '0') > 9)
                goto bad;
            while (q < e && (unsigned)(*q - '0') <= 9)
                q++;
        }
        if (q < e && (*q | 0x20) == 'e') {
            vk = VK_FLOAT;
            q++;
            if (q < e && (*q == '+' || *q == '-'))
                q++;
            if (q == e || (unsigned)(*q - '0') > 9)
                goto bad;
            while (q < e && (unsigned)(*q - '0') <= 9)
                q++;
        }
        if (vnode != NONE && nodes[vnode].ntargets)
            HIT(p, q - p, vk, 0);
        p = q;
        goto after;
    }
    default:
        goto bad;
    }

after: /* a value ended at p */
    if (UNLIKELY(depth == 0))
        goto done;
    if (UNLIKELY(p == e))
        goto bad;
    c = *p;
    if (UNLIKELY(is_ws[c])) {
        SKIP_WS();
        if (p == e)
            goto bad;
        c = *p;
    }
    if (c == ',') {
        p++;
        if (UNLIKELY(p == e))
            goto bad;
        if (UNLIKELY(is_ws[*p])) {
            SKIP_WS();
            if (p == e)
                goto bad;
        }
        if (stk[depth - 1] & STK_ARR) {
            vnode = NONE;
            goto value;
        }
        goto key;
    }
    if (c == ((stk[depth - 1] & STK_ARR) ? ']' : '}')) {
        p++;
        depth--;
        goto after;
    }
    goto bad;

key: { /* p < e, at the opening quote of a key (or garbage) */
    if (UNLIKELY(*p != '"'))
        goto bad;
    const uint8_t *s = p + 1, *q = NULL;
    const uint32_t node = stk[depth - 1];
    uint32_t child = NONE;
#ifdef __SSE2__
    if (LIKELY(e - s >= 16)) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)s);
        unsigned m = stopmask(x);
        if (LIKELY(m)) {
            unsigned n = (unsigned)__builtin_ctz(m);
            if (LIKELY(s[n] == '"')) {
                q = s + n;
                if (node != STK_NONE && n) {
                    __m128i xk = _mm_and_si128(
                        x, _mm_loadu_si128((const __m128i *)(const void *)(ones_zeros + 16 - n)));
                    child = trie_lookup_short(pl, node, xk, n);
                }
            }
        }
    }
    if (!q)
#endif
    {
        int esc = 0;
        q = scan_string(s, e, &esc);
        if (UNLIKELY(!q))
            goto bad;
        if (node != STK_NONE)
            child = key_lookup_slow(d, pl, node, s, (size_t)(q - s), esc);
    }
    vnode = NONE;
    if (child != NONE && seen[child] != gen) {
        seen[child] = gen;
        vnode = child;
    }
    p = q + 1;
    if (LIKELY(p < e && *p == ':')) {
        p++;
    } else {
        SKIP_WS();
        if (p == e || *p != ':')
            goto bad;
        p++;
    }
    if (UNLIKELY(p == e))
        goto bad;
    if (UNLIKELY(is_ws[*p])) {
        SKIP_WS();
        if (p == e)
            goto bad;
    }
    goto value;
}

done:
    SKIP_WS();
    if (p != e)
        goto bad;
    if (!top_object)
        return CS_INV_NOT_OBJECT;
    resolve(d, pl, out, nh);
    if (out->f[CS_F_CUSTOMER].len == 0)
        return CS_INV_NO_CUSTOMER;
    if (out->f[CS_F_EVENT].len == 0)
        return CS_INV_NO_EVENT;
    {
        const cs_sv *t = &out->f[CS_F_TIME];
        if (t->len) {
            int64_t ms;
            int rc;
            if (t->kind == CS_SV_NUM)
                rc = parse_epoch(t->p, t->len, 1, &ms);
            else if (t->kind == CS_SV_BOOL)
                rc = -1;
            else if ((unsigned)((unsigned char)t->p[t->len - 1] - '0') <= 9 &&
                     parse_epoch(t->p, t->len, 0, &ms) == 0)
                rc = 0;
            else
                rc = cs_parse_rfc3339(t->p, t->len, &ms);
            if (rc != 0)
                return CS_INV_BAD_TIME;
            out->ts_ms = ms;
            out->ts_from_msg = 1;
        }
    }
    return CS_DECODE_OK;

bad:
    return err;
}

/* ------------------------------------------------------------------------------------------ */
/* RFC 3339                                                                                     */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static inline int dig2(const char *s, unsigned *v)
{
    unsigned a = (unsigned char)s[0] - '0', b = (unsigned char)s[1] - '0';
    if (a > 9 || b > 9)
        return -1;
    *v = a * 10 + b;
    return 0;
}

int cs_parse_rfc3339(const char *s, size_t len, int64_t *ms)
{
    static const unsigned char mdays[13] = {0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    unsigned yh, yl, mo, da, hh, mi, ss, oh = 0, om = 0;
    if (!s || len < 20) /* YYYY-MM-DDTHH:MM:SSZ */
        return -1;
    if (dig2(s, &yh) || dig2(s + 2, &yl) || s[4] != '-' || dig2(s + 5, &mo) || s[7] != '-' ||
        dig2(s + 8, &da) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || dig2(s + 11, &hh) ||
        s[13] != ':' || dig2(s + 14, &mi) || s[16] != ':' || dig2(s + 17, &ss))
        return -1;
    unsigned year = yh * 100 + yl;
    size_t i = 19;
    unsigned frac = 0;
    if (s[i] == '.') {
        i++;
        size_t nd = 0;
        while (i < len && (unsigned)((unsigned char)s[i] - '0') <= 9) {
            if (nd < 3)
                frac = frac * 10 + (unsigned)(s[i] - '0');
            nd++;
            i++;
        }
        if (nd == 0)
            return -1;
        for (; nd < 3; nd++)
            frac *= 10;
    }
    if (i >= len)
        return -1;
    int sign = 0;
    if (s[i] == 'Z' || s[i] == 'z') {
        i++;
    } else if (s[i] == '+' || s[i] == '-') {
        sign = s[i] == '+' ? 1 : -1;
        if (len - i < 6 || dig2(s + i + 1, &oh) || s[i + 3] != ':' || dig2(s + i + 4, &om))
            return -1;
        i += 6;
    } else {
        return -1;
    }
    if (i != len)
        return -1;
    if (mo < 1 || mo > 12 || da < 1 || hh > 23 || mi > 59 || ss > 60 || oh > 23 || om > 59)
        return -1;
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    unsigned dim = mdays[mo] + (mo == 2 && leap);
    if (da > dim)
        return -1;
    if (ss == 60) { /* leap second: the last millisecond of second 59 (no leap-second table) */
        ss = 59;
        frac = 999;
    }
    int64_t secs = days_from_civil(year, mo, da) * 86400 + (int64_t)hh * 3600 + (int64_t)mi * 60 +
                   (int64_t)ss - (int64_t)sign * ((int64_t)oh * 3600 + (int64_t)om * 60);
    *ms = secs * 1000 + (int64_t)frac;
    return 0;
}
