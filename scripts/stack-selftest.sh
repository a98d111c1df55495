#!/usr/bin/env bash
# scripts/stack-selftest.sh — proves scripts/stack.sh and Debian's librdkafka (through kcat)
# against the real broker it starts:
#   up in a temp dir (timed) -> 4-partition topic -> 10,000 keyed messages produced by kcat,
#   2,500 each with lz4, zstd, snappy and gzip (codecs checked in the segment files) -> consumed
#   back by a kcat balanced consumer group (count, distinct keys, all 4 partitions) -> committed
#   offsets checked (ConsumerGroupCommand: lag 0; the group re-reads nothing) -> redis PING on
#   TCP and on the unix socket -> kafka-restart (data kept) and redis-restart -> down -> no
#   process of the stack left (by PID) and its ports free.
# Exits non-zero on any failure; the last line is "stack-selftest: N passed, N failed".
#   SELFTEST_KEEP=1   keep the temp dir (logs) even when everything passed
#   SELFTEST_MESSAGES number of messages (default 10000, a multiple of 4)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STACK="$HERE/stack.sh"
N=${SELFTEST_MESSAGES:-10000}
[ $((N % 4)) -eq 0 ] || { echo "SELFTEST_MESSAGES must be a multiple of 4" >&2; exit 2; }
TOPIC=selftest
GROUP=selftest-group

TMP=$(mktemp -d "${TMPDIR:-/tmp}/stack-selftest.XXXXXX")
export STACK_DIR="$TMP/stack"
pass=0
fail=0
skipped=0
ALL_PIDS=()
DOWN_DONE=0

ok() { pass=$((pass + 1)); printf 'ok   %s\n' "$*"; }
bad() { fail=$((fail + 1)); printf 'FAIL %s\n' "$*"; }
check() { # DESCRIPTION COMMAND...   (its stderr goes to $TMP/stderr.log, shown on failure)
  local d=$1; shift
  if "$@" 2>>"$TMP/stderr.log" >>"$TMP/stdout.log"; then ok "$d"; else bad "$d"; fi
}
pid_gone() { # a zombie (dead, not reaped yet) counts as gone
  local st
  st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 0
  [ -z "$st" ] || [ "$st" = Z ] || [ "$st" = X ]
}
remember_pids() {
  # shellcheck disable=SC1091
  . "$STACK_DIR/env"
  ALL_PIDS+=("$KAFKA_PID" "$REDIS_PID")
}

finish() {
  local rc=$?
  trap - EXIT
  if [ "$DOWN_DONE" = 0 ] && [ -d "$STACK_DIR" ]; then
    "$STACK" down "$STACK_DIR" >/dev/null 2>&1 || true
  fi
  if [ $fail -gt 0 ] || [ $rc -ne 0 ] || [ "${SELFTEST_KEEP:-0}" = 1 ]; then
    if [ $fail -gt 0 ] || [ $rc -ne 0 ]; then
      echo "---- last lines of stderr of the checks ($TMP/stderr.log)"
      tail -n 30 "$TMP/stderr.log" 2>/dev/null || true
      echo "---- last lines of $STACK_DIR/kafka.log"
      tail -n 30 "$STACK_DIR/kafka.log" 2>/dev/null || true
      echo "---- last lines of $STACK_DIR/redis.log"
      tail -n 10 "$STACK_DIR/redis.log" 2>/dev/null || true
    fi
    echo "kept $TMP"
  else
    rm -rf "$TMP"
  fi
  [ $rc -eq 0 ] || [ $fail -gt 0 ] || fail=$((fail + 1))
  if [ $skipped -gt 0 ]; then echo "stack-selftest: $pass passed, $fail failed, $skipped skipped"
  else echo "stack-selftest: $pass passed, $fail failed"; fi
  [ $fail -eq 0 ] && [ $rc -eq 0 ]
}
trap finish EXIT

# ---- up
t0=$(date +%s%N)
if "$STACK" up "$STACK_DIR" >"$TMP/up.out" 2>>"$TMP/stderr.log"; then
  ok "stack up in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
