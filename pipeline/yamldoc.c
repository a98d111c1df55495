/* yamldoc.c — see yamldoc.h. A composer over libyaml's event API that builds the same
 * yaml_document_t as yaml_parser_load() (libyaml 0.2.5 loader.c), with a nesting limit, a node
 * limit and anchors in a hash table. */
#include "yamldoc.h"

#include <stdio.h>

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

_Static_assert(CS_YAML_MAX_DEPTH == 32, "update the depth error message");
_Static_assert(CS_YAML_MAX_NODES == 1048576, "update the node-count error message");

typedef struct anchor {
    char *name; /* NULL = empty slot */
    uint64_t h;
    int node;
    yaml_mark_t mark;
} anchor;

typedef struct anchors {
    anchor *t;
    size_t cap, n; /* cap is 0 or a power of two; n <= cap / 2 */
} anchors;

/* An open collection: its node, and for a mapping the key waiting for its value (0: none). */
typedef struct frame {
    int node;
    int key;
} frame;

static int set_error(yaml_parser_t *ps, yaml_error_type_t type, const char *context,
                     yaml_mark_t context_mark, const char *problem, yaml_mark_t problem_mark)
{
    ps->error = type;
    ps->context = context;
    ps->context_mark = context_mark;
    ps->problem = problem;
    ps->problem_mark = problem_mark;
    return 0;
}

static int no_memory(yaml_parser_t *ps)
{
    yaml_mark_t m0 = {0, 0, 0};
    return set_error(ps, YAML_MEMORY_ERROR, NULL, m0, "out of memory", m0);
}

/* The slot of `name`: its entry, or the empty slot where it would go. */
static anchor *anchor_slot(const anchors *a, const char *name, uint64_t h, uint64_t *work)
{
    for (size_t i = (size_t)h & (a->cap - 1);; i = (i + 1) & (a->cap - 1)) {
        ++*work;
        anchor *s = &a->t[i];
        if (!s->name || (s->h == h && strcmp(s->name, name) == 0))
            return s;
    }
}

static int anchor_grow(anchors *a, uint64_t *work)
{
    size_t ncap = a->cap ? a->cap * 2 : 64;
    anchors b = {calloc(ncap, sizeof *b.t), ncap, a->n};
    if (!b.t)
        return -1;
    for (size_t i = 0; i < a->cap; i++)
        if (a->t[i].name)
            *anchor_slot(&b, a->t[i].name, a->t[i].h, work) = a->t[i];
    free(a->t);
    *a = b;
    return 0;
}

static void anchors_free(anchors *a)
{
    for (size_t i = 0; i < a->cap; i++)
        free(a->t[i].name);
    free(a->t);
}

/* The node anchored as `name`, or 0. */
static int anchor_find(const anchors *a, const char *name, uint64_t *work)
{
    if (!a->cap)
        return 0;
    const anchor *s = anchor_slot(a, name, XXH3_64bits(name, strlen(name)), work);
    return s->name ? s->node : 0;
}

/* 1 ok; 0 with the parser's error set (a duplicate anchor, as libyaml reports it, or memory). */
static int anchor_add(yaml_parser_t *ps, anchors *a, const char *name, int node, yaml_mark_t m,
                      uint64_t *work)
{
    if ((a->n + 1) * 2 > a->cap && anchor_grow(a, work) < 0)
        return no_memory(ps);
    uint64_t h = XXH3_64bits(name, strlen(name));
    anchor *s = anchor_slot(a, name, h, work);
    if (s->name)
        return set_error(ps, YAML_COMPOSER_ERROR, "found duplicate anchor; first occurrence",
                         s->mark, "second occurrence", m);
    size_t len = strlen(name);
    if (!(s->name = malloc(len + 1)))
        return no_memory(ps);
    memcpy(s->name, name, len + 1);
    s->h = h;
    s->node = node;
    s->mark = m;
    a->n++;
    return 1;
}

static void set_marks(yaml_document_t *doc, int id, yaml_mark_t start, yaml_mark_t end)
{
    yaml_node_t *n = yaml_document_get_node(doc, id);
    n->start_mark = start;
    n->end_mark = end;
}

