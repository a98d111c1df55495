/* decode.h — the pipeline's decoder: message bytes -> the handful of fields clickstage needs.
 *
 * Contract
 *  - cs_decode() validates the whole message as JSON (RFC 8259 grammar) in one pass and extracts
 *    only the fields named in a cs_decode_plan. It allocates nothing: extracted values are slices
 *    of the input, or of the decoder's own scratch buffer when a string had escapes to undo.
 *    Slices stay valid until the next cs_decode()/cs_decode_padded() call on the same decoder
 *    into the same slot (cs_decoder_use_slot; a decoder has one slot unless made with
 *    cs_decoder_new_slots) or until the input buffer goes away (or is overwritten), whichever
 *    comes first.
 *  - Every field has an ordered list of dotted paths (at most CS_MAX_PATHS); the first path whose
 *    value is present and non-empty wins, whatever the order of keys in the message.
 *  - Values: JSON strings (escapes undone exactly, \uXXXX surrogate pairs to UTF-8; a lone
 *    surrogate makes the message not_json), numbers (their literal text, flagged CS_SV_NUM),
 *    true/false (their text, flagged CS_SV_BOOL). null, objects, arrays and "" are "not present".
 *  - Raw bytes >= 0x80 inside strings are passed through unchecked (as cJSON does); control
 *    characters < 0x20 inside strings are invalid JSON.
 *  - Duplicate keys: the first occurrence is used.
 *  - Thread safety: a plan is immutable once built and may be shared by any number of threads;
 *    a cs_decoder is single-threaded (one per worker).
 *
 * Rejected alternatives: a DOM parser (cJSON ~780 ns per 330-byte event here, and an allocation
 * per node) and a general SAX library (yajl: callback per token, no path-directed skipping).
 */
#ifndef CS_DECODE_H
#define CS_DECODE_H

#include <stddef.h>
#include <stdint.h>

#define CS_MAX_FIELDS 64      /* fields one plan can extract (5 standard + dimensions + properties) */
#define CS_MAX_PATHS 8        /* alternative paths per field */
#define CS_MAX_PATH_LEN 256   /* bytes in one dotted path */
#define CS_DEFAULT_MAX_BYTES (64 * 1024)
#define CS_DEFAULT_MAX_DEPTH 32
/* Event times before 2000-01-01T00:00:00Z are bad_time in a plan compiled from rules
 * (docs/semantics.md "Event time bounds"): no clickstream predates it, and the usual cause is a
 * device whose clock was reset to the epoch. */
#define CS_MIN_EVENT_TIME_MS 946684800000LL

/* The standard fields of SPEC §1 always have these indexes in every plan. */
enum cs_std_field {
    CS_F_CUSTOMER = 0,
    CS_F_EVENT = 1,
    CS_F_TIME = 2,
    CS_F_URL = 3,
    CS_F_CHANNEL = 4,
    CS_F_NSTD = 5
};

/* Why a message is invalid; the order is the order counters are listed in (SPEC §1).
 * CS_DECODE_OK is 0. */
typedef enum cs_invalid {
    CS_DECODE_OK = 0,
    CS_INV_NOT_JSON,
    CS_INV_NOT_OBJECT,
    CS_INV_TOO_LARGE,
    CS_INV_TOO_DEEP,
    CS_INV_NO_CUSTOMER,
    CS_INV_NO_EVENT,
    CS_INV_BAD_TIME,
    CS_INV_FUTURE_TIME, /* SPEC v1.1: more than max_future ahead of the message timestamp */
    CS_INV_NOT_TSV,     /* SPEC v1.2: a TSV format's message without its column count */
    CS_INV__COUNT
} cs_invalid;

/* "not_json", "not_object", ... ; "ok" for CS_DECODE_OK. */
const char *cs_invalid_name(cs_invalid r);

enum { CS_SV_STR = 0, CS_SV_NUM = 1, CS_SV_BOOL = 2 };

/* A string view. len == 0 means "absent". */
typedef struct cs_sv {
    const char *p;
    uint32_t len;
    uint8_t kind; /* CS_SV_STR / CS_SV_NUM / CS_SV_BOOL */
} cs_sv;

