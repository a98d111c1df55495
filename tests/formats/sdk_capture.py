#!/usr/bin/env python3
"""sdk_capture.py — real payloads from the analytics stacks' official Python client libraries.

  sdk_capture.py capture STACK DUMP OUT
      Replays the generator's stream (DUMP: `clickstage-loadgen --format segment --dump`, one
      message a line: partition TAB kafka-ts TAB key TAB ok|late|invalid TAB Segment JSON) through STACK's official
      client library (segment, rudderstack, posthog, mixpanel, amplitude), which sends to a local
      HTTP collector on 127.0.0.1 (no other network). The events the library sent are written to
      OUT one a line: partition TAB key TAB the event JSON exactly as the library serialised it,
      in the stream's order (each event carries its position as a property, cs_seq). The caller
      produces OUT to Kafka and drains it with `format: STACK`.

  sdk_capture.py snowplow SEGMENT_DUMP SNOWPLOW_DUMP
      The Snowplow analytics SDK (snowplow_analytics_sdk.event_transformer.transform, the
      official reader of the enriched TSV) as the oracle of the generator's TSV: every valid
      line must be accepted and its columns must say what the Segment spelling of the same
      message says (customer, event, time, url, channel, persona). Exit 1 on any difference.

Only the libraries' public APIs are used; the payloads are what they put on the wire.
"""
import datetime
import gzip
import json
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

UTC = datetime.timezone.utc


# ---- the Segment spelling, read back into what the event is ---------------------------------

def iso_ms(s):
    """RFC 3339 text (as the generator writes it) to epoch ms, exactly."""
    d = datetime.datetime.fromisoformat(s.replace('Z', '+00:00').replace('z', '+00:00'))
    return round(d.timestamp() * 1000)


def read_dump(path):
    """Yield dict(part, kts, key, msg) for each line."""
    with open(path, encoding='utf-8') as f:
        for line in f:
            part, kts, key, kind, payload = line.rstrip('\n').split('\t', 4)
            yield {'part': int(part), 'kts': int(kts), 'key': key, 'kind': kind,
                   'payload': payload}


def segment_event(m):
    """What a valid Segment-spelled message says, in neutral terms (None if invalid)."""
    if m['kind'] == 'invalid':  # the generator made it invalid
        return None
    try:
        j = json.loads(m['payload'])
    except ValueError:
        return None
    if not isinstance(j, dict):
        return None
    cust = user = None
    for k in ('userId', 'user_id', 'customer_id', 'anonymousId', 'anonymous_id'):
        v = j.get(k)
        if v not in (None, ''):
            cust = str(v)
            if k not in ('anonymousId', 'anonymous_id'):
                user = cust
            break
    if cust is None:
        return None
    anon = j.get('anonymousId') or None
    page = 'event' not in j
    name = j.get('event') or j.get('type')
    t = m['kts']
    for k in ('timestamp', 'ts', 'originalTimestamp'):
        if k in j:
            t = j[k] if isinstance(j[k], int) else iso_ms(j[k])
            break
    ctx = j.get('context', {})
    props = j.get('properties', {})
    channel = j.get('channel') or ctx.get('campaign', {}).get('medium')
    return {'cust': cust, 'page': page, 'name': name, 't': t,
            'url': ctx.get('page', {}).get('url'), 'channel': channel,
            'persona': props.get('persona'), 'sku': props.get('sku'),
            'service_channel': props.get('service_channel'), 'user': user, 'anon': anon}


# ---- a local collector ------------------------------------------------------------------------

