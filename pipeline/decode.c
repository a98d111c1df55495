/* decode.c — single-pass, path-directed JSON decoder (see decode.h and docs/decoder.md).
 *
 * How it works
 *  - A plan's dotted paths are compiled into a trie of path segments. Each trie node is one
 *    path prefix ("context", "context.page", "context.page.url"); a node that ends one or more
 *    paths carries "targets" (field id, priority = index of the path in that field's list).
 *  - Child look-up is one open-addressing hash table for the whole trie, keyed by (parent node,
 *    segment): for keys of up to 16 bytes, a multiplicative hash of the key's bytes as already
 *    loaded in an SSE register, and one 16-byte compare.
 *  - The scanner reads the message followed by PAD (CS_DECODE_PAD) NUL bytes. A NUL byte is
 *    invalid everywhere in JSON (not whitespace, not a token, a control character inside a
 *    string), so the scanner needs no end-of-buffer checks: every path stops at the sentinel
 *    and fails, and 16-byte loads never leave the buffer. cs_decode copies the message into
 *    the decoder's buffer and pads it there; cs_decode_padded scans the caller's buffer in
 *    place, the caller having put the NULs after it (the worker's arena does: source.c). The
 *    scanner never writes to the bytes it scans, so both see the same bytes and give the same
 *    results (tests/unit/test_decode.c, the fuzzer fuzz_decode compare them).
 *  - The scanner is an explicit state machine (no recursion) with a stack of containers. Each
 *    open object remembers the trie node it corresponds to, or none when nothing below it is
 *    wanted; keys of such objects are never looked up, their values are only validated.
 *  - String bodies are scanned 16 bytes at a time (SSE2) for '"', '\\' and control bytes; the
 *    rare escapes are validated on a slow path. Values at trie nodes that end a path are noted
 *    as "hits" (pointer, length, kind); only after the whole message has been validated are the
 *    hits resolved into fields by path priority, and escapes undone for the winners only.
 *  - Duplicate keys: the first occurrence of a tracked key wins. Every trie node is reachable at
 *    most once per message (its parent object is itself a first occurrence), so a per-decoder
 *    generation stamp per node recognises a second occurrence, and a message has at most one
 *    hit per path.
 */
#include "decode.h"
#include "util.h"
#include "formats.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#if defined(__GNUC__)
#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)
#define NOINLINE __attribute__((noinline))
#define ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define LIKELY(x) (x)
#define UNLIKELY(x) (x)
#define NOINLINE
#define ALWAYS_INLINE inline
#endif

#define NONE 0xFFFFFFFFu
#define ROOT 0u
/* Internal limits (documented in docs/decoder.md). */
#define MAX_NODES 4096     /* trie nodes (distinct path prefixes) in one plan */
#define PERFECT_MAX_NODES 128 /* trie_build looks for a perfect key table up to this many nodes */
#define PERFECT_TRIES 256     /* multipliers tried per table size */
#define MAX_DEPTH_CAP 1024 /* max_depth is clamped to 1..MAX_DEPTH_CAP */
#define PAD CS_DECODE_PAD  /* NUL bytes after the scanned message (>= 16 + 12) */
#define MAX_HITS (CS_MAX_FIELDS * CS_MAX_PATHS) /* one hit per path at most */

#define STK_ARR 0x80000000u /* stack entry flag: container is an array */
#define STK_NONE 0x7FFFFFFFu /* stack entry: object with no trie node */
#define STK_TOP 0xFFFFFFFEu  /* cur at the top level (depth 0): neither a trie object nor
                              * STK_NONE, so that `after` tells it from cur, in a register,
                              * rather than from depth, which GCC keeps on the stack */

typedef struct ttarget {
    uint8_t field;
    uint8_t prio;
    uint8_t acc; /* JSON trie only: bit VK_x set when the field takes a value of kind x
                  * (field_accepts, evaluated once by trie_build instead of per hit) */
} ttarget;

typedef struct tnode {
    const char *seg; /* segment bytes (points into a path string owned by the plan) */
    uint32_t parent;
    uint16_t seg_len;
    uint16_t nchildren;
    uint16_t ntargets;
    uint16_t tgt_off;
    ttarget t1; /* targets[tgt_off] again, for the hit of a node with one target (HIT) */
} tnode;
_Static_assert(sizeof(tnode) == 24, "t1 fits in tnode's padding");

typedef struct hslot {
    _Alignas(16) uint8_t key[16]; /* first 16 bytes of the segment, zero padded; zero = empty */
    uint64_t salt;                /* psalt(parent node) */
    uint32_t child;               /* NONE = empty slot */
    uint32_t len;
    const char *seg; /* the whole segment (compared when longer than 16 bytes) */
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
    int64_t min_time_ms;   /* INT64_MIN: no floor */
    int64_t max_future_ms; /* 0: no bound */
    /* compiled trie */
    tnode *nodes;
    uint32_t nnodes;
    ttarget *targets;
    uint32_t ntargets;
    hslot *hash;
    uint32_t hmask;
    uint32_t hshift;       /* 64 - log2(table size) */
    uint32_t hperfect;     /* 1: every node is in its home slot (a key not there is absent) */
    uint64_t hmul;         /* khash's multiplier, picked by trie_build (odd) */
    int time_unit;         /* CS_TU_*: unit of a numeric time */
    int tsv;               /* 1: messages are Snowplow enriched TSV; paths name columns */
    const cs_format *fmt;  /* the preset the standard fields came from (segment by default) */
    /* TSV only (kept after the JSON path's fields, so their layout is the one before formats):
     * per column, its targets coltg[col_off[c] .. col_off[c+1]) (field, priority), and the
     * first wanted column at or after c (CS_SNOWPLOW_NCOLS: none) */
    uint16_t col_off[CS_SNOWPLOW_NCOLS + 1];
    uint8_t next_want[CS_SNOWPLOW_NCOLS + 1];
    ttarget coltg[CS_MAX_FIELDS * CS_MAX_PATHS];
    int person_field;      /* SPEC §3.1 identity: the person's field id, 0 = no identity */
    uint64_t build_id;     /* this trie's build, unique in the process (decoders' key predictions
                            * hold node ids of one build: kpred) */
};

/* value kinds seen by the scanner */
enum { VK_STR, VK_INT, VK_FLOAT, VK_BOOL };

/* A present value met at a trie node that ends some path: it bid for the node's fields as it
 * was met (bid()); the winners are turned into fields after the scan (resolve()). */
typedef struct hit {
    const uint8_t *s; /* in the scanned bytes (decode_json's base), or in scratch (esc 2) */
    uint32_t len;
    uint8_t vk;  /* VK_* */
    uint8_t esc; /* string with escapes still to undo */
} hit;

#define TS_WAYS 4 /* rfc3339_cached's minutes: a power of two */

#ifdef __SSE2__
/* Key prediction (issue 18). Most streams spell their objects' keys in the same order message
 * after message, so the key that followed a given key in an object last time is likely to
 * follow it now: one entry per context (the top bits of the previous key's hash, or the
 * object's node for its first key; PRED_SIZE entries, a context's entry overwritten by the
 * next key seen there). A prediction is trusted only when it is the same key in the same
 * object: the entry's parent is cur, the input's first len bytes are the entry's and the next
 * byte is the closing quote. The entry's bytes came from the fast key path (no quote,
 * backslash or control byte in them), so the key is exactly those bytes, and the look-up's
 * answer for (cur, key) is the child stored with them: the hash, the table slot and the key's
 * stop scan are skipped. A wrong guess costs the check and one entry written. On bench_core's
 * stream (Segment, fields varying from message to message) 91 % of the keys in trie objects
 * are predicted.
 * A stream whose keys come in no fixed order (a producer that serialises hash maps) would pay
 * the check and the write on every key (+7 % of cs_decode's instructions with every object's
 * keys shuffled): a score follows the gains (+3 a predicted key, -4 a wrong guess: measured, a
 * hit saves ~28 instructions and a miss costs ~38, so guessing pays from ~57 % right), and
 * below zero the messages go to the scanner's copy that does not predict (decode_json's
 * `predict`), except one in PRED_PROBE, which re-learns and re-scores (shuffled keys: +1.8 %
 * instead of +7 %). Rejected: the k-th key of a message as context (one optional field shifts
 * every later key), and keys longer than 16 bytes (their look-up compares the whole segment;
 * rare in events). */
#ifndef PRED_BITS /* tests/unit/test_decode_collide.c builds with 1: every context shared */
#define PRED_BITS 9
#endif
#define PRED_SIZE (1u << PRED_BITS)
#define PRED_SCORE_MAX 4096 /* the score's bounds: a change of stream turns it within ~300 keys */
#ifndef PRED_ALWAYS /* test_decode_collide: 1, predicting whatever the score */
#define PRED_ALWAYS 0
#endif
#define PRED_SCORE_START 64 /* a new decoder predicts from its first message */
#define PRED_PROBE 64       /* below zero, one message in this many predicts */
/* The frame (issue 18, third pass): most producers write compact JSON, so the bytes from the
 * end of one value to the start of the next are the same message after message: ',', the
 * quoted key and ':'. When the entry learnt them, the scanner compares those len + 4 bytes at
 * once where a value ends, and a match goes straight to the next value: the separator, the
 * key's quotes, its prediction and the colon are one test instead of five (callgrind on
 * bench_core: RESULTS-e2e.md "the frame"). Where a trie object opens the same test runs with
 * the first byte not compared (it is the '{'). A frame is exact for the reason the key is: its
 * key bytes came from the fast key path, so the input holds exactly that key, closed and
 * followed by ':'. Its first byte is ',' even when learnt from an object's first key: contexts
 * share entries, and a '{' there would take "1{\"k\":" for "1,\"k\":" (fuzz_decode found it). No
 * frame (fmask FRAME_NONE, a bit no 16-byte compare sets): keys over 12 bytes, or whitespace
 * before the key or its colon (a frame starting with whitespace would take a key with no comma
 * before it); those keep the key's own prediction. */