typedef struct cs_decoded {
    cs_sv f[CS_MAX_FIELDS]; /* indexed by field id; f[CS_F_CUSTOMER] is normalised (see below) */
    int64_t ts_ms;          /* event time in epoch ms: from the time field, else the fallback */
    uint8_t ts_from_msg;    /* 1 if ts_ms came from the message, 0 if from the fallback */
    uint8_t idf;            /* SPEC §3.1 identity (a plan with cs_decode_plan_set_identity): which
                               ids the event has, CS_ID_DEVICE | CS_ID_PERSON; 0 without identity */
} cs_decoded;

/* With identity (SPEC §3.1), after a valid decode:
 *  - f[CS_F_CUSTOMER] is the SESSION key: the device id d if present, else the person id p;
 *  - f[cs_decode_plan_person_field()] is p, absent (len 0) when the event has none or when p
 *    equals d byte for byte (PostHog/Mixpanel send the device id as distinct_id until identify);
 *    when d is absent it holds p too (and idf is CS_ID_PERSON);
 *  - idf says which of d and p the event has; neither is no_customer.
 * So: customer key = p if (idf & CS_ID_PERSON), else alias(d) if set, else d; an alias is set
 * by an event with idf == (CS_ID_DEVICE | CS_ID_PERSON). */
enum { CS_ID_DEVICE = 1, CS_ID_PERSON = 2 };

typedef struct cs_decode_plan cs_decode_plan;

/* A new plan with the standard fields and their SPEC §1 default paths, max_bytes =
 * CS_DEFAULT_MAX_BYTES, max_depth = CS_DEFAULT_MAX_DEPTH. NULL only on out of memory. */
cs_decode_plan *cs_decode_plan_new(void);
void cs_decode_plan_destroy(cs_decode_plan *p);

/* Replace the paths of an existing field (e.g. a standard one) with `n` dotted paths.
 * Returns 0, or -1 with errstr filled (bad path: empty segment, too long, too many paths). */
int cs_decode_plan_set_paths(cs_decode_plan *p, int field, const char *const *paths, int n,
                             char *errstr, size_t errlen);

/* Add a field (a dimension or a property) with one or more dotted paths and return its id
 * (>= CS_F_NSTD), or -1 with errstr filled. Adding the same single path twice returns the
 * existing field's id. */
int cs_decode_plan_add_field(cs_decode_plan *p, const char *const *paths, int n, char *errstr,
                             size_t errlen);

/* SPEC §3.1 identity: the device paths become the session key's (CS_F_CUSTOMER, replacing the
 * customer paths: with identity the §1 customer field is not read) and a person field is added
 * (never shared with another field, even one with the same paths). Call after
 * cs_decode_plan_set_format (which would replace CS_F_CUSTOMER's paths). Person values take
 * strings and integers only, like the customer's. 0, or -1 with errstr filled and the plan
 * unchanged. */
int cs_decode_plan_set_identity(cs_decode_plan *p, const char *const *device, int nd,
                                const char *const *person, int np, char *errstr, size_t errlen);
/* The person field's id (>= CS_F_NSTD), or 0 when the plan has no identity. */
int cs_decode_plan_person_field(const cs_decode_plan *p);

int cs_decode_plan_nfields(const cs_decode_plan *p);
void cs_decode_plan_set_limits(cs_decode_plan *p, size_t max_bytes, int max_depth);
size_t cs_decode_plan_max_bytes(const cs_decode_plan *p);
/* Event-time bounds (SPEC §1 bad_time, future_time): an event time below min_ms is bad_time;
 * one more than max_future_ms ahead of the message timestamp (the fallback_ts_ms given to
 * cs_decode) is future_time (0 = no bound). A new plan has none (INT64_MIN, 0); the rule
 * compiler sets CS_MIN_EVENT_TIME_MS and the rule file's session.max_future. */
void cs_decode_plan_set_time_bounds(cs_decode_plan *p, int64_t min_ms, int64_t max_future_ms);
int64_t cs_decode_plan_max_future(const cs_decode_plan *p);

/* Formats and time units (SPEC §1.1, pipeline/formats.h). set_format replaces the five
 * standard fields' paths with the format's, sets its default time unit and, for a TSV format,
 * makes the plan read tab-separated columns (every path, added ones too, must then be a column
 * name). Returns 0, or -1 with errstr filled and the plan unchanged. */
struct cs_format;
int cs_decode_plan_set_format(cs_decode_plan *p, const struct cs_format *fmt, char *errstr,
                              size_t errlen);
