#!/usr/bin/env bash
# clickstage-repartition (docs/repartition.md) against a real Kafka broker and redis-server, both
# started here on loopback (scripts/stack.sh) in a temporary directory and stopped at the end.
#
# An unkeyed stream from the load generator (4 partitions, invalid messages among them) is re-keyed
# by customer into a 4-partition topic and read back with kcat (read_committed): every message
# exactly once (count, and the multiset of value + timestamp), each customer on one partition,
# keyed by its id and placed by Java's murmur2, invalid messages unkeyed; the same after a kill -9
# of the repartitioner and a restart, in --drain mode and in a consumer group; headers kept; then
# `clickstage --drain` on the output against the generator's ground truth; a second instance joining
# the group mid-stream (cooperative rebalance) keeps it exactly once too.
#
# Each case prints "PASS name" or "FAIL name: why"; "INFO ..." lines are measurements, not checks.
# The last line is "repartition: N passed, N failed".
#   EVENTS=150000   stream size          KEEP=1      keep the temp dir (logs, dumps)
#   BUILD=dir       binaries' directory  NO_BUILD=1  use the binaries in BUILD as they are
#   COMPARE=0       skip the two comparison drains (unkeyed input as is, --order none)
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
ROOT=$PWD
B=${BUILD:-build}
EVENTS=${EVENTS:-150000}
T_START=$(date +%s)
if [ -z "${NO_BUILD:-}" ]; then
  make -s BUILD="$B" "$B/clickstage" "$B/clickstage-loadgen" "$B/clickstage-repartition" \
    "$B/cs_checkredis" >/dev/null || { echo "repartition: 0 passed, 1 failed"; exit 1; }
fi
for t in kcat python3 redis-cli; do
  command -v "$t" >/dev/null || { echo "FAIL setup: $t not installed"; echo "repartition: 0 passed, 1 failed"; exit 1; }
done
WORK=$(mktemp -d /tmp/cs-rp.XXXXXX)
STACK=$WORK/stack
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
  scripts/stack.sh down "$STACK" >/dev/null 2>&1
  if [ -n "${KEEP:-}" ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
if ! scripts/stack.sh up "$STACK" >"$WORK/stack-up.log" 2>&1; then
  tail -30 "$WORK/stack-up.log"; echo "repartition: 0 passed, 1 failed"; exit 1
fi
# shellcheck disable=SC1091
. "$STACK/env"
RULES=$ROOT/tests/data/model.yaml
LATENESS_MS=30000 # session.lateness of $RULES
pass=0; fail=0
ok() { echo "PASS $1"; pass=$((pass+1)); }
bad() { echo "FAIL $1: $2"; fail=$((fail+1)); }
info() { echo "INFO $*"; }
# PASS/FAIL/INFO lines from the analysis script, counted like ours
tally() {
  local line rest
  while IFS= read -r line; do
    case $line in
      PASS\ *) ok "${line#PASS }" ;;
      FAIL\ *) rest=${line#FAIL }; bad "${rest%%: *}" "${rest#*: }" ;;
      *) echo "$line" ;;
    esac
  done
}
topic() { scripts/stack.sh topic "$1" "$2" "$STACK" >/dev/null 2>&1; }
lg() { "$B/clickstage-loadgen" --brokers "$KAFKA_BROKERS" --rules "$RULES" --progress 0 "$@"; }
rp() { "$B/clickstage-repartition" --brokers "$KAFKA_BROKERS" --rules "$RULES" "$@"; }
# in the background as a direct child (signals reach it, not a subshell): sets RPID
rp_bg() { local log=$1; shift; "$B/clickstage-repartition" --brokers "$KAFKA_BROKERS" --rules "$RULES" "$@" >"$log.out" 2>"$log.err" & RPID=$!; PIDS+=("$RPID"); }
# every message of a topic: "partition offset keylen valuelen timestamp\n" key value "\n"
dump() { timeout 120 kcat -C -b "$KAFKA_BROKERS" -t "$1" -e -q -X "isolation.level=${3:-read_committed}" \
  -f '%p %o %K %S %T\n%k%s\n' >"$2" 2>"$2.err"; }
