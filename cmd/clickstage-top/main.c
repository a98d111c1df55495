/* clickstage-top — live terminal view of one journey's stage counts in Redis (SPEC §4, §5).
 *
 *   clickstage-top [--redis URL] [--prefix P] [--journey J] [--dimension NAME] [--stale S]
 *                  [--poll S] [--once]
 *
 * Data flow: conn.c reads the journey's hashes in one MULTI/EXEC into a top_model (model.c);
 * render.c turns model + view state into lines; this file prints them (--once) or draws them
 * with ncursesw, and runs the loop: poll() on stdin and the subscriber socket, refresh when an
 * update message arrives (at most every 100 ms) and every --poll seconds regardless, reconnect
 * every second while Redis is unreachable. Reference: docs/top.md.
 */
#include <curses.h>
#include <errno.h>
#include <getopt.h>
#include <langinfo.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "model.h"
#include "rkeys.h"
#include "render.h"
#include "url.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE 64

#define COALESCE_MS 100      /* at most ~10 refreshes per second from update messages */
#define RETRY_MS 1000        /* reconnect attempts while Redis is down */
#define DIMSCAN_MS 10000     /* rescan by:*:reached keys for new dimensions */
#define REDRAW_MS 250        /* the update age ticks even when nothing arrives */

typedef struct opts {
    const char *redis;
    const char *prefix;
    const char *journey;
    const char *dimension;
    double stale_s;
    double poll_s;
    int once;
} opts;

typedef struct app {
    opts o;
    top_url url;
    top_conn conn;
    char *journey;              /* given or discovered */
    char **dims;
    size_t ndims, dim_idx;
    char *dim;                  /* the selected dimension (kept across rescans) */
    top_model model, tmp;
    int have_data;
    top_rate_hist hist;
    top_rates rates;
    int up;                     /* both connections open and subscribed */
    int ever_up;
    char down_reason[256];
    char status[512];
    int64_t next_retry, next_poll, next_dimscan, last_refresh;
    int pending;                /* an update message arrived since the last refresh */
    top_update last_msg;
    int utf8;
    int fatal;                  /* exit code to leave with after endwin, 0 none */
    char fatal_msg[1024];
} app;

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- options ------------------------------------------------------------------------------- */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: clickstage-top [options]\n"
            "\n"
            "Live terminal view of one journey's stage counts in Redis (SPEC section 4).\n"
            "\n"
            "Options (flags > environment > defaults):\n"
            "  --redis URL        Redis to read (env CLICKSTAGE_REDIS; default\n"
            "                     redis://127.0.0.1:6379/0). redis://[[user]:password@]host[:port][/db],\n"
            "                     unix:///path.sock[?db=N&password=P] or /path.sock;\n"
            "                     a Redis Cluster: any node's redis:// URL, or\n"
            "                     redis+cluster://h1:p1,h2:p2; Sentinel:\n"
            "                     redis+sentinel://s1:26379,s2:26379/master[/db].\n"
            "  --prefix P         key prefix (env CLICKSTAGE_PREFIX; default clickstage).\n"
            "  --journey J        journey to show (default: the only journey found under the\n"
            "                     prefix, by SCAN of <prefix>:{*}:meta; an error if there are several).\n"
            "  --dimension NAME   initial breakdown dimension (default: the first found, by name).\n"
            "  --stale SECONDS    show STALE when no flush was seen for this long (default 10; an\n"
            "                     idle daemon still writes every 5 s).\n"
            "  --poll SECONDS     fallback refresh interval without update messages (default 2).\n"
            "  --once             print one plain-text frame to stdout and exit (for scripts);\n"
            "                     rates need two samples and show as '-'.\n"
            "  -h, --help         print this help and exit.\n"
            "\n"
            "Keys: q quit, r refresh now, d next dimension.\n"
            "Exit status: 0 ok (q, SIGINT, SIGTERM); 1 Redis unreachable (--once), no or several\n"
            "journeys; 64 usage error. Reference: docs/top.md\n");
}

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "clickstage-top: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\ntry 'clickstage-top --help'\n");
    return EXIT_USAGE;
}

static int parse_seconds(const char *s, double min, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= min) || v > 86400.0 * 365)
        return -1;
    *out = v;
    return 0;
}

