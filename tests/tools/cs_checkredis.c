/* cs_checkredis — compares the clickstage hashes of one journey in Redis with an expected JSON
 * file ({"hash": {"field": n}}; hash names without the "<prefix>:{J}:" part) and prints every
 * difference. Missing fields count as 0. Keys `offsets` and `meta` are not compared. Exit 0 when
 * equal, 1 when not, 2 on error. Last stdout line: {"differences": N, "compared": M}.
 *
 *   cs_checkredis --redis HOST:PORT --prefix clickstage --journey J --expect FILE
 *                 [--events-only]   (compare only the `events` and `invalid` hashes)
 */
#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "counts.h"

int main(int argc, char **argv)
{
    const char *addr = "127.0.0.1:6379", *prefix = "clickstage", *journey = NULL, *expect = NULL;
    int events_only = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--events-only")) { events_only = 1; continue; }
        if (i + 1 >= argc) break;
        if (!strcmp(argv[i], "--redis")) addr = argv[++i];
        else if (!strcmp(argv[i], "--prefix")) prefix = argv[++i];
        else if (!strcmp(argv[i], "--journey")) journey = argv[++i];
        else if (!strcmp(argv[i], "--expect")) expect = argv[++i];
    }
    if (!journey || !expect) {
        fprintf(stderr, "usage: cs_checkredis --redis HOST:PORT --journey J --expect FILE\n");
        return 2;
    }
    FILE *f = fopen(expect, "r");
    if (!f) { perror(expect); return 2; }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) { perror("read"); return 2; }
    buf[n] = 0;
    fclose(f);
    cJSON *root = cJSON_Parse(buf);
    if (!root) { fprintf(stderr, "%s: not JSON\n", expect); return 2; }
    cs_counts *want = cs_counts_new(), *got = cs_counts_new();
    for (cJSON *h = root->child; h; h = h->next)
        for (cJSON *fl = h->child; fl; fl = fl->next)
            if (!events_only || !strcmp(h->string, "events") || !strcmp(h->string, "invalid"))
                cs_counts_add(want, h->string, fl->string, (int64_t)fl->valuedouble);

    char host[256];
    int port = 6379;
    snprintf(host, sizeof host, "%s", addr);
    char *colon = strrchr(host, ':');
    if (colon) { *colon = 0; port = atoi(colon + 1); }
    redisContext *c = redisConnect(host, port);
    if (!c || c->err) { fprintf(stderr, "redis %s: %s\n", addr, c ? c->errstr : "?"); return 2; }
    char pattern[512];
    snprintf(pattern, sizeof pattern, "%s:{%s}:*", prefix, journey);
    size_t plen = strlen(prefix) + strlen(journey) + 4;
    long long cursor = 0;
    do {
        redisReply *r = redisCommand(c, "SCAN %lld MATCH %s COUNT 1000", cursor, pattern);
        if (!r || r->type != REDIS_REPLY_ARRAY) { fprintf(stderr, "SCAN failed\n"); return 2; }
        cursor = atoll(r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements; i++) {
            const char *key = r->element[1]->element[i]->str;
            const char *hash = key + plen;
            if (!strcmp(hash, "offsets") || !strcmp(hash, "meta"))
                continue;
            if (events_only && strcmp(hash, "events") && strcmp(hash, "invalid"))
                continue;
            redisReply *hr = redisCommand(c, "HGETALL %s", key);
            if (!hr || hr->type != REDIS_REPLY_ARRAY) continue;
            for (size_t j = 0; j + 1 < hr->elements; j += 2)
                cs_counts_add(got, hash, hr->element[j]->str, atoll(hr->element[j + 1]->str));
            freeReplyObject(hr);
        }
        freeReplyObject(r);
    } while (cursor != 0);
    long d = cs_counts_diff(want, "expected", got, "redis", stdout, 200);
    printf("{\"differences\": %ld, \"compared\": %ld}\n", d, cs_counts_size(want));
    return d ? 1 : 0;
}