count() { timeout 120 kcat -C -b "$KAFKA_BROKERS" -t "$1" -e -q -X "isolation.level=${2:-read_committed}" -f '.\n' 2>/dev/null | wc -l; }
# Waits (up to 60 s) until read_committed sees at least $2 messages of topic $1. A transaction's
# commit returns once the coordinator has logged it; the markers that make its messages visible
# are written to the partitions after that, so a dump right after a drain could stop at the last
# stable offset short of the last transaction (CI, 2026-12-07: identity_person_exactly_once saw
# 43629 of 60000). Not a check: the dump and its analysis that follow are.
settle() { for _ in $(seq 1 120); do [ "$(count "$1")" -ge "$2" ] && return 0; sleep 0.5; done; return 0; }
# from the progress lines: messages emitted so far (the kill must land inside a transaction)
consumed_so_far() { grep -o '[0-9]* consumed' "$1" 2>/dev/null | tail -1 | cut -d' ' -f1; }
json_field() { tail -1 "$1" | python3 -c "import json,sys;print(json.loads(sys.stdin.read())['$2'])" 2>/dev/null; }
A() { python3 "$WORK/analyze.py" "$@"; }

cat >"$WORK/analyze.py" <<'PY'
"""Checks on kcat dumps ('%p %o %K %S %T\n%k%s\n') and Redis, for tests/repartition/run.sh."""
import collections, hashlib, json, subprocess, sys

def parse(path):
    out = []
    with open(path, 'rb') as f:
        data = f.read()
    i = 0
    while i < len(data):
        nl = data.index(b'\n', i)
        p, o, kl, vl, ts = (int(x) for x in data[i:nl].split())
        i = nl + 1
        key = data[i:i + kl] if kl >= 0 else None
        i += max(kl, 0)
        val = data[i:i + vl] if vl >= 0 else None
        i += max(vl, 0) + 1  # the '\n' after the value
        out.append((p, o, key, val, ts))
    return out

