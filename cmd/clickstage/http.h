/* http.h — the daemon's HTTP server (libmicrohttpd): /metrics, /healthz, /readyz, /api/journey,
 * and the live web view at /. Runs on libmicrohttpd's own thread(s); reads only the metrics box
 * and, for /api/journey, Redis through its own connection. */
#ifndef CS_HTTP_H
#define CS_HTTP_H

#include <stddef.h>

#include "metrics.h"

typedef struct cs_http cs_http;

typedef struct cs_http_conf {
    const char *listen;   /* "host:port", "[v6]:port"; port 0 = any free port */
    const char *redis;    /* URL for /api/journey (own connection) */
    const char *prefix;   /* Redis key prefix */
    const char *journey;
    cs_metrics_box *box;
} cs_http_conf;

/* Starts serving; NULL with errstr on failure (e.g. address in use). */
cs_http *cs_http_start(const cs_http_conf *c, char *errstr, size_t errlen);
/* The port actually bound (useful with port 0). */
int cs_http_port(const cs_http *h);
void cs_http_stop(cs_http *h);

#endif
