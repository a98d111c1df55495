#!/usr/bin/env bash
# Redis Cluster and Sentinel (issue 14): clickstage against a real 3-master + 3-replica Redis
# Cluster (redis-server --cluster-enabled yes, made with redis-cli --cluster create) and a real
# Sentinel set-up (one master, one replica, three sentinels), with a real Kafka broker
# (scripts/stack.sh), all on loopback, started here in a temporary directory and stopped at the
# end. Counts are compared with the load generator's ground truth (--expect) by cs_checkredis,
# as in the fault suite (tests/faults/run.sh, docs/faults.md): faults while a background
# producer sends the stream, graceful stop, one `clickstage --drain`, every SPEC §4 hash.
#
#   cluster_drain     --drain through a redis:// URL of a node that does not hold the journey's
#                     slot (cluster detected, MOVED followed): exact
#   cluster_failover  live: the replica of the slot's master is stopped (SIGSTOP) and its link
#                     cut (CLIENT KILL TYPE replica on the master) for 1 s, so that it misses
#                     acknowledged flushes; the master is killed (kill -9), the replica
#                     continued and promoted by the cluster; clickstage must notice that Redis is
#                     behind what it wrote (fenced: "older offsets"), re-execute and restore: exact
#   cluster_migrate   live: the slot of {model} moved to another master key by key
#                     (SETSLOT IMPORTING/MIGRATING, MIGRATE in small batches with pauses: ASK and
#                     TRYAGAIN while it goes, SETSLOT NODE at the end): exact
#   tls_sidecar       a TLS-only redis-server (no plaintext port) behind an stunnel client
#                     (scripts/stack.sh REDIS_TLS=1): plaintext to it is refused, a --drain
#                     through stunnel is exact, the password shows in no output
#   sentinel_failover live through redis+sentinel://s1,s2,s3/cs with --redis-wait-replicas 1:
#                     the replica stopped and cut off 1 s (WAIT comes back short, logged), the
#                     master killed (kill -9), the sentinels promote the replica: exact
#
#   tests/redis-ha/run.sh                       every case (REDIS_HA_PROFILE=full: more events)
#   REDIS_HA_PROFILE=ci tests/redis-ha/run.sh   the bounded run CI does (~2-3 min on 2 vCPUs)
#   CASES="cluster_drain" tests/redis-ha/run.sh only those;  KEEP=1 keeps the work dir
# Output: PASS/FAIL per case, "redis-ha: N passed, N failed", and as the last line one JSON
# object (per case: events, lost, double_counted, mismatched, recovery_ms, fenced_behind).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
ROOT=$PWD
B=${BUILD:-build}
PROFILE=${REDIS_HA_PROFILE:-full}
ALL_CASES="cluster_drain cluster_failover cluster_migrate sentinel_failover tls_sidecar"
case $PROFILE in
  full) EVENTS=120000; RATE=8000 ;;
  ci) EVENTS=50000; RATE=6000 ;;
  *) echo "REDIS_HA_PROFILE must be full or ci" >&2; echo "redis-ha: 0 passed, 1 failed"; exit 2 ;;
esac
for c in ${CASES:-}; do
  [[ " $ALL_CASES " == *" $c "* ]] || { echo "unknown case '$c' ($ALL_CASES)" >&2; echo "redis-ha: 0 passed, 1 failed"; exit 2; }
done
RULES=$ROOT/tests/data/model.yaml
RECOVERY_TIMEOUT=${RECOVERY_TIMEOUT:-60}
T_SUITE=$(date +%s)

if [ -z "${REDIS_HA_NO_BUILD:-}" ]; then
  make -s BUILD="$B" "$B/clickstage" "$B/clickstage-loadgen" "$B/cs_checkredis" >/dev/null ||
    { echo "redis-ha: 0 passed, 1 failed"; exit 1; }