const struct cs_format *cs_decode_plan_format(const cs_decode_plan *p);
/* Unit of a numeric time (CS_TU_*, formats.h): a JSON number, or a string of digits with an
 * optional decimal fraction, is read in it exactly (truncated to the ms); CS_TU_AUTO reads
 * |v| < 1e11 as s, < 1e14 as ms, < 1e17 as us, else ns. Default CS_TU_MS. */
void cs_decode_plan_set_time_unit(cs_decode_plan *p, int unit);
int cs_decode_plan_time_unit(const cs_decode_plan *p);

/* One per thread. The scratch buffer is sized from the plan's max_bytes. */
typedef struct cs_decoder cs_decoder;
cs_decoder *cs_decoder_new(const cs_decode_plan *p);
void cs_decoder_destroy(cs_decoder *d);
/* A decoder whose decodes write their output (strings whose escapes were undone: the slices
 * not into the input) into one of `slots` scratch buffers, the one chosen last by
 * cs_decoder_use_slot (0 at first): up to `slots` decoded events stay valid at once, while
 * what the decoder learns from message to message (key predictions, the time cache) is kept
 * once. For a caller with several decoded events in flight (the worker's pipeline);
 * cs_decoder_new(p) is cs_decoder_new_slots(p, 1). NULL for slots outside
 * 1..CS_DECODER_MAX_SLOTS, or out of memory. A slot outside 0..slots-1 selects slot 0. */
#define CS_DECODER_MAX_SLOTS 8
cs_decoder *cs_decoder_new_slots(const cs_decode_plan *p, int slots);
void cs_decoder_use_slot(cs_decoder *d, int slot);
/* Point the decoder at another plan (after a rule reload). The new plan must have the same
 * max_bytes or smaller. */
void cs_decoder_set_plan(cs_decoder *d, const cs_decode_plan *p);

/* Decode one message. fallback_ts_ms is the Kafka message timestamp, used when no time field
 * is present. Checks, in order: size (too_large), JSON grammar and depth (not_json / too_deep,
 * whichever the scan meets first), top-level object (not_object), customer (no_customer: absent,
 * or a number that is not an integer), event (no_event: absent or not a string), time
 * (bad_time: present but neither RFC 3339 nor an integer of epoch milliseconds, or the event
 * time, from the field or the fallback, below the plan's minimum), future_time (the time field
 * more than the plan's max_future ahead of fallback_ts_ms). The bound against the processor's
 * own clock (a message timestamp itself far ahead) is the caller's: cs_decode is a pure
 * function of its arguments.
 * The customer of an integer id is its decimal text as written in the message. */
cs_invalid cs_decode(cs_decoder *d, const char *buf, size_t len, int64_t fallback_ts_ms,
                     cs_decoded *out);

/* NUL bytes a caller of cs_decode_padded() puts after the message (>= 16 + 12: the scanner's
 * 16-byte loads and a surrogate pair's 12-byte escape stay inside them, decode.c). */
#define CS_DECODE_PAD 64

/* cs_decode() without the copy: the same checks and the same results for the same bytes, but
 * the message is scanned where it lies. The caller guarantees that buf[len] ..
 * buf[len + CS_DECODE_PAD - 1] are readable and all NUL (the scanner needs them as sentinels
 * and reads up to that far; len == 0 included). buf itself and its padding are only read,
 * never written. Slices in *out that are not in the decoder's scratch buffer point into buf:
 * valid while buf is, and until the next decode on d (see Contract above). A TSV plan does not
 * need the padding but accepts it. Used by the worker on the source's arena (source.c
 * consume_cb pads every payload, cs_worker_process_padded). */
cs_invalid cs_decode_padded(cs_decoder *d, const char *buf, size_t len, int64_t fallback_ts_ms,
                            cs_decoded *out);

/* RFC 3339 "YYYY-MM-DDTHH:MM:SS[.frac](Z|+hh:mm|-hh:mm)" ('t'/'z'/' ' accepted) to epoch ms
 * (fraction truncated to ms). Returns 0 on success, -1 if malformed or out of range. */
int cs_parse_rfc3339(const char *s, size_t len, int64_t *ms);
/* Snowplow's "YYYY-MM-DD hh:mm:ss[.fraction]" (UTC, no zone) to epoch ms, fraction truncated.
 * 0, or -1 if malformed or out of range. */
int cs_parse_snowplow_ts(const char *s, size_t len, int64_t *ms);

#endif