else
  bad "stack up"; tail -n 40 "$TMP/stderr.log"; exit 1
fi
remember_pids
echo "     $(tr '\n' ' ' <"$STACK_DIR/env")"
check "status says up" "$STACK" status "$STACK_DIR"
same_pids_after_up() { # KAFKA_PID REDIS_PID
  "$STACK" up "$STACK_DIR" >/dev/null && [ "$(grep '^KAFKA_PID=' "$STACK_DIR/env")" = "KAFKA_PID=$1" ] &&
    [ "$(grep '^REDIS_PID=' "$STACK_DIR/env")" = "REDIS_PID=$2" ]
}
check "second up is a no-op (same pids)" same_pids_after_up "$KAFKA_PID" "$REDIS_PID"

# ---- topic
check "topic $TOPIC with 4 partitions" "$STACK" topic "$TOPIC" 4 "$STACK_DIR"
parts=$(kcat -L -b "$KAFKA_BROKERS" -t "$TOPIC" -m 5 | sed -n 's/.*topic "selftest" with \([0-9]*\) partitions.*/\1/p')
check "metadata shows 4 partitions (got $parts)" test "$parts" = 4

# ---- produce: N keyed messages, a quarter with each codec
per=$((N / 4))
i=0
prod_ok=1
for codec in lz4 zstd snappy gzip; do
  awk -v from=$((i * per + 1)) -v to=$(((i + 1) * per)) -v c=$codec \
    'BEGIN { for (n = from; n <= to; n++) printf "key-%d:%s payload %d\n", n, c, n }' |
    kcat -P -b "$KAFKA_BROKERS" -t "$TOPIC" -K : -z "$codec" -X acks=all -X linger.ms=20 \
      2>"$TMP/produce-$codec.err" || prod_ok=0
  if grep -qiE 'fail|error' "$TMP/produce-$codec.err"; then prod_ok=0; cat "$TMP/produce-$codec.err"; fi
  i=$((i + 1))
done
check "kcat produced $N keyed messages (lz4, zstd, snappy, gzip) without errors" test $prod_ok = 1

end_sum=$(kcat -Q -b "$KAFKA_BROKERS" -t "$TOPIC:0:-1" -t "$TOPIC:1:-1" -t "$TOPIC:2:-1" -t "$TOPIC:3:-1" |
  awk '{s += $NF} END {print s + 0}')
check "end offsets sum to $N (got $end_sum)" test "$end_sum" = "$N"

# Kafka's CLI tools come from org.apache.kafka:kafka-tools, which some releases lack on Maven
# Central (stack.sh then runs without it): the checks that need them are skipped there.
. "$STACK_DIR/stack.conf"
HAVE_TOOLS=0
[ -f "$KAFKA_LIBS_DIR/kafka-tools-$KAFKA_VERSION.jar" ] && HAVE_TOOLS=1
skip() { skipped=$((skipped + 1)); printf 'skip %s (no kafka-tools-%s.jar)\n' "$*" "$KAFKA_VERSION"; }

if [ $HAVE_TOOLS = 1 ]; then
  segs=$(printf '%s,' "$STACK_DIR"/kafka/data/"$TOPIC"-*/00000000000000000000.log)
  dump=org.apache.kafka.tools.DumpLogSegments       # 4.x: kafka-tools
  [ "${KAFKA_VERSION%%.*}" -ge 4 ] || dump=kafka.tools.DumpLogSegments   # 3.x: core
  "$STACK" tool "$dump" --files "${segs%,}" \
    >"$TMP/dump.txt" 2>&1 || true
  for codec in lz4 zstd snappy gzip; do
    check "broker stored $codec-compressed batches" grep -q "compresscodec: $codec" "$TMP/dump.txt"
  done
else
  skip "codecs of the stored batches"
fi

# ---- consume with a balanced consumer group (librdkafka KafkaConsumer), commit on close
timeout 120 kcat -b "$KAFKA_BROKERS" -G "$GROUP" -X auto.offset.reset=earliest -e -q \
  -f '%p %k\n' "$TOPIC" >"$TMP/consumed.txt" 2>"$TMP/consume.err" || true
