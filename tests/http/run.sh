#!/usr/bin/env bash
# HTTP server tests: cmd/clickstage/http.c (/metrics, /healthz, /readyz, /api/journey,
# /api/metrics, the embedded web view), the web view in headless Chromium, the Grafana dashboard
# and docs/observability.md against the metric names http.c serves.
#
# Builds tests/http/http_harness.c (a cs_metrics snapshot with known values) with http.c, starts
# its own redis-server on a free loopback port in a temp dir (never one already running), loads
# known counts for journey "demo", and checks with curl, python3 and playwright-core.
# Each check prints "PASS name", "FAIL name: why" or "SKIP name: why"; the last line is
# "http: N passed, N failed". Everything started here is stopped at the end.
#   KEEP=1       keep the temp dir
#   NO_BROWSER=1 skip the Chromium test
#   HTTP_C=path  test another http.c (development)
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
B=${BUILD:-build}
HTTP_C=${HTTP_C:-cmd/clickstage/http.c}
CC=${CC:-cc}
WORK=$(mktemp -d /tmp/cs-http.XXXXXX)
pass=0; fail=0; skip=0
HPID=; RPID=; XPIDS=()
ok() { echo "PASS $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1: $2"; fail=$((fail + 1)); }
skipped() { echo "SKIP $1: $2"; skip=$((skip + 1)); }
finish() { # stops everything first, so that the summary is the last line
  cleanup
  trap - EXIT
  [ "$skip" -gt 0 ] && echo "($skip skipped)"
  echo "http: $pass passed, $fail failed"
  [ "$fail" -eq 0 ]
  exit
}
stop_pid() { # pid: TERM, then KILL after 5 s
  local p=$1
  [ -n "$p" ] || return 0
  kill "$p" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$p" 2>/dev/null
  wait "$p" 2>/dev/null
  return 0
}
cleanup() {
  stop_pid "$HPID"
  for p in "${XPIDS[@]}"; do stop_pid "$p"; done
  stop_pid "$RPID"
  HPID=; RPID=; XPIDS=()
  if [ -n "${KEEP:-}" ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# ---- build ------------------------------------------------------------------------------------
CFLAGS="-std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wstrict-prototypes -Wno-unused-parameter \
  -Werror -g -O2 -pthread -Iinclude -Ipipeline -Icmd/clickstage"
LIBS="-lmicrohttpd -lhiredis -lrdkafka -lxxhash -lyaml -lcrypto -lm -pthread"
if ! make -s "$B/libclickstage.a" >"$WORK/make.log" 2>&1; then
  tail -20 "$WORK/make.log"; bad build "make $B/libclickstage.a"; finish
fi
if ! sh scripts/embed-assets.sh "$WORK/web_assets.c" cmd/clickstage/web/* ||
   ! $CC $CFLAGS -o "$WORK/http_harness" tests/http/http_harness.c "$HTTP_C" \
       cmd/clickstage/journey.c cmd/clickstage/config.c "$WORK/web_assets.c" "$B/libclickstage.a" $LIBS 2>"$WORK/cc.log"; then
  cat "$WORK/cc.log"; bad build "http_harness"; finish
fi
ok build

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

# ---- our own redis-server ---------------------------------------------------------------------
mkdir -p "$WORK/redis"
RP=
start_redis() { # [port]: sets RP, RPID
  local want=${1:-}
  for _ in 1 2 3 4 5; do
    RP=${want:-$(free_port)}
    redis-server --port "$RP" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK/redis" \
      --unixsocket "$WORK/redis/redis.sock" --unixsocketperm 700 --daemonize no \
      >"$WORK/redis/log" 2>&1 &
    RPID=$!
    for _ in $(seq 50); do
      redis-cli -p "$RP" PING 2>/dev/null | grep -q PONG && return 0
      kill -0 "$RPID" 2>/dev/null || break
      sleep 0.1
    done
    stop_pid "$RPID"; RPID=
    [ -n "$want" ] && sleep 0.5
  done
  return 1
}
if ! start_redis; then tail "$WORK/redis/log"; bad redis "cannot start redis-server"; finish; fi
rcli() { redis-cli -p "$RP" "$@"; }

# known counts for journey "demo" (and noise that must not show), and what /api/journey must say
python3 - "$WORK" <<'EOF'
import json, math, sys, time, datetime
work = sys.argv[1]
P, J = "clickstage", "demo"
k = lambda s: f"{P}:{{{J}}}:{s}"
stages = ["visit", "product", "cart", "checkout", "purchase"]
# the transitions hold sessions that entered at "product" (30,000) and sessions that skipped
# "product" (900): `reached` ("entered here") is then no funnel (product 58,800 > visit 48,000,
# a naive conversion of 122.5 %), the funnel of sessions that reached at least each stage is
H = {
  "reached": {"visit": 48000, "product": 58800, "cart": 15300, "checkout": 5760, "purchase": 2160},
  "active": {"visit": 412, "product": 268, "cart": 131, "checkout": 57, "purchase": 9, "_none": 23},
  "ended": {"visit": 18788, "product": 14132, "cart": 8509, "checkout": 3543, "purchase": 2151, "_none": 310},
  "customers": {"visit": 9120, "product": 4210, "cart": 1630, "checkout": 402, "purchase": 1811, "_none": 95},
  "transitions": {"_entry>visit": 48000, "_entry>product": 30000, "visit>product": 28800,
                  "visit>cart": 900, "product>cart": 14400, "cart>checkout": 5760,
                  "checkout>purchase": 2160},
  "events": {"visit": 91234, "product": 52110, "cart": 20012, "checkout": 7012, "purchase": 2170,
             "_unclassified": 3310, "_late": 12},
  "invalid": {"not_json": 41, "too_large": 2, "no_customer": 7, "bad_time": 3},
  "sessions": {"started": 48333, "ended": 47433, "active": 900},
  "ended_by": {"gap": 45120, "max_duration": 1310, "shutdown": 1003},
}
# SPEC §4.1: time_to:<stage> (buckets summing to reached), customer_time_to:<stage>,
# transition_time (a>b:<bucket>, summing to transitions); dimension breakdowns
B = ["0", "10", "30", "60", "120", "300", "600", "1800", "3600", "7200", "21600", "43200", "86400",
     "172800", "604800", "1209600", "2592000", "7776000", "inf"]
TT = {
  "visit": {"0": 30000, "10": 9000, "30": 5000, "60": 4000},
  "product": {"0": 30000, "30": 8800, "60": 9000, "120": 7000, "300": 4000},
  "cart": {"60": 1300, "120": 4000, "300": 6000, "600": 3000, "1800": 1000},
  "checkout": {"300": 760, "600": 2000, "1800": 2000, "3600": 1000},
  "purchase": {"600": 160, "1800": 1000, "3600": 600, "7200": 300, "inf": 100},
}
CTT = {
  "visit": {"0": 9000, "60": 120},
  "product": {"0": 3000, "3600": 1000, "86400": 210},
  "cart": {"600": 630, "86400": 500, "172800": 500},
  "checkout": {"86400": 200, "604800": 202},
  "purchase": {"172800": 600, "604800": 800, "1209600": 300, "2592000": 100, "7776000": 11},
}
TRT = {"_entry>visit": TT["visit"], "_entry>product": {"0": 30000},
       "visit>product": {"30": 8800, "60": 9000, "120": 7000, "300": 4000},
       "visit>cart": {"60": 900}, "product>cart": {"60": 400, "120": 4000, "300": 6000, "600": 3000, "1800": 1000},
       "cart>checkout": {"300": 2760, "600": 2000, "1800": 1000}, "checkout>purchase": {"600": 1160, "1800": 1000}}
BY = {"channel": {
  "reached": {"search/visit": 20000, "social/visit": 18000, "email/visit": 10000,
              "search/product": 30000, "social/product": 18800, "email/product": 10000,
              "search/cart": 8000, "social/cart": 4300, "email/cart": 3000,
              "search/checkout": 3000, "social/checkout": 1760, "email/checkout": 1000,
              "search/purchase": 1200, "social/purchase": 560, "email/purchase": 400},
  "ended": {"search/visit": 8000, "social/visit": 7788, "email/visit": 3000, "_unknown/_none": 310},
  "active": {"search/visit": 200, "social/visit": 212, "_unknown/_none": 23}},
  "persona": {"reached": {"young/visit": 30000, "old/visit": 18000, "young/purchase": 1500, "old/purchase": 660}}}
def quantile(h, q):
    """interpolated within the bucket (Prometheus histogram_quantile), written out independently"""
    n = sum(h.values())
    if not n: return None, False
    rank, below = q * n, 0
    for i, b in enumerate(B):
        c = h.get(b, 0)
        if c and below + c >= rank:
            if i == 0: return 0.0, False
            if b == "inf": return 7776000.0, True
            lo, hi = float(B[i - 1]), float(b)
            return lo + (hi - lo) * (rank - below) / c, False
        below += c
def stats(h):
    m, mo = quantile(h, 0.5); p, po = quantile(h, 0.9)
    return {"n": sum(h.values()), "median": None if m is None else round(m, 3), "p90": None if p is None else round(p, 3),
            "median_open": mo, "p90_open": po}
idx = {s: i + 1 for i, s in enumerate(stages)}; idx["_entry"] = 0
def at_least(k):  # k: 1-based slot
    return sum(v for t, v in H["transitions"].items() if idx[t.split(">")[0]] < k <= idx[t.split(">")[1]])
funnel = []
for i, s in enumerate(stages):
    al, prev = at_least(i + 1), at_least(i) if i else None
    funnel.append({"stage": s, "at_least": al, "entered": H["reached"][s], "active": H["active"][s],
                   "ended": H["ended"][s], "conversion": None if not i else round(al / prev, 4)})
cal = {s: sum(H["customers"][t] for t in stages[i:]) for i, s in enumerate(stages)}
customer_funnel = [{"stage": s, "at_least": cal[s], "now": H["customers"][s],
                    "conversion": None if not i else round(cal[s] / cal[stages[i - 1]], 4)} for i, s in enumerate(stages)]
cmds = []
q = lambda *a: cmds.append(" ".join(f'"{x}"' for x in map(str, a)))
for name, h in H.items():
    for f, v in h.items():
        q("HINCRBY", k(name), f, v)
q("HSET", k("meta"), "stages", ",".join(stages), "rules_sha256", "ab" * 32, "version", "0.1.0",
  "updated_ms", int(time.time() * 1000), "seq:host-a", 4711, "seq:host-b", 12)
# 65 minute buckets from 2026-11-22 14:00 UTC, minute 30 missing: the newest 60 that exist are
# minutes 4..64 without 30
t0 = datetime.datetime(2026, 11, 22, 14, 0, tzinfo=datetime.timezone.utc)
minutes, gap = [], None
for i in range(65):
    m = (t0 + datetime.timedelta(minutes=i)).strftime("%Y%m%d%H%M")
    v = 60 + round(22 * math.sin(i / 7.0)) + (i * 7) % 11
    r = {"visit": v}
    for s, f in zip(stages[1:], [0.62, 0.5, 0.4, 0.375]):
        v = int(v * f + (i % 3) * 0.4)
        r[s] = v
    r = {s: n for s, n in r.items() if n}
    if i == 30:  # written later by the browser test, before its screenshot
        gap = {"minute": m, "reached": r}
        continue
    for s, n in r.items():
        q("HINCRBY", k(f"minute:{m}:reached"), s, n)
    minutes.append({"minute": m, "reached": r})
minutes = minutes[-60:]
# noise: other journeys and keys that only look like minute buckets
q("HINCRBY", f"{P}:{{other}}:minute:202611221510:reached", "visit", 5)
q("HINCRBY", f"{P}:{{other}}:reached", "visit", 5)
q("HINCRBY", k("minute:bogus:reached"), "visit", 1)
q("HINCRBY", k("minute:2026:1122:reached"), "visit", 1)
q("HINCRBY", k("minute:202611221505:reached:x"), "visit", 1)
q("HINCRBY", f"other:{{{J}}}:minute:202611221506:reached", "visit", 1)
for s in stages:
    for b, v in TT[s].items(): q("HINCRBY", k(f"time_to:{s}"), b, v)
    for b, v in CTT[s].items(): q("HINCRBY", k(f"customer_time_to:{s}"), b, v)
for t, h in TRT.items():
    for b, v in h.items(): q("HINCRBY", k("transition_time"), f"{t}:{b}", v)
for d, ms in BY.items():
    for mname, h in ms.items():
        for f, v in h.items(): q("HINCRBY", k(f"by:{d}:{mname}"), f, v)
open(f"{work}/load.redis", "w").write("\n".join(cmds) + "\n")
exp = dict(H, journey=J, stages=stages, seq=4711, instances={"host-a": 4711, "host-b": 12},
           version="0.1.0", rules_sha256="ab" * 32, minutes=minutes, gap=gap,
           funnel=funnel, customer_funnel=customer_funnel, customers_no_stage=H["customers"]["_none"],
           buckets=B, time_to=TT, customer_time_to=CTT,
           time_to_stats={s: {"sessions": stats(TT[s]), "customers": stats(CTT[s])} for s in stages},
           transition_time={t: {"count": H["transitions"][t], "buckets": TRT[t], "stats": stats(TRT[t])}
                            for t in H["transitions"]},
           dimensions=["channel", "persona"],
           by={d: {m: BY[d].get(m, {}) for m in ("reached", "active", "ended")} for d in ("channel", "persona")})
json.dump(exp, open(f"{work}/expect.json", "w"))
EOF
load_demo() { rcli <"$WORK/load.redis" >"$WORK/load.out" 2>&1 && ! grep -q ERR "$WORK/load.out"; }
if load_demo; then ok redis_loaded; else bad redis_loaded "$(head -3 "$WORK/load.out")"; finish; fi

# ---- the harness ------------------------------------------------------------------------------
start_harness() { # listen redis-url journey: sets SH_PID and SH_PORT (not in a subshell)
  local log=$WORK/harness.$RANDOM
  SH_PORT=
  "$WORK/http_harness" "$1" "$2" clickstage "$3" >"$log" 2>&1 &
  SH_PID=$!
  for _ in $(seq 50); do
    if grep -q '^port ' "$log"; then SH_PORT=$(sed -n 's/^port //p' "$log"); return 0; fi
    kill -0 "$SH_PID" 2>/dev/null || break
    sleep 0.1
  done
  cat "$log" >&2
  stop_pid "$SH_PID"
  return 1
}
start_harness 127.0.0.1:0 "redis://127.0.0.1:$RP/0" demo || { bad harness "did not start"; finish; }
HPID=$SH_PID; PORT=$SH_PORT
U=http://127.0.0.1:$PORT
sleep 0.3 # first snapshot
ok harness_started; echo "    (port $PORT, redis-server on $RP)"

# ---- /metrics ---------------------------------------------------------------------------------
curl -s -D "$WORK/m.h" -o "$WORK/m.txt" "$U/metrics"
if grep -qix 'content-type: text/plain; version=0.0.4; charset=utf-8.' "$WORK/m.h"; then ok metrics_content_type
else bad metrics_content_type "$(grep -i content-type "$WORK/m.h")"; fi
missing=0
while IFS= read -r line; do
  [ -n "$line" ] || continue
  grep -qxF -- "$line" "$WORK/m.txt" || { echo "    missing: $line"; missing=$((missing + 1)); }
done <<'EOF'
# TYPE clickstage_messages_total counter
clickstage_messages_total 12345
# TYPE clickstage_events_total counter
clickstage_events_total{result="visit"} 1000
clickstage_events_total{result="product"} 600
clickstage_events_total{result="cart"} 300
clickstage_events_total{result="checkout"} 120
clickstage_events_total{result="purchase"} 45
clickstage_events_total{result="unclassified"} 77
clickstage_events_total{result="late"} 3
# TYPE clickstage_invalid_total counter
clickstage_invalid_total{reason="not_json"} 5
clickstage_invalid_total{reason="not_object"} 0
clickstage_invalid_total{reason="too_large"} 1
clickstage_invalid_total{reason="too_deep"} 0
clickstage_invalid_total{reason="no_customer"} 2
clickstage_invalid_total{reason="no_event"} 0
clickstage_invalid_total{reason="bad_time"} 4
clickstage_invalid_total{reason="future_time"} 6
clickstage_sessions_started_total 900
clickstage_sessions_ended_total 850
# TYPE clickstage_sessions_open gauge
clickstage_sessions_open 50
clickstage_customers_tracked 420
clickstage_state_bytes{kind="sessions"} 65536
clickstage_state_bytes{kind="customers"} 32768
clickstage_watermark_seconds 1763826000.123
# TYPE clickstage_flush_duration_seconds histogram
clickstage_flush_duration_seconds_bucket{le="0.001"} 0
clickstage_flush_duration_seconds_bucket{le="0.0025"} 2
clickstage_flush_duration_seconds_bucket{le="0.005"} 5
clickstage_flush_duration_seconds_bucket{le="0.01"} 8
clickstage_flush_duration_seconds_bucket{le="0.025"} 9
clickstage_flush_duration_seconds_bucket{le="0.05"} 9
clickstage_flush_duration_seconds_bucket{le="0.1"} 9
clickstage_flush_duration_seconds_bucket{le="0.25"} 10
clickstage_flush_duration_seconds_bucket{le="0.5"} 10
clickstage_flush_duration_seconds_bucket{le="1"} 10
clickstage_flush_duration_seconds_bucket{le="+Inf"} 10
clickstage_flush_duration_seconds_sum 0.0421
clickstage_flush_duration_seconds_count 10
clickstage_flushes_total{result="ok"} 9
clickstage_flushes_total{result="failed"} 1
clickstage_redis_commands_total 4711
clickstage_redis_reconnects_total 2
clickstage_redis_up 1
clickstage_consumer_lag_messages{topic="clicks",partition="0"} 5
clickstage_consumer_lag_messages{topic="clicks",partition="1"} 0
clickstage_consumer_lag_messages{topic="we\"ird\\topic\nx",partition="2"} 7
clickstage_partitions_assigned 3
clickstage_rebalances_total 3
clickstage_redelivered_skipped_total 17
clickstage_dead_lettered_total 12
clickstage_rule_reloads_total{result="ok"} 2
clickstage_rule_reloads_total{result="failed"} 1
clickstage_paused 0
clickstage_worker_loops_total{worker="0"} 1000
clickstage_worker_loops_total{worker="1"} 2000
clickstage_build_info{version="0.1.0",journey="demo",rules_sha256="0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"} 1
# TYPE clickstage_journey_reached_total counter
clickstage_journey_reached_total{stage="visit"} 500
clickstage_journey_reached_total{stage="purchase"} 20
clickstage_journey_funnel_sessions_total{stage="visit"} 530
clickstage_journey_funnel_sessions_total{stage="product"} 330
clickstage_journey_funnel_previous_sessions_total{stage="visit"} 900
clickstage_journey_funnel_previous_sessions_total{stage="product"} 530
clickstage_journey_funnel_customers_total{stage="visit"} 400
clickstage_journey_funnel_customers_total{stage="purchase"} 12
clickstage_journey_funnel_previous_customers_total{stage="visit"} 700
clickstage_journey_funnel_previous_customers_total{stage="cart"} 210
clickstage_journey_ended_total{stage="_none"} 1
clickstage_journey_ended_total{stage="purchase"} 51
# TYPE clickstage_journey_active_sessions gauge
clickstage_journey_active_sessions{stage="_none"} -1
clickstage_journey_active_sessions{stage="checkout"} 3
# TYPE clickstage_journey_time_to_stage_seconds histogram
clickstage_journey_time_to_stage_seconds_bucket{stage="cart",le="0"} 100
clickstage_journey_time_to_stage_seconds_bucket{stage="cart",le="10"} 100
clickstage_journey_time_to_stage_seconds_bucket{stage="cart",le="30"} 140
clickstage_journey_time_to_stage_seconds_bucket{stage="cart",le="7776000"} 140
clickstage_journey_time_to_stage_seconds_bucket{stage="cart",le="+Inf"} 150
clickstage_journey_time_to_stage_seconds_sum{stage="cart"} 1234.567
clickstage_journey_time_to_stage_seconds_count{stage="cart"} 150
clickstage_journey_time_to_stage_seconds_count{stage="visit"} 0
# TYPE clickstage_journey_customer_time_to_stage_seconds histogram
clickstage_journey_customer_time_to_stage_seconds_bucket{stage="purchase",le="1209600"} 0
clickstage_journey_customer_time_to_stage_seconds_bucket{stage="purchase",le="2592000"} 7
clickstage_journey_customer_time_to_stage_seconds_count{stage="purchase"} 7
clickstage_healthy 1
clickstage_ready 1
EOF
if [ "$missing" -eq 0 ]; then ok metrics_exact_lines; else bad metrics_exact_lines "$missing lines missing"; fi
# last flush: "now" within 5 s
if python3 - "$WORK/m.txt" <<'EOF'; then ok metrics_last_flush_timestamp; else bad metrics_last_flush_timestamp "not now"; fi
import re, sys, time
v = float(re.search(r"^clickstage_last_flush_timestamp_seconds (\S+)$", open(sys.argv[1]).read(), re.M).group(1))
sys.exit(0 if abs(v - time.time()) < 5 else 1)
EOF

# our own format check: every sample's family has HELP and TYPE, names and labels well-formed,
# _total only on counters, no duplicate series, histogram buckets cumulative and ending in +Inf
if python3 - "$WORK/m.txt" >"$WORK/fmt.log" 2>&1 <<'EOF'; then ok metrics_format; else bad metrics_format "$(head -5 "$WORK/fmt.log")"; fi
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
assert text.endswith("\n"), "no final newline"
help_, type_, seen, errs = {}, {}, set(), []
lbl = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
sample = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:' + lbl + r')(?:,' + lbl + r')*\})? (\S+)$')
buckets = {}
for ln in text.splitlines():
    if ln.startswith("# HELP "):
        n = ln.split(" ")[2]; assert n not in help_, f"two HELP for {n}"; help_[n] = 1; continue
    if ln.startswith("# TYPE "):
        _, _, n, t = ln.split(" "); assert n not in type_, f"two TYPE for {n}"; type_[n] = t; continue
    m = sample.match(ln)
    if not m: errs.append(f"bad line: {ln!r}"); continue
    name, labels, value = m.groups()
    float(value.replace("+Inf", "inf"))
    fam = re.sub(r"_(bucket|sum|count)$", "", name) if re.sub(r"_(bucket|sum|count)$", "", name) in type_ and type_[re.sub(r"_(bucket|sum|count)$", "", name)] == "histogram" else name
    if fam not in type_ or fam not in help_: errs.append(f"{name}: no HELP/TYPE")
    if not name.startswith("clickstage_"): errs.append(f"{name}: no clickstage_ prefix")
    if name.endswith("_total") and type_.get(fam) != "counter": errs.append(f"{name}: _total but {type_.get(fam)}")
    if type_.get(fam) == "counter" and not name.endswith("_total"): errs.append(f"{name}: counter without _total")
    if (name, labels) in seen: errs.append(f"duplicate series {name}{labels}")
    seen.add((name, labels))
    if name.endswith("_bucket"):
        # one series of buckets per label set other than le (the journey histograms: per stage)
        rest = re.sub(r',?le="[^"]+"', "", labels)
        buckets.setdefault(fam + rest, []).append((re.search(r'le="([^"]+)"', labels).group(1), float(value)))
    if re.search(r'customer=', labels or ""): errs.append(f"{name}: per-customer label")
for fam, bs in buckets.items():
    if bs[-1][0] != "+Inf": errs.append(f"{fam}: last bucket not +Inf")
    if any(b[1] > c[1] for b, c in zip(bs, bs[1:])): errs.append(f"{fam}: buckets not cumulative")
if errs: print("\n".join(errs)); sys.exit(1)
EOF

# promtool (Debian package prometheus): the binary is taken out of the .deb (apt-get download +
# dpkg-deb -x) into a cache outside the work tree, instead of installing the package, which would
# also install and start a Prometheus server
PROMTOOL=$(command -v promtool || true)
PROMCACHE=${CS_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/clickstage}
if [ -z "$PROMTOOL" ] && [ -x "$PROMCACHE/promtool" ]; then PROMTOOL=$PROMCACHE/promtool; fi
if [ -z "$PROMTOOL" ] && command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null; then
  mkdir -p "$WORK/deb" "$PROMCACHE"
  if ( cd "$WORK/deb" && { apt-get download prometheus >/dev/null 2>&1 ||
         { [ "$(id -u)" -eq 0 ] && apt-get update -qq >/dev/null 2>&1 &&
           apt-get download prometheus >/dev/null 2>&1; }; } ) &&
     dpkg-deb -x "$(ls "$WORK"/deb/prometheus_*.deb | head -1)" "$WORK/deb/x" 2>/dev/null &&
     cp "$WORK/deb/x/usr/bin/promtool" "$PROMCACHE/promtool.tmp" &&
     mv "$PROMCACHE/promtool.tmp" "$PROMCACHE/promtool"; then
    PROMTOOL=$PROMCACHE/promtool
  fi
  rm -rf "$WORK/deb"
fi
if [ -n "$PROMTOOL" ] && [ -x "$PROMTOOL" ]; then
  if "$PROMTOOL" check metrics <"$WORK/m.txt" >"$WORK/promtool.log" 2>&1; then ok metrics_promtool
  else bad metrics_promtool "$(head -5 "$WORK/promtool.log")"; fi
else
  skipped metrics_promtool "promtool not available (Debian package prometheus could not be fetched)"
fi


# ---- /healthz, /readyz ------------------------------------------------------------------------
code() { curl -s -o "$WORK/body" -w '%{http_code}' "$@"; }
hc=$(code "$U/healthz"); hb=$(cat "$WORK/body")
rc=$(code "$U/readyz"); rb=$(cat "$WORK/body")
if [ "$hc" = 200 ] && [ "$hb" = ok ] && [ "$rc" = 200 ] && [ "$rb" = ok ]; then ok health_200
else bad health_200 "healthz $hc '$hb', readyz $rc '$rb'"; fi
kill -USR1 "$HPID"; sleep 0.5
hc=$(code "$U/healthz"); hb=$(cat "$WORK/body")
rc=$(code "$U/readyz"); rb=$(cat "$WORK/body")
if [ "$hc" = 503 ] && [[ "$hb" == *"worker 1 stalled: no loop for 15"* ]]; then ok healthz_503_names_worker
else bad healthz_503_names_worker "$hc '$hb'"; fi
if [ "$rc" = 503 ] && [[ "$rb" == *"redis unreachable"* ]] && [[ "$rb" == *"counts not written to Redis for 30"* ]]; then
  ok readyz_503_says_why
else bad readyz_503_says_why "$rc '$rb'"; fi
curl -s "$U/metrics" -o "$WORK/m2.txt"
if grep -qx 'clickstage_healthy 0' "$WORK/m2.txt"; then ok metrics_healthy_0; else bad metrics_healthy_0 "not 0"; fi
kill -USR1 "$HPID"; sleep 0.5
hc=$(code "$U/healthz"); rc=$(code "$U/readyz")
if [ "$hc" = 200 ] && [ "$rc" = 200 ]; then ok health_back_200; else bad health_back_200 "$hc $rc"; fi
# the control thread stops publishing: the snapshot goes stale and both say so
kill -HUP "$HPID"; sleep 0.5
hc=$(code "$U/healthz"); hb=$(cat "$WORK/body"); rc=$(code "$U/readyz")
if [ "$hc" = 503 ] && [ "$rc" = 503 ] && [[ "$hb" == *"control thread stalled: no metrics snapshot for 2"* ]]; then
  ok health_stale_snapshot
else bad health_stale_snapshot "$hc '$hb' $rc"; fi
kill -HUP "$HPID"; sleep 0.5

# ---- /api/journey, /api/metrics ---------------------------------------------------------------
curl -s -D "$WORK/j.h" -o "$WORK/j.json" "$U/api/journey"
if python3 - "$WORK/j.json" "$WORK/expect.json" >"$WORK/j.log" 2>&1 <<'EOF'; then ok api_journey_exact; else bad api_journey_exact "$(head -5 "$WORK/j.log")"; fi
import json, sys, time
got, exp = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
errs = []
for k in ["journey", "stages", "seq", "instances", "version", "rules_sha256", "active", "reached",
          "ended", "customers", "transitions", "events", "invalid", "sessions", "ended_by"]:
    if got.get(k) != exp[k]:
        errs.append(f"{k}: {got.get(k)!r} != {exp[k]!r}")
if not isinstance(got.get("updated_ms"), int) or abs(got["updated_ms"] - time.time() * 1000) > 60000:
    errs.append(f"updated_ms {got.get('updated_ms')}")
if abs(got.get("server_ms", 0) - time.time() * 1000) > 5000:
    errs.append(f"server_ms {got.get('server_ms')}")
# stage-keyed objects list the stages in journey order
if list(got["reached"]) != exp["stages"]:
    errs.append(f"reached order {list(got['reached'])}")
# the funnel (at least, conversion <= 100 %), SPEC §4.1 histograms, medians and p90, breakdowns
for k in ["funnel", "customer_funnel", "customers_no_stage", "buckets", "time_to", "customer_time_to",
          "time_to_stats", "transition_time", "dimensions", "by"]:
    if got.get(k) != exp[k]:
        g, e = got.get(k), exp[k]
        if isinstance(g, dict) and isinstance(e, dict):
            for kk in sorted(set(g) | set(e)):
                if g.get(kk) != e.get(kk): errs.append(f"{k}.{kk}: {g.get(kk)!r} != {e.get(kk)!r}"); break
        else:
            errs.append(f"{k}: {g!r} != {e!r}")
if any(f["conversion"] is not None and f["conversion"] > 1 for f in got.get("funnel", [])):
    errs.append("a conversion above 100 %")
if errs: print("\n".join(errs)); sys.exit(1)
EOF
if python3 - "$WORK/j.json" "$WORK/expect.json" >"$WORK/jm.log" 2>&1 <<'EOF'; then ok api_journey_minutes; else bad api_journey_minutes "$(head -5 "$WORK/jm.log")"; fi
import json, sys
got, exp = json.load(open(sys.argv[1]))["minutes"], json.load(open(sys.argv[2]))["minutes"]
if len(got) != 60: print(f"{len(got)} minutes"); sys.exit(1)
if got != exp:
    for g, e in zip(got, exp):
        if g != e: print(f"{g} != {e}"); break
    sys.exit(1)
if got[0]["minute"] != "202611221404" or got[-1]["minute"] != "202611221504": print("range"); sys.exit(1)
EOF
if grep -qix 'content-type: application/json.' "$WORK/j.h"; then ok api_journey_content_type; else bad api_journey_content_type "$(grep -i content-type "$WORK/j.h")"; fi
# a new minute bucket after the newest shows up before the next SCAN; a count changes at once
rcli HINCRBY 'clickstage:{demo}:minute:202611221505:reached' visit 9 >/dev/null
rcli HINCRBY 'clickstage:{demo}:reached' purchase 1 >/dev/null
if curl -s "$U/api/journey" | python3 -c '
import json,sys; d=json.load(sys.stdin); m=d["minutes"]
sys.exit(0 if len(m)==60 and m[-1]=={"minute":"202611221505","reached":{"visit":9}} and m[0]["minute"]=="202611221405" and d["reached"]["purchase"]==2161 else 1)'; then
  ok api_journey_new_minute
else bad api_journey_new_minute "not shown"; fi
rcli DEL 'clickstage:{demo}:minute:202611221505:reached' >/dev/null
rcli HINCRBY 'clickstage:{demo}:reached' purchase -1 >/dev/null
# SPEC 3.1: no "identity" object without the hash (v1 output unchanged); with it, merges and
# conflicts beside the customers
if python3 -c 'import json,sys;sys.exit(1 if "identity" in json.load(open(sys.argv[1])) else 0)' "$WORK/j.json" &&
   rcli HSET 'clickstage:{demo}:identity' merged 42 conflicts 3 >/dev/null &&
   curl -s "$U/api/journey" | python3 -c '
import json,sys; d=json.load(sys.stdin); sys.exit(0 if d.get("identity")=={"conflicts":3,"merged":42} else 1)'; then
  ok api_journey_identity
else bad api_journey_identity "identity object wrong or shown without the hash"; fi
rcli DEL 'clickstage:{demo}:identity' >/dev/null

if curl -s "$U/api/metrics" | python3 -c '
import json,sys; d=json.load(sys.stdin)
want={"messages_total":12345,"events_total":2145,"invalid_total":18,"journey":"demo","flush_seq":99,"sessions_open":50,"healthy":True,"ready":True}
bad=[(k,d.get(k),v) for k,v in want.items() if d.get(k)!=v]
bad+=[("events",d["events"])] if d["events"]!={"visit":1000,"product":600,"cart":300,"checkout":120,"purchase":45,"_unclassified":77,"_late":3} else []
bad+=[("partitions",len(d["partitions"]))] if len(d["partitions"])!=3 or d["partitions"][2]["topic"]!="we\"ird\\topic\nx" else []
print(bad); sys.exit(1 if bad else 0)' >"$WORK/am.log" 2>&1; then ok api_metrics
else bad api_metrics "$(cat "$WORK/am.log")"; fi

# ---- web assets, 404, 405, HEAD ---------------------------------------------------------------
same=1
for f in index.html app.js style.css; do
  curl -s "$U/$f" -o "$WORK/asset" && cmp -s "$WORK/asset" "cmd/clickstage/web/$f" || { same=0; echo "    /$f differs"; }
done
curl -s "$U/" -o "$WORK/asset" && cmp -s "$WORK/asset" cmd/clickstage/web/index.html || { same=0; echo "    / differs"; }
if [ $same = 1 ]; then ok assets_embedded_byte_for_byte; else bad assets_embedded_byte_for_byte "differ"; fi
t=$(curl -s -o /dev/null -w '%{content_type}' "$U/app.js")/$(curl -s -o /dev/null -w '%{content_type}' "$U/")/$(curl -s -o /dev/null -w '%{content_type}' "$U/style.css")
if [ "$t" = "text/javascript; charset=utf-8/text/html; charset=utf-8/text/css; charset=utf-8" ]; then ok assets_content_types
else bad assets_content_types "$t"; fi
c=$(code "$U/nope")$(code "$U/api/nope")$(code "$U/metrics/")$(code "$U/index.htm")
if [ "$c" = 404404404404 ]; then ok not_found_404; else bad not_found_404 "$c"; fi
c=$(code -X POST -d x=1 "$U/metrics")$(code -X PUT -d x "$U/")$(code -X DELETE "$U/api/journey")$(code -X OPTIONS "$U/healthz")
allow=$(curl -s -D - -o /dev/null -X POST "$U/metrics" | tr -d '\r' | sed -n 's/^[Aa]llow: //p')
if [ "$c" = 405405405405 ] && [ "$allow" = "GET, HEAD" ]; then ok method_405; else bad method_405 "$c allow='$allow'"; fi
hl=$(curl -s -I "$U/metrics" | tr -d '\r' | sed -n 's/^[Cc]ontent-[Ll]ength: //p')
if [ "$(curl -s -o /dev/null -w '%{http_code}' -I "$U/metrics")" = 200 ] && [ "$hl" = "$(wc -c <"$WORK/m.txt")" ]; then ok head_200
else bad head_200 "content-length '$hl' vs $(wc -c <"$WORK/m.txt")"; fi
# keep-alive: two requests on one connection
curl -sv "$U/healthz" "$U/readyz" >"$WORK/ka.log" 2>&1
if grep -q 'Re-using existing connection' "$WORK/ka.log"; then ok keep_alive; else bad keep_alive "new connection per request"; fi

# ---- listen addresses, Redis URL forms --------------------------------------------------------
out=$("$WORK/http_harness" "127.0.0.1:$PORT" "redis://127.0.0.1:$RP/0" clickstage demo 2>&1)
if [ $? -ne 0 ] && [[ "$out" == *"Address already in use"* ]]; then ok listen_in_use_error
else bad listen_in_use_error "$out"; fi
out=$("$WORK/http_harness" "127.0.0.1" "redis://127.0.0.1:$RP/0" clickstage demo 2>&1)
if [ $? -ne 0 ] && [[ "$out" == *"not host:port"* ]]; then ok listen_bad_address; else bad listen_bad_address "$out"; fi
out=$("$WORK/http_harness" "127.0.0.1:0" "rediss://x" clickstage demo 2>&1)
if [ $? -ne 0 ] && [[ "$out" == *"bad Redis URL"* ]]; then ok bad_redis_url; else bad bad_redis_url "$out"; fi
if python3 -c 'import socket;s=socket.socket(socket.AF_INET6);s.bind(("::1",0))' 2>/dev/null; then
  if start_harness "[::1]:0" "redis://127.0.0.1:$RP/0" demo; then
    XPIDS+=("$SH_PID")
    sleep 0.3
    if [ "$(curl -s -g "http://[::1]:$SH_PORT/healthz")" = ok ]; then ok listen_ipv6; else bad listen_ipv6 "no answer"; fi
    stop_pid "$SH_PID"
  else bad listen_ipv6 "did not start"; fi
else skipped listen_ipv6 "no IPv6 loopback"; fi
# unix socket with ?db=2, and redis://host:port/2: both read db 2
redis-cli -p "$RP" -n 2 HSET 'clickstage:{db2}:reached' visit 77 >/dev/null
redis-cli -p "$RP" -n 2 HSET 'clickstage:{db2}:meta' stages visit updated_ms 1 >/dev/null
for url in "unix://$WORK/redis/redis.sock?db=2" "redis://127.0.0.1:$RP/2"; do
  name=redis_url_${url%%:*}_db2
  if start_harness 127.0.0.1:0 "$url" db2; then
    XPIDS+=("$SH_PID")
    sleep 0.3
    if curl -s "http://127.0.0.1:$SH_PORT/api/journey" | python3 -c 'import json,sys;d=json.load(sys.stdin);sys.exit(0 if d["reached"]=={"visit":77} and d["stages"]==["visit"] else 1)'; then
      ok "$name"; else bad "$name" "wrong counts"; fi
    stop_pid "$SH_PID"
  else bad "$name" "did not start"; fi
done

# ---- issue 20: Redis refuses the flushes (OOM): /readyz and /metrics name the class -----------
kill -WINCH "$HPID"; sleep 0.5
c=$(code "$U/readyz")
if [ "$c" = 503 ] && grep -q "Redis is out of memory (maxmemory reached under noeviction) (oom): OOM command not allowed" "$WORK/body"; then
  ok readyz_names_the_refusal
else bad readyz_names_the_refusal "$c $(cat "$WORK/body")"; fi
curl -s "$U/metrics" -o "$WORK/m-oom.txt"
if grep -qx 'clickstage_redis_refusing{class="oom"} 1' "$WORK/m-oom.txt" && grep -qx 'clickstage_redis_refusing{class="readonly"} 0' "$WORK/m-oom.txt" \
   && grep -q '^clickstage_redis_errors_total{class="oom"} [1-9]' "$WORK/m-oom.txt" && grep -qx 'clickstage_ready 0' "$WORK/m-oom.txt"; then
  ok metrics_name_the_refusal
else bad metrics_name_the_refusal "$(grep -E 'refusing|errors_total|clickstage_ready' "$WORK/m-oom.txt" | head -5)"; fi
kill -WINCH "$HPID"; sleep 0.5
if [ "$(code "$U/readyz")" = 200 ]; then ok readyz_after_refusal_cleared; else bad readyz_after_refusal_cleared "$(cat "$WORK/body")"; fi

# ---- Grafana dashboard and docs against the metric names http.c serves ------------------------
# the names: pipeline/metrics.h's table, as the server (the harness) prints it
"$WORK/http_harness" --help-metrics >"$WORK/metrics-table.md"
grep -o '`clickstage_[a-z0-9_]*' "$WORK/metrics-table.md" | tr -d '`' | sort -u >"$WORK/names"
if python3 - deploy/grafana/clickstage.json "$WORK/names" >"$WORK/g.log" 2>&1 <<'EOF'; then ok grafana_dashboard; else bad grafana_dashboard "$(head -5 "$WORK/g.log")"; fi
import json, re, sys
d = json.load(open(sys.argv[1]))
names = set(open(sys.argv[2]).read().split())
hist = {n for n in names if n.endswith("_seconds") and ("flush_duration" in n or "time_to_stage" in n)}
ok = names | {h + s for h in hist for s in ("_bucket", "_sum", "_count")}
errs = []
if d.get("uid") != "clickstage": errs.append("uid")
if not 36 <= d.get("schemaVersion", 0) <= 41: errs.append("schemaVersion")
exprs = []
def walk(o):
    if isinstance(o, dict):
        if "expr" in o: exprs.append(o["expr"])
        for v in o.values(): walk(v)
    elif isinstance(o, list):
        for v in o: walk(v)
walk(d.get("panels", []))
if len(exprs) < 8: errs.append(f"only {len(exprs)} queries")
for e in exprs:
    for n in re.findall(r"\bclickstage_[a-z0-9_]+", e):
        if n not in ok: errs.append(f"unknown metric {n} in {e}")
titles = " ".join(p.get("title", "").lower() for p in d["panels"])
for w in ["events", "invalid", "sessions", "lag", "flush", "redis", "state", "rebalances",
          "funnel", "conversion", "time to stage", "drop-off"]:
    if w not in titles: errs.append(f"no panel about {w}")
if errs: print("\n".join(errs)); sys.exit(1)
print(f"{len(exprs)} queries ok")
EOF
# every query parses as PromQL: promtool check rules on a rule file made of them
if [ -n "$PROMTOOL" ] && [ -x "$PROMTOOL" ]; then
  python3 - deploy/grafana/clickstage.json >"$WORK/dash-rules.yml" <<'EOF'
import json, sys
exprs = []
def walk(o):
    if isinstance(o, dict):
        if "expr" in o: exprs.append(o["expr"])
        for v in o.values(): walk(v)
    elif isinstance(o, list):
        for v in o: walk(v)
walk(json.load(open(sys.argv[1]))["panels"])
print("groups:\n  - name: dashboard\n    rules:")
for i, e in enumerate(exprs):
    e = e.replace("$__rate_interval", "5m").replace("$job", ".*").replace("$instance", ".*")
    print(f"      - record: clickstage:dashboard:q{i}\n        expr: {json.dumps(e)}")
EOF
  if "$PROMTOOL" check rules "$WORK/dash-rules.yml" >"$WORK/rules.log" 2>&1; then ok grafana_queries_parse
  else bad grafana_queries_parse "$(grep -v '^Checking' "$WORK/rules.log" | head -5)"; fi
else skipped grafana_queries_parse "no promtool"; fi
# the alerting rules (Redis refusals; the journey: conversion dropping, a stage no longer reached,
# drop-off rising): they parse, name metrics that exist, and fire as tests/http/alerts.test.yml
# says (the test file is run from its folder: its rule_files path is relative to it)
if [ -n "$PROMTOOL" ] && [ -x "$PROMTOOL" ]; then
  if "$PROMTOOL" check rules deploy/alerts.yml >"$WORK/alerts.log" 2>&1 &&
     ( cd tests/http && "$PROMTOOL" test rules alerts.test.yml ) >>"$WORK/alerts.log" 2>&1; then
    ok alert_rules_fire_as_tested
  else bad alert_rules_fire_as_tested "$(grep -v '^Checking\|^Unit Testing' "$WORK/alerts.log" | head -12)"; fi
else skipped alert_rules_fire_as_tested "no promtool"; fi
missing=$(grep -o 'clickstage_[a-z_]*' deploy/alerts.yml | sort -u | while read -r n; do
  grep -qx "$n" "$WORK/names" || echo "$n"; done)
if [ -z "$missing" ]; then ok alert_rules_name_real_metrics
else bad alert_rules_name_real_metrics "not exported: $(echo $missing)"; fi
undoc=$(while read -r n; do grep -q "\b$n\b" docs/observability.md || echo "$n"; done <"$WORK/names")
if [ -z "$undoc" ]; then ok docs_every_metric; else bad docs_every_metric "not in docs/observability.md: $(echo $undoc)"; fi
# the docs' table is the generated one, line for line (regenerate: build/clickstage --help-metrics)
if python3 -c 'import sys; sys.exit(0 if open(sys.argv[2]).read() in open(sys.argv[1]).read() else 1)' \
     docs/observability.md "$WORK/metrics-table.md"; then ok docs_metrics_table_generated
else bad docs_metrics_table_generated "docs/observability.md does not hold the output of clickstage --help-metrics"; fi

# ---- the web view in headless Chromium --------------------------------------------------------
browser() {
  if [ -n "${NO_BROWSER:-}" ]; then skipped browser "NO_BROWSER set"; return; fi
  if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" -eq 0 ]; then
    echo "    installing chromium (Debian)"
    (apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; }) >"$WORK/apt.log" 2>&1
  fi
  if [ ! -x /usr/bin/chromium ]; then skipped browser "no /usr/bin/chromium (apt-get install chromium)"; return; fi
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then skipped browser "no node/npm"; return; fi
  if [ ! -d tests/http/node_modules/playwright-core ]; then
    echo "    installing playwright-core (npm)"
    (cd tests/http && npm install --no-save --no-audit --no-fund --loglevel=error playwright-core@1) >"$WORK/npm.log" 2>&1 ||
      { tail -5 "$WORK/npm.log"; skipped browser "npm install playwright-core failed"; return; }
  fi
  rcli HSET 'clickstage:{demo}:meta' updated_ms "$(date +%s%3N)" >/dev/null
  # the screenshot goes to docs/img only when asked (UPDATE_DOCS_IMG=1): a test run leaves
  # tracked files alone
  local shot=$WORK/web-view.png
  [ -z "${UPDATE_DOCS_IMG:-}" ] || shot=docs/img/web-view.png
  timeout 120 node tests/http/browser.mjs "$U/" "$WORK/expect.json" "$RP" "$HPID" tests/http/out \
    "$shot" >"$WORK/browser.log" 2>&1
  local brc=$?
  cat "$WORK/browser.log"
  local p f
  p=$(grep -c '^PASS ' "$WORK/browser.log"); f=$(grep -c '^FAIL ' "$WORK/browser.log")
  pass=$((pass + p)); fail=$((fail + f))
  if [ $brc -ne 0 ] || [ "$p" -eq 0 ]; then bad browser "node exited $brc"; fi
}
browser

# ---- Redis down, then back --------------------------------------------------------------------
stop_pid "$RPID"; RPID= # (the browser test may have shut it down already)
c=$(code "$U/api/journey")
if [ "$c" = 503 ] && python3 -c 'import json,sys;d=json.load(open(sys.argv[1]));sys.exit(0 if "connect 127.0.0.1:'"$RP"'" in d["error"] else 1)' "$WORK/body"; then
  ok api_journey_503_redis_down
else bad api_journey_503_redis_down "$c $(cat "$WORK/body")"; fi
if [ "$(code "$U/metrics")" = 200 ] && [ "$(code "$U/healthz")" = 200 ]; then ok metrics_without_redis
else bad metrics_without_redis "metrics/healthz need Redis"; fi
if start_redis "$RP"; then
  load_demo
  sleep 0.6 # the reconnect backoff
  if [ "$(code "$U/api/journey")" = 200 ] && python3 -c 'import json,sys;d=json.load(open(sys.argv[1]));sys.exit(0 if d["reached"]["visit"]==48000 else 1)' "$WORK/body"; then
    ok api_journey_reconnects
  else bad api_journey_reconnects "$(head -c 200 "$WORK/body")"; fi
else bad api_journey_reconnects "could not restart redis on $RP"; fi
# Redis restarts under a working connection: the next request retries on a new one, no 503
stop_pid "$RPID"; RPID=
if start_redis "$RP" && load_demo; then
  c=$(code "$U/api/journey")
  if [ "$c" = 200 ]; then ok api_journey_survives_redis_restart; else bad api_journey_survives_redis_restart "$c $(head -c 200 "$WORK/body")"; fi
else bad api_journey_survives_redis_restart "could not restart redis on $RP"; fi

# ---- passwords: redis://:password@ (percent-encoded) and redis://user:password@ (ACL) ----------
if rcli CONFIG SET requirepass 'p@ss' >/dev/null && rcli -a 'p@ss' --no-auth-warning \
     ACL SETUSER viewer on '>v1ew' '~*' '&*' '+@all' >/dev/null; then
  for case in "auth_password|redis://:p%40ss@127.0.0.1:$RP/0|200" \
              "auth_acl_user|redis://viewer:v1ew@127.0.0.1:$RP|200" \
              "auth_wrong_password|redis://:nope@127.0.0.1:$RP/0|503"; do
    IFS='|' read -r name url want <<<"$case"
    if start_harness 127.0.0.1:0 "$url" demo; then
      XPIDS+=("$SH_PID")
      c=$(code "http://127.0.0.1:$SH_PORT/api/journey")
      if [ "$c" = "$want" ] && { [ "$want" = 200 ] || { grep -q 'AUTH failed' "$WORK/body" && ! grep -q nope "$WORK/body"; }; }; then
        ok "$name"; else bad "$name" "$c $(head -c 200 "$WORK/body")"; fi
      stop_pid "$SH_PID"
    else bad "$name" "did not start"; fi
  done
else bad auth "could not set a password on our redis-server"; fi

# ---- stop ---------------------------------------------------------------------------------------
kill -TERM "$HPID"
for _ in $(seq 50); do kill -0 "$HPID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$HPID" 2>/dev/null; then bad stop "harness still running 5 s after SIGTERM"
else wait "$HPID"; hrc=$?; HPID=
  if [ $hrc -eq 0 ]; then ok stop_clean; else bad stop_clean "exit $hrc"; fi
fi
finish
