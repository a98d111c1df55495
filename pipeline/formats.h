/* formats.h — the input formats of SPEC §1.1: per analytics stack, where its events keep the
 * standard fields (customer, event, time, url, channel), the unit of a numeric time, where
 * `property.<name>` match keys look, and whether a message is JSON or Snowplow's enriched TSV.
 *
 * A format is a preset of the decode plan (cs_decode_plan_set_format()); the rule file's
 * `fields:` still overrides single fields on top of it. The table is constant data: any thread
 * may read it. docs/formats.md describes every stack's topic and how its preset was checked. */
#ifndef CS_FORMATS_H
#define CS_FORMATS_H

#include <stddef.h>

/* Units of a numeric time value (fields.time_unit). */
enum cs_time_unit { CS_TU_MS = 0, CS_TU_S, CS_TU_US, CS_TU_NS, CS_TU_AUTO, CS_TU__COUNT };

/* "ms", "s", "us", "ns", "auto" */
const char *cs_time_unit_name(int unit);
/* The unit named [s, s+len), or -1. */
int cs_time_unit_find(const char *s, size_t len);

#define CS_FMT_MAX_PATHS 8

typedef struct cs_format {
    const char *name;
    int tsv;                 /* 1: Snowplow enriched TSV, paths name columns */
    int time_unit;           /* default unit of a numeric time (CS_TU_*) */
    int time_numeric;        /* 0: the time is never a number (time_unit is an error) */
    const char *prop_prefix; /* what `property.<name>` is below: "properties." ... "" (TSV) */
    const char *paths[5][CS_FMT_MAX_PATHS]; /* per standard field (enum cs_std_field), NULL-ended */
    /* SPEC §3.1 identity presets (docs/identity.md "Presets"): what `identity:` reads when the
     * rule file leaves device or person out; NULL-ended */
    const char *device[CS_FMT_MAX_PATHS];
    const char *person[CS_FMT_MAX_PATHS];
} cs_format;

/* The known formats, in documentation order; cs_format_at(i) is NULL past the last. */
const cs_format *cs_format_at(int i);
/* The format named [s, s+len), or NULL. */
const cs_format *cs_format_find(const char *s, size_t len);
/* The default format (segment: the SPEC §1 defaults). */
const cs_format *cs_format_default(void);
/* "segment, rudderstack, ..." into buf. */
void cs_format_list(char *buf, size_t cap);

/* Snowplow's enriched TSV: the canonical column order (131 columns), as Snowplow's analytics
 * SDKs read it. */
#define CS_SNOWPLOW_NCOLS 131
extern const char *const cs_snowplow_columns[CS_SNOWPLOW_NCOLS];
/* The column index of a name, or -1. */
int cs_snowplow_column(const char *s, size_t len);

#endif
