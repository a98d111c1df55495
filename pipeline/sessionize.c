/* sessionize.c — see sessionize.h for the contract and the layout. */
#include "sessionize.h"

#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <xxhash.h>

#define CHUNK_BITS 12
#define CHUNK (1u << CHUNK_BITS)
#define NIL 0u /* indexes are 1-based; 0 is "none" */

enum { F_LIVE = 1, F_DEAD = 2 }; /* DEAD: ended, still linked in the wheel until its bucket fires */

/* A session entry is 32 bytes, as before SPEC §4.1 added `reach` (the time the session reached
 * its current stage, which a transition's duration counts from): the 4 dimension ids (at most
 * CS_MAX_DIM_VALUES + 1 = 4097, 13 bits each), the stage (0..32, 6 bits) and the flags (2 bits)
 * share one 64-bit word `pk`. Rejected: a 40-byte entry (+25 % per open session, and every
 * other entry would straddle two cache lines); `reach` in 24 bits (4.6 hours: a session of the
 * default max_duration of 24 h needs 27); event times as 32-bit offsets from a per-table epoch
 * (49 days of event time per table, where the decoder accepts any int64). */
typedef struct cs_sess {
    int64_t last;     /* latest event time in the session */
    uint32_t span;    /* last - start in ms, saturating (only reachable with max_duration 0) */
    uint32_t wnext;   /* wheel link, or free-list link */
    uint32_t cust;    /* owning customer */
    uint32_t reach;   /* t_a - start in ms: when the session reached its current stage (0 while it
                         has none; start <= t_a <= last, so reach <= span; saturating like span) */
    uint64_t pk;      /* bits 0-51: dim[d] at 13 d; 52-57: stage (0 none, s + 1); 58-59: flags;
                         60: every dimension has its value (the per-event loop is skipped) */
} cs_sess;

#define DIM_BITS 13
#define DIM_MASK ((1u << DIM_BITS) - 1)
#define PK_STAGE_SHIFT 52
#define PK_FLAGS_SHIFT 58
#define PK_DIMS_DONE ((uint64_t)1 << 60)
_Static_assert(CS_MAX_DIM_VALUES + 2 <= (1u << DIM_BITS), "dimension ids must fit 13 bits");
_Static_assert(CS_MAX_DIMS * DIM_BITS <= PK_STAGE_SHIFT, "dimension ids overlap the stage");
_Static_assert(CS_MAX_STAGES < 64, "the stage must fit 6 bits");

static inline uint16_t sess_dim(const cs_sess *s, int d)
{
    return (uint16_t)((s->pk >> (DIM_BITS * d)) & DIM_MASK);
}

static inline void sess_set_dim(cs_sess *s, int d, uint16_t id)
{
    s->pk = (s->pk & ~((uint64_t)DIM_MASK << (DIM_BITS * d))) | ((uint64_t)id << (DIM_BITS * d));
}

static inline void sess_dims(const cs_sess *s, uint16_t out[CS_MAX_DIMS])
{
    for (int d = 0; d < CS_MAX_DIMS; d++)
        out[d] = sess_dim(s, d);
}

static inline int sess_stage(const cs_sess *s)
{
    return (int)((s->pk >> PK_STAGE_SHIFT) & 0x3f);
}

static inline void sess_set_stage(cs_sess *s, int stage)
{
    s->pk = (s->pk & ~((uint64_t)0x3f << PK_STAGE_SHIFT)) | ((uint64_t)stage << PK_STAGE_SHIFT);
}

static inline int sess_flags(const cs_sess *s)
{
    return (int)((s->pk >> PK_FLAGS_SHIFT) & 3);
}

static inline void sess_set_flags(cs_sess *s, int f)
{
    s->pk = (s->pk & ~((uint64_t)3 << PK_FLAGS_SHIFT)) | ((uint64_t)f << PK_FLAGS_SHIFT);
}

/* A customer entry is 32 bytes, as before SPEC §4.1 added C.first (the first event of the
 * remembered journey, which customer_time_to counts from). C.first is kept as `first` =
 * last - C.first in 40 bits (first_lo, first_hi), saturating at CS_FIRST_OFF_MAX (34.8 years:
 * every duration past the last bucket, 90 days, lands in "inf" anyway, so the saturation never
 * changes a count); last - C.first >= 0 because last is the maximum event time, including the
 * event that began the journey. The room comes from the hash check (h2: 16 bits, was 32: with
 * the 64 of h, 80 bits tell customers apart, so two are confused with probability ~n^2/2^81,
 * 2^-33 at 16M customers in one partition) and from the stage sharing a byte with the live
 * flag. Rejected: a 40-byte entry (+8 B per customer, 25 %, and most entries straddling two
 * cache lines on the per-event look-up); a 36-byte one (4-byte aligned int64s, same straddling);
 * C.first in seconds (customer_time_to must be exact to the millisecond at bucket bounds). */
typedef struct cs_cust {
    uint64_t h;        /* XXH3-128 low half: the index key */
    int64_t last;      /* latest event time of the customer */
    uint32_t sess;     /* open session, NIL if none */
    uint32_t wnext;    /* wheel link, or free-list link */
    uint32_t first_lo; /* last - C.first, bits 0-31 */
    uint16_t h2;       /* 16 more bits of the hash, compared on look-up */
    uint8_t first_hi;  /* last - C.first, bits 32-39 */
    uint8_t sf;        /* bits 0-5: journey stage (0 = none, s + 1); bit 7: live */
} cs_cust;

#define CUST_LIVE 0x80
#define CUST_NOJ 0x40 /* SPEC §3.1 identity only: a key entry with no customer journey (a device
                         that logged in keeps its entry for its session and its alias's clock;
                         `last` is then the device's latest event) */
#define CUST_STAGE 0x3f

static inline int cust_stage(const cs_cust *c)
{
    return c->sf & CUST_STAGE;
}

static inline void cust_set_stage(cs_cust *c, int stage)
{
    c->sf = (uint8_t)((c->sf & ~CUST_STAGE) | stage);
}

static inline uint64_t cust_first(const cs_cust *c)
{
    return (uint64_t)c->first_hi << 32 | c->first_lo;
}

static inline void cust_set_first(cs_cust *c, uint64_t v)
{
    if (v > CS_FIRST_OFF_MAX)
        v = CS_FIRST_OFF_MAX;
    c->first_lo = (uint32_t)v;
    c->first_hi = (uint8_t)(v >> 32);
}

_Static_assert(sizeof(cs_sess) == 32, "session entry must stay 32 bytes");
_Static_assert(sizeof(cs_cust) == 32, "customer entry must stay 32 bytes");

typedef struct pool {
    char **chunks;
    uint32_t nchunks, cap_chunks;
    uint32_t hw;        /* entries ever handed out (high-water mark) */
    uint32_t free_head; /* 1-based */
    uint32_t live;
    uint32_t esz;
    uint32_t mapped; /* bit c: chunk c came from mmap (c < POOL_MAPPED_CHUNKS) */
} pool;

typedef struct wheel {
    uint32_t *head;
    uint32_t mask;
    int64_t tick_ms;
    int64_t cursor; /* lowest tick not fully processed; INT64_MIN until the first link */
} wheel;

