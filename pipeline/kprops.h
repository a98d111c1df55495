/* kprops.h — librdkafka property lists as clickstage passes them around: "k=v,k=v", where a
 * comma or backslash inside a value is escaped ("\," "\\"), so that passwords, cipher lists and
 * `debug=a,b` survive. Written by the daemon's config (flags, environment, YAML mappings and
 * properties files) and read by pipeline/source.c and clickstage-repartition. Nothing here
 * ever puts a value into a message: values may be secrets. */
#ifndef CS_KPROPS_H
#define CS_KPROPS_H

#include <stddef.h>

/* s[0..len) with ',' and '\' escaped, malloc'd (NULL: out of memory). */
char *cs_kprops_escape(const char *s, size_t len);

/* A properties file's text (one `key=value` per line, '#' comments and blank lines ignored,
 * spaces/tabs around keys and values and a trailing '\r' dropped; a value is the rest of its
 * line, commas included; the format of Java client.properties and kcat -F) as an escaped list,
 * malloc'd. NULL with why ("line N is not key=value", never the line itself) on error. */
char *cs_kprops_from_properties(const char *src, size_t len, char *why, size_t whylen);

/* Iterates an escaped list: copies the next item, unescaped, into buf (NUL-terminated) and
 * advances *cursor; returns 0 at the end, -1 if the item does not fit, else 1. */
int cs_kprops_next(const char **cursor, char *buf, size_t buflen);

#endif