def murmur2(data):
    """Kafka's Utils.murmur2 (the Java client's default partitioner)."""
    length, m = len(data), 0x5bd1e995
    h = (0x9747b28c ^ length) & 0xffffffff
    for i in range(length // 4):
        k = int.from_bytes(data[4 * i:4 * i + 4], 'little')
        k = (k * m) & 0xffffffff
        k ^= k >> 24
        k = (k * m) & 0xffffffff
        h = ((h * m) & 0xffffffff) ^ k
    extra, idx = length % 4, length & ~3
    if extra == 3:
        h ^= data[idx + 2] << 16
    if extra >= 2:
        h ^= data[idx + 1] << 8
    if extra >= 1:
        h ^= data[idx]
        h = (h * m) & 0xffffffff
    h ^= h >> 13
    h = (h * m) & 0xffffffff
    return h ^ (h >> 15)

CUSTOMER_PATHS = ['userId', 'user_id', 'customer_id', 'anonymousId', 'anonymous_id']  # SPEC §1
# SPEC 3.1, tests/data/identity/model-identity.yaml's identity: block
DEVICE_PATHS, PERSON_PATHS = ['anonymousId', 'anonymous_id'], ['userId', 'user_id']

def first_of(d, paths):
    for path in paths:
        v = d.get(path)
        if isinstance(v, str) and v:
            return v.encode()
        if isinstance(v, tuple) and v[0] == 'int':
            return v[1].encode()
    return None

def ident(val, kind='customer'):
    """The id a message is keyed by (first present, non-empty; integers as written), or None:
    customer = SPEC §1's; device = the device, else the person (--key device); person = the
    person (none when equal to the device), else the device (--key person)."""
    try:
        d = json.loads(val, parse_int=lambda s: ('int', s), parse_float=lambda s: ('float', s))
    except Exception:
        return None
    if not isinstance(d, dict):
        return None
    if kind == 'customer':
        return first_of(d, CUSTOMER_PATHS)
    dev, per = first_of(d, DEVICE_PATHS), first_of(d, PERSON_PATHS)
    if per == dev:
        per = None
    return (dev or per) if kind == 'device' else (per or dev)

def customer(val):
    return ident(val, 'customer')

def sig(msgs):
    return collections.Counter((hashlib.sha1(v or b'').hexdigest(), v is None, ts)
                               for _, _, _, v, ts in msgs)

def check(name, in_dump, out_dump, nparts, expect, lateness_ms, late, kind='customer'):
    inp, out = parse(in_dump), parse(out_dump)
    e = json.load(open(expect))
    n_invalid = sum(e.get('invalid', {}).values())
    n_events = sum(e.get('events', {}).values())
    # exactly once: as many messages, and the same multiset of (value, timestamp)
    if len(out) != len(inp):
        print(f'FAIL {name}_exactly_once: {len(out)} messages out, {len(inp)} in')
    else:
        a, b = sig(inp), sig(out)
        if a != b:
            print(f'FAIL {name}_exactly_once: {sum((a - b).values())} input messages missing, '
                  f'{sum((b - a).values())} output messages not in the input')
        else:
            print(f'PASS {name}_exactly_once ({len(out)} messages, values and timestamps as in)')
    # keyed by the customer id (or --key's id), placed by Java's murmur2; invalid ones unkeyed
    keyed = [m for m in out if m[2] is not None]
    unkeyed = len(out) - len(keyed)
    wrong_key = sum(1 for m in keyed if ident(m[3], kind) != m[2])
    wrong_part = sum(1 for m in keyed if (murmur2(m[2]) & 0x7fffffff) % nparts != m[0])
    parts = collections.defaultdict(set)
    for m in keyed:
        parts[m[2]].add(m[0])
    multi = sum(1 for s in parts.values() if len(s) > 1)
    if wrong_key or wrong_part or multi:
        print(f'FAIL {name}_keyed_by_{kind}: {wrong_key} keys are not the {kind} id, '
              f'{wrong_part} not on murmur2(key) % {nparts}, {multi} {kind}s on several partitions')
    else:
        print(f'PASS {name}_keyed_by_{kind} ({len(parts)} {kind}s, each on the one partition '
              f'Java\'s murmur2 picks)')
    if kind == 'device':
        # every device's events (with or without its person) on one partition
        dparts = collections.defaultdict(set)
        for m in keyed:
            try:
                d = json.loads(m[3])
            except Exception:
                continue
            dev = next((d[p] for p in DEVICE_PATHS if isinstance(d.get(p), str) and d[p]), None)
            if dev is not None:
                dparts[dev].add(m[0])
        logged = sum(1 for m in keyed if ident(m[3], 'person') != ident(m[3], 'device'))
        split = sum(1 for s in dparts.values() if len(s) > 1)
        if split or not logged:
            print(f'FAIL {name}_device_on_one_partition: {split} of {len(dparts)} devices on several '
                  f'partitions ({logged} events carry a person)')
        else:
            print(f'PASS {name}_device_on_one_partition ({len(dparts)} devices; {logged} events '
                  f'carry a person too, keyed by their device all the same)')
    if unkeyed != n_invalid or len(keyed) != n_events:
        print(f'FAIL {name}_invalid_unkeyed: {unkeyed} unkeyed / {len(keyed)} keyed, expected '
              f'{n_invalid} invalid / {n_events} events')
    else:
        print(f'PASS {name}_invalid_unkeyed ({unkeyed} unkeyed = the invalid messages)')
    # How out of order each output partition is, in message time: what the daemon's watermark
    # and a customer's sessions see. The generator's deliberately late events count here too.
    behind_part, behind_cust = 0, 0
    for p in range(nparts):
        hi, last = None, {}
        for m in sorted((m for m in out if m[0] == p), key=lambda m: m[1]):
            ts = m[4]
            if hi is not None and hi - ts > lateness_ms:
                behind_part += 1
            hi = ts if hi is None else max(hi, ts)
            if m[2] is not None:
                if m[2] in last and last[m[2]] - ts > lateness_ms:
                    behind_cust += 1
                last[m[2]] = max(last.get(m[2], ts), ts)
    print(f'INFO {name}: messages more than lateness ({lateness_ms // 1000}s) older than the newest '
          f'before them: {behind_part} in their output partition, {behind_cust} for their '
          f'customer (the stream has {late} deliberately late events)')

def headers(in_json, out_json):
    def load(path):
        r = {}
        for line in open(path):
            d = json.loads(line)
            r[d['payload']] = (d.get('headers'), d['ts'])
        return r
    a, b = load(in_json), load(out_json)
    if a != b:
        print(f'FAIL headers_and_timestamps_kept: in {a} out {b}')
    else:
        print(f'PASS headers_and_timestamps_kept ({len(a)} messages with headers)')

def redis_compare(name, expect, port, prefix, journey, hashes):
    """The given §4 hashes of Redis against the expect file, exactly."""
    e = json.load(open(expect))
    diffs = []
    for h in hashes:
        raw = subprocess.run(['redis-cli', '-p', port, 'HGETALL', f'{prefix}:{{{journey}}}:{h}'],
                             capture_output=True, text=True).stdout.split('\n')
        got = {raw[i]: int(raw[i + 1]) for i in range(0, len(raw) - 1, 2) if raw[i]}
        want = e.get(h, {})
        for f in set(got) | set(want):
            if got.get(f, 0) != want.get(f, 0):
                diffs.append(f'{h} {f}: expected {want.get(f, 0)} got {got.get(f, 0)}')
    if diffs:
        print(f'FAIL {name}: ' + '; '.join(diffs[:8]) + (' ...' if len(diffs) > 8 else ''))
    else:
        print(f'PASS {name} ({", ".join(hashes)} exact)')

def summarize_diff(path):
    """cs_checkredis --json FILE (else its stdout, FILE without .json, whose listing may be
    cut short) -> 'N of M fields differ (hash n, ...); messages lost L, counted twice D'."""
    by = collections.Counter()
    try:
        d = json.load(open(path))
        hashes = d.get('by_hash', {}).items()
    except (OSError, ValueError):
        d, hashes = {}, []
        for line in open(path[:-len('.json')]):
            if line.startswith('{'):
                d = json.loads(line)
            elif line.startswith('  ') and ':' in line:
                hashes.append((line.split()[0], 1))
    for h, n in hashes:
        by['minute:*' if h.startswith('minute:') else h] += n
    detail = ', '.join(f'{h} {n}' for h, n in by.most_common())
    return (f'{d["differences"]} of {d["compared"]} fields differ'
            + (f' ({detail})' if detail else '')
            + f'; events/invalid fields: {d.get("lost", "?")} short, {d.get("double_counted", "?")} over')

def add_invalid(expect, out, reason, n):
    e = json.load(open(expect))
    e.setdefault('invalid', {})[reason] = e['invalid'].get(reason, 0) + n
    json.dump(e, open(out, 'w'))

def expected_total(expect):
    e = json.load(open(expect))
    return sum(e.get('events', {}).values()) + sum(e.get('invalid', {}).values())

if __name__ == '__main__':
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == 'check':
        check(args[0], args[1], args[2], int(args[3]), args[4], int(args[5]), int(args[6]),
              *(args[7:8]))
    elif cmd == 'headers':
        headers(*args)
    elif cmd == 'redis':
        redis_compare(args[0], args[1], args[2], args[3], args[4], args[5].split(','))
    elif cmd == 'diff':
        print(summarize_diff(args[0]))
    elif cmd == 'add-invalid':
        add_invalid(args[0], args[1], args[2], int(args[3]))
    elif cmd == 'total':
        print(expected_total(args[0]))
PY

# ---- the stream: unkeyed, 4 partitions, invalid, late and out-of-order events among them --------
topic rp-in 4
lg --topic rp-in --unkeyed --events "$EVENTS" --customers 8000 --seed 31 --expect "$WORK/expect.json" \
  >"$WORK/gen.out" 2>"$WORK/gen.err"
rc=$?
dump rp-in "$WORK/in.dump"
LATE=$(json_field "$WORK/gen.out" late); LATE=${LATE:-0}
info "stream: $(tail -1 "$WORK/gen.out")"
in_keys=$(timeout 60 kcat -C -b "$KAFKA_BROKERS" -t rp-in -e -q -f '%p %K\n' 2>/dev/null | sort | uniq -c | awk '{print $2 ":" $3}' | tr '\n' ' ')
# unkeyed: every key null (-1), all four partitions used
if [ $rc -eq 0 ] && [ "$(count rp-in)" = "$EVENTS" ] && [[ $in_keys =~ ^0:-1\ 1:-1\ 2:-1\ 3:-1\ $ ]]; then
  ok "loadgen_unkeyed ($EVENTS messages, none keyed, on all 4 partitions)"
else
  bad loadgen_unkeyed "rc=$rc, partition:keylen = $in_keys"; tail -3 "$WORK/gen.err"
fi

# ---- 1. --drain into a new topic (--create), then everything checked with kcat -----------------
if rp --input rp-in --output rp-out --create --partitions 4 --group rp-g1 --drain --progress 0 \
     >"$WORK/rp1.out" 2>"$WORK/rp1.err"; then
  ok "repartition_drain ($(tail -1 "$WORK/rp1.out"))"
else
  bad repartition_drain "exit $?"; tail -5 "$WORK/rp1.err"
fi
settle rp-out "$EVENTS"
dump rp-out "$WORK/out.dump"
tally < <(A check drain "$WORK/in.dump" "$WORK/out.dump" 4 "$WORK/expect.json" "$LATENESS_MS" "$LATE")
# a second drain of the same group finds nothing new
if rp --input rp-in --output rp-out --group rp-g1 --drain --progress 0 >"$WORK/rp1b.out" 2>"$WORK/rp1b.err" &&
   [ "$(json_field "$WORK/rp1b.out" consumed)" = 0 ] && [ "$(count rp-out)" = "$EVENTS" ]; then
  ok drain_again_reads_nothing
else
  bad drain_again_reads_nothing "$(tail -1 "$WORK/rp1b.out")"
fi

# ---- 2. kill -9 in the middle of a --drain, restart: exactly once (read_committed) --------------
topic rp-k9 4
rp_bg "$WORK/k9a" --input rp-in --output rp-k9 --group rp-g2 --drain --rate 20000 \
  --commit-interval 500ms --progress 100ms
for _ in $(seq 1 300); do
  n=$(consumed_so_far "$WORK/k9a.err"); [ "${n:-0}" -ge $((EVENTS / 3)) ] && break
  kill -0 "$RPID" 2>/dev/null || break; sleep 0.1
done
kill -9 "$RPID" 2>/dev/null; wait "$RPID" 2>/dev/null
at=$(count rp-k9)
if rp --input rp-in --output rp-k9 --group rp-g2 --drain --progress 0 >"$WORK/k9b.out" 2>"$WORK/k9b.err"; then
  settle rp-k9 "$EVENTS"
  dump rp-k9 "$WORK/k9.dump"
  tally < <(A check kill9_drain "$WORK/in.dump" "$WORK/k9.dump" 4 "$WORK/expect.json" "$LATENESS_MS" "$LATE" | grep -v '^INFO')
  aborted=$(( $(count rp-k9 read_uncommitted) - EVENTS ))
  info "kill9_drain: killed with $at messages committed; the restart read $(json_field "$WORK/k9b.out" consumed)," \
    "and aborted the $aborted messages the killed transaction had written"
else
  bad kill9_drain "restart exited $?"; tail -5 "$WORK/k9b.err"
fi

# ---- 3. consumer group: kill -9, restart (same instance), SIGTERM once caught up ----------------
topic rp-grp 4
GROUP_PROPS=session.timeout.ms=6000,heartbeat.interval.ms=1000 # a killed member is gone in 6 s
GRP=(--input rp-in --output rp-grp --group rp-g3 --instance t1 --progress 100ms
     --kafka-consumer "$GROUP_PROPS")
rp_bg "$WORK/g1" "${GRP[@]}" --rate 20000 --commit-interval 500ms
for _ in $(seq 1 300); do
  n=$(consumed_so_far "$WORK/g1.err"); [ "${n:-0}" -ge $((EVENTS / 3)) ] && break
  kill -0 "$RPID" 2>/dev/null || break; sleep 0.1
done
kill -9 "$RPID" 2>/dev/null; wait "$RPID" 2>/dev/null
at=$(count rp-grp)
t0=$(date +%s%N)
rp_bg "$WORK/g2" "${GRP[@]}"
for _ in $(seq 1 180); do [ "$(count rp-grp)" -ge "$EVENTS" ] && break; sleep 0.5; done
caught_up_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
kill -TERM "$RPID"; t1=$(date +%s%N); wait "$RPID"; rc=$?; stop_ms=$(( ($(date +%s%N) - t1) / 1000000 ))
if [ $rc -eq 0 ] && [ -n "$(json_field "$WORK/g2.out" produced)" ] && [ $stop_ms -lt 10000 ]; then
  ok "group_sigterm (exit 0 in ${stop_ms} ms, $(tail -1 "$WORK/g2.out"))"
else
  bad group_sigterm "exit $rc after ${stop_ms} ms"; tail -5 "$WORK/g2.err"
fi
dump rp-grp "$WORK/grp.dump"
tally < <(A check kill9_group "$WORK/in.dump" "$WORK/grp.dump" 4 "$WORK/expect.json" "$LATENESS_MS" "$LATE" | grep -v '^INFO')
info "kill9_group: killed with $at messages committed; the restarted member caught up in ${caught_up_ms} ms" \
  "(rejoin after session.timeout.ms 6 s), aborted $(( $(count rp-grp read_uncommitted) - EVENTS )) messages"

# ---- 4. scale out: a second instance joins the group mid-stream (cooperative rebalance) ----------
topic rp-sc 4
SC=(--input rp-in --output rp-sc --group rp-g6 --progress 100ms --rate 20000 --kafka-consumer "$GROUP_PROPS")
rp_bg "$WORK/sca" "${SC[@]}" --instance a; PA=$RPID
for _ in $(seq 1 300); do
  n=$(consumed_so_far "$WORK/sca.err"); [ "${n:-0}" -ge $((EVENTS / 4)) ] && break
  kill -0 "$PA" 2>/dev/null || break; sleep 0.1
done
rp_bg "$WORK/scb" "${SC[@]}" --instance b; PB=$RPID
for _ in $(seq 1 180); do [ "$(count rp-sc)" -ge "$EVENTS" ] && break; sleep 0.5; done
kill -TERM "$PA" "$PB"; wait "$PA"; rca=$?; wait "$PB"; rcb=$?
pa=$(json_field "$WORK/sca.out" produced); pb=$(json_field "$WORK/scb.out" produced)
if [ $rca -eq 0 ] && [ $rcb -eq 0 ] && grep -q "revoked" "$WORK/sca.err" && [ "${pa:-0}" -gt 0 ] &&
   [ "${pb:-0}" -gt 0 ] && [ $((pa + pb)) -eq "$EVENTS" ]; then
  ok "scale_out_rebalance (instance a wrote $pa, b $pb; both exit 0)"
else
  bad scale_out_rebalance "exit $rca/$rcb, produced $pa + $pb"; tail -3 "$WORK/sca.err" "$WORK/scb.err"
fi
dump rp-sc "$WORK/sc.dump"
# (its INFO line: two instances at different points of a backfill interleave in the output)
tally < <(A check scale_out "$WORK/in.dump" "$WORK/sc.dump" 4 "$WORK/expect.json" "$LATENESS_MS" "$LATE")

# ---- 5. headers and timestamps go through unchanged ---------------------------------------------
topic rp-hin 2
for i in 1 2 3; do
  echo "{\"event\":\"page\",\"userId\":\"h$i\",\"timestamp\":\"2026-11-01T10:00:0${i}Z\"}" |
    kcat -P -b "$KAFKA_BROKERS" -t rp-hin -p $((i % 2)) -H "trace=t$i" -H "source=test"
done
echo "not json h4" | kcat -P -b "$KAFKA_BROKERS" -t rp-hin -p 0 -H "trace=t4"
if rp --input rp-hin --output rp-hout --create --partitions 3 --group rp-g4 --drain --progress 0 \
     >"$WORK/h.out" 2>"$WORK/h.err"; then
  timeout 60 kcat -C -b "$KAFKA_BROKERS" -t rp-hin -e -q -J >"$WORK/hin.json" 2>/dev/null
  timeout 60 kcat -C -b "$KAFKA_BROKERS" -t rp-hout -e -q -J >"$WORK/hout.json" 2>/dev/null
  tally < <(A headers "$WORK/hin.json" "$WORK/hout.json")
else
  bad headers_and_timestamps_kept "repartition exited $?"; tail -5 "$WORK/h.err"
fi

# ---- 6. clickstage --drain on the output against the generator's ground truth -------------------
# On a transactional topic the last offset of a partition is a commit marker, which is never
# delivered: `clickstage --drain` must end the partition at its end-of-partition event (it once
# waited forever for the marker; regression guard: the timeout in daemon_drain).
daemon_drain() { # topic prefix
  timeout 300 "$B/clickstage" --brokers "$KAFKA_BROKERS" --redis "$REDIS_URL" --rules "$RULES" \
    --http-listen "" --log-format text --drain --threads 2 --topics "$1" --group "d-$2" \
    --prefix "$2" >"$WORK/$2.log" 2>&1
}
sum_hash() { redis-cli -p "$REDIS_PORT" HVALS "$1" | awk '{s+=$1} END {print s+0}'; }
counted() { echo $(( $(sum_hash "$1:{model}:events") + $(sum_hash "$1:{model}:invalid") )); }
full_compare() { "$B/cs_checkredis" --redis "127.0.0.1:$REDIS_PORT" --prefix "$1" --journey model \
  --expect "$2" --json "$WORK/$1.diff.json" >"$WORK/$1.diff" 2>&1; }
# `clickstage --drain` of TOPIC into PREFIX against EXPECT: the totals (LABEL_daemon_totals), the
# hashes in KEYS exactly (the check EXACT), and every §4 hash (LABEL_daemon_full_compare: a pass,
# or information only, as some hashes depend on the partition layout: docs/repartition.md)
drain_and_compare() { # LABEL TOPIC PREFIX EXPECT EXACT KEYS
  local l=$1 want got
  if daemon_drain "$2" "$3"; then
    want=$(A total "$4"); got=$(counted "$3")
    if [ "$got" = "$want" ]; then ok "${l}daemon_totals (events + invalid = $got)"
    else bad "${l}daemon_totals" "counted $got, expected $want"; fi
    tally < <(A redis "$5" "$4" "$REDIS_PORT" "$3" model "$6")
    if full_compare "$3" "$4"; then ok "${l}daemon_full_compare (every §4 hash exact)"
    else info "${l}daemon_full_compare: $(A diff "$WORK/$3.diff.json") — see docs/repartition.md, Limits"; fi
  else
    bad "${l}daemon_totals" "clickstage --drain exited $?"; tail -10 "$WORK/$3.log"
  fi
}

# what does not depend on the order of a customer's events within lateness. Not `customers`:
# at the end of a drain a customer whose last event is customer_ttl before the final
# watermark is forgotten, and that watermark (min over partitions of the newest event time)
# depends on how customers are laid out over partitions: the ground truth's (the generator's
# keying) is not the repartitioner's (murmur2), so one customer near that boundary can be
# forgotten on one side only (seed 31 of the issue-15 generator has one)
drain_and_compare "" rp-out dra "$WORK/expect.json" daemon_sessions_exact \
  events,invalid,sessions,ended_by,ended,active

if [ "${COMPARE:-1}" != 0 ]; then
  # the same stream without the repartitioner, and re-keyed without the timestamp merge
  if daemon_drain rp-in drb; then
    full_compare drb "$WORK/expect.json"
    info "compare_no_repartition (clickstage --drain on the unkeyed input): $(A diff "$WORK/drb.diff.json")"
  fi
  rp --input rp-in --output rp-none --create --partitions 4 --group rp-g5 --drain --order none \
    --progress 0 >"$WORK/rp5.out" 2>"$WORK/rp5.err"
  settle rp-none "$EVENTS"
  dump rp-none "$WORK/none.dump"
  A check order_none "$WORK/in.dump" "$WORK/none.dump" 4 "$WORK/expect.json" "$LATENESS_MS" "$LATE" | grep '^INFO'
  if daemon_drain rp-none drc; then
    full_compare drc "$WORK/expect.json"
    info "compare_order_none (re-keyed with --order none): $(A diff "$WORK/drc.diff.json")"
  fi
fi

# ---- 7. SPEC 3.1 identity: --key device on an unkeyed anonymous-then-known stream ----------------
# Producers that key by userId-else-anonymousId (or not at all) split a device's visit over
# partitions; re-keyed by the device, every device's events (before and after its login) are on
# one partition, and `clickstage --drain` with identity: over the output gives the 3.1 ground
# truth (merged and conflicts exact; customers as for section 6: layout-dependent at the end)
IDRULES=$ROOT/tests/data/identity/model-identity.yaml
ID_EVENTS=${ID_EVENTS:-60000}
topic rp-id-in 4
"$B/clickstage-loadgen" --brokers "$KAFKA_BROKERS" --rules "$IDRULES" --progress 0 --topic rp-id-in \
  --unkeyed --login 0.5 --events "$ID_EVENTS" --customers 4000 --seed 21 --expect "$WORK/id-expect.json" \
  >"$WORK/id-gen.out" 2>"$WORK/id-gen.err" || { bad identity_loadgen "exit $?"; tail -3 "$WORK/id-gen.err"; }
dump rp-id-in "$WORK/id-in.dump"
ID_LATE=$(json_field "$WORK/id-gen.out" late); ID_LATE=${ID_LATE:-0}
if rp --rules "$IDRULES" --key device --input rp-id-in --output rp-id-dev --create --partitions 4 \
     --group rp-gid --drain --progress 0 >"$WORK/rpid.out" 2>"$WORK/rpid.err" &&
   grep -q 'keyed by device' "$WORK/rpid.err"; then
  ok "identity_key_device_drain ($(tail -1 "$WORK/rpid.out"))"
else
  bad identity_key_device_drain "exit or log: $(tail -3 "$WORK/rpid.err")"
fi
settle rp-id-dev "$ID_EVENTS"
dump rp-id-dev "$WORK/id-dev.dump"
tally < <(A check identity_device "$WORK/id-in.dump" "$WORK/id-dev.dump" 4 "$WORK/id-expect.json" \
  "$LATENESS_MS" "$ID_LATE" device | grep -v '^INFO')
RULES_V1=$RULES; RULES=$IDRULES
# merged and conflicts are per device: exact whatever the layout. Not ended_by (nor customers,
# as in section 6): a session whose deadline the final watermark (the minimum over partitions
# of their newest event time) only just passes ends by gap on one layout and by drain on the
# other, and the generator lays devices out by XXH3, the repartitioner by murmur2
drain_and_compare identity_ rp-id-dev dri "$WORK/id-expect.json" identity_daemon_exact \
  events,invalid,sessions,ended,active,identity
RULES=$RULES_V1
# --key person: the person once known, else the device (a person's devices together)
if rp --rules "$IDRULES" --key person --input rp-id-in --output rp-id-per --create --partitions 4 \
     --group rp-gidp --drain --progress 0 >"$WORK/rpip.out" 2>"$WORK/rpip.err"; then
  settle rp-id-per "$ID_EVENTS"
  dump rp-id-per "$WORK/id-per.dump"
  tally < <(A check identity_person "$WORK/id-in.dump" "$WORK/id-per.dump" 4 "$WORK/id-expect.json" \
    "$LATENESS_MS" "$ID_LATE" person | grep -v '^INFO')
else
  bad identity_person_keyed_by_person "exit $?: $(tail -3 "$WORK/rpip.err")"
fi
# --key device with a rule file without identity: refused before it connects (exit 1)
rp --key device --input rp-id-in --output rp-id-never --drain --progress 0 >/dev/null 2>"$WORK/rpin.err"
rc=$?
if [ $rc -eq 1 ] && grep -q -- '--key device needs identity: in the rule file' "$WORK/rpin.err"; then
  ok identity_key_device_needs_identity_rules
else bad identity_key_device_needs_identity_rules "exit $rc: $(head -2 "$WORK/rpin.err")"; fi

info "duration $(( $(date +%s) - T_START ))s"
echo "repartition: $pass passed, $fail failed"
[ $fail -eq 0 ]
