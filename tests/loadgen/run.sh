#!/usr/bin/env bash
# clickstage-loadgen through a real Kafka broker and redis-server (own stack in a temp dir,
# stopped at the end), issue 15:
#   1. determinism: the same seed with --threads 1, --threads 4 and --threads 2 sent in three
#      parts (--skip/--count) gives byte-identical partitions (kcat dumps: key, timestamp, value)
#   2. watching: clickstage live, the generator at a rate with --watch-redis reports produce ->
#      visible latency and lag 0 at the end; every event counted as the ground truth says (the
#      daemon is stopped live, so sessions stay open: events and invalid are what must match)
#   3. --find-sustainable: a short search reports a figure, its p99, a table and a plot
#   4. --producer direct: the same seed through the direct producer (lz4 with 2 threads, none
#      with 1 thread and small batches) and through librdkafka gives byte-identical partitions;
#      clickstage --drain of the direct topic equals the ground truth exactly (cs_checkredis)
# Each case prints "PASS name" or "FAIL name: why"; the last line is "loadgen: N passed, N failed".
#   CASES="determinism" tests/loadgen/run.sh   runs only those cases
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
B=${BUILD:-build}
make -s "$B/clickstage" "$B/clickstage-loadgen" "$B/cs_checkredis" >/dev/null || { echo "loadgen: 0 passed, 1 failed"; exit 1; }
WORK=$(mktemp -d /tmp/cs-lg.XXXXXX)
STACK=$WORK/stack
DPID=
cleanup() {
  [ -n "$DPID" ] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
  scripts/stack.sh down "$STACK" >/dev/null 2>&1
  [ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT
if ! scripts/stack.sh up "$STACK" >"$WORK/stack-up.log" 2>&1; then
  tail -30 "$WORK/stack-up.log"; echo "loadgen: 0 passed, 1 failed"; exit 1
fi
# shellcheck disable=SC1091
. "$STACK/env"
RULES=$ROOT/tests/data/model.yaml
pass=0; fail=0
ok() { echo "PASS $1"; pass=$((pass+1)); }
bad() { echo "FAIL $1: $2"; fail=$((fail+1)); }
# event times are in 2026-11: keep everything (no time-based deletion under the consumer)
topic() { scripts/stack.sh topic "$1" "$2" "$STACK" retention.ms=-1 >/dev/null 2>&1; }
lg() { "$B/clickstage-loadgen" --brokers "$KAFKA_BROKERS" --rules "$RULES" --progress 0 "$@"; }
want() { [[ " ${CASES:-all} " == *" all "* || " ${CASES:-} " == *" $1 "* ]]; }
# md5 of each partition's messages (key, timestamp, value), one line per partition
dump() { # TOPIC NPARTS
  local p
  for p in $(seq 0 $(($2 - 1))); do
    printf '%s %s\n' "$p" "$(timeout 60 kcat -C -b "$KAFKA_BROKERS" -t "$1" -p "$p" -o beginning -e -q \
      -f '%k\t%T\t%s\n' 2>/dev/null | md5sum | cut -c1-32)"
  done
}
count() { timeout 60 kcat -C -b "$KAFKA_BROKERS" -t "$1" -o beginning -e -q -f 'x\n' 2>/dev/null | wc -l; }

# 1. the same seed, 1 and 4 threads, and 2 threads in three parts: identical partitions
if want determinism; then
  N=120000; ARGS=(--events "$N" --customers 7000 --seed 1515 --skew 0.001)
  topic d1 8; topic d4 8; topic d2 8
  r1=$(lg --topic d1 --threads 1 "${ARGS[@]}" 2>"$WORK/d1.err" | tail -1)
  r4=$(lg --topic d4 --threads 4 "${ARGS[@]}" 2>"$WORK/d4.err" | tail -1)
  lg --topic d2 --threads 2 "${ARGS[@]}" --count 30001 >/dev/null 2>"$WORK/d2.err" &&
    lg --topic d2 --threads 2 "${ARGS[@]}" --skip 30001 --count 50000 >/dev/null 2>>"$WORK/d2.err" &&
    lg --topic d2 --threads 2 "${ARGS[@]}" --skip 80001 >/dev/null 2>>"$WORK/d2.err"
  rc2=$?
  dump d1 8 >"$WORK/d1.md5"; dump d4 8 >"$WORK/d4.md5"; dump d2 8 >"$WORK/d2.md5"
  n1=$(count d1)
  if [ "$n1" = "$N" ] && [ $rc2 = 0 ] && cmp -s "$WORK/d1.md5" "$WORK/d4.md5" && cmp -s "$WORK/d1.md5" "$WORK/d2.md5" \
     && [[ $r1 == *'"threads":1,'* ]] && [[ $r4 == *'"threads":4,'* ]]; then
    ok "determinism_threads_1_4_and_parts ($N messages, 8 partitions byte-identical)"
  else
    paste "$WORK/d1.md5" "$WORK/d4.md5" "$WORK/d2.md5" | sed 's/^/    /'
    tail -3 "$WORK/d1.err" "$WORK/d4.err" "$WORK/d2.err"
    bad determinism_threads "messages $n1/$N, parts rc $rc2, or partitions differ"
  fi
fi

# 2. --watch-redis against a live clickstage: latency reported, lag 0 at the end, counts exact
if want watch; then
  topic w 4
  "$B/clickstage" --brokers "$KAFKA_BROKERS" --redis "$REDIS_URL" --rules "$RULES" --http-listen "" \
    --log-format text --flush-interval 100ms --threads 2 --topics w --group gw --prefix itw \
    >"$WORK/w.log" 2>&1 & DPID=$!
  sleep 1
  out=$(lg --topic w --rate 20000 --events 80000 --customers 5000 --seed 21 --threads 2 \
    --watch-redis "$REDIS_URL" --prefix itw --progress 1s --expect "$WORK/w.json" \
    --latency-csv "$WORK/w.csv" 2>"$WORK/w.err" | tail -1)
  rc=$?
  samples=$(python3 -c "import json,sys;d=json.loads(sys.argv[1]);print(d.get('latency_samples',0))" "$out" 2>/dev/null)
  p99=$(python3 -c "import json,sys;d=json.loads(sys.argv[1]);print(d.get('latency_p99_ms',0))" "$out" 2>/dev/null)
  lag=$(python3 -c "import json,sys;d=json.loads(sys.argv[1]);print(d.get('lag_end',-1))" "$out" 2>/dev/null)
  rows=$(($(wc -l <"$WORK/w.csv") - 1))
  kill -TERM "$DPID"; wait "$DPID"; DPID=
  if [ $rc = 0 ] && [ "${samples:-0}" -gt 1000 ] && [ "$lag" = 0 ] && [ "$rows" -ge 2 ] \
     && python3 -c "import sys; sys.exit(0 if 0 < float(sys.argv[1]) < 20000 else 1)" "$p99" \
     && "$B/cs_checkredis" --redis "127.0.0.1:$REDIS_PORT" --prefix itw --journey model --expect "$WORK/w.json" \
          --events-only >"$WORK/w.check" 2>&1; then
    ok "watch_latency (p99 ${p99} ms over $samples samples, $rows intervals, counts exact)"
  else
    tail -5 "$WORK/w.err"; tail -5 "$WORK/w.check" 2>/dev/null
    bad watch_latency "rc=$rc samples=$samples p99=$p99 lag_end=$lag rows=$rows or counts differ"
  fi
fi

# 3. --find-sustainable, a short search: a figure, its p99, the table and the plot
if want sustain; then
  topic s 4
  "$B/clickstage" --brokers "$KAFKA_BROKERS" --redis "$REDIS_URL" --rules "$RULES" --http-listen "" \
    --log-format text --flush-interval 100ms --threads 2 --topics s --group gs --prefix its \
    >"$WORK/s.log" 2>&1 & DPID=$!
  sleep 1
  out=$(lg --topic s --find-sustainable --watch-redis "$REDIS_URL" --prefix its --customers 5000 \
    --start-rate 5000 --step 4s --warmup 1s --max-steps 3 --p99 2s --plot "$WORK/s.png" \
    --csv "$WORK/s.csv" 2>"$WORK/s.err")
  rc=$?
  kill -TERM "$DPID"; wait "$DPID"; DPID=
  last=$(printf '%s\n' "$out" | tail -1)
  fig=$(python3 -c "import json,sys;d=json.loads(sys.argv[1]);print(int(d['sustainable_events_per_sec']), d['p99_ms_at_sustainable'])" "$last" 2>/dev/null)
  if [ $rc = 0 ] && [ -n "$fig" ] && [ "${fig%% *}" -ge 5000 ] && [ "$(printf '%s\n' "$out" | grep -c 'pass\|FAIL')" -ge 1 ] \
     && [ -s "$WORK/s.csv" ] && { [ -s "$WORK/s.png" ] || ! command -v gnuplot >/dev/null; }; then
    ok "find_sustainable (sustainable events/s and p99 ms: $fig)"
  else
    printf '%s\n' "$out" | tail -8 | sed 's/^/    /'; tail -3 "$WORK/s.err"
    bad find_sustainable "rc=$rc figure '$fig'"
  fi
fi

# 4. the direct producer: the same bytes as librdkafka's, and a drain of them exact
if want direct; then
  N=150000; ARGS=(--events "$N" --customers 7000 --seed 1516 --skew 0.001)
  topic xr 8; topic xd 8; topic xn 8
  rr=$(lg --topic xr --producer librdkafka --threads 2 "${ARGS[@]}" --expect "$WORK/x.json" 2>"$WORK/xr.err" | tail -1)
  rd=$(lg --topic xd --threads 2 "${ARGS[@]}" 2>"$WORK/xd.err" | tail -1) # auto: direct
  rn=$(lg --topic xn --producer direct --threads 1 --compression none --batch 500 "${ARGS[@]}" 2>"$WORK/xn.err" | tail -1)
  dump xr 8 >"$WORK/xr.md5"; dump xd 8 >"$WORK/xd.md5"; dump xn 8 >"$WORK/xn.md5"
  nd=$(count xd)
  "$B/clickstage" --brokers "$KAFKA_BROKERS" --redis "$REDIS_URL" --rules "$RULES" --http-listen "" \
    --log-format text --drain --threads 2 --topics xd --group gx --prefix itx >"$WORK/x.log" 2>&1
  rcd=$?
  "$B/cs_checkredis" --redis "127.0.0.1:$REDIS_PORT" --prefix itx --journey model --expect "$WORK/x.json" \
    >"$WORK/x.check" 2>&1
  rcc=$?
  if [ "$nd" = "$N" ] && [[ $rr == *'"producer":"librdkafka"'* ]] && [[ $rd == *'"producer":"direct"'* ]] \
     && [[ $rn == *'"producer":"direct"'* ]] && [[ $rd == *"\"delivered\":$N,"* ]] \
     && cmp -s "$WORK/xr.md5" "$WORK/xd.md5" && cmp -s "$WORK/xr.md5" "$WORK/xn.md5" \
     && [ $rcd = 0 ] && [ $rcc = 0 ]; then
    ok "direct_producer ($N messages, 8 partitions byte-identical to librdkafka's for lz4/2 threads and none/1 thread; drain exact: $(tail -1 "$WORK/x.check"))"
  else
    paste "$WORK/xr.md5" "$WORK/xd.md5" "$WORK/xn.md5" | sed 's/^/    /'
    tail -3 "$WORK/xr.err" "$WORK/xd.err" "$WORK/xn.err" "$WORK/x.log" "$WORK/x.check"
    bad direct_producer "messages $nd/$N, drain rc $rcd, check rc $rcc, or partitions differ"
  fi
fi

echo "loadgen: $pass passed, $fail failed"
[ $fail -eq 0 ]