fi
WORK=$(mktemp -d /tmp/cs-redis-ha.XXXXXX)
STACK=$WORK/stack
PIDS=()          # every process started here (redis nodes, sentinels, daemons, producers)

kill_tree() { local c; for c in $(ps -o pid= --ppid "$2" 2>/dev/null); do kill_tree "$1" "$c"; done; kill "-$1" "$2" 2>/dev/null; }
cleanup() {
  local p
  trap - EXIT INT TERM HUP
  exec 2>/dev/null   # no "Killed" notices for what we kill here
  for p in "${PIDS[@]}"; do kill -CONT "$p" 2>/dev/null; kill_tree KILL "$p"; done
  { wait; } 2>/dev/null
  scripts/stack.sh down "$STACK" >/dev/null 2>&1
  if [ -n "${KEEP:-}" ]; then echo "redis-ha: work dir kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

say() { echo "redis-ha: $*" >&2; }
now_ms() { local t=${EPOCHREALTIME//[.,]/}; echo $((t / 1000)); }
want() { [[ " ${CASES:-$ALL_CASES} " == *" $1 "* ]]; }
alive() { local st; st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1) || return 1; [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]; }
port_free() { [ -z "$(ss -Htln "( sport = :$1 )" 2>/dev/null)" ]; }
# a free port below 55000 whose +10000 (a cluster node's bus port) is free too
USED=" "
pick_port() { # sets PORT (not in a subshell: USED must remember it)
  while :; do
    PORT=$((20000 + RANDOM % 2700))   # below the ephemeral range, and so is PORT + 10000
    [[ "$USED" == *" $PORT "* ]] && continue
    port_free "$PORT" && port_free $((PORT + 10000)) && break
  done
  USED+="$PORT "
}

say "profile $PROFILE, work dir $WORK"
RTLS=0; want tls_sidecar && RTLS=1
if ! REDIS_TLS=$RTLS scripts/stack.sh up "$STACK" >"$WORK/stack-up.log" 2>&1; then
  tail -30 "$WORK/stack-up.log" >&2; echo "redis-ha: 0 passed, 1 failed"; exit 1
fi
# shellcheck disable=SC1091
. "$STACK/env"

# ---- Redis processes -------------------------------------------------------------------------

declare -A RPID
redis_start() { # PORT DIR ARGS...: a redis-server (or sentinel) in the foreground of a subshell
  local port=$1 dir=$2; shift 2
  mkdir -p "$dir"
  (cd "$dir" && exec redis-server "$@" --port "$port" --bind 127.0.0.1 --dir "$dir" \
     --logfile "$dir/redis.log" --daemonize no </dev/null >/dev/null 2>&1) &
  RPID[$port]=$!; PIDS+=($!)
}
rcli() { local p=$1; shift; timeout 5 redis-cli -p "$p" "$@" 2>/dev/null; }
wait_ping() { # PORT
  for _ in $(seq 1 100); do [ "$(rcli "$1" PING)" = PONG ] && return 0; sleep 0.1; done
  return 1
}

# ---- cluster ----------------------------------------------------------------------------------
CPORTS=()
cluster_up() {
  local p d nodes=()
  for _ in 1 2 3 4 5 6; do
    pick_port; p=$PORT; CPORTS+=("$p")
    d=$WORK/cluster/$p
    redis_start "$p" "$d" --cluster-enabled yes --cluster-config-file nodes.conf \
      --cluster-node-timeout 2000 --cluster-replica-validity-factor 0 --save "" --appendonly no
    nodes+=("127.0.0.1:$p")
  done
  for p in "${CPORTS[@]}"; do wait_ping "$p" || { say "cluster node $p did not start"; return 1; }; done
  timeout 60 redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes \
    >"$WORK/cluster-create.log" 2>&1 || { tail -5 "$WORK/cluster-create.log" >&2; return 1; }
  cluster_wait_ok
}
cluster_wait_ok() { # every live node says cluster_state:ok
  local p ok
  for _ in $(seq 1 300); do
    ok=1
    for p in "${CPORTS[@]}"; do
      alive "${RPID[$p]}" || continue
      rcli "$p" CLUSTER INFO | grep -q 'cluster_state:ok' || ok=0
    done
    [ "$ok" = 1 ] && return 0
    sleep 0.1
  done
  return 1
}
live_cport() { local p; for p in "${CPORTS[@]}"; do alive "${RPID[$p]}" && { echo "$p"; return; }; done; }
# SLOT -> "MASTER_PORT MASTER_ID" from CLUSTER NODES of a live node
slot_master() {
  rcli "$(live_cport)" CLUSTER NODES | awk -v s="$1" '
    $3 ~ /master/ && $3 !~ /fail/ {
      for (i = 9; i <= NF; i++) { n = split($i, r, "-"); a = r[1]; b = (n > 1 ? r[2] : r[1])
        if ($i ~ /^[0-9]/ && s + 0 >= a + 0 && s + 0 <= b + 0) { split($2, hp, "[:@]"); print hp[2], $1; exit } } }'
}
replica_of() { # MASTER_ID -> port of its (first) replica
  rcli "$(live_cport)" CLUSTER NODES | awk -v m="$1" '$4 == m && $3 !~ /fail/ { split($2, hp, "[:@]"); print hp[2]; exit }'
}
other_master() { # PORT -> "PORT ID" of another live master
  rcli "$(live_cport)" CLUSTER NODES | awk -v p="$1" '
    $3 ~ /master/ && $3 !~ /fail/ { split($2, hp, "[:@]"); if (hp[2] != p && $9 != "") { print hp[2], $1; exit } }'
}

# ---- sentinel ---------------------------------------------------------------------------------
SM=''; SR=''; SPORTS=()
sentinel_up() {
  pick_port; SM=$PORT; pick_port; SR=$PORT
  redis_start "$SM" "$WORK/sentinel/m" --save "" --appendonly no
  redis_start "$SR" "$WORK/sentinel/r" --save "" --appendonly no --replicaof 127.0.0.1 "$SM"
  wait_ping "$SM" && wait_ping "$SR" || return 1
  local p d
  for _ in 1 2 3; do
    pick_port; p=$PORT; SPORTS+=("$p"); d=$WORK/sentinel/s$p; mkdir -p "$d"
    cat >"$d/sentinel.conf" <<EOF
sentinel monitor cs 127.0.0.1 $SM 2
sentinel down-after-milliseconds cs 1000
sentinel failover-timeout cs 5000
sentinel parallel-syncs cs 1
EOF
    redis_start "$p" "$d" "$d/sentinel.conf" --sentinel
  done
  for p in "${SPORTS[@]}"; do wait_ping "$p" || return 1; done
  # the sentinels know the replica and each other
  for _ in $(seq 1 100); do
    [ "$(rcli "${SPORTS[0]}" SENTINEL replicas cs | grep -c "$SR")" -ge 1 ] &&
      [ "$(rcli "${SPORTS[0]}" SENTINEL sentinels cs | grep -c '^ip$')" -ge 2 ] && return 0
    sleep 0.1
  done
  return 1
}

# ---- per case ---------------------------------------------------------------------------------
PASSED=0; FAILED=0; JSON=""
case_begin() {
  CASE=$1; CDIR=$WORK/$1; mkdir -p "$CDIR"
  PREFIX=h_$1; TOPIC=h-$1; GROUP=g-$1
  : >"$CDIR/reasons"; REC=""; BEHIND=0; LOST=-1; DOUBLE=-1; MISMATCH=-1
  T_CASE=$(now_ms)
  say "== $CASE"
  scripts/stack.sh topic "$TOPIC" 4 "$STACK" >/dev/null 2>&1 || fail "could not create topic $TOPIC"
}
fail() { echo "$*" >>"$CDIR/reasons"; say "   $CASE: $*"; }
lg() { "$B/clickstage-loadgen" --brokers "$KAFKA_BROKERS" --rules "$RULES" --progress 0 "$@"; }
gen_expect() { # SEED
  LGARGS=(--topic "$TOPIC" --events "$EVENTS" --customers 8000 --seed "$1" --partitions 4)
  lg "${LGARGS[@]}" --expect "$CDIR/expect.json" --expect-only >"$CDIR/expect.log" 2>&1 ||
    { fail "loadgen --expect-only failed"; return 1; }
}
producer_start() { # the stream at RATE in the background; CDIR/produced when all is acked
  rm -f "$CDIR/produced"
  ( lg "${LGARGS[@]}" --rate "$RATE" && touch "$CDIR/produced" ) >>"$CDIR/producer.log" 2>&1 &
  PRODPID=$!; PIDS+=("$PRODPID")
}
producer_wait() {
  local dl=$(($(now_ms) + 300000))
  while alive "$PRODPID" && [ "$(now_ms)" -lt "$dl" ]; do sleep 0.2; done
  wait "$PRODPID" 2>/dev/null
  [ -e "$CDIR/produced" ] || fail "the producer failed: $(tail -1 "$CDIR/producer.log")"
}
dflags() { # URL
  # shellcheck disable=SC2054
  DFLAGS=(--brokers "$KAFKA_BROKERS" --redis "$1" --rules "$RULES" --http-listen ""
    --log-format text --flush-interval 100ms --threads 2 --topics "$TOPIC" --group "$GROUP"
    --prefix "$PREFIX" --snapshot-interval 2s
    --kafka-props session.timeout.ms=6000,heartbeat.interval.ms=1000)
}
daemon_start() { # URL [FLAGS...]
  local url=$1; shift
  dflags "$url"
  "$B/clickstage" "${DFLAGS[@]}" --instance-id "$CASE-live" "$@" >>"$CDIR/live.log" 2>&1 &
  DPID=$!; PIDS+=("$DPID")
}
daemon_stop() {
  if ! alive "$DPID"; then wait "$DPID" 2>/dev/null; fail "the daemon had exited by itself (rc $?)"; return 1; fi
  kill -TERM "$DPID"
  local dl=$(($(now_ms) + 60000))
  while alive "$DPID" && [ "$(now_ms)" -lt "$dl" ]; do sleep 0.05; done
  if alive "$DPID"; then kill -KILL "$DPID"; fail "the daemon did not stop within 60 s of SIGTERM"; fi
  wait "$DPID" 2>/dev/null; local rc=$?
  [ "$rc" -eq 0 ] || fail "the daemon exited $rc on SIGTERM: $(grep -E ' (error|warn) ' "$CDIR/live.log" | tail -1 | cut -c1-200)"
}
final_drain() { # URL
  dflags "$1"
  timeout 300 "$B/clickstage" "${DFLAGS[@]}" --drain --instance-id "$CASE-drain" >"$CDIR/drain.log" 2>&1
  local rc=$?
  [ "$rc" -eq 0 ] || fail "the final --drain exited $rc: $(tail -1 "$CDIR/drain.log" | cut -c1-200)"
}
check_counts() { # URL
  "$B/cs_checkredis" --redis "$1" --prefix "$PREFIX" --journey model --expect "$CDIR/expect.json" \
    --json "$CDIR/check.json" >"$CDIR/check.out" 2>&1
  local rc=$? last
  last=$(grep '^{' "$CDIR/check.out" | tail -1)
  LOST=$(sed -n 's/.*"lost": *\([0-9]*\).*/\1/p' <<<"$last")
  DOUBLE=$(sed -n 's/.*"double_counted": *\([0-9]*\).*/\1/p' <<<"$last")
  MISMATCH=$(sed -n 's/.*"differences": *\([0-9]*\).*/\1/p' <<<"$last")
  if [ "$rc" -gt 1 ] || [ -z "$MISMATCH" ]; then fail "cs_checkredis failed: $(tail -1 "$CDIR/check.out")"; return; fi
  [ "$MISMATCH" -eq 0 ] || fail "$MISMATCH field(s) differ from the ground truth (lost $LOST, double-counted $DOUBLE)"
}
# sum of the offsets hash, read through the layer's own tool would need a URL: redis-cli -c
# follows MOVED by itself
offsets_sum() { # PORT (any node; -c follows redirections)
  timeout 5 redis-cli -c -p "$1" HGETALL "$PREFIX:{model}:offsets" 2>/dev/null | awk 'NR % 2 == 0 { s += $1 } END { print s + 0 }'
}
wait_progress() { # PORT-FN T0: until the offsets sum grows past its value now; sets REC
  local fn=$1 t0=$2 base cur
  base=$(offsets_sum "$($fn)")
  REC=""
  while [ "$(now_ms)" -lt $((t0 + RECOVERY_TIMEOUT * 1000)) ]; do
    cur=$(offsets_sum "$($fn)")
    if [ "${cur:-0}" -gt "${base:-0}" ] || { [ -e "$CDIR/produced" ] && [ "${cur:-0}" -ge "$EVENTS" ]; }; then
      REC=$(($(now_ms) - t0)); say "   recovered in $REC ms"; return 0
    fi
    sleep 0.1
  done
  fail "no progress within ${RECOVERY_TIMEOUT} s of the fault: $(grep -E ' (error|warn) ' "$CDIR/live.log" | tail -1 | cut -c1-200)"
  return 1
}
wait_first_offsets() { # PORT-FN
  for _ in $(seq 1 600); do [ "$(offsets_sum "$($1)")" -gt 0 ] && return 0; sleep 0.1; done
  fail "no offsets in Redis within 60 s of the start"; return 1
}
case_end() {
  local status=PASS reasons
  if [ -s "$CDIR/reasons" ]; then status=FAIL; FAILED=$((FAILED + 1)); reasons=$(paste -sd';' "$CDIR/reasons")
    echo "FAIL $CASE: $reasons"
  else PASSED=$((PASSED + 1)); echo "PASS $CASE"; fi
  JSON+="${JSON:+,}\"$CASE\":{\"pass\":$([ $status = PASS ] && echo true || echo false),\"events\":$EVENTS,\"lost\":${LOST:--1},\"double_counted\":${DOUBLE:--1},\"mismatched\":${MISMATCH:--1},\"recovery_ms\":${REC:-null},\"fenced_behind\":$BEHIND,\"seconds\":$((($(now_ms) - T_CASE) / 1000))}"
}

CLUSTER_URL() { local p u="redis+cluster://"; for p in "${CPORTS[@]}"; do alive "${RPID[$p]}" && u+="127.0.0.1:$p,"; done; echo "${u%,}"; }
SENTINEL_URL() { local p u="redis+sentinel://"; for p in "${SPORTS[@]}"; do u+="127.0.0.1:$p,"; done; echo "${u%,}/cs/0"; }

# ---- cases -------------------------------------------------------------------------------------
SLOT=
case_cluster_drain() {
  gen_expect 201 || return
  lg "${LGARGS[@]}" >"$CDIR/producer.log" 2>&1 || { fail "producer failed"; return; }
  # a node that is not the master of {model}'s slot: the layer detects the cluster and moves
  local m p seed
  read -r m _ <<<"$(slot_master "$SLOT")"
  for p in "${CPORTS[@]}"; do [ "$p" != "$m" ] && seed=$p && break; done
  final_drain "redis://127.0.0.1:$seed/0"
  grep -q 'redis unreachable' "$CDIR/drain.log" && fail "the drain logged Redis as unreachable"
  check_counts "redis://127.0.0.1:$seed"
  # clickstage-top through the same node: finds the journey (SCAN of every master), reads it
  local want
  want=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["sessions"]["started"])' "$CDIR/expect.json")
  if timeout 20 "$B/clickstage-top" --redis "redis://127.0.0.1:$seed" --prefix "$PREFIX" --once \
       >"$CDIR/top.out" 2>&1; then
    grep -q "journey model" "$CDIR/top.out" && grep -qw "$want" "$CDIR/top.out" ||
      fail "clickstage-top --once: no 'journey model' or sessions started $want in its frame"
  else
    fail "clickstage-top --once exited $?: $(tail -1 "$CDIR/top.out")"
  fi
}

case_cluster_failover() {
  local m mid r t0 n
  gen_expect 202 || return
  producer_start
  pick_port; HTTP_PORT=$PORT
  daemon_start "$(CLUSTER_URL)" --http-listen "127.0.0.1:$HTTP_PORT"
  wait_first_offsets live_cport || return
  sleep 2
  read -r m mid <<<"$(slot_master "$SLOT")"
  r=$(replica_of "$mid")
  [ -n "$m" ] && [ -n "$r" ] || { fail "no master/replica found for slot $SLOT"; return; }
  say "   slot $SLOT: master $m, replica $r; replica stopped 1 s, then the master killed"
  n=$(wc -l <"$CDIR/live.log")
  # the replica frozen and its link cut from the master's side: what the master acknowledges
  # from now on never reaches it (a SIGSTOP alone would not do: the kernel buffers the stream)
  kill -STOP "${RPID[$r]}"; rcli "$m" CLIENT KILL TYPE replica >/dev/null; sleep 1
  kill -KILL "${RPID[$m]}"; wait "${RPID[$m]}" 2>/dev/null; t0=$(now_ms)
  kill -CONT "${RPID[$r]}"
  # the replica is promoted once the others mark the master FAIL (node timeout 2 s)
  local promoted=0
  for _ in $(seq 1 300); do
    rcli "$r" ROLE | head -1 | grep -q master && { promoted=1; break; }; sleep 0.1
  done
  [ "$promoted" = 1 ] || { fail "replica $r was not promoted within 30 s"; return; }
  say "   replica promoted after $(($(now_ms) - t0)) ms"
  cluster_wait_ok || fail "the cluster did not come back to ok"
  wait_progress live_cport "$t0"
  tail -n +"$((n + 1))" "$CDIR/live.log" | grep -q 'older offsets' && BEHIND=1
  [ "$BEHIND" = 1 ] && say "   clickstage saw Redis behind what it wrote (fenced), and recovered"
  # /api/journey reads the journey from the promoted master (the daemon's HTTP reader's own
  # connection follows the cluster too)
  local code
  code=$(curl -s -o "$CDIR/journey.json" -w '%{http_code}' "http://127.0.0.1:$HTTP_PORT/api/journey")
  [ "$code" = 200 ] && grep -q '"journey":"model"' "$CDIR/journey.json" ||
    fail "/api/journey after the failover: HTTP $code $(head -c 200 "$CDIR/journey.json")"
  producer_wait
  daemon_stop
  final_drain "$(CLUSTER_URL)"
  check_counts "$(CLUSTER_URL)"
}

case_cluster_migrate() {
  local m mid to tid keys k t0 batch=0
  gen_expect 203 || return
  producer_start
  daemon_start "$(CLUSTER_URL)"
  wait_first_offsets live_cport || return
  sleep 2
  read -r m mid <<<"$(slot_master "$SLOT")"
  read -r to tid <<<"$(other_master "$m")"
  [ -n "$m" ] && [ -n "$to" ] || { fail "no masters found"; return; }
  say "   slot $SLOT: $m -> $to, key by key"
  t0=$(now_ms)
  rcli "$to" CLUSTER SETSLOT "$SLOT" IMPORTING "$mid" >/dev/null
  rcli "$m" CLUSTER SETSLOT "$SLOT" MIGRATING "$tid" >/dev/null
  # two keys per MIGRATE, 50 ms apart: flushes meet the slot with its keys split (TRYAGAIN) and
  # all moved but not handed over (ASK)
  for _ in $(seq 1 20); do
    mapfile -t keys < <(rcli "$m" CLUSTER GETKEYSINSLOT "$SLOT" 2)
    [ "${#keys[@]}" -gt 0 ] && [ -n "${keys[0]}" ] || break
    rcli "$m" MIGRATE 127.0.0.1 "$to" "" 0 5000 KEYS "${keys[@]}" >/dev/null
    batch=$((batch + 1)); sleep 0.05
  done
  while :; do   # the rest at once
    mapfile -t keys < <(rcli "$m" CLUSTER GETKEYSINSLOT "$SLOT" 100)
    [ "${#keys[@]}" -gt 0 ] && [ -n "${keys[0]}" ] || break
    rcli "$m" MIGRATE 127.0.0.1 "$to" "" 0 5000 KEYS "${keys[@]}" >/dev/null
  done
  sleep 0.3   # flushes now ASK their way to the importing node
  for k in "${CPORTS[@]}"; do rcli "$k" CLUSTER SETSLOT "$SLOT" NODE "$tid" >/dev/null; done
  say "   migrated in $(($(now_ms) - t0)) ms ($batch small batches)"
  [ "$(rcli "$m" CLUSTER COUNTKEYSINSLOT "$SLOT")" = 0 ] || fail "keys left on the old master"
  wait_progress live_cport "$(now_ms)"
  producer_wait
  daemon_stop
  grep -q 'more than .* cluster redirections' "$CDIR/live.log" && fail "redirection loop logged"
  grep -q 'answered MOVED' "$CDIR/live.log" || fail "the daemon never followed a MOVED"
  grep -q 'answered ASK' "$CDIR/live.log" && say "   the daemon followed ASK during the migration"
  final_drain "$(CLUSTER_URL)"
  check_counts "$(CLUSTER_URL)"
}

sentinel_port() { echo "$SM"; }
case_sentinel_failover() {
  local t0 n promoted=0
  gen_expect 204 || return
  producer_start
  daemon_start "$(SENTINEL_URL)" --redis-wait-replicas 1 --redis-wait-timeout 50ms
  wait_first_offsets sentinel_port || return
  sleep 2
  say "   master $SM, replica $SR: replica stopped 1 s, then the master killed"
  n=$(wc -l <"$CDIR/live.log")
  kill -STOP "${RPID[$SR]}"; rcli "$SM" CLIENT KILL TYPE replica >/dev/null; sleep 1
  kill -KILL "${RPID[$SM]}"; wait "${RPID[$SM]}" 2>/dev/null; t0=$(now_ms)
  kill -CONT "${RPID[$SR]}"
  for _ in $(seq 1 300); do
    [ "$(rcli "${SPORTS[0]}" SENTINEL get-master-addr-by-name cs | tail -1)" = "$SR" ] && { promoted=1; break; }
    sleep 0.1
  done
  [ "$promoted" = 1 ] || { fail "the sentinels did not promote $SR within 30 s"; return; }
  say "   sentinels promoted $SR after $(($(now_ms) - t0)) ms"
  SM=$SR
  wait_progress sentinel_port "$t0"
  tail -n +"$((n + 1))" "$CDIR/live.log" | grep -q 'older offsets' && BEHIND=1
  grep -q 'WAIT 1 50: only 0 replica' "$CDIR/live.log" && say "   WAIT saw the stopped replica (logged)"
  producer_wait
  daemon_stop
  final_drain "$(SENTINEL_URL)"
  check_counts "$(SENTINEL_URL)"
}

case_tls_sidecar() {
  local f
  if [ "$(timeout 5 redis-cli -p "$REDIS_TLS_PORT" PING 2>/dev/null)" = PONG ]; then
    fail "the TLS-only server answered plaintext"
  fi
  gen_expect 205 || return
  lg "${LGARGS[@]}" >"$CDIR/producer.log" 2>&1 || { fail "producer failed"; return; }
  final_drain "$REDIS_TLS_URL"
  check_counts "$REDIS_TLS_URL"
  for f in "$CDIR"/*.log "$CDIR"/check.*; do
    grep -qF -- "$REDIS_TLS_PASSWORD" "$f" && fail "the Redis password is in $(basename "$f")"
  done
  # the counts are on the TLS server (read through the tunnel, as clickstage-top would)
  [ "$(REDISCLI_AUTH=$REDIS_TLS_PASSWORD timeout 5 redis-cli -p "$REDIS_TLS_PROXY_PORT" EXISTS "$PREFIX:{model}:offsets")" = 1 ] ||
    fail "no offsets on the TLS server"
  # the Kubernetes sidecar's own stunnel.conf (deploy/k8s-redis-tls), its endpoint, CA and
  # accept port pointed at this stack: the counts read through it too
  local kport=$((22800 + RANDOM % 100)) kconf=$CDIR/k8s-stunnel.conf
  python3 -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["data"]["stunnel.conf"], end="")' \
    deploy/k8s-redis-tls/stunnel-configmap.yaml |
    sed -e "s#^accept = .*#accept = 127.0.0.1:$kport#" -e "s#^connect = .*#connect = 127.0.0.1:$REDIS_TLS_PORT#" \
        -e "s#^checkHost = .*#checkHost = localhost#" -e "s#^CAfile = .*#CAfile = $REDIS_TLS_CA#" >"$kconf"
  stunnel "$kconf" >"$CDIR/k8s-stunnel.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 50); do [ "$(REDISCLI_AUTH=$REDIS_TLS_PASSWORD timeout 2 redis-cli -p "$kport" PING 2>/dev/null)" = PONG ] && break; sleep 0.1; done
  "$B/cs_checkredis" --redis "redis://:$REDIS_TLS_PASSWORD@127.0.0.1:$kport" --prefix "$PREFIX" --journey model \
    --expect "$CDIR/expect.json" >"$CDIR/check-k8s.out" 2>&1 ||
    fail "through the k8s sidecar's stunnel.conf: $(tail -1 "$CDIR/check-k8s.out")"
}

# ---- run -----------------------------------------------------------------------------------------
if want cluster_drain || want cluster_failover || want cluster_migrate; then
  if cluster_up; then
    SLOT=$(rcli "${CPORTS[0]}" CLUSTER KEYSLOT '{model}')
    say "cluster up: ${CPORTS[*]} ({model} is slot $SLOT)"
    for c in cluster_drain cluster_migrate cluster_failover; do
      want "$c" || continue
      case_begin "$c"; "case_$c"; case_end
    done
  else
    say "the cluster did not come up"; FAILED=$((FAILED + 1))
  fi
fi
if want sentinel_failover; then
  if sentinel_up; then
    say "sentinel up: master $SM, replica $SR, sentinels ${SPORTS[*]}"
    case_begin sentinel_failover; case_sentinel_failover; case_end
  else
    say "the sentinel set-up did not come up"; FAILED=$((FAILED + 1))
  fi
fi
if want tls_sidecar; then
  case_begin tls_sidecar; case_tls_sidecar; case_end
fi
echo "redis-ha: $PASSED passed, $FAILED failed"
echo "{\"passed\":$PASSED,\"failed\":$FAILED,\"profile\":\"$PROFILE\",\"seconds\":$(($(date +%s) - T_SUITE)),\"cases\":{$JSON}}"
[ "$FAILED" -eq 0 ] && [ "$PASSED" -gt 0 ]