static int valid_prefix(const char *p)
{
    size_t n = strlen(p);
    if (n < 1 || n > 128)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

/* 0 go on, else the exit code (-1: --help, exit 0). */
static int parse_opts(int argc, char **argv, opts *o)
{
    memset(o, 0, sizeof *o);
    o->redis = getenv("CLICKSTAGE_REDIS");
    o->prefix = getenv("CLICKSTAGE_PREFIX");
    o->stale_s = 10; /* an idle daemon writes its heartbeat every 5 s + one flush interval */
    o->poll_s = 2;
    static const struct option lo[] = {
        {"redis", required_argument, NULL, 'R'},   {"prefix", required_argument, NULL, 'P'},
        {"journey", required_argument, NULL, 'j'}, {"dimension", required_argument, NULL, 'D'},
        {"stale", required_argument, NULL, 's'},   {"poll", required_argument, NULL, 'p'},
        {"once", no_argument, NULL, 'o'},          {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", lo, NULL)) != -1) {
        switch (c) {
        case 'R': o->redis = optarg; break;
        case 'P': o->prefix = optarg; break;
        case 'j':
            if (!*optarg)
                return usage_error("--journey: empty journey name%s", "");
            o->journey = optarg;
            break;
        case 'D':
            if (!*optarg)
                return usage_error("--dimension: empty dimension name%s", "");
            o->dimension = optarg;
            break;
        case 's':
            if (parse_seconds(optarg, 0.1, &o->stale_s) < 0)
                return usage_error("--stale: expected seconds >= 0.1, got '%s'", optarg);
            break;
        case 'p':
            if (parse_seconds(optarg, 0.1, &o->poll_s) < 0)
                return usage_error("--poll: expected seconds >= 0.1, got '%s'", optarg);
            break;
        case 'o': o->once = 1; break;
        case 'h': usage(stdout); return -1;
        case ':': return usage_error("%s: missing value", argv[optind - 1]);
        default:
            return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    if (!o->redis || !*o->redis)
        o->redis = "redis://127.0.0.1:6379/0";
    if (!o->prefix || !*o->prefix)
        o->prefix = "clickstage";
    if (!valid_prefix(o->prefix))
        return usage_error("--prefix: expected 1..128 of [A-Za-z0-9_.-], got '%s'", o->prefix);
    return 0;
}

/* ---- Redis side ---------------------------------------------------------------------------- */

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void go_down(app *a, const char *why)
{
    top_conn_close(&a->conn);
    if (a->up || !a->down_reason[0] || strcmp(a->down_reason, why) != 0)
        snprintf(a->down_reason, sizeof a->down_reason, "%s", why);
    a->up = 0;
    a->next_retry = mono_ms() + RETRY_MS;
}

/* Journeys under the prefix. 1 one found (a->journey set), 0 none yet, -1 Redis error, -2
 * several (a->fatal set). */
static int discover_journey(app *a)
{
    char pat[CS_RKEYS_MAX * 2];
    if (!cs_rk_pattern(pat, sizeof pat, a->o.prefix, NULL, CS_RK_META)) {
        snprintf(a->conn.err, sizeof a->conn.err, "prefix too long");
        return -1;
    }
    char **keys;
    size_t n;
    int rc = top_conn_scan(&a->conn, pat, &keys, &n);
    if (rc < 0)
        return -1;
    size_t nj = 0;
    for (size_t i = 0; i < n; i++) {
        char *j = top_journey_from_key(a->o.prefix, keys[i], strlen(keys[i]));
        free(keys[i]);
        if (j)
            keys[nj++] = j;
    }
    nj = top_strv_sort_uniq(keys, nj);
    if (nj == 1) {
        a->journey = keys[0];
        free(keys);
        return 1;
    }
    if (nj == 0) {
        snprintf(a->status, sizeof a->status,
                 "no journey under prefix '%s' yet (no %.200s key); waiting", a->o.prefix, pat);
        free(keys);
        return 0;
    }
    size_t o = (size_t)snprintf(a->fatal_msg, sizeof a->fatal_msg,
                                "several journeys under prefix '%s':", a->o.prefix);
    for (size_t i = 0; i < nj && o < sizeof a->fatal_msg; i++)
        o += (size_t)snprintf(a->fatal_msg + o, sizeof a->fatal_msg - o, "%s %s", i ? "," : "",
                              keys[i]);
    if (o < sizeof a->fatal_msg)
        snprintf(a->fatal_msg + o, sizeof a->fatal_msg - o, "; pick one with --journey");
    a->fatal = EXIT_RUNTIME;
    free_strv(keys, nj);
    return -2;
}

static int set_dim(app *a, const char *d)
{
    char *c = d ? strdup(d) : NULL;
    if (d && !c)
        return -1;
    free(a->dim);
    a->dim = c;
    return 0;
}

/* "<prefix>:{<journey>}:meta", for messages */
static const char *meta_key(const app *a)
{
    static char buf[CS_RKEYS_MAX + 8];
    cs_rkeys rk;
    if (cs_rkeys_init(&rk, a->o.prefix, a->journey) < 0 || !cs_rkey(&rk, CS_RK_META, buf, sizeof buf))
        snprintf(buf, sizeof buf, "meta");
    return buf;
}

/* Rescans the dimensions; keeps the selected one (or --dimension) in the list. */
static int scan_dims(app *a)
{
    char pat[CS_RKEYS_MAX * 2];
    if (!cs_rk_pattern(pat, sizeof pat, a->o.prefix, a->journey, CS_RK_BY "*:reached")) {
        snprintf(a->conn.err, sizeof a->conn.err, "prefix or journey too long");
        return -1;
    }
    char **keys;
    size_t n;
    int rc = top_conn_scan(&a->conn, pat, &keys, &n);
    if (rc < 0)
        return -1;
    size_t nd = 0;
    for (size_t i = 0; i < n; i++) {
        char *d = top_dim_from_key(a->o.prefix, a->journey, keys[i], strlen(keys[i]));
        free(keys[i]);
        if (d)
            keys[nd++] = d;
    }
    const char *want = a->dim ? a->dim : a->o.dimension;
    if (want) {
        int found = 0;
        for (size_t i = 0; i < nd; i++)
            found |= strcmp(keys[i], want) == 0;
        if (!found) {
            char **nk = realloc(keys, (nd + 1) * sizeof *nk);
            if (nk)
                keys = nk;
            if (nk && (keys[nd] = strdup(want)))
                nd++;
        }
    }
    nd = top_strv_sort_uniq(keys, nd);
    free_strv(a->dims, a->ndims);
    a->dims = keys;
    a->ndims = nd;
    a->dim_idx = 0;
    for (size_t i = 0; want && i < nd; i++)
        if (strcmp(keys[i], want) == 0)
            a->dim_idx = i;
    if (set_dim(a, nd ? keys[a->dim_idx] : NULL) < 0) {
        snprintf(a->conn.err, sizeof a->conn.err, "out of memory");
        return -1;
    }
    a->next_dimscan = mono_ms() + DIMSCAN_MS;
    return 0;
}

/* No flush for --stale seconds: the daemon's writes may be refused, which a reader cannot see;
 * ask INFO what it shows (a replica, loading, out of memory; issue 20) and say it on the status
 * line. The newest flush time is the meta hash's or the last update message's. */
static void stale_hint(app *a)
{
    int64_t upd = a->model.updated_ms;
    if (a->last_msg.updated_ms > upd)
        upd = a->last_msg.updated_ms;
    int64_t age = wall_ms() - upd;
    if (upd <= 0 || (double)age <= a->o.stale_s * 1000.0)
        return;
    char *info;
    size_t len;
    char hint[384] = "";
    if (top_conn_info(&a->conn, &info, &len) == 0) {
        top_info_hint(info, len, hint, sizeof hint);
        free(info);
    }
    char as[32];
    top_fmt_age(age, as, sizeof as);
    if (hint[0])
        snprintf(a->status, sizeof a->status, "no flush for %s: %s", as, hint);
    else
        snprintf(a->status, sizeof a->status, "no flush for %s: the daemon is stopped, or "
                 "Redis refuses its writes for a reason INFO does not show (an ACL?): the "
                 "daemon's /readyz and log name it", as);
}

static int refresh_data(app *a)
{
    int64_t now = mono_ms();
    a->last_refresh = now;
    a->next_poll = now + (int64_t)(a->o.poll_s * 1000.0);
    a->pending = 0;
    if (top_conn_fetch(&a->conn, a->o.prefix, a->journey, a->dim, &a->tmp) < 0)
        return -1;
    top_model t = a->model;
    a->model = a->tmp;
    a->tmp = t;
    a->have_data = 1;
    top_totals tot;
    top_totals_of(&a->model, &tot);
    top_rates_push(&a->hist, now, &tot, &a->rates);
    if (!a->model.has_meta)
        snprintf(a->status, sizeof a->status,
                 "no %s yet: no flush has written this journey (is the daemon running?)",
                 meta_key(a));
    else if (a->conn.warn[0])
        snprintf(a->status, sizeof a->status, "warning: %s", a->conn.warn);
    else
        a->status[0] = 0;
    if (a->model.has_meta && a->status[0] == 0)
        stale_hint(a);
    return 0;
}

/* Connects both connections, finds the journey and dimensions, subscribes, refreshes.
 * 0 up, -1 down (a->down_reason), -2 fatal. */
static int connect_all(app *a)
{
    if (top_conn_open(&a->conn) < 0)
        goto down;
    if (!a->journey) {
        int rc = discover_journey(a);
        if (rc == -2)
            return -2;
        if (rc < 0)
            goto down;
        if (rc == 0) { /* connected but nothing to show yet: look again at the next poll */
            top_conn_close(&a->conn);
            a->up = 0;
            a->down_reason[0] = 0;
            a->ever_up = 1;
            a->next_retry = mono_ms() + (int64_t)(a->o.poll_s * 1000.0);
            return 0;
        }
    }
    if (scan_dims(a) < 0)
        goto down;
    cs_rkeys rk;
    char chan[CS_RKEYS_MAX + 16];
    if (cs_rkeys_init(&rk, a->o.prefix, a->journey) < 0 ||
        !cs_rkey(&rk, CS_RK_UPDATES, chan, sizeof chan)) {
        snprintf(a->conn.err, sizeof a->conn.err, "prefix or journey too long");
        goto down;
    }
    int rc = top_conn_subscribe(&a->conn, chan);
    if (rc < 0 || refresh_data(a) < 0)
        goto down;
    a->up = 1;
    a->ever_up = 1;
    a->down_reason[0] = 0;
    return 0;
down:
    go_down(a, a->conn.err[0] ? a->conn.err : "unknown error");
    return -1;
}

/* ---- drawing ------------------------------------------------------------------------------- */

static void fill_view(app *a, top_view *v, int width, int interactive)
{
    memset(v, 0, sizeof *v);
    v->journey = a->journey;
    v->where = a->url.where;
    v->now_ms = wall_ms();
    int64_t upd = a->model.updated_ms;
    if (a->last_msg.updated_ms > upd)
        upd = a->last_msg.updated_ms;
    v->last_update_ms = a->have_data ? upd : 0;
    if (a->last_msg.seq) {
        v->seq = a->last_msg.seq;
        v->seq_instance = a->last_msg.instance;
    } else {
        v->seq = a->model.seq;
        v->seq_instance = a->model.seq_instance;
    }
    v->stale_s = a->o.stale_s;
    v->down = !a->up && a->down_reason[0];
    v->down_reason = a->down_reason;
    v->status = a->status;
    v->rates = &a->rates;
    v->dim = a->dim;
    v->dim_index = a->dim_idx;
    v->ndims = a->ndims;
    v->utf8 = a->utf8;
    v->width = width;
    v->interactive = interactive;
    v->have_data = a->have_data;
}

static attr_t attr_of(int a)
{
    switch (a) {
    case TOP_A_TITLE: return A_BOLD;
    case TOP_A_HEAD: return A_UNDERLINE;
    case TOP_A_ALERT: return A_REVERSE | A_BOLD | (has_colors() ? COLOR_PAIR(1) : 0);
    case TOP_A_BAR: return has_colors() ? COLOR_PAIR(2) : 0;
    case TOP_A_DIM: return A_DIM;
    default: return A_NORMAL;
    }
}

/* Bytes of s that fit in cols display columns. */
static int fit_bytes(const char *s, int len, int cols)
{
    int w = 0, i = 0;
    while (i < len) {
        if (((unsigned char)s[i] & 0xC0) != 0x80) {
            if (w == cols)
                break;
            w++;
        }
        i++;
    }
    return i;
}

static int col_of(const char *s, int off)
{
    int w = 0;
    for (int i = 0; i < off && s[i]; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            w++;
    return w;
}

static void draw_line(int y, const top_line *l)
{
    int len = (int)strlen(l->text);
    mvaddnstr(y, 0, l->text, fit_bytes(l->text, len, COLS));
    for (int i = 0; i < l->nspans; i++) {
        const top_span *s = &l->spans[i];
        int x = col_of(l->text, s->off);
        if (x >= COLS)
            continue;
        attr_t at = attr_of(s->attr);
        attron(at);
        mvaddnstr(y, x, l->text + s->off, fit_bytes(l->text + s->off, s->len, COLS - x));
        attroff(at);
    }
}

static void draw(app *a, top_frame *f)
{
    top_view v;
    fill_view(a, &v, COLS, 1);
    if (top_render(&a->model, &v, f) < 0)
        return;
    erase();
    int rows = LINES;
    if ((int)f->n <= rows) {
        for (size_t i = 0; i < f->n; i++)
            draw_line((int)i, &f->lines[i]);
    } else if (rows > 0) { /* too short: keep the key help on the last row */
        for (int i = 0; i < rows - 1; i++)
            draw_line(i, &f->lines[i]);
        draw_line(rows - 1, &f->lines[f->n - 1]);
    }
    refresh();
}

/* ---- modes --------------------------------------------------------------------------------- */

static int run_once(app *a)
{
    if (top_conn_open(&a->conn) < 0) {
        fprintf(stderr, "clickstage-top: %s\n", a->conn.err);
        return EXIT_RUNTIME;
    }
    if (!a->journey) {
        int rc = discover_journey(a);
        if (rc == 0) {
            char pat[CS_RKEYS_MAX * 2];
            cs_rk_pattern(pat, sizeof pat, a->o.prefix, NULL, CS_RK_META);
            fprintf(stderr, "clickstage-top: no journey under prefix '%s' (no %s key)\n",
                    a->o.prefix, pat);
            return EXIT_RUNTIME;
        }
        if (rc < 0) {
            fprintf(stderr, "clickstage-top: %s\n", rc == -2 ? a->fatal_msg : a->conn.err);
            return EXIT_RUNTIME;
        }
    }
    if (scan_dims(a) < 0 || refresh_data(a) < 0) {
        fprintf(stderr, "clickstage-top: %s\n", a->conn.err);
        return EXIT_RUNTIME;
    }
    a->up = 1;
    int width = 120;
    const char *cols = getenv("COLUMNS");
    struct winsize ws;
    if (cols && atoi(cols) > 0)
        width = atoi(cols);
    else if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col)
        width = ws.ws_col;
    top_view v;
    fill_view(a, &v, width, 0);
    top_frame f = {0};
    if (top_render(&a->model, &v, &f) < 0) {
        fprintf(stderr, "clickstage-top: out of memory\n");
        return EXIT_RUNTIME;
    }
    for (size_t i = 0; i < f.n; i++)
        printf("%s\n", f.lines[i].text);
    top_frame_free(&f);
    if (fflush(stdout) != 0)
        return EXIT_RUNTIME;
    if (!a->model.has_meta) { /* nothing has written this journey: say so in the exit status */
        fprintf(stderr, "clickstage-top: no %s\n", meta_key(a));
        return EXIT_RUNTIME;
    }
    return 0;
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static int run_live(app *a)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL); /* before initscr: ncurses then leaves them to us */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
        fprintf(stderr, "clickstage-top: not a terminal (use --once for a plain-text frame)\n");
        return EXIT_RUNTIME;
    }
    const char *term = getenv("TERM");
    if (!term || !*term || !newterm(NULL, stdout, stdin)) { /* initscr would exit() instead */
        fprintf(stderr, "clickstage-top: cannot use terminal type '%s' (use --once for a "
                "plain-text frame)\n", term ? term : "");
        return EXIT_RUNTIME;
    }
    cbreak();
    noecho();
    keypad(stdscr, TRUE);
    nodelay(stdscr, TRUE);
    curs_set(0);
    if (has_colors()) {
        start_color();
        use_default_colors();
        init_pair(1, COLOR_RED, -1);
        init_pair(2, COLOR_GREEN, -1);
    }
    top_frame f = {0};
    a->next_retry = 0;
    int quit = 0;
    while (!quit && !g_stop && !a->fatal) {
        int64_t now = mono_ms();
        if (!a->up && now >= a->next_retry) {
            if (!a->ever_up && !a->down_reason[0]) {
                snprintf(a->status, sizeof a->status, "connecting to %s", a->url.where);
                draw(a, &f);
            }
            if (connect_all(a) == -2)
                break;
        }
        if (a->up) {
            now = mono_ms();
            int err = 0;
            if (now >= a->next_dimscan)
                err = scan_dims(a) < 0;
            if (!err && ((a->pending && now - a->last_refresh >= COALESCE_MS) ||
                         now >= a->next_poll))
                err = refresh_data(a) < 0;
            if (err)
                go_down(a, a->conn.err);
        }
        draw(a, &f);

        now = mono_ms();
        int64_t wake = now + REDRAW_MS;
        if (!a->up)
            wake = min64(wake, a->next_retry);
        else {
            wake = min64(wake, a->next_poll);
            wake = min64(wake, a->next_dimscan);
            if (a->pending)
                wake = min64(wake, a->last_refresh + COALESCE_MS);
        }
        int timeout = wake > now ? (int)(wake - now) : 0;
        struct pollfd pfd[2] = {{.fd = STDIN_FILENO, .events = POLLIN}, {.fd = -1}};
        int sfd = a->up ? top_conn_sub_fd(&a->conn) : -1;
        pfd[1].fd = sfd;
        pfd[1].events = POLLIN;
        int pr = poll(pfd, sfd >= 0 ? 2 : 1, timeout);
        if (pr < 0 && errno != EINTR)
            break;
        if (pr > 0 && sfd >= 0 && (pfd[1].revents & (POLLIN | POLLHUP | POLLERR))) {
            int got = 0;
            if (top_conn_sub_read(&a->conn, &a->last_msg, &got) < 0)
                go_down(a, a->conn.err);
            else if (got)
                a->pending = 1;
        }
        /* Keys (and KEY_RESIZE after SIGWINCH, which interrupts poll). */
        int ch;
        while ((ch = getch()) != ERR) {
            if (ch == 'q' || ch == 'Q') {
                quit = 1;
            } else if (ch == 'r' || ch == 'R' || ch == 12 /* ^L */) {
                if (ch == 12)
                    clearok(curscr, TRUE);
                if (a->up) {
                    if (scan_dims(a) < 0 || refresh_data(a) < 0)
                        go_down(a, a->conn.err);
                } else {
                    a->next_retry = 0;
                }
            } else if (ch == 'd' || ch == 'D') {
                if (a->ndims > 1) {
                    a->dim_idx = (a->dim_idx + 1) % a->ndims;
                    set_dim(a, a->dims[a->dim_idx]);
                    if (a->up && refresh_data(a) < 0)
                        go_down(a, a->conn.err);
                }
            }
        }
    }
    top_frame_free(&f);
    endwin();
    if (a->fatal) {
        fprintf(stderr, "clickstage-top: %s\n", a->fatal_msg);
        return a->fatal;
    }
    return 0;
}

int main(int argc, char **argv)
{
    app a;
    memset(&a, 0, sizeof a);
    int rc = parse_opts(argc, argv, &a.o);
    if (rc)
        return rc < 0 ? 0 : rc;
    char err[256];
    if (top_url_parse(a.o.redis, &a.url, err, sizeof err) < 0)
        return usage_error("--redis: %s", err);
    setlocale(LC_ALL, "");
    /* the locale's character set (UTF-8 bars), never its numbers: printf's %.1f would print
     * "61,7%" and "1,8m" under de_DE and others (tests/top: the screen is the same in any locale) */
    setlocale(LC_NUMERIC, "C");
    const char *cs = nl_langinfo(CODESET);
    a.utf8 = cs && (strcmp(cs, "UTF-8") == 0 || strcmp(cs, "utf8") == 0);
    signal(SIGPIPE, SIG_IGN); /* a write to a Redis that went away: an error, not a death */
    a.conn.url = &a.url;
    a.conn.redis_url = a.o.redis;
    a.conn.connect_timeout_ms = 1000;
    a.conn.command_timeout_ms = 2000;
    if (a.o.journey && !(a.journey = strdup(a.o.journey)))
        return EXIT_RUNTIME;
    if (a.o.dimension && set_dim(&a, a.o.dimension) < 0)
        return EXIT_RUNTIME;
    top_model_init(&a.model);
    top_model_init(&a.tmp);
    rc = a.o.once ? run_once(&a) : run_live(&a);
    top_conn_close(&a.conn);
    top_model_free(&a.model);
    top_model_free(&a.tmp);
    free_strv(a.dims, a.ndims);
    free(a.dim);
    free(a.journey);
    top_url_free(&a.url);
    return rc;
}