class Collector:
    def __init__(self):
        self.bodies = []
        self.lock = threading.Lock()
        coll = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get('Content-Length') or 0)
                body = self.rfile.read(n)
                if self.headers.get('Content-Encoding') == 'gzip' or body[:2] == b'\x1f\x8b':
                    body = gzip.decompress(body)
                with coll.lock:
                    coll.bodies.append((self.path, self.headers.get('Content-Type', ''), body))
                out = json.dumps({'status': 1, 'error': None, 'code': 200, 'success': True,
                                  'events_ingested': 0, 'payload_size_bytes': len(body),
                                  'server_upload_time': 0}).encode()
                self.send_response(200)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *a):
                pass

        self.srv = ThreadingHTTPServer(('127.0.0.1', 0), H)
        self.url = 'http://127.0.0.1:%d' % self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def events(self):
        """Every event the library sent, parsed from the bodies whatever the stack."""
        out = []
        for path, ctype, body in self.bodies:
            if 'x-www-form-urlencoded' in ctype:  # Mixpanel: data=<json list>
                data = urllib.parse.parse_qs(body.decode())['data'][0]
                evs = json.loads(data)
                raw = [json.dumps(e, separators=(',', ':')) for e in evs]
            else:
                j = json.loads(body)
                evs = j.get('batch') or j.get('events') or []
                raw = [json.dumps(e, separators=(',', ':')) for e in evs]
            out.extend(zip(evs, raw))
        return out

    def close(self):
        self.srv.shutdown()


# ---- the stacks ---------------------------------------------------------------------------

def dt(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, tz=UTC).replace(
        microsecond=(ms % 1000) * 1000)


def run_segment_like(mod, url, evs, rudder=False):
    if rudder:
        mod.write_key = 'clickstage-test'
        mod.dataPlaneUrl = url
    else:
        mod.write_key = 'clickstage-test'
        mod.host = url
    mod.max_queue_size = 1000000
    mod.upload_size = 100
    for seq, e in evs:
        props = {'cs_seq': seq}
        for k in ('persona', 'sku', 'service_channel'):
            if e[k] is not None:
                props[k] = e[k]
        ctx = {'page': {'url': e['url']}}
        if e['channel']:
            ctx['campaign'] = {'medium': e['channel'], 'name': 'fall'}
        # the person when known, the device id as sent (anonymous visits: only that)
        kw = dict(properties=props, context=ctx, timestamp=dt(e['t']))
        if e['user']:
            kw['user_id'] = e['user']
        if e['anon']:
            kw['anonymous_id'] = e['anon']
        if e['page']:
            mod.page(**kw)
        else:
            mod.track(event=e['name'], **kw)
    mod.flush()
    mod.shutdown()


def run_posthog(url, evs):
    from posthog import Posthog
    ph = Posthog('clickstage-test', host=url, flush_at=100, max_queue_size=1000000,
                 disable_geoip=True, enable_exception_autocapture=False)
    for seq, e in evs:
        props = {'cs_seq': seq, '$current_url': e['url']}
        for k in ('persona', 'sku', 'service_channel'):
            if e[k] is not None:
                props[k] = e[k]
        if e['channel']:
            props['utm_medium'] = e['channel']
        ph.capture('$pageview' if e['page'] else e['name'], distinct_id=e['cust'],
                   properties=props, timestamp=dt(e['t']))
    ph.flush()
    ph.shutdown()


def run_mixpanel(url, evs):
    from mixpanel import BufferedConsumer, Mixpanel
    mp = Mixpanel('clickstage-test',
                  consumer=BufferedConsumer(max_size=50, events_url=url + '/track'))
    for seq, e in evs:
        # the library's own time is float seconds (time.time()); the event's, likewise
        props = {'cs_seq': seq, '$current_url': e['url'], 'time': e['t'] / 1000}
        for k in ('persona', 'sku', 'service_channel'):
            if e[k] is not None:
                props[k] = e[k]
        if e['channel']:
            props['utm_medium'] = e['channel']
        mp.track(e['cust'], '$mp_web_page_view' if e['page'] else e['name'], props)
    mp._consumer.flush()


def run_amplitude(url, evs):
    from amplitude import Amplitude, BaseEvent, Config
    amp = Amplitude('clickstage-test', configuration=Config(
        server_url=url + '/2/httpapi', flush_queue_size=100, flush_interval_millis=200,
        min_id_length=1))
    for seq, e in evs:
        props = {'cs_seq': seq}
        props['[Amplitude] Page URL' if e['page'] else 'page_url'] = e['url']
        for k in ('persona', 'sku', 'service_channel'):
            if e[k] is not None:
                props[k] = e[k]
        if e['channel']:
            props['utm_medium'] = e['channel']
        amp.track(BaseEvent('[Amplitude] Page Viewed' if e['page'] else e['name'],
                            user_id=e['cust'], time=e['t'], event_properties=props))
    amp.flush()
    amp.shutdown()


