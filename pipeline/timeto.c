/* timeto.c — see timeto.h. */
#include "timeto.h"

#include <stdio.h>
#include <string.h>

/* SPEC §4.1's bucket upper bounds (aggregate.h declares them; here, with the viewers' helpers,
 * so that a viewer links them without the pipeline) */
const int64_t cs_tt_bound_s[CS_TT_NBOUNDS] = {0,     10,    30,     60,     120,     300,
                                              600,   1800,  3600,   7200,   21600,   43200,
                                              86400, 172800, 604800, 1209600, 2592000, 7776000};
const int64_t cs_tt_bound_ms_pad[32] = {
    0,         10000,      30000,      60000,      120000,     300000,    600000,    1800000,
    3600000,   7200000,    21600000,   43200000,   86400000,   172800000, 604800000, 1209600000,
    2592000000, 7776000000, INT64_MAX, INT64_MAX,  INT64_MAX,  INT64_MAX, INT64_MAX, INT64_MAX,
    INT64_MAX, INT64_MAX,  INT64_MAX,  INT64_MAX,  INT64_MAX,  INT64_MAX, INT64_MAX, INT64_MAX};
const char *const cs_tt_bucket_name[CS_TT_NBUCKETS] = {
    "0",     "10",    "30",     "60",     "120",     "300",     "600",     "1800",    "3600", "7200",
    "21600", "43200", "86400", "172800", "604800", "1209600", "2592000", "7776000", "inf"};

double cs_tt_quantile(const int64_t counts[CS_TT_NBUCKETS], double q, int *open)
{
    if (open)
        *open = 0;
    int64_t n = 0;
    for (int b = 0; b < CS_TT_NBUCKETS; b++)
        n += counts[b] > 0 ? counts[b] : 0;
    if (n <= 0)
        return -1;
    double rank = q * (double)n, below = 0;
    for (int b = 0; b < CS_TT_NBUCKETS; b++) {
        double c = counts[b] > 0 ? (double)counts[b] : 0;
        if (c > 0 && below + c >= rank) {
            if (b == 0)
                return 0;
            if (b == CS_TT_NBOUNDS) {
                if (open)
                    *open = 1;
                return (double)cs_tt_bound_s[CS_TT_NBOUNDS - 1];
            }
            double lo = (double)cs_tt_bound_s[b - 1], hi = (double)cs_tt_bound_s[b];
            double f = (rank - below) / c;
            if (f < 0)
                f = 0;
            return lo + (hi - lo) * f;
        }
        below += c;
    }
    return (double)cs_tt_bound_s[CS_TT_NBOUNDS - 1];
}

void cs_funnel_at_least(const int64_t *transitions, int stride, int ns, int64_t *at_least)
{
    for (int k = 0; k < ns; k++) {
        int64_t s = 0;
        for (int a = 0; a <= k; a++)          /* from below stage k (slot k + 1) */
            for (int b = k + 1; b <= ns; b++) /* to stage k or beyond */
                s += transitions[a * stride + b];
        at_least[k] = s;
    }
}

void cs_tt_format(double secs, int open, char *buf, int cap)
{
    if (secs < 0)
        snprintf(buf, (size_t)cap, "–");
    else if (open)
        snprintf(buf, (size_t)cap, "> %.0f d", secs / 86400);
    else if (secs < 60)
        snprintf(buf, (size_t)cap, "%.0f s", secs);
    else if (secs < 3600)
        snprintf(buf, (size_t)cap, "%.1f min", secs / 60);
    else if (secs < 86400)
        snprintf(buf, (size_t)cap, "%.1f h", secs / 3600);
    else
        snprintf(buf, (size_t)cap, "%.1f d", secs / 86400);
}

void cs_tt_format_short(double secs, int open, char *buf, int cap)
{
    if (secs < 0)
        snprintf(buf, (size_t)cap, "-");
    else if (open)
        snprintf(buf, (size_t)cap, ">%.0fd", secs / 86400);
    else if (secs < 60)
        snprintf(buf, (size_t)cap, "%.0fs", secs);
    else if (secs < 3600)
        snprintf(buf, (size_t)cap, "%.1fm", secs / 60);
    else if (secs < 86400)
        snprintf(buf, (size_t)cap, "%.1fh", secs / 3600);
    else
        snprintf(buf, (size_t)cap, "%.1fd", secs / 86400);
}

int cs_tt_bucket_index(const char *name, int len)
{
    for (int b = 0; b < CS_TT_NBUCKETS; b++)
        if ((int)strlen(cs_tt_bucket_name[b]) == len && !memcmp(cs_tt_bucket_name[b], name, (size_t)len))
            return b;
    return -1;
}