struct cs_pstate {
    cs_session_conf conf;
    int ndims;
    int64_t max_t;
    pool sp, cp;
    wheel sw, cw;
    /* Customer index: open addressing (linear probing, backward-shift deletion), at most 3/4
     * full. A slot is 0 (empty) or tag | id: the entry's 1-based pool id in the bits of id_mask,
     * and in the bits above them the same bits of the low word of its hash (idx_tag). */
    uint32_t *idx;
    uint32_t idx_mask;
    uint32_t idx_n;
    uint32_t id_mask; /* the id's bits of a slot: 2^k - 1, k = 16, 20, .. 32 (idx_put grows it) */
    uint64_t nopen; /* open sessions (pool entries may also be DEAD, awaiting their bucket) */
    /* SPEC §3.1 aliases: device hash -> person hash, open addressing (linear probing,
     * backward-shift deletion), at most 3/4 full; NULL until the first alias. An alias lives
     * as long as its device's key entry: deleted with it (cust_fire) or when an event finds
     * the device past customer_ttl. */
    struct alias_ent *al;
    uint32_t al_mask, al_n;
    /* One bit per key entry (by its pool index): set exactly when the entry's key has an alias,
     * so an event of a device without one (the common case) never probes the alias table.
     * Words past alb_words are 0; grown with the entries that get an alias, never shrunk. */
    uint64_t *alb;
    uint32_t alb_words;
};

/* 24 bytes: device (h, h2) -> person (h, h2). used = 0: empty slot. */
typedef struct alias_ent {
    uint64_t dh, ph;
    uint16_t dh2, ph2;
    uint32_t used;
} alias_ent;
_Static_assert(sizeof(alias_ent) == 24, "an alias slot is 24 bytes");

/* ---- pools ------------------------------------------------------------------------------- */

static inline void *pool_at(const pool *p, uint32_t i)
{
    i--;
    return p->chunks[i >> CHUNK_BITS] + (size_t)(i & (CHUNK - 1)) * p->esz;
}
#define SESS(p, i) ((cs_sess *)pool_at(&(p)->sp, (i)))
#define CUST(p, i) ((cs_cust *)pool_at(&(p)->cp, (i)))

/* A pool's first POOL_MAPPED_CHUNKS chunks (128 KiB each: CHUNK entries of 32 bytes) come
 * straight from the kernel, the rest from malloc. Why: most partitions hold a few hundred open
 * sessions at most, so their pools are one chunk each, touched only as far as they are used, and
 * a process under partition churn allocates and frees them at every assignment. From malloc
 * (glibc raises its mmap threshold past 128 KiB after the first such free), they were carved
 * out of the arenas between small long-lived allocations; the free ones were given back by
 * malloc_trim, but the arenas' free memory grew 27 -> 66 MB over a 20-minute soak and RSS crept
 * +5.2 % with the live heap flat (bench/RESULTS.md "Soak", run 8). An mmapped chunk is all
 * returned by munmap, and its untouched pages never count. Rejected: a lower fixed
 * M_MMAP_THRESHOLD for the whole process (librdkafka's fetch and decompression buffers would
 * then be mapped and faulted afresh at every fetch: issue 18 measured 173k page faults per 4M
 * events that way); every chunk mapped (a partition with millions of sessions would map
 * thousands of regions against vm.max_map_count, 65,530 by default: the first chunks of
 * CS_MAX_PARTITIONS partitions are at most 4,096 x 2 pools x 2 = 16,384 mappings).
 * cs_pstate_mapped_bytes() counts them (clickstage_heap_in_use_bytes adds them to malloc's). */
#if defined(__SANITIZE_ADDRESS__)
#define CS_POOL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CS_POOL_ASAN 1
#endif
#endif
#ifdef CS_POOL_ASAN
#define POOL_MAPPED_CHUNKS 0 /* under ASan from malloc: its redzones catch an entry overrun */
#else
#define POOL_MAPPED_CHUNKS 2
#endif
_Static_assert(POOL_MAPPED_CHUNKS <= 32, "pool.mapped has a bit per mapped chunk");

/* relaxed: a statistic, summed by any thread, no data hangs off it */
static _Atomic uint64_t mapped_bytes;

uint64_t cs_pstate_mapped_bytes(void)
{
    return atomic_load_explicit(&mapped_bytes, memory_order_relaxed);
}

static char *chunk_alloc(pool *p, size_t bytes)
{
    uint32_t nth = p->nchunks;
    if ((int)nth >= POOL_MAPPED_CHUNKS) /* int: POOL_MAPPED_CHUNKS may be 0 */
        return malloc(bytes);
    void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return malloc(bytes); /* e.g. vm.max_map_count reached: the heap still works */
    p->mapped |= 1u << nth;
    atomic_fetch_add_explicit(&mapped_bytes, bytes, memory_order_relaxed);
    return m;
}

static void chunk_free(const pool *p, uint32_t nth, char *c, size_t bytes)
{
    if (nth < 32 && (p->mapped >> nth & 1u)) { /* only mapped chunks have their bit */
        munmap(c, bytes);
        atomic_fetch_sub_explicit(&mapped_bytes, bytes, memory_order_relaxed);
    } else {
        free(c);
    }
}

/* One more chunk for pool_alloc: 0, or -1 when out of memory. */
static __attribute__((noinline)) int pool_grow(pool *p)
{
    if (p->nchunks == p->cap_chunks) {
        uint32_t nc = p->cap_chunks ? p->cap_chunks * 2 : 16;
        char **n = realloc(p->chunks, nc * sizeof *n);
        if (!n)
            return -1;
        p->chunks = n;
        p->cap_chunks = nc;
    }
    p->chunks[p->nchunks] = chunk_alloc(p, (size_t)CHUNK * p->esz);
    if (!p->chunks[p->nchunks])
        return -1;
    p->nchunks++;
    return 0;
}

/* Returns a zeroed entry index, or NIL when out of memory. The wnext field of a free entry is
 * the free-list link, so both entry types keep it at the same offset. Inlined, a new chunk out
 * of line (pool_grow): as a call it cost ~40 instructions an entry, with memset a call of its
 * own for the 32 bytes (callgrind, issue 18, second pass). */
static inline __attribute__((always_inline)) uint32_t pool_alloc(pool *p, size_t link_off)
{
    uint32_t i;
    if (p->free_head) {
        i = p->free_head;
        memcpy(&p->free_head, (char *)pool_at(p, i) + link_off, sizeof(uint32_t));
    } else {
        if (p->hw == UINT32_MAX - 1)
            return NIL;
        if ((p->hw >> CHUNK_BITS) == p->nchunks && pool_grow(p) != 0)
            return NIL;
        i = ++p->hw;
    }
    /* both entry types are 32 bytes (asserted above): a constant size is two stores */
    if (p->esz == 32)
        memset(pool_at(p, i), 0, 32);
    else
        memset(pool_at(p, i), 0, p->esz);
    p->live++;
    return i;
}

static void pool_free(pool *p, uint32_t i, size_t link_off)
{
    char *e = pool_at(p, i);
    memset(e, 0, p->esz);
    memcpy(e + link_off, &p->free_head, sizeof(uint32_t));
    p->free_head = i;
    p->live--;
}

static void pool_destroy(pool *p)
{
    for (uint32_t c = 0; c < p->nchunks; c++)
        chunk_free(p, c, p->chunks[c], (size_t)CHUNK * p->esz);
    free(p->chunks);
    memset(p, 0, sizeof *p);
}

/* ---- wheels ------------------------------------------------------------------------------ */

static inline int64_t floordiv(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}

/* A bucket is WHEEL_LANES chains, an entry in chain (id % WHEEL_LANES), walked in turn when the
 * bucket fires. Why: a chain is a walk of dependent loads, each entry a cache miss once the
 * state is bigger than the caches (bench_core --span 240, 1M customers: 8 % of the samples on
 * the load of the next link, 99 % of wheel_advance's), and nothing can be asked for before the
 * link that names it has arrived. With the chains in turn, each one's next entry is prefetched
 * while the others fire, so WHEEL_LANES misses are in flight instead of one. The cost: the heads,
 * (1024 + 512) x 4 x 4 bytes = 24 KiB a partition instead of 6. Rejected: a prefetch of the next
 * link in one chain (measured: the fire between is too short to hide the miss, the stall stays at
 * 80 %); an array of ids per bucket (4..8 bytes more per session and customer, and growth). */