int cs_yaml_load(yaml_parser_t *ps, yaml_document_t *doc, uint64_t *steps)
{
    yaml_event_t ev;
    frame stack[CS_YAML_MAX_DEPTH];
    int depth = 0;
    anchors anc = {NULL, 0, 0};
    uint64_t work = 0;
    int ok = 0;

    memset(doc, 0, sizeof *doc);
    if (!yaml_document_initialize(doc, NULL, NULL, NULL, 1, 1)) {
        memset(doc, 0, sizeof *doc);
        return no_memory(ps);
    }
    if (!ps->stream_start_produced) {
        if (!yaml_parser_parse(ps, &ev))
            goto out;
        yaml_event_delete(&ev); /* the parser only ever starts with STREAM-START */
    }
    if (ps->stream_end_produced) {
        ok = 1; /* past the end: an empty document, as yaml_parser_load() gives */
        goto out;
    }
    if (!yaml_parser_parse(ps, &ev))
        goto out;
    if (ev.type != YAML_DOCUMENT_START_EVENT) { /* STREAM-END: no (more) documents */
        yaml_event_delete(&ev);
        ok = 1;
        goto out;
    }
    doc->start_mark = ev.start_mark;
    doc->start_implicit = ev.data.document_start.implicit;
    yaml_event_delete(&ev);

    for (;;) {
        if (!yaml_parser_parse(ps, &ev))
            goto out;
        work++;
        int id = 0, open = 0;
        const yaml_char_t *aname = NULL;
        switch (ev.type) {
        case YAML_DOCUMENT_END_EVENT:
            doc->end_mark = ev.end_mark;
            doc->end_implicit = ev.data.document_end.implicit;
            yaml_event_delete(&ev);
            ok = 1;
            goto out;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            depth--;
            yaml_document_get_node(doc, stack[depth].node)->end_mark = ev.end_mark;
            yaml_event_delete(&ev);
            continue;
        case YAML_ALIAS_EVENT:
            id = anchor_find(&anc, (const char *)ev.data.alias.anchor, &work);
            if (!id) {
                set_error(ps, YAML_COMPOSER_ERROR, NULL, ev.start_mark, "found undefined alias",
                          ev.start_mark);
                yaml_event_delete(&ev);
                goto out;
            }
            break;
        case YAML_SCALAR_EVENT:
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            if ((size_t)(doc->nodes.top - doc->nodes.start) >= CS_YAML_MAX_NODES) {
                set_error(ps, YAML_COMPOSER_ERROR, NULL, ev.start_mark,
                          "the document has more than 1048576 nodes", ev.start_mark);
                yaml_event_delete(&ev);
                goto out;
            }
            if (ev.type == YAML_SCALAR_EVENT) {
                if (ev.data.scalar.length > INT_MAX) {
                    set_error(ps, YAML_COMPOSER_ERROR, NULL, ev.start_mark, "scalar too long",
                              ev.start_mark);
                    yaml_event_delete(&ev);
                    goto out;
                }
                id = yaml_document_add_scalar(doc, NULL, ev.data.scalar.value,
                                              (int)ev.data.scalar.length, ev.data.scalar.style);
                aname = ev.data.scalar.anchor;
            } else {
                if (depth == CS_YAML_MAX_DEPTH) {
                    set_error(ps, YAML_COMPOSER_ERROR, NULL, ev.start_mark,
                              "collections nested more than 32 deep", ev.start_mark);
                    yaml_event_delete(&ev);
                    goto out;
                }
                open = 1;
                if (ev.type == YAML_SEQUENCE_START_EVENT) {
                    id = yaml_document_add_sequence(doc, NULL, ev.data.sequence_start.style);
                    aname = ev.data.sequence_start.anchor;
                } else {
                    id = yaml_document_add_mapping(doc, NULL, ev.data.mapping_start.style);
                    aname = ev.data.mapping_start.anchor;
                }
            }
            if (!id) { /* out of memory (the parser hands out valid UTF-8 only) */
                no_memory(ps);
                yaml_event_delete(&ev);
                goto out;
            }
            set_marks(doc, id, ev.start_mark, ev.end_mark);
            /* registered before the collection's children are read, as libyaml does, so an
             * alias inside a collection may name the collection itself (a cycle) */
            if (aname && !anchor_add(ps, &anc, (const char *)aname, id, ev.start_mark, &work)) {
                yaml_event_delete(&ev);
                goto out;
            }
            break;
        default: /* STREAM/DOCUMENT-START inside a document: the parser never produces them */
            set_error(ps, YAML_COMPOSER_ERROR, NULL, ev.start_mark, "unexpected YAML event",
                      ev.start_mark);
            yaml_event_delete(&ev);
            goto out;
        }
        yaml_event_delete(&ev);
        if (depth > 0) {
            frame *f = &stack[depth - 1];
            int r;
            if (yaml_document_get_node(doc, f->node)->type == YAML_SEQUENCE_NODE) {
                r = yaml_document_append_sequence_item(doc, f->node, id);
            } else if (!f->key) {
                f->key = id;
                r = 1;
            } else {
                r = yaml_document_append_mapping_pair(doc, f->node, f->key, id);
                f->key = 0;
            }
            if (!r) {
                no_memory(ps);
                goto out;
            }
        }
        if (open)
            stack[depth++] = (frame){id, 0};
    }
out:
    anchors_free(&anc);
    if (steps)
        *steps += work;
    if (!ok) {
        yaml_document_delete(doc);
        memset(doc, 0, sizeof *doc);
    }
    return ok;
}

void cs_yaml_error(const yaml_parser_t *ps, const char *src, size_t len, yaml_mark_t *at,
                   char *msg, size_t n)
{
    const char *problem = ps->problem ? ps->problem : "unknown error";
    yaml_mark_t m = {0, 0, 0};
    switch (ps->error) {
    case YAML_MEMORY_ERROR:
        snprintf(msg, n, "out of memory while parsing YAML");
        break;
    case YAML_READER_ERROR: {
        size_t off = ps->problem_offset < len ? ps->problem_offset : len;
        m.index = off;
        for (size_t i = 0; i < off; i++) {
            if (src[i] == '\n') {
                m.line++;
                m.column = 0;
            } else {
                m.column++;
            }
        }
        if (ps->problem_value != -1)
            snprintf(msg, n, "YAML syntax error: %s (byte 0x%02x)", problem,
                     (unsigned)ps->problem_value & 0xffu);
        else
            snprintf(msg, n, "YAML syntax error: %s", problem);
        break;
    }
    default:
        m = ps->problem_mark;
        if (ps->context)
            snprintf(msg, n, "YAML syntax error: %s (%s started at line %zu, column %zu)", problem,
                     ps->context, ps->context_mark.line + 1, ps->context_mark.column + 1);
        else
            snprintf(msg, n, "YAML syntax error: %s", problem);
    }
    *at = m;
}
