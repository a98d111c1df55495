#!/usr/bin/env bash
# Integration tests against a real Apache Kafka broker and a real redis-server, both started
# here on loopback (scripts/stack.sh) in a temporary directory and stopped at the end.
# Each case prints "PASS name" or "FAIL name: why"; the last line is "integration: N passed, N failed".
#   CASES="drain_exact sigterm_restart" tests/integration/run.sh   runs only those cases
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
B=${BUILD:-build}
make -s "$B/clickstage" "$B/clickstage-loadgen" "$B/cs_checkredis" >/dev/null || { echo "integration: 0 passed, 1 failed"; exit 1; }
WORK=$(mktemp -d /tmp/cs-it.XXXXXX)
STACK=$WORK/stack
cleanup() {
  for p in $(jobs -p); do kill "$p" 2>/dev/null; done
  scripts/stack.sh down "$STACK" >/dev/null 2>&1
  [ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT
if ! REDIS_AOF=1 scripts/stack.sh up "$STACK" >"$WORK/stack-up.log" 2>&1; then
  tail -30 "$WORK/stack-up.log"; echo "integration: 0 passed, 1 failed"; exit 1
fi
# shellcheck disable=SC1091
. "$STACK/env"
RULES=$ROOT/tests/data/model.yaml
pass=0; fail=0
ok() { echo "PASS $1"; pass=$((pass+1)); }
bad() { echo "FAIL $1: $2"; fail=$((fail+1)); }
rcli() { redis-cli -p "$REDIS_PORT" "$@"; }
topic() { scripts/stack.sh topic "$1" "$2" "$STACK" >/dev/null 2>&1; }
common() { COMMON=(--brokers "$KAFKA_BROKERS" --redis "$REDIS_URL" --rules "$RULES" \
    --http-listen "" --log-format text --flush-interval 100ms); }
daemon() { common; "$B/clickstage" "${COMMON[@]}" "$@"; }
# in the background, as a direct child (so signals reach clickstage, not a subshell): sets DPID
daemon_bg() { local log=$1; shift; common; "$B/clickstage" "${COMMON[@]}" "$@" >"$log" 2>&1 & DPID=$!; }
check() { # name expect-file [--events-only]
  local out; out=$("$B/cs_checkredis" --redis "127.0.0.1:$REDIS_PORT" --prefix "$PREFIX" --journey model --expect "$2" ${3:-})
  local rc=$?
  # a full comparison includes SPEC §4.1 (time_to, transition_time, customer_time_to) and its
  # invariants: one that compared none of those fields proves nothing about them
  if [ $rc -eq 0 ] && [ -z "${3:-}" ]; then
    local tt; tt=$(sed -n 's/.*"tt_compared": *\([0-9]*\).*/\1/p' <<<"$out" | tail -1)
    if [ "${tt:-0}" -gt 0 ]; then return 0; fi
    echo "    $1: no SPEC 4.1 field in the expected file ($out)"; return 1
  fi
  if [ $rc -eq 0 ]; then return 0; fi
  echo "$out" | tail -25 | sed 's/^/    /'
  return 1
}
sum_hash() { rcli HVALS "$1" | awk '{s+=$1} END {print s+0}'; }
sum_json() { python3 -c "import json,sys;d=json.load(open(sys.argv[1]));print(sum(d.get(sys.argv[2],{}).values()))" "$@"; }
counted() { echo $(( $(sum_hash "$PREFIX:{model}:events") + $(sum_hash "$PREFIX:{model}:invalid") )); }
expected_total() { echo $(( $(sum_json "$1" events) + $(sum_json "$1" invalid) )); }
lg() { "$B/clickstage-loadgen" --brokers "$KAFKA_BROKERS" --rules "$RULES" --progress 0 "$@"; }
want() { [[ " ${CASES:-all} " == *" all "* || " ${CASES:-} " == *" $1 "* ]]; }

# 1. known events -> clickstage --drain with 2 threads over 4 partitions -> every §4 hash exact;
#    invalid messages (every reason, oversized too) counted and copied to the dead-letter topic
if want drain_exact; then
  PREFIX=it1; topic t1 4; topic t1-dlq 1
  lg --topic t1 --events 200000 --customers 8000 --seed 11 --expect "$WORK/t1.json" >"$WORK/t1.gen" 2>&1
  if daemon --drain --threads 2 --topics t1 --group g1 --prefix it1 --dead-letter-topic t1-dlq \
       >"$WORK/t1.log" 2>&1; then
    if check drain_exact "$WORK/t1.json"; then
      inv=$(python3 -c "import json;print(sum(json.load(open('$WORK/t1.json'))['invalid'].values()))")
      dlq=$(kcat -C -b "$KAFKA_BROKERS" -t t1-dlq -e -q -f '%h\n' 2>/dev/null | grep -c clickstage-invalid-reason)
      if [ "$inv" = "$dlq" ]; then ok drain_exact; else bad drain_exact "dead-letter copies $dlq != invalid $inv"; fi
    else bad drain_exact "counts differ"; fi
  else tail -20 "$WORK/t1.log"; bad drain_exact "daemon exited $?"; fi
  # a second drain of the same topic reads nothing new (Redis offsets) and changes nothing
  if daemon --drain --threads 2 --topics t1 --group g1 --prefix it1 >"$WORK/t1b.log" 2>&1 &&
     check drain_again "$WORK/t1.json"; then ok drain_again_no_double_count
  else bad drain_again_no_double_count "second drain changed counts"; fi
fi

# 2. Redis unreachable in the middle of a drain (SIGSTOP), then back: counts exact
if want redis_outage; then
  PREFIX=it2; topic t2 4
  lg --topic t2 --events 1000000 --customers 50000 --seed 12 --expect "$WORK/t2.json" >/dev/null 2>&1
  RPID=$(cat "$STACK/redis.pid")
  daemon_bg "$WORK/t2.log" --drain --threads 2 --topics t2 --group g2 --prefix it2
  # 7 s: longer than the sink's 5 s command timeout, so a flush really fails mid-transaction
  for _ in $(seq 1 200); do [ "$(rcli HLEN 'it2:{model}:offsets' 2>/dev/null)" -gt 0 ] 2>/dev/null && break; sleep 0.05; done
  kill -STOP "$RPID"; sleep 7; kill -CONT "$RPID"
  wait "$DPID"; rc=$?
  if [ $rc -eq 0 ] && check redis_outage "$WORK/t2.json"; then
    if grep -q "redis unreachable" "$WORK/t2.log"; then ok redis_outage_sigstop
    else bad redis_outage_sigstop "the outage was not seen by the daemon (timing)"; fi
  else tail -20 "$WORK/t2.log"; bad redis_outage_sigstop "rc=$rc or counts differ"; fi
fi

# 3. Redis stopped and restarted (AOF, fsync always) in the middle of a drain: counts exact
if want redis_restart; then
  PREFIX=it3; topic t3 4
  lg --topic t3 --events 300000 --customers 10000 --seed 13 --expect "$WORK/t3.json" >/dev/null 2>&1
  daemon_bg "$WORK/t3.log" --drain --threads 2 --topics t3 --group g3 --prefix it3
  sleep 0.3; scripts/stack.sh redis-restart "$STACK" >/dev/null 2>&1
  wait "$DPID"; rc=$?
  if [ $rc -eq 0 ] && check redis_restart "$WORK/t3.json"; then ok redis_restart_aof
  else tail -20 "$WORK/t3.log"; bad redis_restart_aof "rc=$rc or counts differ"; fi
fi

# 4. SIGTERM in the middle of a live stream, restart, finish: every hash exact, even with one
#    partition's snapshot corrupted in between
if want sigterm_restart; then
  PREFIX=it4; topic t4 4
  lg --topic t4 --events 200000 --customers 8000 --seed 14 --expect "$WORK/t4.json" --count 100000 >/dev/null 2>&1
  daemon_bg "$WORK/t4.log" --threads 2 --topics t4 --group g4 --prefix it4
  for _ in $(seq 1 100); do   # wait until the first part is being counted
    n=$(rcli HGET "it4:{model}:sessions" started 2>/dev/null); [ "${n:-0}" -gt 0 ] && break; sleep 0.2
  done
  lg --topic t4 --events 200000 --customers 8000 --seed 14 --skip 100000 --count 40000 >/dev/null 2>&1
  kill -TERM "$DPID"; t0=$(date +%s%N)
  wait "$DPID"; rc=$?; t1=$(date +%s%N)
  stop_ms=$(( (t1 - t0) / 1000000 ))
  lg --topic t4 --events 200000 --customers 8000 --seed 14 --skip 140000 >/dev/null 2>&1
  # one partition's snapshot corrupted while the daemon is down: it must be rejected and that
  # partition rebuilt from Kafka (re-read from its first offset up to the counted one, uncounted)
  rcli SETRANGE "it4:{model}:snap:t4/0" 30 "corrupt" >/dev/null
  daemon --drain --threads 2 --topics t4 --group g4 --prefix it4 >"$WORK/t4b.log" 2>&1; rc2=$?
  ended_shutdown=$(rcli HGET "it4:{model}:ended_by" shutdown)
  # every message counted exactly once, and with state snapshots every §4 hash is exact: the
  # stop snapshotted the open sessions, the restart continued them (no `shutdown` ends)
  inv_ok=1
  for r in not_json not_object too_large too_deep no_customer no_event bad_time future_time; do
    w=$(python3 -c "import json;print(json.load(open('$WORK/t4.json'))['invalid'].get('$r',0))")
    g=$(rcli HGET "it4:{model}:invalid" "$r"); [ "${g:-0}" = "$w" ] || inv_ok=0
  done
  if [ $rc -eq 0 ] && [ $rc2 -eq 0 ] && [ "$stop_ms" -lt 10000 ] && [ $inv_ok = 1 ] \
     && [ "$(counted)" = "$(expected_total "$WORK/t4.json")" ] \
     && [ "$(rcli HGET 'it4:{model}:sessions' active)" = 0 ] && [ "${ended_shutdown:-0}" = 0 ] \
     && grep -q 'restored [1-9][0-9]* sessions' "$WORK/t4b.log" \
     && grep -q 't4\[0\]: snapshot rejected' "$WORK/t4b.log" \
     && check sigterm_restart "$WORK/t4.json"; then
    ok "sigterm_restart (stopped in ${stop_ms} ms)"
  else tail -20 "$WORK/t4.log"; bad sigterm_restart "rc=$rc/$rc2 stop ${stop_ms}ms, or counts differ"; fi
fi

# 5. rule reload under load: a bad file is rejected and the table keeps running; a good one lands
if want reload; then
  PREFIX=it5; topic t5 2
  cp "$RULES" "$WORK/r5.yaml"
  lg --topic t5 --events 100000 --customers 5000 --seed 15 --expect "$WORK/t5.json" >/dev/null 2>&1
  RULES_SAVE=$RULES; RULES=$WORK/r5.yaml
  daemon_bg "$WORK/t5.log" --threads 2 --topics t5 --group g5 --prefix it5
  sleep 1
  echo "rules: [ { name: x, stage: nowhere, match: { event: a } } ]" >>"$WORK/r5.yaml"
  kill -HUP "$DPID"; sleep 0.5
  cp "$RULES_SAVE" "$WORK/r5.yaml"; sed -i 's/name: research/name: research-v2/' "$WORK/r5.yaml"
  kill -HUP "$DPID"; sleep 0.5
  total=$(expected_total "$WORK/t5.json")
  for _ in $(seq 1 150); do [ "$(counted)" = "$total" ] && break; sleep 0.2; done
  kill -TERM "$DPID"; wait "$DPID"; rc=$?
  RULES=$RULES_SAVE
  if [ $rc -eq 0 ] && grep -q "rule reload rejected" "$WORK/t5.log" && grep -q "rules reloaded" "$WORK/t5.log" \
     && check reload "$WORK/t5.json" --events-only; then ok rule_reload_under_load
  else tail -20 "$WORK/t5.log"; bad rule_reload_under_load "rc=$rc or log/counts"; fi
fi

# 6. end to end with the load generator: 1M events (invalid, out-of-order and late ones among
#    them, and devices with wrong clocks: future_time/bad_time, issue 16) -> Kafka -> clickstage
#    --drain with 2 threads -> Redis equals the ground truth exactly
if want e2e_loadgen; then
  PREFIX=it6; topic t6 8
  lg --topic t6 --events "${E2E_EVENTS:-1000000}" --customers 100000 --seed 16 --skew 0.001 --expect "$WORK/t6.json" >"$WORK/t6.gen" 2>&1
  lg=$?
  grep -q '"future_time"' "$WORK/t6.json" || lg="$lg (no future_time in the ground truth)"
  daemon --drain --threads 2 --topics t6 --group g6 --prefix it6 >"$WORK/t6.log" 2>&1; rc=$?
  if [ "$lg" = 0 ] && [ $rc -eq 0 ] && check e2e "$WORK/t6.json"; then
    ok "e2e_loadgen_drain ($(tail -1 "$WORK/t6.gen"))"
  else tail -5 "$WORK/t6.gen"; tail -20 "$WORK/t6.log"; bad e2e_loadgen_drain "loadgen rc=$lg daemon rc=$rc or counts differ"; fi
fi

# 7. issue 16's reproduction through the real daemon: one partition, 100 customers at T, one
#    event from a device whose clock says 9999-12-31, then 100 new customers' checkout_started at
#    T + 1 min. Before session.max_future: _late 91, purchase 9, every session ended by gap, and
#    the numbers moved with --batch-size. Now the same at every batch size.
if want skewed_clock; then
  topic t7 1
  {
    for i in $(seq 0 99); do echo "u$i:{\"userId\":\"u$i\",\"event\":\"page\",\"channel\":\"social\",\"timestamp\":\"2026-11-01T10:00:00Z\"}"; done
    echo 'clock-skewed-device:{"userId":"clock-skewed-device","event":"page","timestamp":"9999-12-31T23:59:59Z"}'
    for i in $(seq 0 99); do echo "v$i:{\"userId\":\"v$i\",\"event\":\"checkout_started\",\"timestamp\":\"2026-11-01T10:01:00Z\"}"; done
  } | kcat -P -b "$KAFKA_BROKERS" -t t7 -p 0 -K : 2>"$WORK/t7.kcat"
  for bs in 1 10 64 2048; do
    PREFIX=it7b$bs
    daemon --drain --threads 1 --batch-size "$bs" --topics t7 --group "g7-$bs" --prefix "$PREFIX" >"$WORK/t7-$bs.log" 2>&1; rc=$?
    got="purchase=$(rcli HGET "$PREFIX:{model}:events" purchase) late=$(rcli HGET "$PREFIX:{model}:events" _late)"
    got="$got future_time=$(rcli HGET "$PREFIX:{model}:invalid" future_time) drain=$(rcli HGET "$PREFIX:{model}:ended_by" drain)"
    got="$got gap=$(rcli HGET "$PREFIX:{model}:ended_by" gap) started=$(rcli HGET "$PREFIX:{model}:sessions" started)"
    if [ $rc -eq 0 ] && [ "$got" = "purchase=100 late= future_time=1 drain=200 gap= started=200" ]; then
      ok "skewed_clock_batch_size_$bs"
    else tail -5 "$WORK/t7-$bs.log"; bad "skewed_clock_batch_size_$bs" "rc=$rc $got"; fi
  done
fi

# 8. formats (SPEC §1.1, issue 19): the same seed spelled as each analytics stack's topic
#    (clickstage-loadgen --format) drains, with `format: NAME` and the journey's own rules
#    (tests/data/formats/NAME.yaml), to the one ground truth of that seed; Snowplow's TSV
#    messages of the wrong shape are not_tsv, counted and dead-lettered; RudderStack's channel
#    breakdown is the marketing medium, not its SDK kind (`server`), which Segment's paths take
if want formats; then
  FMTS="segment rudderstack posthog mixpanel amplitude snowplow-enriched"
  for f in $FMTS; do
    PREFIX=it8${f%%-*}; topic "t8-$f" 4; topic "t8-$f-dlq" 1
    lg --topic "t8-$f" --format "$f" --events 100000 --customers 4000 --seed 19 --skew 0.002 \
       --too-large 0.001 --expect "$WORK/t8-$f.json" >"$WORK/t8-$f.gen" 2>&1 || { bad "format_$f" "loadgen failed"; continue; }
    if RULES=$ROOT/tests/data/formats/$f.yaml daemon --drain --threads 2 --topics "t8-$f" \
         --group "g8-$f" --prefix "$PREFIX" --dead-letter-topic "t8-$f-dlq" >"$WORK/t8-$f.log" 2>&1; then
      why=""
      check "format_$f" "$WORK/t8-$f.json" || why="counts differ from the ground truth"
      inv=$(sum_json "$WORK/t8-$f.json" invalid)
      dlq=$(kcat -C -b "$KAFKA_BROKERS" -t "t8-$f-dlq" -e -q -f '%h\n' 2>/dev/null | grep -c clickstage-invalid-reason)
      [ "$inv" = "$dlq" ] || why="$why; dead-letter copies $dlq != invalid $inv"
      if [ "$f" = snowplow-enriched ]; then
        nt=$(rcli HGET "$PREFIX:{model}:invalid" not_tsv)
        dnt=$(kcat -C -b "$KAFKA_BROKERS" -t "t8-$f-dlq" -e -q -f '%h\n' 2>/dev/null | grep -c 'clickstage-invalid-reason=not_tsv')
        { [ "${nt:-0}" -gt 0 ] && [ "$nt" = "$dnt" ]; } || why="$why; not_tsv $nt, dead-lettered as not_tsv $dnt"
      fi
      if [ "$f" = rudderstack ] && rcli HKEYS "$PREFIX:{model}:by:channel:reached" | grep -q '^server/'; then
        why="$why; the channel breakdown shows server"
      fi
      if [ -z "$why" ]; then ok "format_$f"; else bad "format_$f" "$why"; fi
    else tail -20 "$WORK/t8-$f.log"; bad "format_$f" "daemon exited $?"; fi
  done
  # one ground truth: the JSON formats' expected counts are the same file; Snowplow's differs
  # only in the reasons TSV cannot tell apart
  same=1
  for f in rudderstack posthog mixpanel amplitude; do cmp -s "$WORK/t8-segment.json" "$WORK/t8-$f.json" || same=0; done
  tsv_ok=$(python3 - "$WORK/t8-segment.json" "$WORK/t8-snowplow-enriched.json" <<'PY'
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
ia, ib = a.pop('invalid'), b.pop('invalid')
m = sum(ia.pop(r, 0) for r in ('not_json', 'not_object', 'too_deep'))
print(int(a == b and ib.pop('not_tsv', 0) == m and ia == ib and m > 0))
PY
)
  if [ $same = 1 ] && [ "$tsv_ok" = 1 ]; then ok formats_one_ground_truth
  else bad formats_one_ground_truth "expected counts differ between formats (json same=$same, tsv=$tsv_ok)"; fi
  # the bug the preset fixes: Segment's default paths read RudderStack's SDK kind as the channel
  PREFIX=it8rs_as_segment
  if daemon --drain --threads 2 --topics t8-rudderstack --group g8-rs-seg --prefix "$PREFIX" >"$WORK/t8-rs-seg.log" 2>&1 &&
     rcli HKEYS "$PREFIX:{model}:by:channel:reached" | grep -q '^server/'; then ok rudderstack_without_preset_reads_server
  else bad rudderstack_without_preset_reads_server "no server/ channel without the preset"; fi
fi

# 9. real payloads (issue 19): the seed's journeys sent through each stack's official Python
#    client library (segment-analytics-python, rudder-sdk-python, posthog, mixpanel,
#    amplitude-analytics; pinned in tests/formats/requirements.txt, a cached venv) to a local
#    collector; what the library put on the wire, one event per message, drains with `format:
#    NAME` to the generator's ground truth. Snowplow: the official analytics SDK reads the
#    generator's enriched TSV and must find in its columns what the Segment spelling says.
if want formats_sdk; then
  VENV=$(tests/formats/sdk-venv.sh 2>"$WORK/venv.log"); vrc=$?
  if [ $vrc = 3 ]; then
    echo "SKIP formats_sdk: the Python package registry is unreachable, so the stacks' client libraries cannot be installed ($(tail -1 "$WORK/venv.log"))"
  elif [ $vrc != 0 ]; then
    tail -10 "$WORK/venv.log"; bad formats_sdk_setup "tests/formats/sdk-venv.sh exited $vrc"
  else
    PY=$VENV/bin/python
    SDKGEN=(--partitions 4 --events 6000 --customers 500 --seed 29 --invalid 0 --too-large 0)
    lg "${SDKGEN[@]}" --dump "$WORK/sdk-seg.tsv" >/dev/null 2>&1
    lg "${SDKGEN[@]}" --expect-only --expect "$WORK/sdk.json" >/dev/null 2>&1
    # the five libraries at once (each mostly waits on its own batching timers; its collector
    # listens on its own loopback port), then each capture through Kafka in turn
    SDKS="segment rudderstack posthog mixpanel amplitude"; pids=()
    for s in $SDKS; do
      ( "$PY" tests/formats/sdk_capture.py capture "$s" "$WORK/sdk-seg.tsv" "$WORK/sdk-$s.tsv" \
          >"$WORK/sdk-$s.log" 2>&1; echo $? >"$WORK/sdk-$s.rc" ) &
      pids+=($!)
    done
    wait "${pids[@]}"
    for s in $SDKS; do
      PREFIX=it9$s; topic "t9-$s" 4
      if [ "$(cat "$WORK/sdk-$s.rc" 2>/dev/null)" != 0 ]; then
        tail -5 "$WORK/sdk-$s.log"; bad "sdk_$s" "capture through the library failed"; continue
      fi
      for p in 0 1 2 3; do
        awk -F'\t' -v p=$p '$1 == p { print $2 "\t" $3 }' "$WORK/sdk-$s.tsv" |
          kcat -P -b "$KAFKA_BROKERS" -t "t9-$s" -p $p -K $'\t' 2>>"$WORK/sdk-$s.kcat"
      done
      if RULES=$ROOT/tests/data/formats/$s.yaml daemon --drain --threads 2 --topics "t9-$s" \
           --group "g9-$s" --prefix "$PREFIX" >"$WORK/t9-$s.log" 2>&1 && check "sdk_$s" "$WORK/sdk.json"; then
        ok "sdk_$s"
      else tail -5 "$WORK/t9-$s.log"; bad "sdk_$s" "the library's payloads do not drain to the ground truth"; fi
    done
    SPGEN=(--partitions 4 --events 20000 --customers 1500 --seed 31 --skew 0.002)
    lg "${SPGEN[@]}" --dump "$WORK/sp-seg.tsv" >/dev/null 2>&1
    lg "${SPGEN[@]}" --format snowplow-enriched --dump "$WORK/sp-tsv.tsv" >/dev/null 2>&1
    if "$PY" tests/formats/sdk_capture.py snowplow "$WORK/sp-seg.tsv" "$WORK/sp-tsv.tsv" >"$WORK/sp-oracle.log" 2>&1; then
      ok sdk_snowplow_analytics_sdk_reads_the_tsv
    else tail -5 "$WORK/sp-oracle.log"; bad sdk_snowplow_analytics_sdk_reads_the_tsv "see above"; fi
  fi
fi

# issue 21, SPEC v1.3 3.1: anonymous-then-known journeys keyed by device (--login), drained with
# identity: -> every hash exact against the 3.1 ground truth (identity merged/conflicts too);
# then the same kind of stream with the daemon killed (-9) mid-drain and drained again: the v3
# snapshots (aliases, devices without a journey) restored and the rest replayed, still exact
if want identity_drain; then
  RULES=$ROOT/tests/data/identity/model-identity.yaml
  PREFIX=it21; topic t21 4
  lg --topic t21 --events 200000 --customers 8000 --seed 21 --login 0.5 --expect "$WORK/t21.json" >"$WORK/t21.gen" 2>&1
  if daemon --drain --threads 2 --topics t21 --group g21 --prefix it21 >"$WORK/t21.log" 2>&1 &&
     check identity_drain "$WORK/t21.json"; then
    m=$(rcli HGET 'it21:{model}:identity' merged); c=$(rcli HGET 'it21:{model}:identity' conflicts)
    if [ "${m:-0}" -gt 0 ] && [ "${c:-0}" -gt 0 ]; then ok identity_drain_exact
    else bad identity_drain_exact "identity hash merged=$m conflicts=$c"; fi
  else tail -20 "$WORK/t21.log"; bad identity_drain_exact "daemon failed or counts differ"; fi
  PREFIX=it21k; topic t21k 4
  lg --topic t21k --events 400000 --customers 12000 --seed 22 --login 0.5 --expect "$WORK/t21k.json" >"$WORK/t21k.gen" 2>&1
  daemon_bg "$WORK/t21k.log" --drain --threads 2 --topics t21k --group g21k --prefix it21k --snapshot-interval 200ms
  for _ in $(seq 1 100); do [ "$(rcli HLEN 'it21k:{model}:offsets' 2>/dev/null)" -gt 0 ] 2>/dev/null && break; sleep 0.05; done
  sleep 0.7; kill -KILL "$DPID"; wait "$DPID" 2>/dev/null
  snaps=$(rcli --scan --pattern 'it21k:{model}:snap:*' | wc -l)
  if daemon --drain --threads 2 --topics t21k --group g21k --prefix it21k >"$WORK/t21k2.log" 2>&1 &&
     check identity_kill9 "$WORK/t21k.json"; then
    if grep -q "restored" "$WORK/t21k2.log"; then ok identity_kill9_restore_exact
    else bad identity_kill9_restore_exact "no snapshot restored (killed too early? $snaps snapshot keys)"; fi
  else tail -20 "$WORK/t21k2.log"; bad identity_kill9_restore_exact "daemon failed or counts differ ($snaps snapshot keys)"; fi
  RULES=$ROOT/tests/data/model.yaml
fi

echo "integration: $pass passed, $fail failed"
[ $fail -eq 0 ]