#define WHEEL_LANES 4

static int wheel_init(wheel *w, int64_t horizon_ms, uint32_t nb)
{
    w->head = calloc((size_t)nb * WHEEL_LANES, sizeof *w->head);
    w->mask = nb - 1;
    w->tick_ms = horizon_ms / (nb / 4);
    if (w->tick_ms < 1)
        w->tick_ms = 1;
    w->cursor = INT64_MIN;
    return w->head ? 0 : -1;
}

/* Entry id (its link field wnext) onto the front of its chain in tick's bucket. */
static inline void wheel_push(wheel *w, int64_t tick, uint32_t *wnext, uint32_t id)
{
    uint32_t *h = &w->head[((uint32_t)tick & w->mask) * WHEEL_LANES + id % WHEEL_LANES];
    *wnext = *h;
    *h = id;
}

static inline void wheel_link(wheel *w, uint32_t *wnext, uint32_t id, int64_t deadline)
{
    int64_t tick = floordiv(deadline, w->tick_ms);
    if (w->cursor == INT64_MIN)
        w->cursor = tick;
    else if (tick < w->cursor)
        tick = w->cursor;
    wheel_push(w, tick, wnext, id);
}

/* ---- hashing and the customer index ------------------------------------------------------ */

static inline uint32_t idx_home(const cs_pstate *p, uint64_t h)
{
    return (uint32_t)(h >> 32) & p->idx_mask;
}

/* The tag of hash h in a slot: the low word's bits above id_mask. The home slot takes the high
 * word and h2 is compared in the entry, so the tag is bits no other test uses.
 *
 * Why a tag: without it every slot a probe passes costs a read of the entry it names, and the
 * entries are a random access into tens of MB (1M customers: ~50 MB a worker). At the load of a
 * real index (3/8..3/4) ~1/3 of the look-ups of a known customer do not find it in the home
 * slot, and a new customer passes ~1.5 slots before the empty one; each such read was a cache
 * miss the worker's prefetches could not cover, because they followed the home slot only (perf,
 * bench_core: 64 % of cs_sessionize_hashed's samples on the entry's first load). With a tag of
 * 12..16 bits a probe reads an entry that is not its own once in 4096..65536 slots, and the
 * prefetches follow the same tags to the right entry. Rejected: a 64-bit slot (id + a 32-bit
 * tag), 4..11 more bytes per customer for bits that 12..16 already make useless; a separate
 * tag array, a second cache line per look-up. */
static inline uint32_t idx_tag(const cs_pstate *p, uint64_t h)
{
    return (uint32_t)h & ~p->id_mask;
}

/* The customer entry a non-empty slot names (its id is the slot's bits of id_mask) */
static inline cs_cust *slot_cust(const cs_pstate *p, uint32_t slot)
{
    return CUST(p, slot & p->id_mask);
}

/* From slot *i on, the first slot that is empty or carries `tag`: its id, NIL if empty (*i is
 * left there). It only reads the index; an id is a candidate the caller confirms against its
 * entry (idx_find, which goes on past a wrong one), or only prefetches. */
static inline __attribute__((always_inline)) uint32_t idx_probe(const cs_pstate *p, uint32_t *i,
                                                                uint32_t tag)
{
    for (;; *i = (*i + 1) & p->idx_mask) {
        uint32_t s = p->idx[*i];
        if (s == NIL || (s & ~p->id_mask) == tag)
            return s & p->id_mask;
    }
}

/* Always inlined: a call from cs_sessionize_hashed cost ~25 instructions of the ~55 of a
 * look-up (callgrind, issue 18, second pass). */
static inline __attribute__((always_inline)) uint32_t idx_find(const cs_pstate *p, uint64_t h,
                                                               uint32_t h2, uint32_t *slot)
{
    const uint32_t tag = idx_tag(p, h);
    for (uint32_t i = idx_home(p, h);; i = (i + 1) & p->idx_mask) {
        uint32_t c = idx_probe(p, &i, tag);
        if (c == NIL) {
            *slot = i;
            return NIL;
        }
        const cs_cust *cu = CUST(p, c);
        if (cu->h == h && cu->h2 == (uint16_t)h2) {
            *slot = i;
            return c;
        }
    }
}

/* Every used slot's tag again, for the wider id_mask (the slots stay where they are: the home
 * does not depend on the tag). O(index size), once per 16x more ids, like idx_grow's rehash. */
static __attribute__((noinline)) void idx_retag(cs_pstate *p, uint32_t id_mask)
{
    uint32_t old = p->id_mask;
    p->id_mask = id_mask;
    for (uint32_t i = 0; i <= p->idx_mask; i++) {
        uint32_t c = p->idx[i] & old;
        if (c != NIL)
            p->idx[i] = idx_tag(p, CUST(p, c)->h) | c;
    }
}

/* Customer ci (hash h) into the empty slot idx_find found; the id bits grow first when ci
 * needs more of them (the slot found stays valid: retagging moves no slot). */
static inline void idx_put(cs_pstate *p, uint32_t slot, uint32_t ci, uint64_t h)
{
    if (__builtin_expect(ci > p->id_mask, 0)) {
        uint32_t m = p->id_mask;
        while (ci > m)
            m = (m << 4) | 0xF; /* 0xFFFF .. 0xFFFFFFFF: ci <= UINT32_MAX ends it */
        idx_retag(p, m);
    }
    p->idx[slot] = idx_tag(p, h) | ci;
    p->idx_n++;
}

/* idx_grow's prefetch distance, in slots (~48 entries at the 3/4 load a growth starts at); 16
 * left a third of the stall */
#define GROW_AHEAD 64
static int idx_grow(cs_pstate *p)
{
    uint32_t ncap = (p->idx_mask + 1) * 2;
    uint32_t *n = calloc(ncap, sizeof *n);
    if (!n)
        return -1;
    uint32_t *old = p->idx, ocap = p->idx_mask + 1;
    p->idx = n;
    p->idx_mask = ncap - 1;
    for (uint32_t i = 0; i < ocap; i++) {
        /* The slots are in hash order, so their entries are a random walk of the customer
         * pool, and each entry's hash is a cache miss once the pool outgrows the caches: the
         * entry GROW_AHEAD slots on is asked for now, so that the misses overlap (perf,
         * bench_core with 1M customers: idx_grow's own samples; RESULTS-e2e.md "the
         * detector's slot"). */
        if (i + GROW_AHEAD < ocap && old[i + GROW_AHEAD] != NIL)
            __builtin_prefetch(slot_cust(p, old[i + GROW_AHEAD]));
        if (old[i] == NIL)
            continue;
        uint32_t j = idx_home(p, slot_cust(p, old[i])->h);
        while (n[j] != NIL)
            j = (j + 1) & p->idx_mask;
        n[j] = old[i];
    }
    free(old);
    return 0;
}

/* Backward-shift deletion: no tombstones, so probe lengths never degrade. */
static void idx_delete(cs_pstate *p, uint32_t slot)
{
    uint32_t i = slot;
    for (;;) {
        p->idx[i] = NIL;
        uint32_t j = i;
        for (;;) {
            j = (j + 1) & p->idx_mask;
            if (p->idx[j] == NIL) {
                p->idx_n--;
                return;
            }
            uint32_t home = idx_home(p, slot_cust(p, p->idx[j])->h);
            /* j's entry may move to i if its home is not cyclically in (i, j]. */
            if (((j - home) & p->idx_mask) >= ((j - i) & p->idx_mask))
                break;
        }
        p->idx[i] = p->idx[j];
        i = j;
    }
}

/* ---- SPEC §3.1 aliases ------------------------------------------------------------------- */

