#!/usr/bin/env bash
# make demo — the whole pipeline on this machine, no Docker:
#   build -> local Kafka broker (real one from Maven Central jars; librdkafka's mock cluster if
#   Java/Maven are not usable) + redis-server -> clickstage (live) -> clickstage-loadgen at a
#   steady rate -> the live view (clickstage-top in a terminal; the web view URL is printed).
# DEMO_SECONDS (default 60; 20 when not on a terminal), DEMO_RATE (default 20000 events/s),
# DEMO_MOCK=1 forces the mock broker. Everything it starts is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
make -s all tools
W=$(mktemp -d /tmp/clickstage-demo.XXXXXX)
STACK=$W/stack
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  scripts/stack.sh down "$STACK" >/dev/null 2>&1 || true
  [ -n "${REDIS_PID:-}" ] && kill "$REDIS_PID" 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT INT TERM
interactive=0; [ -t 1 ] && [ -z "${CI:-}" ] && interactive=1
SECONDS_RUN=${DEMO_SECONDS:-$([ $interactive = 1 ] && echo 60 || echo 20)}
RATE=${DEMO_RATE:-20000}
HTTP_PORT=${DEMO_HTTP_PORT:-9464}

if [ -z "${DEMO_MOCK:-}" ] && scripts/stack.sh up "$STACK" >"$W/stack.log" 2>&1; then
  # shellcheck disable=SC1091
  . "$STACK/env"
  scripts/stack.sh topic clickstream 8 "$STACK" >/dev/null
  echo "demo: real Kafka broker at $KAFKA_BROKERS, redis at $REDIS_URL"
else
  [ -z "${DEMO_MOCK:-}" ] && { echo "demo: no real broker ($(tail -1 "$W/stack.log")); using librdkafka's mock cluster"; }
  build/cs_mockbroker clickstream:8 >"$W/mock.out" & PIDS+=($!)
  for _ in $(seq 50); do [ -s "$W/mock.out" ] && break; sleep 0.1; done
  KAFKA_BROKERS=$(head -1 "$W/mock.out")
  REDIS_PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$W" \
    --daemonize no >"$W/redis.log" 2>&1 & REDIS_PID=$!
  for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0
  echo "demo: mock Kafka cluster at $KAFKA_BROKERS, redis at $REDIS_URL"
fi

build/clickstage --brokers "$KAFKA_BROKERS" --topics clickstream --redis "$REDIS_URL" \
  --rules deploy/rules/retail.yaml --http-listen "127.0.0.1:$HTTP_PORT" --log-format text \
  >"$W/clickstage.log" 2>&1 & PIDS+=($!)
DAEMON=$!
echo "demo: clickstage running (log $W/clickstage.log); web view: http://127.0.0.1:$HTTP_PORT/"
build/clickstage-loadgen --brokers "$KAFKA_BROKERS" --topic clickstream --rate "$RATE" \
  --duration "${SECONDS_RUN}s" --customers 50000 --span 1h --progress 0 >"$W/loadgen.out" 2>"$W/loadgen.err" & PIDS+=($!)
LOADGEN=$!
echo "demo: clickstage-loadgen producing $RATE events/s for ${SECONDS_RUN}s"

if [ $interactive = 1 ] && [ -x build/clickstage-top ]; then
  echo "demo: opening clickstage-top (q quits)"; sleep 2
  build/clickstage-top --redis "$REDIS_URL" --journey retail || true
else
  for _ in $(seq 1 $((SECONDS_RUN / 5))); do
    sleep 5
    if [ -x build/clickstage-top ]; then build/clickstage-top --redis "$REDIS_URL" --journey retail --once 2>/dev/null | head -20
    else echo "--- reached: $(redis-cli -p "${REDIS_PORT}" HGETALL 'clickstage:{retail}:reached' | paste -sd' ')"; fi
  done
fi
wait "$LOADGEN" 2>/dev/null || true
sleep 1
kill -TERM "$DAEMON"; wait "$DAEMON" 2>/dev/null || true
echo "demo: loadgen: $(tail -1 "$W/loadgen.out")"
echo "demo: events counted: $(redis-cli -p "${REDIS_PORT}" HGETALL 'clickstage:{retail}:events' | paste -sd' ')"
