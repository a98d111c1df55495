#!/usr/bin/env bash
# Runs the daemon against the local stack (started if needed): `make run` or
#   scripts/run-local.sh [clickstage flags...]
# Creates the topic `clickstream` (8 partitions) if missing. Ctrl-C stops the daemon (the stack
# keeps running; `make stack-down` stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
STACK_DIR=${STACK_DIR:-$PWD/.stack}
scripts/stack.sh status "$STACK_DIR" >/dev/null 2>&1 || scripts/stack.sh up "$STACK_DIR"
# shellcheck disable=SC1091
. "$STACK_DIR/env"
TOPIC=${TOPIC:-clickstream}
kcat -L -b "$KAFKA_BROKERS" -t "$TOPIC" 2>/dev/null | grep -q "topic \"$TOPIC\" with" ||
  scripts/stack.sh topic "$TOPIC" 8 "$STACK_DIR" >/dev/null
make -s build/clickstage
echo "clickstage: Kafka $KAFKA_BROKERS topic $TOPIC -> $REDIS_URL (redis-cli -p $REDIS_PORT)" >&2
exec build/clickstage --brokers "$KAFKA_BROKERS" --topics "$TOPIC" --redis "$REDIS_URL" \
  --rules "${RULES:-deploy/rules/retail.yaml}" --log-format text --http-listen "" "$@"