static inline uint32_t al_home(const cs_pstate *p, uint64_t dh)
{
    return (uint32_t)(dh >> 20) & p->al_mask;
}

/* The slot of device (dh, dh2), or -1; *free_slot: where it would go. */
static long al_find(const cs_pstate *p, uint64_t dh, uint32_t dh2, uint32_t *free_slot)
{
    if (!p->al)
        return -1;
    for (uint32_t i = al_home(p, dh);; i = (i + 1) & p->al_mask) {
        const alias_ent *e = &p->al[i];
        if (!e->used) {
            if (free_slot)
                *free_slot = i;
            return -1;
        }
        if (e->dh == dh && e->dh2 == (uint16_t)dh2)
            return (long)i;
    }
}

static int al_grow(cs_pstate *p)
{
    uint32_t ncap = p->al ? (p->al_mask + 1) * 2 : 256;
    alias_ent *n = calloc(ncap, sizeof *n);
    if (!n)
        return -1;
    alias_ent *old = p->al;
    uint32_t ocap = old ? p->al_mask + 1 : 0;
    p->al = n;
    p->al_mask = ncap - 1;
    for (uint32_t i = 0; i < ocap; i++) {
        if (!old[i].used)
            continue;
        uint32_t j = al_home(p, old[i].dh);
        while (n[j].used)
            j = (j + 1) & p->al_mask;
        n[j] = old[i];
    }
    free(old);
    return 0;
}

/* Sets alias(d) = p (d has none). 0, or -1 out of memory (the alias is then not kept). */
static int al_put(cs_pstate *p, uint64_t dh, uint32_t dh2, uint64_t ph, uint32_t ph2)
{
    if (!p->al || p->al_n + 1 > (p->al_mask + 1) / 4 * 3)
        if (al_grow(p) != 0)
            return -1;
    uint32_t slot = 0;
    if (al_find(p, dh, dh2, &slot) >= 0)
        return 0;
    alias_ent *e = &p->al[slot];
    e->dh = dh;
    e->dh2 = (uint16_t)dh2;
    e->ph = ph;
    e->ph2 = (uint16_t)ph2;
    e->used = 1;
    p->al_n++;
    return 0;
}

/* Does key entry ci have an alias (the bit above)? */
static inline int alb_get(const cs_pstate *p, uint32_t ci)
{
    uint32_t w = ci >> 6;
    return w < p->alb_words && ((p->alb[w] >> (ci & 63)) & 1);
}

/* Room for entry ci's bit: 0, or -1 out of memory. */
static int alb_reserve(cs_pstate *p, uint32_t ci)
{
    uint32_t w = ci >> 6;
    if (w < p->alb_words)
        return 0;
    uint32_t nw = p->alb_words ? p->alb_words : 64;
    while (nw <= w)
        nw = nw > UINT32_MAX / 2 ? w + 1 : nw * 2;
    uint64_t *n = realloc(p->alb, (size_t)nw * sizeof *n);
    if (!n)
        return -1;
    memset(n + p->alb_words, 0, (size_t)(nw - p->alb_words) * sizeof *n);
    p->alb = n;
    p->alb_words = nw;
    return 0;
}

/* Sets or clears entry ci's bit (set: alb_reserve(ci) has succeeded). */
static inline void alb_put(cs_pstate *p, uint32_t ci, int on)
{
    uint32_t w = ci >> 6;
    if (on)
        p->alb[w] |= (uint64_t)1 << (ci & 63);
    else if (w < p->alb_words)
        p->alb[w] &= ~((uint64_t)1 << (ci & 63));
}

static void al_del(cs_pstate *p, uint64_t dh, uint32_t dh2)
{
    long f = al_find(p, dh, dh2, NULL);
    if (f < 0)
        return;
    uint32_t i = (uint32_t)f;
    for (;;) {
        p->al[i].used = 0;
        uint32_t j = i;
        for (;;) {
            j = (j + 1) & p->al_mask;
            if (!p->al[j].used) {
                p->al_n--;
                return;
            }
            uint32_t home = al_home(p, p->al[j].dh);
            if (((j - home) & p->al_mask) >= ((j - i) & p->al_mask))
                break;
        }
        p->al[i] = p->al[j];
        i = j;
    }
}

/* ---- life cycle -------------------------------------------------------------------------- */

cs_pstate *cs_pstate_new(const cs_session_conf *conf, int ndims)
{
    cs_pstate *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->conf = *conf;
    p->ndims = ndims;
    p->max_t = INT64_MIN;
    p->sp.esz = sizeof(cs_sess);
    p->cp.esz = sizeof(cs_cust);
    p->idx_mask = 1024 - 1;
    p->id_mask = 0xFFFF;
    p->idx = calloc(1024, sizeof *p->idx);
    /* Session deadlines lie within gap of the newest event, customer ones within ttl. */
    if (!p->idx || wheel_init(&p->sw, conf->gap_ms, 1024) ||
        wheel_init(&p->cw, conf->customer_ttl_ms, 512)) {
        cs_pstate_destroy(p);
        return NULL;
    }
    return p;
}

void cs_pstate_destroy(cs_pstate *p)
{
    if (!p)
        return;
    pool_destroy(&p->sp);
    pool_destroy(&p->cp);
    free(p->sw.head);
    free(p->cw.head);
    free(p->idx);
    free(p->al);
    free(p->alb);
    free(p);
}

void cs_pstate_set_conf(cs_pstate *p, const cs_session_conf *conf)
{
    p->conf = *conf;
}

int64_t cs_pstate_max_time(const cs_pstate *p)
{
    return p->max_t;
}

/* ---- session semantics (SPEC §3) --------------------------------------------------------- */

static inline int64_t sat_add(int64_t a, int64_t b)
{
    int64_t r;
    return __builtin_add_overflow(a, b, &r) ? (b > 0 ? INT64_MAX : INT64_MIN) : r;
}

static inline int64_t sess_start(const cs_sess *s)
{
    return s->last - (int64_t)s->span;
}

/* deadline = min(last + gap, start + max_duration); reason max_duration only if strictly less. */
static inline int64_t sess_deadline(const cs_pstate *p, const cs_sess *s, int *reason)
{
    int64_t by_gap = sat_add(s->last, p->conf.gap_ms);
    if (p->conf.max_duration_ms > 0) {
        int64_t by_max = sat_add(sess_start(s), p->conf.max_duration_ms);
        if (by_max < by_gap) {
            *reason = CS_END_MAX_DURATION;
            return by_max;
        }
    }
    *reason = CS_END_GAP;
    return by_gap;
}

static void count_end(cs_pstate *p, cs_sessctx *c, cs_sess *s, int reason)
{
    p->nopen--;
    uint16_t dim[CS_MAX_DIMS];
    sess_dims(s, dim);
    cs_agg_session_end(c->agg, sess_stage(s), dim, p->ndims, reason);
}

/* Ends an open session that is still linked in the wheel: it becomes DEAD and is freed when its
 * bucket fires (a singly linked wheel cannot unlink from the middle). */
static void end_in_place(cs_pstate *p, cs_sessctx *c, cs_cust *cu, cs_sess *s, int reason)
{
    count_end(p, c, s, reason);
    sess_set_flags(s, F_DEAD);
    cu->sess = NIL;
}

static void count_start(cs_pstate *p, cs_sessctx *c, cs_sess *s)
{
    p->nopen++;
    cs_agg_session_start(c->agg, p->ndims);
}

int cs_sessionize(cs_pstate *p, cs_sessctx *c, const cs_decoded *ev)
{
    uint64_t h, ph = 0;
    uint32_t h2, ph2 = 0;
    cs_customer_hash(ev->f[CS_F_CUSTOMER].p, ev->f[CS_F_CUSTOMER].len, &h, &h2);
    if (ev->idf == (CS_ID_DEVICE | CS_ID_PERSON)) {
        const cs_sv *pv = &ev->f[cs_decode_plan_person_field(cs_rules_plan(c->rs))];
        cs_customer_hash(pv->p, pv->len, &ph, &ph2);
    }
    return cs_sessionize_hashed(p, c, ev, h, h2, ph, ph2);
}