got=$(wc -l <"$TMP/consumed.txt")
check "group consumer got $N messages (got $got)" test "$got" = "$N"
distinct=$(awk '{print $2}' "$TMP/consumed.txt" | sort -u | wc -l)
check "$N distinct keys (got $distinct)" test "$distinct" = "$N"
np=$(awk '{print $1}' "$TMP/consumed.txt" | sort -u | wc -l)
check "keys spread over all 4 partitions (got $np)" test "$np" = 4

if [ $HAVE_TOOLS = 1 ]; then
  "$STACK" tool org.apache.kafka.tools.consumer.group.ConsumerGroupCommand \
    --bootstrap-server "$KAFKA_BROKERS" --describe --group "$GROUP" >"$TMP/group.txt" 2>&1 || true
  committed=$(awk -v t="$TOPIC" '$2 == t && $4 ~ /^[0-9]+$/ {s += $4; n++} END {print n + 0, s + 0}' "$TMP/group.txt")
  lag=$(awk -v t="$TOPIC" '$2 == t {s += $6} END {print s + 0}' "$TMP/group.txt")
  check "offsets committed for 4 partitions summing to $N (got: $committed)" test "$committed" = "4 $N"
  check "group lag is 0 (got $lag)" test "$lag" = 0
else
  skip "committed offsets as ConsumerGroupCommand shows them"
fi
again=$(timeout 60 kcat -b "$KAFKA_BROKERS" -G "$GROUP" -X auto.offset.reset=earliest -e -q "$TOPIC" 2>/dev/null | wc -l)
check "same group re-reads nothing (got $again)" test "$again" = 0

# ---- redis
check "redis PING on TCP 127.0.0.1:$REDIS_PORT" test "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping)" = PONG
check "redis PING on unix socket $REDIS_SOCK" test "$(redis-cli -s "$REDIS_SOCK" ping)" = PONG
check "redis URL works" test "$(redis-cli -u "$REDIS_URL" ping)" = PONG

# ---- restarts
old_kpid=$KAFKA_PID
check "kafka-restart" "$STACK" kafka-restart "$STACK_DIR"
remember_pids
new_pid() { [ "$1" != "$2" ] && pid_gone "$1"; }
check "broker has a new pid ($old_kpid -> $KAFKA_PID), old one gone" new_pid "$old_kpid" "$KAFKA_PID"
after=$(timeout 120 kcat -b "$KAFKA_BROKERS" -G "$GROUP-2" -X auto.offset.reset=earliest -e -q "$TOPIC" 2>/dev/null | wc -l)
check "data survives kafka-restart ($after messages)" test "$after" = "$N"
check "redis-restart" "$STACK" redis-restart "$STACK_DIR"
remember_pids
redis_pings() { [ "$(redis-cli -p "$REDIS_PORT" ping)" = PONG ] && [ "$(redis-cli -s "$REDIS_SOCK" ping)" = PONG ]; }
check "redis PING after restart (TCP and socket)" redis_pings

# ---- down
t1=$(date +%s%N)
if "$STACK" down "$STACK_DIR" 2>>"$TMP/stderr.log"; then ok "stack down in $(( ($(date +%s%N) - t1) / 1000000 )) ms"; else bad "stack down"; fi
DOWN_DONE=1
left=()
for p in "${ALL_PIDS[@]}"; do pid_gone "$p" || left+=("$p"); done
check "no process left (pids ${ALL_PIDS[*]})" test ${#left[@]} -eq 0
[ ${#left[@]} -eq 0 ] || ps -o pid,stat,cmd -p "$(IFS=,; echo "${left[*]}")" || true
ports_free() { [ -z "$(ss -Htln "( sport = :${KAFKA_BROKERS##*:} or sport = :$REDIS_PORT )")" ]; }
check "kafka and redis ports are free" ports_free
check "redis socket removed" test ! -e "$REDIS_SOCK"
set +e
"$STACK" status "$STACK_DIR" >/dev/null
st=$?
set -e
check "status says stopped (exit $st)" test $st = 3