def seq_of(stack, ev):
    if stack == 'amplitude':
        return ev['event_properties']['cs_seq']
    return ev['properties']['cs_seq']


def capture(stack, dump, out):
    msgs = list(read_dump(dump))
    evs = []
    for seq, m in enumerate(msgs):
        e = segment_event(m)
        if e is None:
            sys.exit('%s: line %d is not a valid event: generate with --invalid 0 --too-large 0'
                     % (dump, seq + 1))
        evs.append((seq, e))
    coll = Collector()
    if stack == 'segment':
        import segment.analytics as mod
        run_segment_like(mod, coll.url, evs)
    elif stack == 'rudderstack':
        import rudderstack.analytics as mod
        run_segment_like(mod, coll.url, evs, rudder=True)
    elif stack == 'posthog':
        run_posthog(coll.url, evs)
    elif stack == 'mixpanel':
        run_mixpanel(coll.url, evs)
    elif stack == 'amplitude':
        run_amplitude(coll.url, evs)
    else:
        sys.exit('unknown stack ' + stack)
    got = coll.events()
    coll.close()
    by_seq = {}
    for ev, raw in got:
        s = seq_of(stack, ev)
        if s in by_seq:
            sys.exit('%s: event %d sent twice' % (stack, s))
        by_seq[s] = raw
    if len(by_seq) != len(msgs):
        sys.exit('%s: the library sent %d of %d events' % (stack, len(by_seq), len(msgs)))
    with open(out, 'w', encoding='utf-8') as f:
        for seq, m in enumerate(msgs):
            raw = by_seq[seq]
            if '\n' in raw or '\t' in raw:
                sys.exit('unexpected control character in a payload')
            f.write('%d\t%s\t%s\n' % (m['part'], m['key'], raw))
    sample = by_seq[0]
    print('%s: %d events captured from %d requests; first: %s' %
          (stack, len(by_seq), len(coll.bodies), sample[:400]))


# ---- Snowplow: the official SDK reads the generator's TSV --------------------------------------

def snowplow(seg_dump, sp_dump):
    from snowplow_analytics_sdk import event_transformer as et
    names = [f[0] for f in et.ENRICHED_EVENT_FIELD_TYPES]
    assert len(names) == 131, len(names)
    n = bad = checked = 0
    for a, b in zip(read_dump(seg_dump), read_dump(sp_dump)):
        n += 1
        if a['key'] != b['key'] or a['part'] != b['part'] or a['kts'] != b['kts']:
            print('line %d: a different message' % n)
            bad += 1
            continue
        e = segment_event(a)
        if e is None:
            continue  # generated invalid: the Snowplow SDK is no oracle of clickstage's reasons
        try:
            j = et.transform(b['payload'])
        except Exception as x:  # the SDK refuses the line
            print('line %d: the Snowplow SDK refused it: %s' % (n, x))
            bad += 1
            continue
        cols = dict(zip(names, b['payload'].split('\t')))

        def ts(k):
            return iso_ms(j[k]) if j.get(k) else None

        cust = j.get('user_id') or j.get('domain_userid') or j.get('network_userid')
        event = j.get('se_action') or j.get('event_name')
        t = ts('derived_tstamp') or ts('dvce_created_tstamp') or ts('collector_tstamp')
        want_event = 'page_view' if e['page'] else e['name']
        got = (cust, event, t, j.get('page_url'), j.get('mkt_medium'), j.get('mkt_content'))
        want = (e['cust'], want_event, e['t'], e['url'], e['channel'], e['persona'])
        if got != want or cols['event'] != ('page_view' if e['page'] else 'struct'):
            print('line %d: SDK read %s, the Segment spelling says %s' % (n, got, want))
            bad += 1
        checked += 1
    print('snowplow: %d lines, %d valid events read by the Snowplow analytics SDK, %d differences'
          % (n, checked, bad))
    sys.exit(1 if bad or checked == 0 else 0)


if __name__ == '__main__':
    if len(sys.argv) == 5 and sys.argv[1] == 'capture':
        capture(sys.argv[2], sys.argv[3], sys.argv[4])
    elif len(sys.argv) == 4 and sys.argv[1] == 'snowplow':
        snowplow(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