void cs_pstate_prefetch_index(const cs_pstate *p, uint64_t h)
{
    __builtin_prefetch(&p->idx[idx_home(p, h)]);
}

/* The entry h's tag names in h's chain of the index (NIL: none), its customer entry prefetched;
 * the session variant prefetches instead the open session of that entry when the entry is h's
 * own. They return the entry so that the _dev prefetches below take their alias step from it:
 * one walk of the chain each, the code not repeated. The chain's slots are read from the index
 * line cs_pstate_prefetch_index asked for. always_inline is needed: as plain static
 * inline functions, GCC 12 -O2 found them pure (a prefetch is no side effect to it) and deleted
 * the calls whose result is unused, so cs_pstate_prefetch_session and _customer compiled to a
 * bare `ret` (no prefetch left; callgrind showed fewer instructions, the cache misses return). */
static inline __attribute__((always_inline)) uint32_t prefetch_home_customer(const cs_pstate *p, uint64_t h)
{
    uint32_t i = idx_home(p, h);
    uint32_t c = idx_probe(p, &i, idx_tag(p, h));
    if (c != NIL)
        __builtin_prefetch(pool_at(&p->cp, c));
    return c;
}

static inline __attribute__((always_inline)) uint32_t prefetch_home_session(const cs_pstate *p, uint64_t h)
{
    uint32_t i = idx_home(p, h);
    uint32_t c = idx_probe(p, &i, idx_tag(p, h));
    if (c != NIL) {
        const cs_cust *cu = CUST(p, c);
        if (cu->h == h && cu->sess != NIL)
            __builtin_prefetch(pool_at(&p->sp, cu->sess));
    }
    return c;
}

int cs_pstate_prefetch_customer(const cs_pstate *p, uint64_t h)
{
    return prefetch_home_customer(p, h) != NIL;
}

void cs_pstate_prefetch_session(const cs_pstate *p, uint64_t h, uint32_t h2)
{
    prefetch_home_session(p, h);
}

/* ---- SPEC §3.1 identity: key entries, aliases, merges (docs/identity.md) ------------------ */

/* A new key entry for (h, h2) with no journey, its clock at t, linked in the customer wheel.
 * NIL when out of memory. Invalidates index slots found before. */
static uint32_t key_new(cs_pstate *p, uint64_t h, uint32_t h2, int64_t t)
{
    uint32_t slot;
    if (p->idx_n + 1 > (p->idx_mask + 1) / 4 * 3)
        idx_grow(p);
    idx_find(p, h, h2, &slot);
    uint32_t ci = pool_alloc(&p->cp, offsetof(cs_cust, wnext));
    if (ci == NIL)
        return NIL;
    cs_cust *cu = CUST(p, ci);
    cu->h = h;
    cu->h2 = (uint16_t)h2;
    cu->last = t;
    cu->sf = CUST_LIVE | CUST_NOJ;
    idx_put(p, slot, ci, h);
    wheel_link(&p->cw, &cu->wnext, ci, sat_add(t, p->conf.customer_ttl_ms));
    return ci;
}

/* The entry of (h, h2), created (no journey) if absent; NULL when out of memory. */
static cs_cust *key_get(cs_pstate *p, uint64_t h, uint32_t h2, int64_t t)
{
    uint32_t slot, ci = idx_find(p, h, h2, &slot);
    if (ci == NIL && (ci = key_new(p, h, h2, t)) == NIL)
        return NULL;
    return CUST(p, ci);
}

static inline int journey_over(const cs_pstate *p, const cs_sessctx *c, const cs_cust *cu,
                               int64_t t)
{
    int64_t forget_at = sat_add(cu->last, p->conf.customer_ttl_ms);
    return t > forget_at || forget_at < c->W;
}

/* An expired journey is forgotten (as the wheel would have): -1 under its stage. */
static void journey_expire(cs_pstate *p, cs_sessctx *c, cs_cust *cu, int64_t t)
{
    if (!(cu->sf & CUST_NOJ) && journey_over(p, c, cu, t)) {
        cs_agg_customer_forget(c->agg, cust_stage(cu));
        cu->sf = CUST_LIVE | CUST_NOJ;
        cust_set_first(cu, 0);
    }
}

/* The customer's journey for an event at t: begun if the entry has none (+1 _none, C.first =
 * t), else v1's touch (started over past customer_ttl; last = max). */
static void journey_touch(cs_pstate *p, cs_sessctx *c, cs_cust *cu, int64_t t)
{
    if (cu->sf & CUST_NOJ) {
        cu->sf = CUST_LIVE;
        if (t > cu->last)
            cu->last = t;
        cust_set_first(cu, (uint64_t)(cu->last - t));
        cs_agg_customer_new(c->agg);
        return;
    }
    int over = journey_over(p, c, cu, t);
    if (over) {
        cs_agg_customer_move(c->agg, cust_stage(cu), 0);
        cust_set_stage(cu, 0);
    }
    if (t > cu->last) {
        cust_set_first(cu, cust_first(cu) + (uint64_t)(t - cu->last));
        cu->last = t;
    }
    if (over)
        cust_set_first(cu, (uint64_t)(cu->last - t));
}

/* At the login: d's live journey merges into pj's (SPEC §3.1). d keeps its entry, with no
 * journey, its last the device's clock. */
static void journey_merge(cs_pstate *p, cs_sessctx *c, cs_cust *d, cs_cust *pj, int64_t t)
{
    journey_expire(p, c, d, t);
    if (d->sf & CUST_NOJ)
        return;
    journey_expire(p, c, pj, t);
    int st = cust_stage(d);
    int64_t last = d->last, cfirst = d->last - (int64_t)cust_first(d);
    cs_agg_customer_forget(c->agg, st);
    if (!(pj->sf & CUST_NOJ)) {
        cs_agg_customer_forget(c->agg, cust_stage(pj));
        if (cust_stage(pj) > st)
            st = cust_stage(pj);
        int64_t pf = pj->last - (int64_t)cust_first(pj);
        if (pf < cfirst)
            cfirst = pf;
        if (pj->last > last)
            last = pj->last;
    }
    pj->sf = (uint8_t)(CUST_LIVE | st);
    pj->last = last; /* the wheel re-links it lazily if that is later */
    cust_set_first(pj, (uint64_t)(last - cfirst));
    cs_agg_customer_add(c->agg, st);
    cs_agg_identity_merged(c->agg);
    d->sf = CUST_LIVE | CUST_NOJ;
    cust_set_first(d, 0);
}

/* Steps 1-4 of docs/identity.md for an event whose session key entry is *ku (NULL: none yet;
 * created here), *kci its index. (ph, ph2): the person's hash when the event has both ids.
 * *cj: the customer's entry, its journey touched. 0, or -1 out of memory. */
