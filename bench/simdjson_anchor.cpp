// simdjson_anchor.cpp — the external decoding anchor of bench_core (issue 18): simdjson
// On-Demand on the same messages as cs_decode, in the same run. Built only when libsimdjson-dev
// is installed (Makefile: CS_HAVE_SIMDJSON); a build dependency of the benchmark only.
//
// What it times is what cs_decode has to do at least: one pass over the top-level object,
// taking the SPEC §1 default fields (the first present of each list of paths), descending into
// "context" and "properties" for the nested ones. Values are read as strings (numbers as their
// raw text), like the scanner's output. The messages sit in one arena, each followed by
// SIMDJSON_PADDING bytes, so On-Demand reads them in place (no copy is timed).
//
// Which kernel: simdjson 3.0 compiles On-Demand for one implementation only, its "builtin"
// one, chosen from the compiler's target flags (no run-time dispatch, unlike its DOM API). With
// a plain x86-64 build that is the scalar "fallback" kernel, which is what this anchor timed
// until 2026-12-07 (its figures understated simdjson). The Makefile now compiles this file for
// haswell (AVX2, BMI, PCLMUL, LZCNT) when the build machine's CPU has them (not icelake, which
// was slower on these messages: RESULTS-e2e.md);
// cs_simdjson_implementation() names the kernel and cs_simdjson_runnable() says whether this
// CPU runs it (bench_core leaves the anchor out, with a note, when it does not).
#include <simdjson.h>

#include <cstdint>
#include <cstring>
#include <string_view>

extern "C" {
#include "simdjson_anchor.h"
}

using namespace simdjson;

namespace {

// Slot of a field (0 customer, 1 event, 2 time, 3 url, 4 channel) and its rank among that
// field's alternative paths (lower wins), as in SPEC §1's default configuration.
struct want {
    int field, rank;
};

inline want top_key(std::string_view k)
{
    if (k == "userId") return {0, 0};
    if (k == "user_id") return {0, 1};
    if (k == "customer_id") return {0, 2};
    if (k == "anonymousId") return {0, 3};
    if (k == "anonymous_id") return {0, 4};
    if (k == "event") return {1, 0};
    if (k == "type") return {1, 1};
    if (k == "timestamp") return {2, 0};
    if (k == "ts") return {2, 1};
    if (k == "originalTimestamp") return {2, 2};
    if (k == "url") return {3, 0};
    if (k == "channel") return {4, 0};
    return {-1, 0};
}

// A scalar's text (strings unescaped by simdjson, other scalars raw); false for objects/arrays.
inline bool scalar_text(ondemand::value v, std::string_view &out)
{
    ondemand::json_type t;
    if (v.type().get(t))
        return false;
    if (t == ondemand::json_type::string)
        return !v.get_string().get(out);
    if (t == ondemand::json_type::object || t == ondemand::json_type::array)
        return false;
    out = v.raw_json_token();
    return true;
}

struct fields {
    std::string_view v[5];
    int rank[5];
    void take(int f, int r, std::string_view s)
    {
        if (r < rank[f]) {
            rank[f] = r;
            v[f] = s;
        }
    }
};

// context.page.url (rank 1 of url), context.campaign.medium (rank 1 of channel)
inline void context_obj(ondemand::object o, fields &fs)
{
    for (auto kv : o) {
        std::string_view k;
        if (kv.unescaped_key().get(k))
            return;
        ondemand::object in;
        if ((k == "page" || k == "campaign") && !kv.value().get_object().get(in)) {
            const char *leaf = k == "page" ? "url" : "medium";
            int f = k == "page" ? 3 : 4;
            for (auto kv2 : in) {
                std::string_view k2, s;
                if (kv2.unescaped_key().get(k2))
                    return;
                if (k2 == leaf && scalar_text(kv2.value(), s))
                    fs.take(f, 1, s);
            }
        }
    }
}

// properties.url (rank 2 of url), properties.channel (rank 2 of channel)
inline void properties_obj(ondemand::object o, fields &fs)
{
    for (auto kv : o) {
        std::string_view k, s;
        if (kv.unescaped_key().get(k))
            return;
        if ((k == "url" || k == "channel") && scalar_text(kv.value(), s))
            fs.take(k == "url" ? 3 : 4, 2, s);
    }
}

int decode_one(ondemand::parser &p, const char *buf, size_t len)
{
    ondemand::document doc;
    if (p.iterate(buf, len, len + SIMDJSON_PADDING).get(doc))
        return -1;
    ondemand::object o;
    if (doc.get_object().get(o))
        return -1;
    fields fs;
    for (int i = 0; i < 5; i++)
        fs.rank[i] = 99;
    for (auto kv : o) {
        std::string_view k;
        if (kv.unescaped_key().get(k))
            return -1;
        ondemand::object in;
        if (k == "context") {
            if (!kv.value().get_object().get(in))
                context_obj(in, fs);
            continue;
        }
        if (k == "properties") {
            if (!kv.value().get_object().get(in))
                properties_obj(in, fs);
            continue;
        }
        want w = top_key(k);
        std::string_view s;
        if (w.field >= 0 && scalar_text(kv.value(), s))
            fs.take(w.field, w.rank, s);
    }
    int found = 0;
    for (int i = 0; i < 5; i++)
        found += fs.rank[i] != 99;
    return found;
}

} // namespace

extern "C" const char *cs_simdjson_version(void)
{
#define CS_STR2(x) #x
#define CS_STR(x) CS_STR2(x)
    return CS_STR(SIMDJSON_VERSION);
}

extern "C" const char *cs_simdjson_implementation(void)
{
    return CS_STR(SIMDJSON_BUILTIN_IMPLEMENTATION);
}

extern "C" int cs_simdjson_runnable(void)
{
    const implementation *im =
        get_available_implementations()[CS_STR(SIMDJSON_BUILTIN_IMPLEMENTATION)];
    return im && im->supported_by_runtime_system();
}

extern "C" size_t cs_simdjson_padding(void)
{
    return SIMDJSON_PADDING;
}

extern "C" long long cs_simdjson_ondemand(const char *arena, const size_t *off, const size_t *len,
                                          size_t n, uint64_t *found)
{
    ondemand::parser p;
    long long ok = 0;
    uint64_t fd = 0;
    for (size_t i = 0; i < n; i++) {
        int r = decode_one(p, arena + off[i], len[i]);
        if (r >= 0) {
            ok++;
            fd += (uint64_t)r;
        }
    }
    *found = fd;
    return ok;
}
