/* log.h — the one logger of every clickstage module and binary.
 *
 * Contract
 *  - Levels are syslog severities: CS_LOG_ERROR 3, CS_LOG_WARN 4, CS_LOG_INFO 6, CS_LOG_DEBUG 7.
 *    CS_LOG(level, fmt, ...) checks the level before anything is formatted, so a debug line that
 *    is off costs one load and one compare; nothing on the per-event path logs at all (per-record
 *    problems are counters).
 *  - One line per call, to stderr (or the sink set with cs_log_set_sink): JSON
 *    {"ts":"...","level":"...","msg":"..."} or text "ts level msg". Lines from different threads
 *    never interleave (one mutex around the write).
 *  - Process-wide: cs_log_setup() is called once by main (level and format from the
 *    configuration); until then the level is info and the format text. A program name, when set,
 *    prefixes text lines ("clickstage-repartition: ..."), as command-line tools do.
 *  - Messages never carry secrets: callers pass URLs through their "where" form (redis.h) and
 *    librdkafka properties through the masked dump (cmd/clickstage/config.c).
 *
 * Rejected: a logger handle per module (the sink, the source and main each had one, and a
 * callback to forward between them: four formats of the same line); syslog(3) (containers log to
 * stderr).
 */
#ifndef CS_LOG_H
#define CS_LOG_H

#include <stdarg.h>
#include <stdatomic.h>

#define CS_LOG_ERROR 3
#define CS_LOG_WARN 4
#define CS_LOG_INFO 6
#define CS_LOG_DEBUG 7
#define CS_LOG_FORMAT_JSON 0
#define CS_LOG_FORMAT_TEXT 1

/* relaxed: a level change takes effect "soon" for other threads; nothing else hangs off it */
extern _Atomic int cs_log_level_;

static inline int cs_log_on(int level)
{
    return level <= atomic_load_explicit(&cs_log_level_, memory_order_relaxed);
}

#define CS_LOG(level, ...)                                                                      \
    do {                                                                                        \
        if (cs_log_on(level))                                                                   \
            cs_log_write((level), __VA_ARGS__);                                                 \
    } while (0)

void cs_log_setup(int level, int format, const char *program);
void cs_log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cs_log_vwrite(int level, const char *fmt, va_list ap);
/* Where lines go instead of stderr (tests): called with the formatted line, without newline.
 * NULL restores stderr. */
typedef void (*cs_log_sink_fn)(void *opaque, int level, const char *line);
void cs_log_set_sink(cs_log_sink_fn fn, void *opaque);
/* "error", "warn", "info", "debug" */
const char *cs_log_level_name(int level);

#endif