static int identity_keys(cs_pstate *p, cs_sessctx *c, const cs_decoded *ev, uint64_t h,
                         uint32_t h2, uint64_t ph, uint32_t ph2, cs_cust **ku, uint32_t *kci,
                         cs_cust **cj, int *created)
{
    const int64_t t = ev->ts_ms;
    cs_cust *cu = *ku;
    if (!cu) {
        uint32_t ci = key_new(p, h, h2, t);
        if (ci == NIL)
            return -1;
        *kci = ci;
        cu = *ku = CUST(p, ci);
        *created = CS_EV_NEW_CUSTOMER;
    } else if ((ev->idf & CS_ID_DEVICE) && alb_get(p, *kci) && journey_over(p, c, cu, t)) {
        al_del(p, h, h2); /* forgotten with its device: no event for customer_ttl */
        alb_put(p, *kci, 0);
    }
    cs_cust *cust = cu;
    const uint32_t ki = *kci;
    if (ev->idf & CS_ID_PERSON) {
        if (ev->idf & CS_ID_DEVICE) {
            long a = alb_get(p, ki) ? al_find(p, h, h2, NULL) : -1;
            if (!(cust = key_get(p, ph, ph2, t)))
                return -1;
            if (a < 0) { /* the login: alias(d) = p, d's journey merged into p's */
                if (alb_reserve(p, ki) != 0 || al_put(p, h, h2, ph, ph2) != 0)
                    return -1;
                alb_put(p, ki, 1);
                journey_merge(p, c, cu, cust, t);
            } else if (p->al[a].ph != ph || p->al[a].ph2 != (uint16_t)ph2) {
                cs_agg_identity_conflict(c->agg); /* another person: the event's own */
            }
        } /* else the person alone is the session key: cu is its entry */
    } else {
        long a = alb_get(p, ki) ? al_find(p, h, h2, NULL) : -1;
        if (a >= 0 && !(cust = key_get(p, p->al[a].ph, p->al[a].ph2, t)))
            return -1;
    }
    journey_touch(p, c, cust, t);
    if ((cu->sf & CUST_NOJ) && t > cu->last)
        cu->last = t; /* the device's clock (its alias's) */
    *cj = cust;
    return 0;
}

void cs_pstate_prefetch_alias(const cs_pstate *p, uint64_t h)
{
    if (p->al)
        __builtin_prefetch(&p->al[al_home(p, h)]);
}

/* The alias of the entry h's tag names (h's own entry but on a collision of h's tag: a hint),
 * or -1: none, and then no alias probe at all. */
static inline long al_hint(const cs_pstate *p, uint32_t ci, uint64_t h, uint32_t h2)
{
    return ci != NIL && alb_get(p, ci) ? al_find(p, h, h2, NULL) : -1;
}

int cs_pstate_prefetch_customer_dev(const cs_pstate *p, uint64_t h, uint32_t h2)
{
    uint32_t c = prefetch_home_customer(p, h);
    if (c == NIL)
        return 0;
    long a = al_hint(p, c, h, h2);
    if (a >= 0)
        cs_pstate_prefetch_index(p, p->al[a].ph);
    return 1;
}

void cs_pstate_prefetch_session_dev(const cs_pstate *p, uint64_t h, uint32_t h2)
{
    uint32_t c = prefetch_home_session(p, h);
    if (c == NIL)
        return;
    long a = al_hint(p, c, h, h2);
    if (a >= 0)
        prefetch_home_customer(p, p->al[a].ph);
}

int cs_sessionize_hashed(cs_pstate *p, cs_sessctx *c, const cs_decoded *ev, uint64_t h,
                         uint32_t h2, uint64_t ph, uint32_t ph2)
{
    const int64_t t = ev->ts_ms;
    const int64_t gap = p->conf.gap_ms;
    cs_agg *a = c->agg;
    if (t > p->max_t)
        p->max_t = t;

    uint32_t slot;
    uint32_t ci = idx_find(p, h, h2, &slot);
    cs_cust *cu = ci ? CUST(p, ci) : NULL;
    cs_sess *s = NULL;
    uint32_t si = NIL;

    int fresh = 0; /* s was started (or restarted in place) by this event */
    int created = CS_EV_COUNTED;
    if (cu && cu->sess) {
        si = cu->sess;
        s = SESS(p, si);
        int reason;
        int64_t dl = sess_deadline(p, s, &reason);
        if (t > dl) {
            /* ends S and starts a new one. The entry is reused in place: it stays linked in its
             * wheel bucket, whose firing re-checks the (later) new deadline. */
            count_end(p, c, s, reason);
            uint32_t keep_link = s->wnext, keep_cust = s->cust;
            memset(s, 0, sizeof *s);
            s->wnext = keep_link;
            s->cust = keep_cust;
            s->last = t;
            sess_set_flags(s, F_LIVE);
            count_start(p, c, s);
            fresh = 1;
        } else if (t < sat_add(sess_start(s), -gap)) {
            cs_agg_event_late(a);
            return CS_EV_LATE;
        } else if (dl < c->W) {
            /* the watermark has passed it: it ended, whatever the wheel has got round to */
            end_in_place(p, c, cu, s, reason);
            s = NULL;
            si = NIL;
        }
    }
    if (!s && c->W != INT64_MIN && sat_add(t, gap) < c->W) {
        cs_agg_event_late(a);
        return CS_EV_LATE;
    }

    cs_cust *cj = cu; /* the customer's journey entry: the key's own, except under identity */
    if (__builtin_expect(ev->idf != 0, 0)) {
        if (identity_keys(p, c, ev, h, h2, ph, ph2, &cu, &ci, &cj, &created) != 0) {
            cs_agg_event_late(a); /* out of memory: cannot track the ids; counted */
            return CS_EV_LATE;
        }
    } else if (!cu) {
        if (p->idx_n + 1 > (p->idx_mask + 1) / 4 * 3) {
            if (idx_grow(p) == 0)
                idx_find(p, h, h2, &slot);
        }
        ci = pool_alloc(&p->cp, offsetof(cs_cust, wnext));
        if (ci == NIL) {
            cs_agg_event_late(a); /* out of memory: cannot track the customer; counted */
            return CS_EV_LATE;
        }
        cj = cu = CUST(p, ci);
        cu->h = h;
        cu->h2 = (uint16_t)h2;
        cu->last = t;
        cu->sf = CUST_LIVE; /* first = 0: this event begins the journey */
        idx_put(p, slot, ci, h);
        cs_agg_customer_new(a);
        wheel_link(&p->cw, &cu->wnext, ci, sat_add(t, p->conf.customer_ttl_ms));
        created = CS_EV_NEW_CUSTOMER;
    } else {
        int64_t forget_at = sat_add(cu->last, p->conf.customer_ttl_ms);
        int over = t > forget_at || forget_at < c->W;
        if (over) {
            /* the customer's earlier sessions are beyond customer_ttl: the journey starts over */
            cs_agg_customer_restart(a, cust_stage(cu));
            cust_set_stage(cu, 0);
        }
        if (t > cu->last) {
            /* last - C.first grows with last (saturating: past 90 days it is "inf" anyway) */
            cust_set_first(cu, cust_first(cu) + (uint64_t)(t - cu->last));
            cu->last = t; /* the wheel re-links it lazily when its old bucket fires */
        }
        if (over)
            cust_set_first(cu, (uint64_t)(cu->last - t)); /* C.first = t */
    }

    if (!s) {
        si = pool_alloc(&p->sp, offsetof(cs_sess, wnext));
        if (si == NIL) {
            cs_agg_event_late(a);
            return CS_EV_LATE; /* (a customer created just now stays, with no session) */
        }
        s = SESS(p, si);
        s->last = t;
        s->cust = ci;
        sess_set_flags(s, F_LIVE);
        cu->sess = si;
        count_start(p, c, s);
        int r;
        wheel_link(&p->sw, &s->wnext, si, sess_deadline(p, s, &r));
    } else if (!fresh) {
        /* joins S; an out-of-order t may move its start back */
        int64_t start = sess_start(s);
        if (t < start) {
            /* the start moves back: the stage's reach time stays where it was */
            if (sess_stage(s) != 0) {
                uint64_t r = (uint64_t)s->reach + (uint64_t)(start - t);
                s->reach = r > UINT32_MAX ? UINT32_MAX : (uint32_t)r;
            }
            start = t;
        }
        if (t > s->last)
            s->last = t;
        uint64_t span = (uint64_t)(s->last - start);
        s->span = span > UINT32_MAX ? UINT32_MAX : (uint32_t)span;
    }

    /* dimensions: first non-empty value seen in the session so far (once all are known, one
     * bit test per event) */
    if (!(s->pk & PK_DIMS_DONE)) {
        int known = 0;
        for (int d = 0; d < p->ndims; d++) {
            if (sess_dim(s, d) != CS_DIM_UNKNOWN) {
                known++;
                continue;
            }
            const cs_sv *v = &ev->f[cs_rules_dim(c->rs, d)->field];
            if (!v->len)
                continue;
            uint16_t id = cs_dimdict_id(&c->dicts[d], v->p, v->len);
            cs_agg_session_dim(a, d, sess_stage(s), id);
            sess_set_dim(s, d, id);
            known += id != CS_DIM_UNKNOWN;
        }
        if (known == p->ndims)
            s->pk |= PK_DIMS_DONE;
    }

    int stage = cs_rules_classify(c->rs, ev);
    if (stage < 0) {
        cs_agg_event_unclassified(a);
        return created;
    }
    cs_agg_event(a, stage);
    int to = stage + 1, from = sess_stage(s);
    if (to > from) {
        /* SPEC §4.1: t - S.start (start as it stands now, t >= it), and t - t_from where the
         * session reached `from` at start + reach (S.start for _entry; an out-of-order t can be
         * before it: counted as 0) */
        int64_t d_start = (int64_t)s->span - (s->last - t);
        int64_t d_from = from ? d_start - (int64_t)s->reach : d_start;
        uint16_t dim[CS_MAX_DIMS];
        sess_dims(s, dim);
        cs_agg_session_advance(a, from, to, dim, p->ndims, t, d_start, d_from);
        sess_set_stage(s, to);
        s->reach = d_start > (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)d_start;
        int cst = cust_stage(cj);
        if (to > cst) {
            /* t - C.first = first - (last - t); last >= t */
            uint64_t back = (uint64_t)cj->last - (uint64_t)t;
            uint64_t f = cust_first(cj);
            cs_agg_customer_advance(a, cst, to, f >= back ? (int64_t)(f - back) : 0);
            cust_set_stage(cj, to);
        }
    }
    return created;
}