#define FRAME_NONE 0x10000u
/* The scan holds its context as a pointer to the entry (pe), not as an index: with `next` an
 * index, each test reloaded the table's base and the index (GCC spills both in decode_json),
 * shifted and added before it could load the entry's parent, the hottest stall of the frame's
 * test (perf: ~4 % of the decoder's samples on the branch after that load). `next` points into
 * the same decoder's pred[] (a decoder is never copied or moved). */
typedef struct kpred {
    _Alignas(16) uint8_t key[16]; /* the key, zero padded */
    uint32_t parent;              /* the object (trie node) it was met in; UINT32_MAX: empty */
    uint32_t child;               /* the look-up's answer (NONE included) */
    uint32_t len;                 /* 1..16 */
    _Alignas(16) uint8_t frame[16]; /* ',', '"', the key, '"', ':'; zero padded */
    uint32_t fmask;                 /* (1 << (len + 4)) - 1, or FRAME_NONE */
    struct kpred *next; /* the context of the key after it: its hash's top bits, as an entry */
} kpred;
_Static_assert(sizeof(kpred) == 64, "a prediction entry is one cache line");

static inline uint32_t pred_first(uint32_t node) /* the context of an object's first key */
{
    return (node * 0x9E3779B1u) >> (32 - PRED_BITS);
}
#endif

struct cs_decoder {
    const cs_decode_plan *plan;
    uint8_t *copy;  /* cap + PAD bytes: the message, then NULs (scanned, never pointed into) */
    char *scratch;  /* cap bytes: unescaped strings (the current slot's) */
    size_t cap;
    int nslots;     /* scratches[0 .. nslots) (cs_decoder_new_slots) */
    char *scratches[CS_DECODER_MAX_SLOTS];
    uint32_t gen;
    struct {                  /* rfc3339_cached: valid times' first 16 bytes (0: none) */
        uint64_t key[2];      /* "YYYY-MM-DDTHH:MM" */
        int64_t min_s;        /* and the seconds of that minute */
    } ts[TS_WAYS];
    char keybuf[CS_MAX_PATH_LEN];
    uint32_t stack[MAX_DEPTH_CAP + 1];
    uint32_t seen[MAX_NODES];
    hit hits[MAX_HITS];
#ifdef __SSE2__
    kpred *pstack[MAX_DEPTH_CAP + 1];   /* the prediction context of each open container */
    uint64_t pred_build;                /* the plan build pred[] was filled under (0: none) */
    int32_t pred_score;                 /* +3 a predicted key, -4 a wrong guess (kpred) */
    uint32_t pred_probe;                /* messages while the score is below zero */
    kpred pred[PRED_SIZE];
#endif
};

static void pred_reset(cs_decoder *d)
{
#ifdef __SSE2__
    for (uint32_t i = 0; i < PRED_SIZE; i++) {
        d->pred[i].parent = UINT32_MAX;
        d->pred[i].next = &d->pred[0]; /* never followed while parent is UINT32_MAX */
    }
    d->pred_build = 0;
    d->pred_score = PRED_SCORE_START;
    d->pred_probe = 0;
#else
    (void)d;
#endif
}

/* ------------------------------------------------------------------------------------------ */
/* character level                                                                              */

#ifndef __SSE2__
/* 1 for bytes that end the fast scan of a string body: '"', '\\', and controls < 0x20. */
static const uint8_t str_stop[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    ['"'] = 1, ['\\'] = 1,
};
#endif

static const uint8_t is_ws[256] = {[' '] = 1, ['\t'] = 1, ['\n'] = 1, ['\r'] = 1};

/* Hex digit values plus one (0: not a hex digit, the default of the bytes not listed): one load
 * a digit. Rejected: the range tests (~6 instructions and two branches a digit; a \uXXXX
 * escape is in every message of bench_core, callgrind issue 18). */
static const int8_t hex_plus1[256] = {
    ['0'] = 1, ['1'] = 2, ['2'] = 3, ['3'] = 4, ['4'] = 5, ['5'] = 6, ['6'] = 7, ['7'] = 8,
    ['8'] = 9, ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15,
    ['f'] = 16, ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16,
};

static inline int hexval(uint8_t c)
{
    return hex_plus1[c] - 1;
}

static inline long hex4(const uint8_t *p)
{
    int a = hexval(p[0]), b = hexval(p[1]), c = hexval(p[2]), d = hexval(p[3]);
    if ((a | b | c | d) < 0)
        return -1;
    return (long)((a << 12) | (b << 8) | (c << 4) | d);
}

/* p points at a backslash inside a string of a NUL-padded buffer. Returns the byte after the
 * escape sequence (a surrogate pair counts as one), or NULL if the escape is invalid. Reads at
 * most p[11], and stops at the first NUL, which no valid escape contains. */
