/* stage1_probe — what a simdjson-style first stage would cost on bench_core's messages (issue 18,
 * "the structural scanner": measured, not adopted; bench/RESULTS-e2e.md).
 *
 * The same messages as bench_core (its generator settings, bench_util.h bench_core_gen_conf,
 * with its default --customers), each copied into a NUL-padded
 * buffer as cs_decode does, then:
 *   stage1_classify: per 64-byte block (two AVX2 halves), bitmaps of '"', '\\', control bytes,
 *     the structural characters {}[]:, and whitespace (nibble tables, vpshufb), escaped quotes
 *     by the backslash-run trick (simdjson's find_escaped), the in-string mask by prefix XOR
 *     (PCLMUL), control bytes inside strings flagged, scalar starts as pseudo-structurals; one
 *     64-bit word of structural positions per block;
 *   stage1_flatten: those words into a position array (tzcnt, clear lowest bit).
 * It does not validate UTF-8 (the decoder does not either) and builds nothing of stage 2: it is
 * a lower bound of the cost of that design. Instructions, not time, are the measure:
 *
 *   valgrind --tool=callgrind --callgrind-out-file=/tmp/s1.cg build/stage1_probe --events 200000
 *   callgrind_annotate /tmp/s1.cg | grep stage1_      # Ir / messages = per message
 *
 * Without AVX2 and PCLMUL (CPU or compiler) it says so and exits 0. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "gen.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define S1_TARGET __attribute__((noinline, target("avx2,pclmul,bmi")))

/* bit i: byte i of the 64 at p equals c */
#define EQ64(a, b, v)                                                                              \
    ((uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(a, v)) |                          \
     (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(b, v)) << 32)

/* The words of structural positions of the nblocks 64-byte blocks at buf; returns 0 when a
 * control byte is inside a string, else 1. */
S1_TARGET int stage1_classify(const uint8_t *buf, size_t nblocks, uint64_t *words)
{
    /* structural {}[]:, -> class bits 1..4, whitespace ' ' \t \n \r -> 8/16 (simdjson's tables) */
    const __m256i lo_tab = _mm256_setr_epi8(16, 0, 0, 0, 0, 0, 0, 0, 0, 8, 12, 1, 2, 9, 0, 0,
                                            16, 0, 0, 0, 0, 0, 0, 0, 0, 8, 12, 1, 2, 9, 0, 0);
    const __m256i hi_tab = _mm256_setr_epi8(8, 0, 18, 4, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0,
                                            8, 0, 18, 4, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m256i vq = _mm256_set1_epi8('"'), vb = _mm256_set1_epi8('\\');
    const __m256i vc = _mm256_set1_epi8(0x1F), v7 = _mm256_set1_epi8(7), v18 = _mm256_set1_epi8(0x18);
    const __m256i nib = _mm256_set1_epi8(0x0F), z = _mm256_setzero_si256();
    const uint64_t even = 0x5555555555555555ULL;
    uint64_t prev_in = 0, prev_esc = 0, prev_scalar = 0, err = 0;
    for (size_t w = 0; w < nblocks; w++) {
        const uint8_t *p = buf + 64 * w;
        const __m256i a = _mm256_loadu_si256((const __m256i *)(const void *)p);
        const __m256i b = _mm256_loadu_si256((const __m256i *)(const void *)(p + 32));
        uint64_t q = EQ64(a, b, vq), bs = EQ64(a, b, vb);
        /* escaped characters: find_escaped */
        uint64_t escaped = 0;
        if (bs | prev_esc) {
            bs &= ~prev_esc;
            const uint64_t follows = bs << 1 | prev_esc;
            const uint64_t odd_starts = bs & ~even & ~follows;
            uint64_t seq_even;
            prev_esc = __builtin_add_overflow(odd_starts, bs, &seq_even);
            escaped = (even ^ (seq_even << 1)) & follows;
        }
        q &= ~escaped;
        const uint64_t in = (uint64_t)_mm_cvtsi128_si64(_mm_clmulepi64_si128(
                                _mm_set_epi64x(0, (long long)q), _mm_set1_epi8((char)0xFF), 0)) ^
                            prev_in;
        prev_in = (uint64_t)((int64_t)in >> 63);
        const __m256i ca = _mm256_and_si256(
            _mm256_shuffle_epi8(lo_tab, a),
            _mm256_shuffle_epi8(hi_tab, _mm256_and_si256(_mm256_srli_epi16(a, 4), nib)));
        const __m256i cb = _mm256_and_si256(
            _mm256_shuffle_epi8(lo_tab, b),
            _mm256_shuffle_epi8(hi_tab, _mm256_and_si256(_mm256_srli_epi16(b, 4), nib)));
        const uint64_t op = ~EQ64(_mm256_and_si256(ca, v7), _mm256_and_si256(cb, v7), z) & ~in;
        const uint64_t ws = ~EQ64(_mm256_and_si256(ca, v18), _mm256_and_si256(cb, v18), z);
        const uint64_t ctl = /* bytes <= 0x1F */
            (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_min_epu8(a, vc), a)) |
            (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_min_epu8(b, vc), b)) << 32;
        err |= ctl & in;
        const uint64_t scalar = ~(op | ws | in | q);
        words[w] = op | (q & in) | (scalar & ~(scalar << 1 | prev_scalar));
        prev_scalar = scalar >> 63;
    }
    return err == 0;
}

S1_TARGET size_t stage1_flatten(const uint64_t *words, size_t nblocks, uint32_t *out)
{
    uint32_t *o = out;
    for (size_t w = 0; w < nblocks; w++)
        for (uint64_t m = words[w]; m; m &= m - 1)
            *o++ = (uint32_t)(64 * w + (size_t)__builtin_ctzll(m));
    return (size_t)(o - out);
}

static int have_cpu(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("pclmul");
}
#else
static int have_cpu(void) { return 0; }
#endif

int main(int argc, char **argv)
{
    uint64_t nevents = 200000;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--events") && i + 1 < argc)
            nevents = strtoull(argv[++i], NULL, 10);
    if (!have_cpu()) {
        printf("stage1_probe: needs x86-64 with AVX2 and PCLMUL; nothing measured\n");
        return 0;
    }
#if defined(__x86_64__) && defined(__GNUC__)
    cs_gen_conf gc;
    bench_core_gen_conf(&gc, nevents, BENCH_CORE_CUSTOMERS);
    cs_gen_out *g = cs_gen_run(&gc);
    size_t cap = 1 << 16;
    uint8_t *pad = malloc(cap + 64);
    uint64_t *words = malloc((cap / 64 + 1) * sizeof *words);
    uint32_t *pos = malloc((cap + 64) * sizeof *pos);
    uint64_t bytes = 0, structurals = 0, bad = 0, n = 0;
    for (int q = 0; q < g->nparts; q++)
        for (size_t i = 0; i < g->parts[q].n; i++) {
            const cs_msg *m = &g->parts[q].msgs[i];
            if (m->len > cap)
                continue;
            memcpy(pad, m->payload, m->len);
            memset(pad + m->len, 0, 64);
            const size_t nb = m->len / 64 + 1;
            bad += !stage1_classify(pad, nb, words);
            structurals += stage1_flatten(words, nb, pos);
            bytes += m->len;
            n++;
        }
    printf("stage1_probe: %llu messages, %.1f bytes and %.1f structurals per message, %llu with a "
           "control byte in a string\n",
           (unsigned long long)n, (double)bytes / (double)n, (double)structurals / (double)n,
           (unsigned long long)bad);
    free(pad);
    free(words);
    free(pos);
    cs_gen_free(g);
#endif
    return 0;
}