/* ---- expiry ------------------------------------------------------------------------------ */

/* One session entry popped from a firing bucket: free it, end it, or re-link it. */
static void sess_fire(cs_pstate *p, cs_sessctx *c, uint32_t si)
{
    cs_sess *s = SESS(p, si);
    if (sess_flags(s) == F_DEAD) {
        pool_free(&p->sp, si, offsetof(cs_sess, wnext));
        return;
    }
    int reason;
    int64_t dl = sess_deadline(p, s, &reason);
    if (dl < c->W) {
        count_end(p, c, s, reason);
        CUST(p, s->cust)->sess = NIL;
        pool_free(&p->sp, si, offsetof(cs_sess, wnext));
    } else {
        wheel_link(&p->sw, &s->wnext, si, dl);
    }
}

static void cust_fire(cs_pstate *p, cs_sessctx *c, uint32_t ci)
{
    cs_cust *cu = CUST(p, ci);
    int64_t forget_at = sat_add(cu->last, p->conf.customer_ttl_ms);
    if (forget_at < c->W && cu->sess == NIL) {
        if (!(cu->sf & CUST_NOJ))
            cs_agg_customer_forget(c->agg, cust_stage(cu));
        if (alb_get(p, ci)) { /* SPEC §3.1: an alias is forgotten with its device */
            al_del(p, cu->h, cu->h2);
            alb_put(p, ci, 0);
        }
        uint32_t slot;
        idx_find(p, cu->h, cu->h2, &slot);
        idx_delete(p, slot);
        pool_free(&p->cp, ci, offsetof(cs_cust, wnext));
    } else {
        /* not due yet, or it still has an open session (customer_ttl shorter than a session):
         * look again when the session can have ended */
        if (cu->sess != NIL) {
            int r;
            int64_t dl = sess_deadline(p, SESS(p, cu->sess), &r);
            if (dl > forget_at)
                forget_at = dl;
        }
        wheel_link(&p->cw, &cu->wnext, ci, forget_at);
    }
}

typedef void (*fire_fn)(cs_pstate *, cs_sessctx *, uint32_t);

static void wheel_advance(cs_pstate *p, cs_sessctx *c, wheel *w, size_t link_off, pool *pl,
                          fire_fn fire)
{
    if (w->cursor == INT64_MIN || c->W == INT64_MIN)
        return;
    int64_t target = floordiv(c->W, w->tick_ms);
    if (target < w->cursor)
        return;
    int64_t from = w->cursor;
    uint64_t nticks = (uint64_t)(target - from) + 1;
    if (nticks > (uint64_t)w->mask + 1) {
        nticks = (uint64_t)w->mask + 1; /* every bucket once: each entry is checked exactly */
        from = target - (int64_t)w->mask;
    }
    w->cursor = target; /* re-links land at >= target, so they are not popped again here */
    for (uint64_t k = 0; k < nticks; k++) {
        uint32_t *h = &w->head[((uint32_t)(from + (int64_t)k) & w->mask) * WHEEL_LANES];
        uint32_t cur[WHEEL_LANES];
        int live = 0;
        for (int l = 0; l < WHEEL_LANES; l++) {
            cur[l] = h[l];
            h[l] = NIL; /* detach: entries re-linked into this bucket wait for the next round */
            if (cur[l] != NIL) {
                __builtin_prefetch((char *)pool_at(pl, cur[l]) + link_off);
                live++;
            }
        }
        while (live) /* the chains in turn (see WHEEL_LANES); fire() touches only its own entry */
            for (int l = 0; l < WHEEL_LANES; l++) {
                uint32_t i = cur[l], next;
                if (i == NIL)
                    continue;
                memcpy(&next, (char *)pool_at(pl, i) + link_off, sizeof next);
                if (next != NIL)
                    __builtin_prefetch((char *)pool_at(pl, next) + link_off);
                else
                    live--;
                fire(p, c, i);
                cur[l] = next;
            }
    }
}

void cs_pstate_advance(cs_pstate *p, cs_sessctx *c)
{
    wheel_advance(p, c, &p->sw, offsetof(cs_sess, wnext), &p->sp, sess_fire);
    wheel_advance(p, c, &p->cw, offsetof(cs_cust, wnext), &p->cp, cust_fire);
}

void cs_pstate_end_all(cs_pstate *p, cs_sessctx *c, int reason)
{
    for (uint32_t b = 0; b < (p->sw.mask + 1) * WHEEL_LANES; b++) {
        uint32_t i = p->sw.head[b];
        p->sw.head[b] = NIL;
        while (i != NIL) {
            cs_sess *s = SESS(p, i);
            uint32_t next = s->wnext;
            if (sess_flags(s) == F_LIVE) {
                int r;
                int64_t dl = sess_deadline(p, s, &r);
                count_end(p, c, s, dl < c->W ? r : reason);
                CUST(p, s->cust)->sess = NIL;
            }
            pool_free(&p->sp, i, offsetof(cs_sess, wnext));
            i = next;
        }
    }
}

void cs_pstate_stats_get(const cs_pstate *p, cs_pstate_stats *st)
{
    st->sessions = p->nopen;
    st->customers = p->cp.live;
    st->session_bytes = (size_t)p->sp.nchunks * CHUNK * sizeof(cs_sess) +
                        p->sp.cap_chunks * sizeof(char *) +
                        (p->sw.mask + 1) * WHEEL_LANES * sizeof(uint32_t);
    st->customer_bytes = (size_t)p->cp.nchunks * CHUNK * sizeof(cs_cust) +
                         p->cp.cap_chunks * sizeof(char *) +
                         (p->cw.mask + 1) * WHEEL_LANES * sizeof(uint32_t) +
                         (size_t)(p->idx_mask + 1) * sizeof(uint32_t) + sizeof *p;
    st->aliases = p->al_n;
    st->alias_bytes = (p->al ? (size_t)(p->al_mask + 1) * sizeof(alias_ent) : 0) +
                      (size_t)p->alb_words * sizeof(uint64_t);
}

