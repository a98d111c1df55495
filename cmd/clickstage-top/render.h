/* render.h — clickstage-top's screen as plain lines, shared by --once (printed as they are) and
 * the ncurses view (drawn line by line, spans mapped to colours). Pure: everything it shows is
 * in the model and the view struct, including the clock.
 */
#ifndef TOP_RENDER_H
#define TOP_RENDER_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

enum top_attr {
    TOP_A_NORMAL = 0,
    TOP_A_TITLE,                /* section titles: bold */
    TOP_A_HEAD,                 /* table column headings: underline */
    TOP_A_ALERT,                /* STALE, REDIS DOWN: red, reverse */
    TOP_A_BAR,                  /* funnel bars: green */
    TOP_A_DIM,                  /* secondary text */
};

typedef struct top_span {
    int off, len;               /* bytes of the line's text */
    int attr;                   /* enum top_attr */
} top_span;

#define TOP_MAX_SPANS 12
typedef struct top_line {
    char *text;                 /* UTF-8 when the view says so, else ASCII */
    top_span spans[TOP_MAX_SPANS];
    int nspans;
} top_line;

typedef struct top_frame {
    top_line *lines;
    size_t n, cap;
} top_frame;

void top_frame_clear(top_frame *f);
void top_frame_free(top_frame *f);

typedef struct top_view {
    const char *journey;        /* NULL: not known yet */
    const char *where;          /* Redis address as shown (no password) */
    int64_t now_ms;             /* wall clock, for the update age */
    int64_t last_update_ms;     /* wall time of the newest flush seen (meta or message); 0 none */
    uint64_t seq;               /* newest flush sequence number; 0 unknown */
    const char *seq_instance;   /* whose */
    double stale_s;             /* STALE when now - last_update > this */
    int down;                   /* Redis unreachable */
    const char *down_reason;
    const char *status;         /* shown on the second line when not down (e.g. "no data") */
    const top_rates *rates;     /* NULL or !valid: rates shown as "-" */
    const char *dim;            /* breakdown dimension, NULL none */
    size_t dim_index, ndims;    /* position of dim among the dimensions found */
    int utf8;                   /* may use UTF-8 (bars, dash); else pure ASCII */
    int width;                  /* columns available: picks bar width and panel layout */
    int interactive;            /* add the key help line at the end */
    int have_data;              /* the model holds a successful read */
} top_view;

/* Renders the whole screen into f (cleared first). 0 ok, -1 out of memory. */
int top_render(const top_model *m, const top_view *v, top_frame *f);

/* Helpers, exported for the tests. */
size_t top_u8_width(const char *s);                      /* code points (all width 1 here) */
void top_fmt_age(int64_t ms, char *out, size_t n);      /* "0.4s", "12.0s", "3m05s", "2h10m", "3d04h" */
/* Funnel bar of val/max over width cells (eighth blocks in UTF-8, '#' in ASCII). */
void top_fmt_bar(int64_t val, int64_t max, int width, int utf8, char *out, size_t n);

#endif
