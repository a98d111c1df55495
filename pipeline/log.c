/* log.c — see log.h. */
#include "log.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

_Atomic int cs_log_level_ = CS_LOG_INFO;
static int g_format = CS_LOG_FORMAT_TEXT;
static char g_program[64];
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static cs_log_sink_fn g_sink;
static void *g_sink_opaque;

void cs_log_setup(int level, int format, const char *program)
{
    pthread_mutex_lock(&g_mu);
    atomic_store_explicit(&cs_log_level_, level, memory_order_relaxed);
    g_format = format;
    snprintf(g_program, sizeof g_program, "%s", program ? program : "");
    pthread_mutex_unlock(&g_mu);
}

void cs_log_set_sink(cs_log_sink_fn fn, void *opaque)
{
    pthread_mutex_lock(&g_mu);
    g_sink = fn;
    g_sink_opaque = opaque;
    pthread_mutex_unlock(&g_mu);
}

const char *cs_log_level_name(int level)
{
    static const char *const names[8] = {"fatal", "fatal", "fatal", "error",
                                         "warn",  "info",  "info",  "debug"};
    return names[level < 0 ? 0 : level > 7 ? 7 : level];
}

/* the JSON string body of s */
static size_t json_escape(char *out, size_t n, const char *s)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p && o + 7 < n; p++) {
        if (*p == '"' || *p == '\\') {
            out[o++] = '\\';
            out[o++] = (char)*p;
        } else if (*p < 0x20) {
            o += (size_t)snprintf(out + o, n - o, "\\u%04x", *p);
        } else {
            out[o++] = (char)*p;
        }
    }
    out[o] = 0;
    return o;
}

void cs_log_vwrite(int level, const char *fmt, va_list ap)
{
    char msg[2048];
    vsnprintf(msg, sizeof msg, fmt, ap);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[64];
    snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (long)(ts.tv_nsec / 1000000));
    char line[4600];
    pthread_mutex_lock(&g_mu);
    if (g_format == CS_LOG_FORMAT_JSON) {
        char esc[4400];
        json_escape(esc, sizeof esc, msg);
        snprintf(line, sizeof line, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"%s\"}", when,
                 cs_log_level_name(level), esc);
    } else if (g_program[0]) {
        snprintf(line, sizeof line, "%s %-5s %s: %s", when, cs_log_level_name(level), g_program,
                 msg);
    } else {
        snprintf(line, sizeof line, "%s %-5s %s", when, cs_log_level_name(level), msg);
    }
    if (g_sink)
        g_sink(g_sink_opaque, level, line);
    else
        fprintf(stderr, "%s\n", line);
    pthread_mutex_unlock(&g_mu);
}

void cs_log_write(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cs_log_vwrite(level, fmt, ap);
    va_end(ap);
}
