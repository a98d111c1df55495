/* formats.c — the format presets of SPEC §1.1 (see formats.h and docs/formats.md). */
#include "formats.h"

#include <stdio.h>
#include <string.h>

static const char *const unit_names[CS_TU__COUNT] = {"ms", "s", "us", "ns", "auto"};

const char *cs_time_unit_name(int unit)
{
    return unit >= 0 && unit < CS_TU__COUNT ? unit_names[unit] : "?";
}

int cs_time_unit_find(const char *s, size_t len)
{
    for (int i = 0; i < CS_TU__COUNT; i++)
        if (strlen(unit_names[i]) == len && memcmp(unit_names[i], s, len) == 0)
            return i;
    return -1;
}

/* Field order: customer, event, time, url, channel (enum cs_std_field). */
static const cs_format formats[] = {
    {"segment", 0, CS_TU_MS, 1, "properties.",
     {{"userId", "user_id", "customer_id", "anonymousId", "anonymous_id"},
      {"event", "type"},
      {"timestamp", "ts", "originalTimestamp"},
      {"url", "context.page.url", "properties.url"},
      {"channel", "context.campaign.medium", "properties.channel"}},
     {"anonymousId", "anonymous_id"},
     {"userId", "user_id", "customer_id"}},
    /* RudderStack's top-level `channel` is the SDK kind (web, server, mobile, sources) */
    {"rudderstack", 0, CS_TU_MS, 1, "properties.",
     {{"userId", "anonymousId"},
      {"event", "type"},
      {"timestamp", "originalTimestamp"},
      {"context.page.url", "properties.url"},
      {"context.campaign.medium", "properties.utm_medium"}},
     {"anonymousId"},
     {"userId"}},
    {"posthog", 0, CS_TU_MS, 1, "properties.",
     {{"distinct_id", "properties.distinct_id"},
      {"event"},
      {"timestamp"},
      {"properties.$current_url"},
      {"properties.utm_medium"}},
     {"properties.$device_id"},
     {"distinct_id", "properties.distinct_id"}},
    /* the Mixpanel libraries send properties.time as (float) epoch seconds; ms from others */
    {"mixpanel", 0, CS_TU_AUTO, 1, "properties.",
     {{"properties.distinct_id", "properties.$device_id"},
      {"event"},
      {"properties.time"},
      {"properties.$current_url"},
      {"properties.utm_medium"}},
     {"properties.$device_id"},
     {"properties.$user_id"}},
    {"amplitude", 0, CS_TU_MS, 1, "event_properties.",
     {{"user_id", "device_id"},
      {"event_type"},
      {"time"},
      {"event_properties.[Amplitude] Page URL", "event_properties.page_url"},
      {"event_properties.utm_medium", "user_properties.utm_medium"}},
     {"device_id"},
     {"user_id"}},
    {"snowplow-enriched", 1, CS_TU_MS, 0, "",
     {{"user_id", "domain_userid", "network_userid"},
      {"se_action", "event_name"},
      {"derived_tstamp", "dvce_created_tstamp", "collector_tstamp"},
      {"page_url"},
      {"mkt_medium"}},
     {"domain_userid"},
     {"user_id"}},
};
#define NFORMATS (sizeof formats / sizeof formats[0])

const cs_format *cs_format_at(int i)
{
    return i >= 0 && (size_t)i < NFORMATS ? &formats[i] : NULL;
}

const cs_format *cs_format_find(const char *s, size_t len)
{
    for (size_t i = 0; i < NFORMATS; i++)
        if (strlen(formats[i].name) == len && memcmp(formats[i].name, s, len) == 0)
            return &formats[i];
    return NULL;
}

const cs_format *cs_format_default(void) { return &formats[0]; }

void cs_format_list(char *buf, size_t cap)
{
    size_t n = 0;
    if (!cap)
        return;
    buf[0] = '\0';
    for (size_t i = 0; i < NFORMATS && n < cap; i++) {
        int w = snprintf(buf + n, cap - n, "%s%s", i ? ", " : "", formats[i].name);
        if (w < 0)
            break;
        n += (size_t)w;
    }
}

/* Snowplow "enriched TSV format" (canonical event model), in order. */
const char *const cs_snowplow_columns[CS_SNOWPLOW_NCOLS] = {
    "app_id", "platform", "etl_tstamp", "collector_tstamp", "dvce_created_tstamp", "event",
    "event_id", "txn_id", "name_tracker", "v_tracker", "v_collector", "v_etl", "user_id",
    "user_ipaddress", "user_fingerprint", "domain_userid", "domain_sessionidx", "network_userid",
    "geo_country", "geo_region", "geo_city", "geo_zipcode", "geo_latitude", "geo_longitude",
    "geo_region_name", "ip_isp", "ip_organization", "ip_domain", "ip_netspeed", "page_url",
    "page_title", "page_referrer", "page_urlscheme", "page_urlhost", "page_urlport",
    "page_urlpath", "page_urlquery", "page_urlfragment", "refr_urlscheme", "refr_urlhost",
    "refr_urlport", "refr_urlpath", "refr_urlquery", "refr_urlfragment", "refr_medium",
    "refr_source", "refr_term", "mkt_medium", "mkt_source", "mkt_term", "mkt_content",
    "mkt_campaign", "contexts", "se_category", "se_action", "se_label", "se_property",
    "se_value", "unstruct_event", "tr_orderid", "tr_affiliation", "tr_total", "tr_tax",
    "tr_shipping", "tr_city", "tr_state", "tr_country", "ti_orderid", "ti_sku", "ti_name",
    "ti_category", "ti_price", "ti_quantity", "pp_xoffset_min", "pp_xoffset_max",
    "pp_yoffset_min", "pp_yoffset_max", "useragent", "br_name", "br_family", "br_version",
    "br_type", "br_renderengine", "br_lang", "br_features_pdf", "br_features_flash",
    "br_features_java", "br_features_director", "br_features_quicktime",
    "br_features_realplayer", "br_features_windowsmedia", "br_features_gears",
    "br_features_silverlight", "br_cookies", "br_colordepth", "br_viewwidth", "br_viewheight",
    "os_name", "os_family", "os_manufacturer", "os_timezone", "dvce_type", "dvce_ismobile",
    "dvce_screenwidth", "dvce_screenheight", "doc_charset", "doc_width", "doc_height",
    "tr_currency", "tr_total_base", "tr_tax_base", "tr_shipping_base", "ti_currency",
    "ti_price_base", "base_currency", "geo_timezone", "mkt_clickid", "mkt_network", "etl_tags",
    "dvce_sent_tstamp", "refr_domain_userid", "refr_device_tstamp", "derived_contexts",
    "domain_sessionid", "derived_tstamp", "event_vendor", "event_name", "event_format",
    "event_version", "event_fingerprint", "true_tstamp",
};

int cs_snowplow_column(const char *s, size_t len)
{
    for (int i = 0; i < CS_SNOWPLOW_NCOLS; i++)
        if (strlen(cs_snowplow_columns[i]) == len && memcmp(cs_snowplow_columns[i], s, len) == 0)
            return i;
    return -1;
}