/* ---- snapshot support (see sessionize.h; used by pipeline/snapshot.c) -------------------- */

static void entry_fill_customer(const cs_pstate *p, const cs_cust *cu, cs_pstate_entry *e)
{
    memset(e, 0, sizeof *e);
    e->h = cu->h;
    e->h2 = cu->h2;
    e->stage = (uint8_t)cust_stage(cu);
    e->first = cust_first(cu);
    e->last = cu->last;
    e->has_session = cu->sess != NIL;
    e->nojourney = (cu->sf & CUST_NOJ) != 0;
    if (p->al_n) {
        long a = al_find(p, cu->h, cu->h2, NULL);
        if (a >= 0) {
            e->has_alias = 1;
            e->a_h = p->al[a].ph;
            e->a_h2 = p->al[a].ph2;
        }
    }
}

uint32_t cs_pstate_iter(const cs_pstate *p, uint32_t it, cs_pstate_entry *e)
{
    for (uint32_t i = it + 1; i != 0 && i <= p->cp.hw; i++) {
        const cs_cust *cu = CUST(p, i);
        if (!(cu->sf & CUST_LIVE)) /* a free entry is zeroed */
            continue;
        if (e)
            entry_fill_customer(p, cu, e); /* has_session: cs_pstate_entry_get has the last word */
        return i;
    }
    return 0;
}

void cs_pstate_entry_get(const cs_pstate *p, uint32_t handle, cs_pstate_entry *e)
{
    const cs_cust *cu = CUST(p, handle);
    entry_fill_customer(p, cu, e);
    if (cu->sess == NIL)
        return;
    const cs_sess *s = SESS(p, cu->sess);
    if (sess_flags(s) != F_LIVE) {
        e->has_session = 0;
        return;
    }
    e->s_last = s->last;
    e->s_span = s->span;
    e->s_stage = (uint8_t)sess_stage(s);
    e->s_reach = s->reach;
    sess_dims(s, e->s_dim);
}

void cs_pstate_prefetch_entry(const cs_pstate *p, uint32_t handle, int session)
{
    const cs_cust *cu = CUST(p, handle);
    if (!session)
        __builtin_prefetch(cu);
    else if (cu->sess != NIL)
        __builtin_prefetch(pool_at(&p->sp, cu->sess));
}

static int pool_reserve(pool *p, uint64_t n)
{
    uint64_t need = (n + CHUNK - 1) / CHUNK;
    if (need <= p->cap_chunks)
        return 0;
    if (need > UINT32_MAX / 2)
        return -1;
    char **c = realloc(p->chunks, (size_t)need * sizeof *c);
    if (!c)
        return -1;
    p->chunks = c;
    p->cap_chunks = (uint32_t)need;
    return 0;
}

int cs_pstate_reserve(cs_pstate *p, uint64_t customers, uint64_t sessions)
{
    if (customers > UINT32_MAX - 2 || sessions > UINT32_MAX - 2)
        return -1;
    if (pool_reserve(&p->cp, (uint64_t)p->cp.hw + customers) ||
        pool_reserve(&p->sp, (uint64_t)p->sp.hw + sessions))
        return -1;
    if (p->idx_n == 0) /* the ids' bits for what comes, so that no re-tag runs on the way */
        while ((uint64_t)p->cp.hw + customers > p->id_mask && p->id_mask != UINT32_MAX)
            p->id_mask = (p->id_mask << 4) | 0xF;
    uint64_t want = (uint64_t)p->idx_n + customers;
    uint64_t cap = (uint64_t)p->idx_mask + 1;
    while (want > cap / 4 * 3) {
        if (cap >= ((uint64_t)1 << 32))
            return -1;
        cap *= 2;
    }
    if (cap == (uint64_t)p->idx_mask + 1)
        return 0;
    if (p->idx_n == 0) { /* nothing to rehash */
        uint32_t *n = calloc((size_t)cap, sizeof *n);
        if (!n)
            return -1;
        free(p->idx);
        p->idx = n;
        p->idx_mask = (uint32_t)(cap - 1);
        return 0;
    }
    while ((uint64_t)p->idx_mask + 1 < cap)
        if (idx_grow(p))
            return -1;
    return 0;
}

/* wheel_link for a wheel nobody has advanced yet: the entry goes to the bucket of its own tick
 * and the cursor follows the earliest tick linked, so nothing is clamped later than it is due. */
static void wheel_link_restore(wheel *w, uint32_t *wnext, uint32_t id, int64_t deadline)
{
    int64_t tick = floordiv(deadline, w->tick_ms);
    if (w->cursor == INT64_MIN || tick < w->cursor)
        w->cursor = tick;
    wheel_push(w, tick, wnext, id);
}

int cs_pstate_restore_add(cs_pstate *p, const cs_pstate_entry *e)
{
    uint32_t slot;
    if (idx_find(p, e->h, e->h2, &slot) != NIL)
        return -2;
    if (p->idx_n + 1 > (p->idx_mask + 1) / 4 * 3) {
        if (idx_grow(p))
            return -1;
        idx_find(p, e->h, e->h2, &slot);
    }
    if (e->has_alias && al_put(p, e->h, e->h2, e->a_h, e->a_h2) != 0)
        return -1;
    uint32_t ci = pool_alloc(&p->cp, offsetof(cs_cust, wnext));
    if (ci == NIL || (e->has_alias && alb_reserve(p, ci) != 0)) {
        if (ci != NIL)
            pool_free(&p->cp, ci, offsetof(cs_cust, wnext));
        if (e->has_alias)
            al_del(p, e->h, e->h2);
        return -1;
    }
    uint32_t si = NIL;
    if (e->has_session) {
        si = pool_alloc(&p->sp, offsetof(cs_sess, wnext));
        if (si == NIL) {
            pool_free(&p->cp, ci, offsetof(cs_cust, wnext));
            if (e->has_alias)
                al_del(p, e->h, e->h2);
            return -1;
        }
    }
    if (e->has_alias)
        alb_put(p, ci, 1);
    cs_cust *cu = CUST(p, ci);
    cu->h = e->h;
    cu->h2 = (uint16_t)e->h2;
    cu->last = e->last;
    cu->sf = e->nojourney ? CUST_LIVE | CUST_NOJ : CUST_LIVE;
    cust_set_stage(cu, e->nojourney ? 0 : e->stage);
    cust_set_first(cu, e->nojourney ? 0 : e->first);
    cu->sess = si;
    idx_put(p, slot, ci, e->h);
    wheel_link_restore(&p->cw, &cu->wnext, ci, sat_add(e->last, p->conf.customer_ttl_ms));
    if (si != NIL) {
        cs_sess *s = SESS(p, si);
        s->last = e->s_last;
        s->span = e->s_span;
        s->cust = ci;
        sess_set_stage(s, e->s_stage);
        sess_set_flags(s, F_LIVE);
        s->reach = e->s_stage ? e->s_reach : 0;
        for (int d = 0; d < p->ndims && d < CS_MAX_DIMS; d++)
            sess_set_dim(s, d, e->s_dim[d]);
        p->nopen++;
        int r;
        wheel_link_restore(&p->sw, &s->wnext, si, sess_deadline(p, s, &r));
    }
    return 0;
}

void cs_pstate_set_max_time(cs_pstate *p, int64_t max_t)
{
    if (max_t > p->max_t)
        p->max_t = max_t;
}