static const uint8_t *scan_escape(const uint8_t *p)
{
    switch (p[1]) {
    case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
        return p + 2;
    case 'u': {
        long cp = hex4(p + 2);
        if (cp < 0 || (cp >= 0xDC00 && cp <= 0xDFFF))
            return NULL; /* bad hex or lone low surrogate */
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (p[6] != '\\' || p[7] != 'u')
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

static inline __m128i load16(const uint8_t *p)
{
    return _mm_loadu_si128((const __m128i *)(const void *)p);
}

/* 16 x 0xFF then 16 x 0: loading at (16 - n) gives a mask of the first n bytes */
static const uint8_t ones_zeros[32] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                                       0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
#endif

/* p points inside a string body of a NUL-padded buffer. Returns its closing quote, or NULL if
 * the string is invalid or unterminated (the NUL padding stops the scan). *esc is set to 1 if
 * an escape was met. */
static NOINLINE const uint8_t *scan_string(const uint8_t *p, int *esc)
{
    for (;;) {
#ifdef __SSE2__
        unsigned m;
        while (!(m = stopmask(load16(p))))
            p += 16;
        p += __builtin_ctz(m);
#else
        while (!str_stop[*p])
            p++;
#endif
        if (*p == '"')
            return p;
        if (*p != '\\')
            return NULL; /* control character, or the end of the message */
        *esc = 1;
        p = scan_escape(p);
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

/* Undo the escapes of an already validated string body [s, s+n) into out. Returns the output
 * length, or -1 if it would not fit in `cap` bytes. The output is never longer than n. */
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

/* A parent node's salt: a bijection of the node id (odd multiplier), so slots store it instead
 * of the id and the look-up needs one multiply for it. */
static inline uint64_t psalt(uint32_t parent)
{
    return ((uint64_t)parent + 1) * 0x9E3779B97F4A7C15u;
}

/* Hash of (parent, key). lo/hi: the key's first 16 bytes, zero padded past its end (which
 * identifies keys of up to 16 bytes, as keys looked up this way never contain a NUL); longer
 * keys add their length. The table index is the top bits of the product; the multiplier is the
 * plan's (trie_build tries a few for a table where every node sits in its home slot). */
#define KHASH_MUL0 0xD6E8FEB86659FD93u
static inline uint64_t khash(uint64_t mul, uint64_t salt, uint64_t lo, uint64_t hi, size_t len)
{
    uint64_t lterm = len > 16 ? (uint64_t)len : 0;
    return ((lo ^ ((hi << 29) | (hi >> 35)) ^ lterm) + salt) * mul;
}

static inline void key16(const uint8_t *k, size_t len, uint8_t out[16])
{
    memset(out, 0, 16);
    memcpy(out, k, len < 16 ? len : 16);
}

/* Portable look-up of key [k, k+len) (any bytes) under `parent`. */
static uint32_t trie_lookup(const cs_decode_plan *pl, uint32_t parent, const uint8_t *k, size_t len)
{
    if (len == 0 || len >= CS_MAX_PATH_LEN)
        return NONE;
    uint8_t kb[16];
    key16(k, len, kb);
    const uint64_t salt = psalt(parent);
    uint32_t i = (uint32_t)(khash(pl->hmul, salt, rd64(kb), rd64(kb + 8), len) >> pl->hshift);
    for (;;) {
        const hslot *s = &pl->hash[i];
        if (s->child == NONE)
            return NONE;
        if (s->salt == salt && s->len == len && memcmp(s->key, kb, 16) == 0 &&
            (len <= 16 || memcmp(s->seg, k, len) == 0))
            return s->child;
        if (pl->hperfect)
            return NONE;
        i = (i + 1) & pl->hmask;
    }
}

#ifdef __SSE2__
/* Look-up of a raw key of 1..16 bytes whose bytes, zero padded, are in `xk`. An empty slot's
 * key is all zero, which never equals a non-empty key, so a hit needs no emptiness test. With a
 * perfect table (hperfect) the home slot decides: one slot per key, no probe loop to mispredict
 * on the keys of a message that no path names. */
static inline uint32_t trie_lookup_short(const hslot *tab, uint32_t hmask, uint32_t hshift,
                                         uint64_t hmul, uint32_t hperfect, uint32_t parent,
                                         __m128i xk, uint32_t len, uint32_t *ctx)
{
    const uint64_t lo = (uint64_t)_mm_cvtsi128_si64(xk);
    const uint64_t hi = (uint64_t)_mm_cvtsi128_si64(_mm_unpackhi_epi64(xk, xk));
    const uint64_t salt = psalt(parent);
    const uint64_t h = khash(hmul, salt, lo, hi, 0);
    uint32_t i = (uint32_t)(h >> hshift);
    *ctx = (uint32_t)(h >> (64 - PRED_BITS)); /* finer than the slot: fewer shared contexts */
    for (;;) {
        const hslot *s = &tab[i];
        if (_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_load_si128((const __m128i *)(const void *)s->key),
                                             xk)) == 0xFFFF &&
            s->salt == salt && s->len == len)
            return s->child;
        if (hperfect || s->child == NONE)
            return NONE;
        i = (i + 1) & hmask;
    }
}
#endif

/* The message, with the path quoted: at most 200 bytes of it, control bytes shown as '?'. A path
 * comes from a rule file or the command line, and an error is one line of a log (a YAML flow
 * scalar may hold newlines: fuzz_formats found one). */
static void set_err(char *errstr, size_t errlen, const char *msg, const char *path)
{
    if (!errstr || errlen == 0)
        return;
    if (path) {
        char shown[201];
        cs_printable(shown, sizeof shown, path, strlen(path));
        snprintf(errstr, errlen, "%s: \"%s\"", msg, shown);
    } else
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

/* TSV plans: every path is a column name; build the per-column targets. On failure p is
 * unchanged and -1 is returned. */
static int cols_build(cs_decode_plan *p, char *errstr, size_t errlen)
{
    uint16_t cnt[CS_SNOWPLOW_NCOLS] = {0};
    int16_t colof[CS_MAX_FIELDS][CS_MAX_PATHS];
    for (int f = 0; f < p->nfields; f++)
        for (int k = 0; k < p->fields[f].n; k++) {
            const char *s = p->fields[f].paths[k];
            int c = cs_snowplow_column(s, strlen(s));
            if (c < 0) {
                set_err(errstr, errlen,
                        "not a column of Snowplow's enriched TSV (name a column, e.g. se_label)",
                        s);
                return -1;
            }
            colof[f][k] = (int16_t)c;
            cnt[c]++;
        }
    uint16_t off = 0;
    for (int c = 0; c < CS_SNOWPLOW_NCOLS; c++) {
        p->col_off[c] = off;
        off = (uint16_t)(off + cnt[c]);
        cnt[c] = 0;
    }
    p->col_off[CS_SNOWPLOW_NCOLS] = off;
    for (int f = 0; f < p->nfields; f++)
        for (int k = 0; k < p->fields[f].n; k++) {
            int c = colof[f][k];
            ttarget *t = &p->coltg[p->col_off[c] + cnt[c]++];
            t->field = (uint8_t)f;
            t->prio = (uint8_t)k;
        }
    uint8_t nw = CS_SNOWPLOW_NCOLS;
    p->next_want[CS_SNOWPLOW_NCOLS] = nw;
    for (int c = CS_SNOWPLOW_NCOLS - 1; c >= 0; c--) {
        if (p->col_off[c + 1] != p->col_off[c])
            nw = (uint8_t)c;
        p->next_want[c] = nw;
    }
    return 0;
}

/* Rebuild nodes/targets/hash from p->fields. On failure p is unchanged and -1 is returned. */
/* Does field f take a present value of kind vk? A value it does not take is "not present" for
 * that field, so a lower-priority path can still win. */
static inline int field_accepts(const cs_decode_plan *pl, unsigned f, unsigned vk)
{
    switch (f) {
    case CS_F_CUSTOMER: return vk == VK_STR || vk == VK_INT; /* no floats, no booleans */
    case CS_F_EVENT: return vk == VK_STR;
    default: /* time: anything present is taken, and must then parse; the person is an id */
        return f != (unsigned)pl->person_field || vk == VK_STR || vk == VK_INT;
    }
}

static int trie_build(cs_decode_plan *p, char *errstr, size_t errlen)
{
    if (p->tsv)
        return cols_build(p, errstr, errlen);
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
            uint8_t acc = 0;
            for (unsigned vk = VK_STR; vk <= VK_BOOL; vk++)
                acc |= (uint8_t)(field_accepts(p, tb[i].field, vk) << vk);
            targets[n->tgt_off + n->ntargets].acc = acc;
            n->ntargets++;
        }
        for (uint32_t i = 0; i < nn; i++)
            if (nodes[i].ntargets)
                nodes[i].t1 = targets[nodes[i].tgt_off];
    }
    /* hash of all non-root nodes: a power of two >= 2 * nodes, at least 32 slots; linear
     * probing with KHASH_MUL0, unless a multiplier is found (a few tried, at this size and at
     * twice it) that puts every node in a slot of its own: then a look-up reads one slot */
    uint32_t hsize = 32, hbits = 5;
    while (hsize < 2 * nn) {
        hsize <<= 1;
        hbits++;
    }
    uint64_t hmul = KHASH_MUL0;
    uint32_t hperfect = 0;
    if (nn <= PERFECT_MAX_NODES) {
        uint64_t used[2 * (2 * PERFECT_MAX_NODES / 64 + 1)];
        for (uint32_t grow = 0; grow < 2 && !hperfect; grow++) {
            const uint32_t sz = hsize << grow, bits = hbits + grow;
            for (uint32_t k = 0; k < PERFECT_TRIES && !hperfect; k++) {
                const uint64_t mul = KHASH_MUL0 + 2 * (uint64_t)k * 0x9E3779B97F4A7C15u;
                memset(used, 0, sizeof used);
                uint32_t c = 1;
                for (; c < nn; c++) {
                    uint8_t kb[16];
                    key16((const uint8_t *)nodes[c].seg, nodes[c].seg_len, kb);
                    uint32_t i = (uint32_t)(khash(mul, psalt(nodes[c].parent), rd64(kb),
                                                  rd64(kb + 8), nodes[c].seg_len) >>
                                            (64 - bits)) &
                                 (sz - 1);
                    if (used[i >> 6] >> (i & 63) & 1)
                        break;
                    used[i >> 6] |= (uint64_t)1 << (i & 63);
                }
                if (c == nn) {
                    hperfect = 1;
                    hmul = mul;
                    hsize = sz;
                    hbits = bits;
                }
            }
        }
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
        uint64_t h = khash(hmul, psalt(n->parent), rd64(kb), rd64(kb + 8), n->seg_len);
        uint32_t i = (uint32_t)(h >> (64 - hbits)) & (hsize - 1);
        while (hash[i].child != NONE)
            i = (i + 1) & (hsize - 1);
        memcpy(hash[i].key, kb, 16);
        hash[i].seg = n->seg;
        hash[i].len = n->seg_len;
        hash[i].salt = psalt(n->parent);
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
    p->hmul = hmul;
    p->hperfect = hperfect;
    /* relaxed: only uniqueness matters; the plan reaches the workers by the engine's hand-over */
    static _Atomic uint64_t builds;
    p->build_id = atomic_fetch_add_explicit(&builds, 1, memory_order_relaxed) + 1;
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
    p->min_time_ms = INT64_MIN;
    p->max_future_ms = 0;
    p->fmt = cs_format_default();
    p->time_unit = CS_TU_MS;
    p->nfields = CS_F_NSTD;
    for (int f = 0; f < CS_F_NSTD; f++) {
        for (int k = 0; k < CS_FMT_MAX_PATHS && cs_format_default()->paths[f][k]; k++) {
            p->fields[f].paths[k] = strdup(cs_format_default()->paths[f][k]);
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
        if (p->fields[f].n != n || f == p->person_field)
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

int cs_decode_plan_set_format(cs_decode_plan *p, const cs_format *fmt, char *errstr,
                              size_t errlen)
{
    if (!p || !fmt) {
        set_err(errstr, errlen, "no plan or format", NULL);
        return -1;
    }
    pfield nf[CS_F_NSTD], old[CS_F_NSTD];
    for (int f = 0; f < CS_F_NSTD; f++) {
        int n = 0;
        while (n < CS_MAX_PATHS && n < CS_FMT_MAX_PATHS && fmt->paths[f][n])
            n++;
        memset(&nf[f], 0, sizeof nf[f]);
        if (copy_paths(&nf[f], fmt->paths[f], n, errstr, errlen) != 0) {
            for (int g = 0; g < f; g++)
                free_field(&nf[g]);
            return -1;
        }
    }
    const int old_tsv = p->tsv;
    for (int f = 0; f < CS_F_NSTD; f++) {
        old[f] = p->fields[f];
        p->fields[f] = nf[f];
    }
    p->tsv = fmt->tsv;
    if (trie_build(p, errstr, errlen) != 0) {
        p->tsv = old_tsv;
        for (int f = 0; f < CS_F_NSTD; f++) {
            p->fields[f] = old[f];
            free_field(&nf[f]);
        }
        return -1;
    }
    for (int f = 0; f < CS_F_NSTD; f++)
        free_field(&old[f]);
    p->fmt = fmt;
    p->time_unit = fmt->time_unit;
    return 0;
}

int cs_decode_plan_set_identity(cs_decode_plan *p, const char *const *device, int nd,
                                const char *const *person, int np, char *errstr, size_t errlen)
{
    if (!p || p->person_field) {
        set_err(errstr, errlen, p ? "identity already set" : "no plan", NULL);
        return -1;
    }
    if (p->nfields >= CS_MAX_FIELDS) {
        set_err(errstr, errlen, "too many fields in plan (max 64)", NULL);
        return -1;
    }
    pfield dev = {0}, per = {0};
    if (copy_paths(&dev, device, nd, errstr, errlen) != 0)
        return -1;
    if (copy_paths(&per, person, np, errstr, errlen) != 0) {
        free_field(&dev);
        return -1;
    }
    pfield old = p->fields[CS_F_CUSTOMER];
    const int id = p->nfields;
    p->fields[CS_F_CUSTOMER] = dev;
    p->fields[id] = per;
    p->nfields++;
    p->person_field = id;
    if (trie_build(p, errstr, errlen) != 0) {
        p->person_field = 0;
        p->nfields--;
        p->fields[id].n = 0;
        p->fields[CS_F_CUSTOMER] = old;
        free_field(&dev);
        free_field(&per);
        return -1;
    }
    free_field(&old);
    return 0;
}

int cs_decode_plan_person_field(const cs_decode_plan *p)
{
    return p ? p->person_field : 0;
}

const cs_format *cs_decode_plan_format(const cs_decode_plan *p)
{
    return p ? p->fmt : NULL;
}

void cs_decode_plan_set_time_unit(cs_decode_plan *p, int unit)
{
    if (p && unit >= 0 && unit < CS_TU__COUNT)
        p->time_unit = unit;
}

int cs_decode_plan_time_unit(const cs_decode_plan *p)
{
    return p ? p->time_unit : CS_TU_MS;
}

int cs_decode_plan_nfields(const cs_decode_plan *p)
{
    return p ? p->nfields : 0;
}

size_t cs_decode_plan_max_bytes(const cs_decode_plan *p)
{
    return p ? p->max_bytes : 0;
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

void cs_decode_plan_set_time_bounds(cs_decode_plan *p, int64_t min_ms, int64_t max_future_ms)
{
    if (!p)
        return;
    p->min_time_ms = min_ms;
    p->max_future_ms = max_future_ms > 0 ? max_future_ms : 0;
}

int64_t cs_decode_plan_max_future(const cs_decode_plan *p)
{
    return p ? p->max_future_ms : 0;
}

/* ------------------------------------------------------------------------------------------ */
/* decoder                                                                                      */

/* One decoder, several slots of output buffers, rather than one decoder per event in flight:
 * the worker's software pipeline (engine.c PIPE) holds 4 decoded events at once, and with a
 * decoder each, every decoder's learnt state (key predictions, the time cache, the seen stamps:
 * by estimate a few KB of lines touched per message) was reused only every 4th message,
 * evicted from L1 in between by the other three and the session look-ups. One decoder with a
 * slot per event in flight: the same instructions (callgrind: the worker's +0.07 %), the
 * decoder's L1 misses -84 % (cachegrind), 4-6 % less time on bench_core's one-thread core
 * (bench/RESULTS-e2e.md "one decoder, four slots"). The outputs are all that must not be
 * shared: a decoded event's slices point into the caller's bytes or into its slot's scratch
 * buffer (escapes undone). The copy cs_decode scans is never pointed into: it is one. */
cs_decoder *cs_decoder_new_slots(const cs_decode_plan *p, int slots)
{
    if (!p || slots < 1 || slots > CS_DECODER_MAX_SLOTS)
        return NULL;
    if (p->max_bytes > (SIZE_MAX - PAD) / 2 || p->max_bytes > UINT32_MAX)
        return NULL;
    cs_decoder *d = malloc(sizeof *d);
    if (!d)
        return NULL;
    d->nslots = slots;
    for (int k = 0; k < CS_DECODER_MAX_SLOTS; k++)
        d->scratches[k] = NULL;
    d->copy = malloc(p->max_bytes + PAD);
    int ok = d->copy != NULL;
    for (int k = 0; k < slots; k++)
        ok &= (d->scratches[k] = malloc(p->max_bytes ? p->max_bytes : 1)) != NULL;
    if (!ok) {
        cs_decoder_destroy(d);
        return NULL;
    }
    d->scratch = d->scratches[0];
    d->cap = p->max_bytes;
    d->plan = p;
    d->gen = 1;
    memset(d->ts, 0, sizeof d->ts);
    memset(d->seen, 0, sizeof d->seen);
    pred_reset(d);
    return d;
}

cs_decoder *cs_decoder_new(const cs_decode_plan *p) { return cs_decoder_new_slots(p, 1); }

void cs_decoder_use_slot(cs_decoder *d, int slot)
{
    /* out of range: a caller's bug; slot 0 keeps the decoder usable */
    if ((unsigned)slot >= (unsigned)d->nslots)
        slot = 0;
    d->scratch = d->scratches[slot];
}

void cs_decoder_destroy(cs_decoder *d)
{
    if (!d)
        return;
    free(d->copy);
    for (int k = 0; k < d->nslots; k++)
        free(d->scratches[k]);
    free(d);
}

void cs_decoder_set_plan(cs_decoder *d, const cs_decode_plan *p)
{
    if (d && p)
        d->plan = p; /* decode_json sees the other build_id and empties the predictions */
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
        [CS_INV_FUTURE_TIME] = "future_time",
        [CS_INV_NOT_TSV] = "not_tsv",
    };
    if ((unsigned)r >= CS_INV__COUNT)
        return "unknown";
    return names[r];
}

/* SPEC §3.1: the ids of an event under identity (decode.h, "With identity"). */
static ALWAYS_INLINE void identity_ids(const cs_decode_plan *pl, cs_decoded *out)
{
    cs_sv *d = &out->f[CS_F_CUSTOMER], *p = &out->f[pl->person_field];
    if (p->len && d->len && p->len == d->len && memcmp(p->p, d->p, d->len) == 0)
        p->len = 0; /* the device id sent as the person: no person */
    out->idf = (uint8_t)((d->len ? CS_ID_DEVICE : 0) | (p->len ? CS_ID_PERSON : 0));
    if (!d->len)
        *d = *p; /* the session key: the device, else the person */
}

/* A hit's bid for the fields its node is a path of: per field, the hit of the best (lowest)
 * path priority whose kind the field takes wins; on equal priority the first hit (one node is
 * hit once per message, so only different nodes of one field can tie, and they never share a
 * priority). Done as each hit is met, so resolve() need not walk the hits again: rejected, the
 * walk after the scan (a second pass re-reading every hit, its node and its targets; callgrind,
 * issue 18: about a tenth of cs_decode's instructions). The hit of a message that turns out
 * invalid has bid for nothing that is read: resolve() runs on a successful scan only. */
static ALWAYS_INLINE void bid(const ttarget *tg, unsigned nt, unsigned vk, hit *h,
                              uint8_t *best, hit **win)
{
    for (unsigned i = 0; i < nt; i++) {
        const unsigned f = tg[i].field;
        if (tg[i].prio < best[f] && ((tg[i].acc >> vk) & 1)) {
            best[f] = tg[i].prio;
            win[f] = h;
        }
    }
}

/* Every field absent (what resolve() leaves for a field without a hit). */
static NOINLINE void clear_fields(const cs_decode_plan *pl, cs_decoded *out)
{
    for (int i = 0; i < pl->nfields; i++) {
        out->f[i].p = NULL;
        out->f[i].len = 0;
        out->f[i].kind = CS_SV_STR;
    }
}

/* The field kind of a value kind (VK_*) */
static const uint8_t vk_kind[4] = {[VK_STR] = CS_SV_STR, [VK_INT] = CS_SV_NUM,
                                   [VK_FLOAT] = CS_SV_NUM, [VK_BOOL] = CS_SV_BOOL};

/* Turn the winning hits of a successful scan into fields (bid() picked them: best[f] is the
 * winner's priority, 0xFF for none, win[f] its hit). Escaped strings are undone into the
 * scratch buffer, once per hit: unescaped text is never longer than its source and sources do
 * not overlap, so the scratch buffer (cap >= message length) always has room. */
static ALWAYS_INLINE void resolve(cs_decoder *d, const cs_decode_plan *pl, cs_decoded *out,
                    const uint8_t *best, hit *const *win, const uint8_t *base,
                    const char *buf)
{
    const int nf = pl->nfields;
    size_t used = 0;
    for (int f = 0; f < nf; f++) {
        if (best[f] == 0xFF) {
            out->f[f].p = NULL;
            out->f[f].len = 0;
            out->f[f].kind = CS_SV_STR;
            continue;
        }
        hit *x = win[f];
        if (x->esc == 1) { /* 2: already undone for another field */
            char *o = d->scratch + used;
            long m = unescape(x->s, x->len, (uint8_t *)o, d->cap - used);
            if (m < 0)
                continue; /* cannot happen (see above); stay safe */
            used += (size_t)m;
            x->s = (const uint8_t *)o;
            x->len = (uint32_t)m;
            x->esc = 2; /* now points into scratch */
        }
        out->f[f].p = x->esc == 2 ? (const char *)x->s : buf + (x->s - base);
        out->f[f].len = x->len;
        out->f[f].kind = vk_kind[x->vk];
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
    while (i + 1 < n && s[i] == '0') /* leading zeros do not count against the 19 digits */
        i++;
    if (i == n || n - i > 19)
        return -1;
    uint64_t v = 0; /* 19 digits always fit in uint64 */
    for (; i < n; i++) {
        unsigned c = (unsigned)((unsigned char)s[i] - '0');
        if (c > 9)
            return -1;
        v = v * 10 + c;
    }
    if (v > (uint64_t)INT64_MAX)
        return -1;
    *ms = neg ? -(int64_t)v : (int64_t)v;
    return 0;
}

/* A decimal number as time, exactly (SPEC §1.1 time units): `-?D+(.D+)?([eE][+-]?D+)?` when
 * `json` (a JSON number, grammar already checked by the scanner), `D+(.D+)?` otherwise (a JSON
 * string). The value v times the unit's factor to ms is truncated toward zero digit by digit:
 * no binary floating point, so 1790000393.702 s is 1790000393702 ms. `auto` picks the unit by
 * the number of integer digits of |v| (<= 11: s, <= 14: ms, <= 17: us, else ns; i.e. |v| < 1e11
 * is seconds ...). -1 when malformed or when the result does not fit in an int64. */
static NOINLINE int parse_num_time(const char *s, size_t n, int json, int unit, int64_t *ms)
{
    size_t i = 0;
    int neg = 0;
    if (json && n > 0 && s[0] == '-') {
        neg = 1;
        i = 1;
    }
    const size_t i0 = i;
    while (i < n && (unsigned)(s[i] - '0') <= 9)
        i++;
    const size_t nint = i - i0;
    if (nint == 0)
        return -1;
    size_t f0 = i, nfrac = 0;
    if (i < n && s[i] == '.') {
        f0 = ++i;
        while (i < n && (unsigned)(s[i] - '0') <= 9)
            i++;
        nfrac = i - f0;
        if (nfrac == 0)
            return -1;
    }
    int64_t e10 = 0; /* saturates far beyond any length a message can have */
    if (i < n && (s[i] | 0x20) == 'e') {
        if (!json)
            return -1;
        i++;
        int eneg = 0;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            eneg = s[i++] == '-';
        const size_t e0 = i;
        while (i < n && (unsigned)(s[i] - '0') <= 9) {
            if (e10 < (INT64_C(1) << 40))
                e10 = e10 * 10 + (s[i] - '0');
            i++;
        }
        if (i == e0)
            return -1;
        if (eneg)
            e10 = -e10;
    }
    if (i != n)
        return -1;
    /* the digits d[0 .. nint+nfrac) (integer digits, then fraction digits); v = d * 10^(e10 -
     * nfrac); z: the first non-zero digit; v has (nint + e10 - z) integer digits */
#define DIG(k) ((k) < nint ? s[i0 + (k)] - '0' : s[f0 + (k) - nint] - '0')
    const size_t nd = nint + nfrac;
    size_t z = 0;
    while (z < nd && DIG(z) == 0)
        z++;
    if (z == nd) {
        *ms = 0;
        return 0;
    }
    const int64_t intdig = (int64_t)nint + e10 - (int64_t)z;
    if (unit == CS_TU_AUTO)
        unit = intdig <= 11 ? CS_TU_S : intdig <= 14 ? CS_TU_MS : intdig <= 17 ? CS_TU_US : CS_TU_NS;
    static const int shift[CS_TU__COUNT] = {[CS_TU_MS] = 0, [CS_TU_S] = 3, [CS_TU_US] = -3,
                                            [CS_TU_NS] = -6};
    const int64_t count = intdig + shift[unit]; /* digits of the result, from z on */
    uint64_t v = 0;
    if (count > 19)
        return -1;
    for (int64_t j = 0; j < count; j++) { /* <= 19 digits: no overflow in uint64 */
        const size_t k = z + (size_t)j;
        v = v * 10 + (uint64_t)(k < nd ? DIG(k) : 0);
    }
#undef DIG
    if (v > (uint64_t)INT64_MAX)
        return -1;
    *ms = neg ? -(int64_t)v : (int64_t)v;
    return 0;
}

static ALWAYS_INLINE int rfc3339_cached(cs_decoder *d, const char *str, size_t len, int64_t *ms);

/* The time field (if any) into out->ts_ms, then the plan's bounds. Inlined, with `tsv` a
 * constant at each call, so that cs_decode's JSON path has only the time code it had before. */
static ALWAYS_INLINE cs_invalid finish_time(cs_decoder *d, const cs_decode_plan *pl,
                                            cs_decoded *out, int64_t fallback_ts_ms, const int tsv)
{
    const cs_sv *t = &out->f[CS_F_TIME];
    if (t->len) {
        int64_t ms;
        int rc;
        if (tsv)
            rc = cs_parse_snowplow_ts(t->p, t->len, &ms);
        else if (t->kind == CS_SV_NUM)
            rc = (pl->time_unit != CS_TU_MS || parse_epoch(t->p, t->len, 1, &ms) != 0)
                     ? parse_num_time(t->p, t->len, 1, pl->time_unit, &ms)
                     : 0;
        else if (t->kind == CS_SV_BOOL)
            rc = -1;
        else if (t->len >= 20 && t->p[4] == '-') /* only RFC 3339 can look like this */
            rc = rfc3339_cached(d, t->p, t->len, &ms);
        else if (pl->time_unit == CS_TU_MS)
            rc = parse_epoch(t->p, t->len, 0, &ms) == 0
                     ? 0
                     : parse_num_time(t->p, t->len, 0, CS_TU_MS, &ms);
        else
            rc = parse_num_time(t->p, t->len, 0, pl->time_unit, &ms);
        if (rc != 0)
            return CS_INV_BAD_TIME;
        out->ts_ms = ms;
        out->ts_from_msg = 1;
    }
    /* Bounds (docs/semantics.md "Event time bounds"): one compare each on the common path.
     * future: ms - fallback > max_future, written so that it cannot overflow. */
    if (UNLIKELY(out->ts_ms < pl->min_time_ms))
        return CS_INV_BAD_TIME;
    if (pl->max_future_ms && out->ts_from_msg && out->ts_ms > fallback_ts_ms &&
        (uint64_t)out->ts_ms - (uint64_t)fallback_ts_ms > (uint64_t)pl->max_future_ms)
        return CS_INV_FUTURE_TIME;
    return CS_DECODE_OK;
}

/* Snowplow's enriched TSV (SPEC §1.1): exactly CS_SNOWPLOW_NCOLS tab-separated columns (one
 * trailing "\n" or "\r\n" is not part of the last column), values taken as they stand (the
 * enrichment writes no escapes), an empty column is absent. Tabs are found 16 bytes at a time;
 * a block whose tabs all end columns nobody wants is passed with one popcount. */
static NOINLINE cs_invalid decode_tsv(cs_decoder *d, const cs_decode_plan *pl, const char *buf,
                                      size_t len, int64_t fallback_ts_ms, cs_decoded *out)
{
    if (len && buf[len - 1] == '\n') {
        len--;
        if (len && buf[len - 1] == '\r')
            len--;
    }
    uint8_t best[CS_MAX_FIELDS];
    memset(best, 0xFF, (size_t)pl->nfields);
    uint32_t col = 0, start = 0;
    uint32_t want = pl->next_want[0];
    const uint8_t *const u = (const uint8_t *)buf;
#define TSV_COL_END(END)                                                                           \
    do {                                                                                           \
        const uint32_t e_ = (END);                                                                 \
        if (col == want) {                                                                         \
            if (e_ > start)                                                                        \
                for (unsigned t_ = pl->col_off[col]; t_ < pl->col_off[col + 1]; t_++) {            \
                    const ttarget *tg_ = &pl->coltg[t_];                                           \
                    if (tg_->prio < best[tg_->field]) {                                            \
                        best[tg_->field] = tg_->prio;                                              \
                        out->f[tg_->field].p = buf + start;                                        \
                        out->f[tg_->field].len = e_ - start;                                       \
                    }                                                                              \
                }                                                                                  \
            want = pl->next_want[col + 1];                                                         \
        }                                                                                          \
        col++;                                                                                     \
        start = e_ + 1;                                                                            \
    } while (0)
    size_t i = 0;
#ifdef __SSE2__
    const __m128i vt = _mm_set1_epi8('\t');
    for (; i + 16 <= len; i += 16) {
        unsigned m = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(load16(u + i), vt));
        if (!m)
            continue;
        const unsigned nt = (unsigned)__builtin_popcount(m);
        if (col + nt <= want && col + nt < CS_SNOWPLOW_NCOLS) { /* no wanted column ends here */
            col += nt;
            start = (uint32_t)i + 32 - (unsigned)__builtin_clz(m);
            continue;
        }
        do {
            if (UNLIKELY(col >= CS_SNOWPLOW_NCOLS - 1))
                goto not_tsv;
            TSV_COL_END((uint32_t)i + (unsigned)__builtin_ctz(m));
            m &= m - 1;
        } while (m);
    }
#endif
    for (; i < len; i++)
        if (u[i] == '\t') {
            if (UNLIKELY(col >= CS_SNOWPLOW_NCOLS - 1))
                goto not_tsv;
            TSV_COL_END((uint32_t)i);
        }
    if (col != CS_SNOWPLOW_NCOLS - 1)
        goto not_tsv;
    TSV_COL_END((uint32_t)len); /* the last column */
#undef TSV_COL_END
    (void)d;
    if (UNLIKELY(pl->person_field))
        identity_ids(pl, out);
    if (out->f[CS_F_CUSTOMER].len == 0)
        return CS_INV_NO_CUSTOMER;
    if (out->f[CS_F_EVENT].len == 0)
        return CS_INV_NO_EVENT;
    return finish_time(d, pl, out, fallback_ts_ms, 1);
not_tsv: /* no field of a message that is not one event */
    for (int f = 0; f < pl->nfields; f++) {
        out->f[f].p = NULL;
        out->f[f].len = 0;
    }
    return CS_INV_NOT_TSV;
}

/* Slow path of a key: escapes, 16 bytes or more, or a control character. */
static NOINLINE uint32_t key_lookup_slow(cs_decoder *d, const cs_decode_plan *pl, uint32_t parent,
                                         const uint8_t *s, size_t n, int esc)
{
    if (!esc)
        return trie_lookup(pl, parent, s, n);
    long m = unescape(s, n, (uint8_t *)d->keybuf, sizeof d->keybuf);
    return m < 0 ? NONE : trie_lookup(pl, parent, (const uint8_t *)d->keybuf, (size_t)m);
}

#define SKIP_WS()                                                                                  \
    do {                                                                                           \
        while (is_ws[*p])                                                                          \
            p++;                                                                                   \
    } while (0)

#define HIT(S, N, VK, ESC)                                                                         \
    do {                                                                                           \
        const tnode *t_ = &nodes[vnode];                                                           \
        if (!t_->ntargets)                                                                         \
            break;                                                                                 \
        hit *h_ = hp;                                                                              \
        h_->s = (S);                                                                               \
        h_->len = (uint32_t)(N);                                                                   \
        h_->vk = (uint8_t)(VK);                                                                    \
        h_->esc = (uint8_t)(ESC);                                                                  \
        /* Most nodes end one path: that target bids here, bid()'s rule written out (keep the      \
         * two in step). Rejected, by callgrind on bench_core (decoder instructions an event       \
         * against this): the test inside bid() +19, bid()'s first target outside its loop         \
         * +10, this test calling a bid1() that bid() loops over +37 (code generation of the       \
         * scanner, not the work). The target is the node's copy (t1), not targets[tgt_off]:       \
         * one dependent load less, -31 decoder instructions an event and fewer mispredicted       \
         * branches (cachegrind's model: -9 %). */                                                 \
        if (LIKELY(t_->ntargets == 1)) {                                                           \
            const ttarget *g_ = &t_->t1;                                                           \
            if (g_->prio < best[g_->field] && ((g_->acc >> (VK)) & 1)) {                           \
                best[g_->field] = g_->prio;                                                        \
                win[g_->field] = h_;                                                               \
            }                                                                                      \
        } else {                                                                                   \
            bid(targets + t_->tgt_off, t_->ntargets, (VK), h_, best, win);                         \
        }                                                                                          \
        hp++;                                                                                      \
    } while (0)

/* A key of the open object was read, and CH is its trie node (NONE: no path goes through it):
 * the value that follows is scanned for the node only at the key's first occurrence in its
 * object in this message (duplicate keys: the first wins), else as a value no path names. */
#define KEY_NODE(CH)                                                                               \
    do {                                                                                           \
        vnode = NONE;                                                                              \
        if ((CH) != NONE && seen[(CH)] != gen) {                                                   \
            seen[(CH)] = gen;                                                                      \
            vnode = (CH);                                                                          \
        }                                                                                          \
    } while (0)

/* The frame's test (kpred): p at the byte before a key's quote in trie object cur (depth >= 1):
 * where a value ended (SKIP0 0: the frame's ',' must be there), or at the '{' that opened cur
 * (SKIP0 1: its first byte is not compared). On a match: the key is taken as predicted, p moves
 * to its value, and the scan goes on there; else nothing changed. Reads p[0..15] (the message
 * or its padding). */
#define FRAME_TRY(SKIP0)                                                                           \
    do {                                                                                           \
        const kpred *fe_ = pe;                                                                     \
        if (fe_->parent == cur) {                                                                  \
            const unsigned feq_ = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(                     \
                load16(p), _mm_load_si128((const __m128i *)(const void *)fe_->frame)));          \
            const unsigned fm_ = fe_->fmask & ~(unsigned)(SKIP0);                                  \
            if ((feq_ & fm_) == fm_) {                                                             \
                const uint32_t fch_ = fe_->child;                                                  \
                p += fe_->len + 4;                                                                 \
                pe = fe_->next;                                                                    \
                sc += 3;                                                                           \
                KEY_NODE(fch_);                                                                    \
                if (UNLIKELY(*p <= ' '))                                                           \
                    SKIP_WS();                                                                     \
                goto value;                                                                        \
            }                                                                                      \
        }                                                                                          \
    } while (0)

/* cs_decode and cs_decode_padded: `padded` says that buf[len .. len + PAD) are NULs already
 * (the caller's guarantee, decode.h), so the scan runs on buf itself; otherwise on the decoder's
 * copy. Either way `base` is what the scanner reads and hit pointers point into; nothing is ever
 * written through it (unescaped text goes to d->scratch, unescaped keys to d->keybuf).
 * Inlined into each entry point with `padded` a constant, as finish_time is (resolve and
 * rfc3339_cached, now with two callers each, are forced inline as they were with one): rejected,
 * one function with a run-time flag (callgrind: +22 instructions per message on cs_decode's
 * path, bench_decode; cs_decode_padded's 2908 per bench_core event against 2847 inlined), for
 * one more copy of the scanner in the binary. `predict` likewise (kpred): the copy that
 * predicts keys and the one that does not (a stream whose guesses do not pay) each carry only
 * their own work; with a run-time flag the scanner ran ~200 instructions a message more with
 * the predictions off than before it had them (the flag's tests, and registers spilled). */
static ALWAYS_INLINE cs_invalid decode_json(cs_decoder *d, const char *buf, size_t len,
                                            int64_t fallback_ts_ms, cs_decoded *out,
                                            const int padded, const int predict)
{
    const cs_decode_plan *pl = d->plan;
    /* out->f: cleared here on the paths that return before resolve(), by resolve() itself on
     * a complete scan (each field it has no hit for), not first for every message */
    out->ts_ms = fallback_ts_ms;
    out->ts_from_msg = 0;
    out->idf = 0;
    cs_invalid fail;

    if (len > (pl->max_bytes < d->cap ? pl->max_bytes : d->cap)) {
        fail = CS_INV_TOO_LARGE;
        goto failed;
    }
    if (UNLIKELY(pl->tsv)) {
        clear_fields(pl, out);
        return decode_tsv(d, pl, buf, len, fallback_ts_ms, out);
    }

    /* the message, then NUL sentinels: the caller's buffer when it has them (cs_decode_padded),
     * else the decoder's copy */
    const uint8_t *base;
    if (padded) {
        base = (const uint8_t *)buf;
    } else {
        uint8_t *const copy = d->copy;
        if (len)
            memcpy(copy, buf, len);
        memset(copy + len, 0, PAD);
        base = copy;
    }

    if (UNLIKELY(++d->gen == 0)) {
        memset(d->seen, 0, sizeof d->seen);
        d->gen = 1;
    }
    const uint32_t gen = d->gen;
    uint32_t *const seen = d->seen;
    uint32_t *const stk = d->stack;
    const int maxdepth = pl->max_depth;
    const tnode *const nodes = pl->nodes;
#ifdef __SSE2__
    const hslot *const htab = pl->hash;
    const uint32_t hmask = pl->hmask, hshift = pl->hshift, hperfect = pl->hperfect;
    const uint64_t hmul = pl->hmul;
#endif
    hit *const hits = d->hits;
    const ttarget *const targets = pl->targets;
    hit *hp = hits; /* the next hit's slot (a node hits once per message: MAX_HITS at most) */
    uint8_t best[CS_MAX_FIELDS]; /* bid(): per field, the winning priority (0xFF: none) */
    hit *win[CS_MAX_FIELDS];     /* and its hit */
    memset(best, 0xFF, sizeof best);
    int depth = 0;        /* containers open, including cur */
    /* the innermost open container: trie node or STK_NONE, | STK_ARR; STK_TOP at the top
     * level (depth 0): not a trie object, so `after` may test for one first */
    uint32_t cur = STK_TOP;
#ifdef __SSE2__
    if (predict && UNLIKELY(d->pred_build != pl->build_id)) {
        /* another plan, or this one rebuilt (cs_decode_plan_add_field and the like change the
         * trie under a decoder made before): node ids and children changed */
        pred_reset(d);
        d->pred_build = pl->build_id;
    }
    kpred *const pred = d->pred;
    kpred **const pstk = d->pstack;
    kpred *pe = pred; /* the prediction context of the next key in cur */
    /* the score, in a register while the message is scanned (stored back at done and bad; a
     * message given up as too deep leaves it as it was) */
    int32_t sc = d->pred_score;
    if (predict && sc > PRED_SCORE_MAX)
        sc = PRED_SCORE_MAX;
#define PRED_SCORE_KEEP() (predict ? (void)(d->pred_score = sc) : (void)0)
#define PUSH_PC() (predict ? (void)(pstk[depth] = pe) : (void)0)
#define POP_PC() (predict ? (void)(pe = pstk[depth]) : (void)0)
#else
#define PUSH_PC() ((void)0)
#define POP_PC() ((void)0)
#define PRED_SCORE_KEEP() ((void)0)
#endif
    uint32_t vnode;       /* trie node of the value about to be scanned, or NONE */
    unsigned c;

    const uint8_t *p = base;
    /* a UTF-8 byte order mark is ignored (RFC 8259 §8.1 allows it; cJSON does the same) */
    if (len >= 3 && p[0] == 0xEF && p[1] == 0xBB && p[2] == 0xBF)
        p += 3;
    SKIP_WS();
    const int top_object = *p == '{';
    if (!top_object) {
        /* a top-level scalar or array: validate it all the same (not_json / too_deep first) */
        vnode = NONE;
        goto value;
    }
    vnode = ROOT;

value: /* *p is the first byte of a value (or garbage) */
    c = *p;
    if (c == '"') {
        const uint8_t *s = p + 1, *q;
        int esc = 0;
#ifdef __SSE2__
        /* The first 32 bytes inline, then scan_string: a value of 16 to 31 bytes (a timestamp,
         * a url, a message id) is common, and the call cost more than the scan (callgrind,
         * issue 18: ~50 instructions a call, 2.8 calls per event of bench_core). The second
         * load is in bounds as scan_string's are: no stop byte (NUL included) in s[0..15], so
         * the message goes on to s[15] at least, and PAD NULs follow it. */
        unsigned m = stopmask(load16(s));
        const uint8_t *s2 = s;
        if (UNLIKELY(!m)) {
            s2 = s + 16;
            m = stopmask(load16(s2));
        }
        if (LIKELY(m)) {
            q = s2 + __builtin_ctz(m);
            if (UNLIKELY(*q != '"'))
                q = scan_string(q, &esc);
        } else {
            q = scan_string(s2 + 16, &esc);
        }
#else
        q = scan_string(s, &esc);
#endif
        if (UNLIKELY(!q))
            goto bad;
        if (UNLIKELY(vnode != NONE) && q != s)
            HIT(s, q - s, VK_STR, esc);
        p = q + 1;
        goto after;
    }
    if (c == '{') {
        if (UNLIKELY(depth >= maxdepth)) {
            fail = CS_INV_TOO_DEEP;
            goto failed;
        }
        PUSH_PC();
        stk[depth++] = cur;
        cur = (vnode != NONE && nodes[vnode].nchildren) ? vnode : STK_NONE;
#ifdef __SSE2__
        if (predict) {
            pe = &pred[pred_first(cur)];
            if (cur != STK_NONE)
                FRAME_TRY(1);
        }
#endif
        p++;
        if (LIKELY(*p == '"'))
            goto key;
        SKIP_WS();
        if (*p == '}') {
            p++;
            goto pop;
        }
        goto key;
    }
    switch (c) {
    case '[':
        if (UNLIKELY(depth >= maxdepth)) {
            fail = CS_INV_TOO_DEEP;
            goto failed;
        }
        PUSH_PC();
        stk[depth++] = cur;
        cur = STK_ARR | STK_NONE;
        p++;
        SKIP_WS();
        if (*p == ']') {
            p++;
            goto pop;
        }
        vnode = NONE;
        goto value;
    case 't':
        if (memcmp(p, "true", 4) != 0)
            goto bad;
        if (vnode != NONE)
            HIT(p, 4, VK_BOOL, 0);
        p += 4;
        goto after;
    case 'f':
        if (memcmp(p, "false", 5) != 0)
            goto bad;
        if (vnode != NONE)
            HIT(p, 5, VK_BOOL, 0);
        p += 5;
        goto after;
    case 'n':
        if (memcmp(p, "null", 4) != 0)
            goto bad;
        p += 4;
        goto after;
    case '-': case '0': case '1': case '2': case '3': case '4': case '5': case '6': case '7':
    case '8': case '9': {
        /* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? ; the NUL sentinel ends every loop */
        const uint8_t *q = p;
        unsigned vk = VK_INT;
        if (*q == '-')
            q++;
        if (*q == '0') {
            q++;
        } else if ((unsigned)(*q - '1') <= 8) {
            q++;
            while ((unsigned)(*q - '0') <= 9)
                q++;
        } else {
            goto bad;
        }
        if (*q == '.') {
            vk = VK_FLOAT;
            q++;
            if ((unsigned)(*q - '0') > 9)
                goto bad;
            while ((unsigned)(*q - '0') <= 9)
                q++;
        }
        if ((*q | 0x20) == 'e') {
            vk = VK_FLOAT;
            q++;
            if (*q == '+' || *q == '-')
                q++;
            if ((unsigned)(*q - '0') > 9)
                goto bad;
            while ((unsigned)(*q - '0') <= 9)
                q++;
        }
        if (vnode != NONE)
            HIT(p, q - p, vk, 0);
        p = q;
        goto after;
    }
    default:
        goto bad;
    }

pop: /* the container cur was just closed; p is after its closing bracket */
    if (UNLIKELY(--depth == 0))
        goto done;
    cur = stk[depth];
    POP_PC();
    /* fall through */
after: /* a value ended at p, inside container cur (depth >= 1), or at the top level */
#ifdef __SSE2__
    /* a trie object (not STK_NONE, not an array: STK_ARR, not STK_TOP), hence depth >= 1 */
    if (predict && cur < STK_NONE)
        FRAME_TRY(0);
#endif
    if (UNLIKELY(cur == STK_TOP)) /* depth == 0 */
        goto done;
    c = *p;
    if (UNLIKELY(c <= ' ')) {
        SKIP_WS();
        c = *p;
    }
    if (LIKELY(c == ',')) {
        p++;
        if (!(cur & STK_ARR)) {
            if (LIKELY(*p == '"'))
                goto key;
            SKIP_WS();
            goto key;
        }
        if (UNLIKELY(*p <= ' '))
            SKIP_WS();
        vnode = NONE;
        goto value;
    }
    if (c == ((cur & STK_ARR) ? ']' : '}')) {
        p++;
        goto pop;
    }
    goto bad;

key: { /* at the opening quote of a key in object cur (or garbage) */
    if (UNLIKELY(*p != '"'))
        goto bad;
    const uint8_t *s = p + 1, *q;
    uint32_t child = NONE;
#ifdef __SSE2__
    const __m128i x = load16(s);
    if (predict && cur != STK_NONE) { /* the predicted key (see kpred) */
        const kpred *pk = pe;
        if (pk->parent == cur) {
            const unsigned want = (1u << pk->len) - 1;
            const unsigned eq = (unsigned)_mm_movemask_epi8(
                _mm_cmpeq_epi8(x, _mm_load_si128((const __m128i *)(const void *)pk->key)));
            if ((eq & want) == want && s[pk->len] == '"') {
                q = s + pk->len;
                child = pk->child;
                pe = pk->next;
                sc += 3;
                goto key_known;
            }
        }
    }
    const unsigned m = stopmask(x);
    const unsigned n = m ? (unsigned)__builtin_ctz(m) : 16;
    /* n == 16 (no stop byte in the first 16) and s[16] == '"': a key of exactly 16 bytes,
     * which the full-width mask handles too */
    if (LIKELY(s[n] == '"')) {
        q = s + n;
        if (cur != STK_NONE && n) {
            const __m128i xk = _mm_and_si128(x, load16(ones_zeros + 16 - n));
            uint32_t nctx;
            child = trie_lookup_short(htab, hmask, hshift, hmul, hperfect, cur, xk, n, &nctx);
            if (predict) {
                kpred *pw = pe; /* what follows in this context from now on */
                _mm_store_si128((__m128i *)(void *)pw->key, xk);
                pw->parent = cur;
                pw->child = child;
                pw->len = n;
                pw->next = pe = &pred[nctx];
                /* p[-1] is in the message (a key follows '{', ',' or whitespace), and the load
                 * reads p[-1 .. 14], short of s[15], which x was loaded to */
                if (n <= 12 && s[n + 1] == ':' && (p[-1] == ',' || p[-1] == '{')) {
                    _mm_store_si128((__m128i *)(void *)pw->frame,
                                    _mm_and_si128(load16(p - 1), load16(ones_zeros + 12 - n)));
                    pw->frame[0] = ','; /* for a first key too: see kpred's frame */
                    pw->fmask = (1u << (n + 4)) - 1;
                } else {
                    pw->fmask = FRAME_NONE;
                }
                sc -= 4;
            }
        }
    } else
#endif
    {
        int esc = 0;
        q = scan_string(s, &esc);
        if (UNLIKELY(!q))
            goto bad;
        if (cur != STK_NONE)
            child = key_lookup_slow(d, pl, cur, s, (size_t)(q - s), esc);
    }
#ifdef __SSE2__
key_known:
#endif
    KEY_NODE(child); /* a second occurrence is skipped */
    p = q + 1;
    if (UNLIKELY(*p != ':')) {
        SKIP_WS();
        if (*p != ':')
            goto bad;
    }
    p++;
    if (UNLIKELY(*p <= ' '))
        SKIP_WS();
    goto value;
}

done:
    PRED_SCORE_KEEP();
    SKIP_WS();
    if (p != base + len)
        goto bad;
    if (!top_object) {
        fail = CS_INV_NOT_OBJECT;
        goto failed;
    }
    resolve(d, pl, out, best, win, base, buf);
    if (UNLIKELY(pl->person_field))
        identity_ids(pl, out);
    if (out->f[CS_F_CUSTOMER].len == 0)
        return CS_INV_NO_CUSTOMER;
    if (out->f[CS_F_EVENT].len == 0)
        return CS_INV_NO_EVENT;
    return finish_time(d, pl, out, fallback_ts_ms, 0);

bad:
    PRED_SCORE_KEEP();
    fail = CS_INV_NOT_JSON;
failed:
    clear_fields(pl, out);
    return fail;
}

#undef FRAME_TRY
#undef KEY_NODE
#undef PUSH_PC
#undef POP_PC
#undef PRED_SCORE_KEEP

/* Whether this message is scanned by the predicting copy (kpred): while the score is not below
 * zero, and then in one message of PRED_PROBE, which re-learns and re-scores. */
static inline int pred_use(cs_decoder *d)
{
#ifdef __SSE2__
    if (PRED_ALWAYS || LIKELY(d->pred_score >= 0))
        return 1;
    if (d->pred_score < -PRED_SCORE_MAX)
        d->pred_score = -PRED_SCORE_MAX;
    return (++d->pred_probe & (PRED_PROBE - 1)) == 0;
#else
    (void)d;
    return 0;
#endif
}

cs_invalid cs_decode(cs_decoder *d, const char *buf, size_t len, int64_t fallback_ts_ms,
                     cs_decoded *out)
{
    return pred_use(d) ? decode_json(d, buf, len, fallback_ts_ms, out, 0, 1)
                       : decode_json(d, buf, len, fallback_ts_ms, out, 0, 0);
}

cs_invalid cs_decode_padded(cs_decoder *d, const char *buf, size_t len, int64_t fallback_ts_ms,
                            cs_decoded *out)
{
    return pred_use(d) ? decode_json(d, buf, len, fallback_ts_ms, out, 1, 1)
                       : decode_json(d, buf, len, fallback_ts_ms, out, 1, 0);
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

/* RFC 3339 in two parts, so that the decoder can keep the first (rfc3339_cached).
 * rfc3339_minute: bytes 0..15, "YYYY-MM-DDTHH:MM", checked (separators, digits, a real date,
 * hour and minute in range) into seconds since the epoch of that minute, UTC before the offset;
 * -1 if not valid. Nothing in bytes 16.. can make a valid prefix invalid or change its value. */
static inline int rfc3339_minute(const unsigned char *s, int64_t *min_s)
{
    static const unsigned char mdays[13] = {0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    /* "YYYY-MM-" "DDTHH:MM": check the fixed separators, then all 12 digits at once (SWAR:
     * separators replaced by '0', a byte b is a digit iff b - '0' and b + 0x46 both keep the
     * top bit clear; a borrow or carry between bytes implies some byte failed). */
    uint64_t a, b;
    memcpy(&a, s, 8);
    memcpy(&b, s + 8, 8);
    const uint64_t asep = 0xFF0000FF00000000u, bsep = 0x0000FF0000FF0000u; /* bytes 4,7 / 2,5 */
    if ((a & asep) != 0x2D00002D00000000u || (b & 0x0000FF0000000000u) != 0x00003A0000000000u)
        return -1;
    const unsigned sep = s[10];
    if (sep != 'T' && sep != 't' && sep != ' ')
        return -1;
    const uint64_t zeros = 0x3030303030303030u;
    const uint64_t da = (a & ~asep) | (zeros & asep), db = (b & ~bsep) | (zeros & bsep);
    const uint64_t hi8 = 0x8080808080808080u;
    if ((((da - zeros) | (da + 0x4646464646464646u) | da) & hi8) ||
        (((db - zeros) | (db + 0x4646464646464646u) | db) & hi8))
        return -1;
    const uint64_t va = da - zeros, vb = db - zeros;
#define BY(v, i) ((unsigned)((v) >> (8 * (i))) & 0xFFu)
    const unsigned year = BY(va, 0) * 1000 + BY(va, 1) * 100 + BY(va, 2) * 10 + BY(va, 3);
    const unsigned mo = BY(va, 5) * 10 + BY(va, 6), da_ = BY(vb, 0) * 10 + BY(vb, 1);
    const unsigned hh = BY(vb, 3) * 10 + BY(vb, 4), mi = BY(vb, 6) * 10 + BY(vb, 7);
#undef BY
    if (mo - 1 > 11 || da_ == 0 || hh > 23 || mi > 59)
        return -1;
    if (da_ > mdays[mo] &&
        !(mo == 2 && da_ == 29 && (year % 4 == 0 && (year % 100 != 0 || year % 400 == 0))))
        return -1;
    *min_s = days_from_civil(year, mo, da_) * 86400 + (int64_t)(hh * 3600 + mi * 60);
    return 0;
}

/* rfc3339_rest: bytes 16.. (":SS", an optional fraction, the offset) of a string of len >= 20
 * whose first 16 bytes rfc3339_minute read as min_s; -1 if not valid. Always inlined: GCC kept
 * it a call from rfc3339_cached (~26 instructions a time; callgrind, issue 18, second pass). */
static ALWAYS_INLINE int rfc3339_rest(const unsigned char *s, size_t len, int64_t min_s, int64_t *ms)
{
#define D(i) ((unsigned)(s[i] - '0'))
    if (s[16] != ':' || D(17) > 9 || D(18) > 9)
        return -1;
    unsigned ss = D(17) * 10 + D(18);
    size_t i = 19;
    unsigned frac = 0;
    if (s[i] == '.' && len >= 24 && D(20) <= 9 && D(21) <= 9 && D(22) <= 9 && D(23) > 9) {
        /* exactly 3 digits, the common spelling: what the loop below finds, without it (a loop
         * of ~24 instructions a message; callgrind, issue 18) */
        frac = D(20) * 100 + D(21) * 10 + D(22);
        i = 23;
    } else if (s[i] == '.') {
        /* any number of digits (at least one); truncated to milliseconds */
        size_t f0 = ++i;
        while (i < len && D(i) <= 9)
            i++;
        size_t nd = i - f0;
        if (nd == 0)
            return -1;
        frac = D(f0) * 100;
        if (nd > 1)
            frac += D(f0 + 1) * 10;
        if (nd > 2)
            frac += D(f0 + 2);
    }
    int64_t off = 0;
    if (i >= len)
        return -1;
    if ((s[i] | 0x20) == 'z') {
        i++;
    } else if (s[i] == '+' || s[i] == '-') {
        if (len - i != 6 || D(i + 1) > 9 || D(i + 2) > 9 || s[i + 3] != ':' || D(i + 4) > 9 ||
            D(i + 5) > 9)
            return -1;
        unsigned oh = D(i + 1) * 10 + D(i + 2), om = D(i + 4) * 10 + D(i + 5);
        if (oh > 23 || om > 59)
            return -1;
        off = (int64_t)(oh * 3600 + om * 60);
        if (s[i] == '-')
            off = -off;
        i += 6;
    } else {
        return -1;
    }
#undef D
    if (i != len || ss > 60)
        return -1;
    if (ss == 60) { /* leap second: the last millisecond of second 59 (no leap-second table) */
        ss = 59;
        frac = 999;
    }
    *ms = (min_s + (int64_t)ss - off) * 1000 + (int64_t)frac;
    return 0;
}

int cs_parse_rfc3339(const char *str, size_t len, int64_t *ms)
{
    const unsigned char *s = (const unsigned char *)str;
    int64_t min_s;
    if (!s || len < 20) /* YYYY-MM-DDTHH:MM:SSZ */
        return -1;
    if (rfc3339_minute(s, &min_s) != 0)
        return -1;
    return rfc3339_rest(s, len, min_s, ms);
}

/* cs_parse_rfc3339 with the decoder's recent valid "YYYY-MM-DDTHH:MM"s kept: the times of a
 * partition's messages mostly share their minute with a message shortly before, and then only
 * bytes 16.. are read (callgrind, issue 18: ~225 instructions a time before). The slot is
 * picked by the hour's and the minute's last digits, so the minute before (an event a little
 * out of order) and the same minute in another UTC offset mostly keep their own slots. len >=
 * 20. The initial keys (all zero bytes) are not a valid prefix, so they never match. */
static ALWAYS_INLINE int rfc3339_cached(cs_decoder *d, const char *str, size_t len, int64_t *ms)
{
    const unsigned char *s = (const unsigned char *)str;
    uint64_t a, b;
    memcpy(&a, s, 8);
    memcpy(&b, s + 8, 8);
    const unsigned w = (unsigned)((b >> 32) + (b >> 56)) & (TS_WAYS - 1); /* s[12] + s[15] */
    if (UNLIKELY(((a ^ d->ts[w].key[0]) | (b ^ d->ts[w].key[1])) != 0)) {
        int64_t min_s;
        if (rfc3339_minute(s, &min_s) != 0)
            return -1;
        d->ts[w].key[0] = a;
        d->ts[w].key[1] = b;
        d->ts[w].min_s = min_s;
    }
    return rfc3339_rest(s, len, d->ts[w].min_s, ms);
}

int cs_parse_snowplow_ts(const char *s, size_t len, int64_t *ms)
{
    /* "YYYY-MM-DD hh:mm:ss[.f+]" in UTC: the RFC 3339 reader on the same text with a 'Z' (the
     * fraction cut to its first 3 digits once the rest are checked to be digits) */
    char b[32];
    if (!s || len < 19 || len > 19 + 1 + 4096)
        return -1;
    size_t n = 19;
    memcpy(b, s, 19);
    if (len > 19) {
        if (s[19] != '.' || len == 20)
            return -1;
        for (size_t i = 20; i < len; i++)
            if ((unsigned)(s[i] - '0') > 9)
                return -1;
        size_t nf = len - 20 < 3 ? len - 20 : 3;
        b[n++] = '.';
        memcpy(b + n, s + 20, nf);
        n += nf;
    }
    b[n++] = 'Z';
    return cs_parse_rfc3339(b, n, ms);
}
