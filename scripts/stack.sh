#!/usr/bin/env bash
# scripts/stack.sh — a local, throw-away Kafka broker + Redis for clickstage's integration tests.
#
#   scripts/stack.sh up            [DIR]   start Kafka (KRaft, broker+controller) and redis-server
#   scripts/stack.sh down          [DIR]   stop both (SIGTERM, up to 20 s, then SIGKILL)
#   scripts/stack.sh status        [DIR]   tell what runs (exit 0 all up, 1 partly, 3 nothing)
#   scripts/stack.sh env           [DIR]   print the env file (KAFKA_BROKERS=..., REDIS_URL=...)
#   scripts/stack.sh redis-restart [DIR]   stop + start redis, same port/dir (AOF data kept if on)
#   scripts/stack.sh kafka-restart [DIR]   stop + start the broker, same ports and data
#   scripts/stack.sh redis-stop    [DIR]   stop redis only (SIGTERM: a clean SHUTDOWN, AOF synced)
#   scripts/stack.sh redis-kill    [DIR]   SIGKILL redis only (no shutdown, no final AOF fsync)
#   scripts/stack.sh redis-start   [DIR]   start a stopped redis, same port/dir; REDIS_AOF and
#                                          REDIS_FSYNC given here replace the stack's settings,
#                                          REDIS_EMPTY=1 deletes its data dir first
#   scripts/stack.sh kafka-stop    [DIR]   stop the broker only (SIGTERM, controlled shutdown)
#   scripts/stack.sh kafka-kill    [DIR]   SIGKILL the broker (unclean: log recovery at start)
#   scripts/stack.sh kafka-start   [DIR]   start a stopped broker, same ports and data
#   scripts/stack.sh topic NAME PARTITIONS [DIR] [key=value ...]   create a topic (RF 1)
#   scripts/stack.sh tool MAINCLASS [ARGS...]   run a Kafka CLI class on the stack's classpath
#   scripts/stack.sh purge         [DIR]   down, then delete DIR
#   scripts/stack.sh fetch                 only fetch the Kafka jars into the cache
#
# DIR (the state directory) is the argument, else $STACK_DIR, else $PWD/.stack.
# Everything of one stack lives there: stack.conf (ports, version), env, kafka/ (server.properties,
# data), kafka.log, redis/ (data), redis.log, redis.sock, *.pid. Several stacks (different DIRs)
# can run at once: every port is picked free at `up`, on 127.0.0.1 only.
# `up` on a running stack does nothing; on a stopped one it starts afresh (new ports, empty data).
# `down` keeps the logs and data for a look; `purge` removes them.
#
# Environment knobs (all optional):
#   KAFKA_VERSION        org.apache.kafka:kafka_2.13 version from Maven Central (default 4.3.1;
#                        4.4.0 and 3.9.1 also pass scripts/stack-selftest.sh)
#   KAFKA_LIBS_DIR       jar folder (default ~/.cache/clickstage/kafka-$KAFKA_VERSION/libs)
#   KAFKA_HEAP_OPTS      default "-Xmx512m -Xms512m"
#   KAFKA_JVM_OPTS       extra JVM flags for the broker
#   KAFKA_EXTRA_PROPS    extra server.properties lines (newline separated), appended at `up`
#   KAFKA_AUTO_CREATE    auto.create.topics.enable (default false: create topics with `topic`)
#   KAFKA_START_TIMEOUT  seconds to wait for the broker to answer metadata (default 120)
#   KAFKA_CDS=0          no class-data-sharing archive for the broker JVM (default: on)
#   REDIS_AOF=1          redis with appendonly yes + appendfsync always (else no persistence)
#   REDIS_FSYNC          appendfsync policy with REDIS_AOF=1: always (default), everysec or no
#   REDIS_EXTRA_ARGS     more redis-server arguments at `up`/`redis-start`/`redis-restart`,
#                        split on spaces (e.g. "--key-load-delay 50": tests/refusals)
#   STOP_TIMEOUT         seconds between SIGTERM and SIGKILL (default 20)
#   KAFKA_SECURE=1       at `up`: two more broker listeners besides PLAINTEXT, both TLS with a CA
#                        made in DIR/tls: SSL (client certificate required) and SASL_SSL
#                        (SCRAM-SHA-512 and PLAIN users); their ports, the CA, the client
#                        certificate/key/keystore and the users' passwords go to the env file
#                        (KAFKA_SSL_BROKERS, KAFKA_SASL_BROKERS, KAFKA_CA, ...; docs/local-stack.md)
#   REDIS_TLS=1          at `up`: a second, TLS-only redis-server (no plaintext port; a certificate
#                        for 127.0.0.1 from a CA made in DIR/redis-tls; requirepass) and an stunnel
#                        client in front of it on a plaintext loopback port: the sidecar pattern
#                        clickstage uses until hiredis >= 1.0 speaks TLS (docs/deploy.md). The env
#                        file gets REDIS_TLS_URL (redis://:<password>@127.0.0.1:<stunnel port>/0,
#                        what clickstage is given), REDIS_TLS_PORT (the server's TLS port),
#                        REDIS_TLS_CA, REDIS_TLS_PASSWORD
set -euo pipefail

DEFAULT_KAFKA_VERSION=4.3.1
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KAFKA_CFG_DIR="$SCRIPT_DIR/kafka"
STOP_TIMEOUT=${STOP_TIMEOUT:-20}
KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT:-120}
REDIS_START_TIMEOUT=${REDIS_START_TIMEOUT:-20}

java_bin() {
  if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then echo "$JAVA_HOME/bin/java"; else echo java; fi
}
JAVA=$(java_bin)

log() { printf 'stack: %s\n' "$*" >&2; }
die() { printf 'stack: error: %s\n' "$*" >&2; exit 1; }

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
  exit 2
}

# ---------------------------------------------------------------------------------------------
# state directory and its files

resolve_dir() {
  local d=${1:-${STACK_DIR:-$PWD/.stack}}
  STACK_DIR=$(realpath -m -- "$d")
  CONF="$STACK_DIR/stack.conf"
  ENV_FILE="$STACK_DIR/env"
  KAFKA_PIDFILE="$STACK_DIR/kafka.pid"
  REDIS_PIDFILE="$STACK_DIR/redis.pid"
  KAFKA_LOG="$STACK_DIR/kafka.log"
  REDIS_LOG="$STACK_DIR/redis.log"
  SERVER_PROPS="$STACK_DIR/kafka/server.properties"
  TLS_DIR="$STACK_DIR/tls"
  RTLS_DIR="$STACK_DIR/redis-tls"
  RTLS_PIDFILE="$STACK_DIR/redis-tls.pid"
  STUNNEL_PIDFILE="$STACK_DIR/stunnel.pid"
}

# Users of the secure listeners (KAFKA_SECURE=1); their passwords are made at `up`.
SCRAM_USER=clickstage-scram
PLAIN_USER=clickstage-plain

# One operation at a time per state dir. fd 9 is closed for every daemon we start (9>&-),
# otherwise the broker would hold the lock forever.
lock_dir() {
  mkdir -p "$STACK_DIR"
  exec 9>"$STACK_DIR/.lock"
  flock -w 600 9 || die "another stack.sh holds $STACK_DIR/.lock"
}

load_conf() {
  [ -f "$CONF" ] || return 1
  # shellcheck disable=SC1090
  . "$CONF"
}

# Writes KEY=VALUE, quoting only when needed, so the file is both sourceable by sh and
# include-able by make when values are plain (they are, unless DIR has odd characters).
kv() {
  local v=$2
  if [[ $v =~ ^[A-Za-z0-9_./:@%+,=-]*$ ]]; then printf '%s=%s\n' "$1" "$v"
  else printf '%s=%q\n' "$1" "$v"; fi
}

write_conf() {
  {
    echo "# written by scripts/stack.sh up; read by its other subcommands"
    kv KAFKA_VERSION "$KAFKA_VERSION"
    kv KAFKA_LIBS_DIR "$KAFKA_LIBS_DIR"
    kv KAFKA_PORT "$KAFKA_PORT"
    kv CONTROLLER_PORT "$CONTROLLER_PORT"
    kv CLUSTER_ID "$CLUSTER_ID"
    kv REDIS_PORT "$REDIS_PORT"
    kv REDIS_SOCK "$REDIS_SOCK"
    kv REDIS_AOF "$REDIS_AOF"
    kv REDIS_FSYNC "${REDIS_FSYNC:-always}"
    kv KAFKA_SECURE "${KAFKA_SECURE:-0}"
    kv REDIS_TLS "${REDIS_TLS:-0}"
    if [ "${REDIS_TLS:-0}" = 1 ]; then
      kv REDIS_TLS_PORT "$REDIS_TLS_PORT"
      kv REDIS_TLS_PROXY_PORT "$REDIS_TLS_PROXY_PORT"
      kv REDIS_TLS_PASSWORD "$REDIS_TLS_PASSWORD"
    fi
    if [ "${KAFKA_SECURE:-0}" = 1 ]; then
      kv KAFKA_SSL_PORT "$KAFKA_SSL_PORT"
      kv KAFKA_SASL_PORT "$KAFKA_SASL_PORT"
      kv TLS_PASSWORD "$TLS_PASSWORD"
      kv SCRAM_PASSWORD "$SCRAM_PASSWORD"
      kv PLAIN_PASSWORD "$PLAIN_PASSWORD"
    fi
  } >"$CONF.tmp"
  mv -f "$CONF.tmp" "$CONF"
}

write_env() {
  {
    kv KAFKA_BROKERS "127.0.0.1:$KAFKA_PORT"
    kv REDIS_URL "redis://127.0.0.1:$REDIS_PORT/0"
    kv REDIS_HOST 127.0.0.1
    kv REDIS_PORT "$REDIS_PORT"
    kv REDIS_SOCK "$REDIS_SOCK"
    kv KAFKA_PID "$(cat "$KAFKA_PIDFILE" 2>/dev/null || echo 0)"
    kv REDIS_PID "$(cat "$REDIS_PIDFILE" 2>/dev/null || echo 0)"
    kv KAFKA_VERSION "$KAFKA_VERSION"
    kv STACK_DIR "$STACK_DIR"
    if [ "${REDIS_TLS:-0}" = 1 ]; then
      kv REDIS_TLS_URL "redis://:$REDIS_TLS_PASSWORD@127.0.0.1:$REDIS_TLS_PROXY_PORT/0"
      kv REDIS_TLS_PORT "$REDIS_TLS_PORT"
      kv REDIS_TLS_PROXY_PORT "$REDIS_TLS_PROXY_PORT"
      kv REDIS_TLS_CA "$RTLS_DIR/ca.crt"
      kv REDIS_TLS_PASSWORD "$REDIS_TLS_PASSWORD"
    fi
    if [ "${KAFKA_SECURE:-0}" = 1 ]; then
      kv KAFKA_SSL_BROKERS "127.0.0.1:$KAFKA_SSL_PORT"
      kv KAFKA_SASL_BROKERS "127.0.0.1:$KAFKA_SASL_PORT"
      kv KAFKA_CA "$TLS_DIR/ca.crt"
      kv KAFKA_CLIENT_CERT "$TLS_DIR/client.crt"
      kv KAFKA_CLIENT_KEY "$TLS_DIR/client.key"
      kv KAFKA_CLIENT_KEY_PASSWORD "$TLS_PASSWORD"
      kv KAFKA_CLIENT_P12 "$TLS_DIR/client.p12"
      kv KAFKA_CLIENT_P12_PASSWORD "$TLS_PASSWORD"
      kv KAFKA_SCRAM_USER "$SCRAM_USER"
      kv KAFKA_SCRAM_PASSWORD "$SCRAM_PASSWORD"
      kv KAFKA_PLAIN_USER "$PLAIN_USER"
      kv KAFKA_PLAIN_PASSWORD "$PLAIN_PASSWORD"
    fi
  } >"$ENV_FILE.tmp"
  mv -f "$ENV_FILE.tmp" "$ENV_FILE"
}

# ---------------------------------------------------------------------------------------------
# processes

# Alive = exists and is not a zombie (a container's PID 1 may not reap our orphans).
pid_alive() {
  local pid=$1 st
  [[ $pid =~ ^[0-9]+$ ]] && [ "$pid" -gt 1 ] || return 1
  st=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

pid_cmdline() { { tr '\0' ' ' <"/proc/$1/cmdline"; } 2>/dev/null || true; }

# The pid in a pid file, if that process is alive and is really ours (guards against pid reuse):
# the broker's command line names this stack's server.properties; redis-server's title names
# its port.
kafka_pid() {
  local pid
  pid=$(cat "$KAFKA_PIDFILE" 2>/dev/null) || return 1
  pid_alive "$pid" && [[ $(pid_cmdline "$pid") == *"$SERVER_PROPS"* ]] && echo "$pid"
}
redis_pid() {
  local pid
  pid=$(cat "$REDIS_PIDFILE" 2>/dev/null) || return 1
  pid_alive "$pid" && [[ $(pid_cmdline "$pid") == *redis-server*":${REDIS_PORT:-x}"* ]] && echo "$pid"
}

# Processes whose command line names this state dir (lost pid file, crashed `up`): ours only.
stray_pids() {
  local f p
  for f in $(grep -lsF -- "$SERVER_PROPS" /proc/[0-9]*/cmdline); do
    p=${f#/proc/}; p=${p%/cmdline}
    [ "$p" != $$ ] && pid_alive "$p" && echo "$p"
  done
  if [ -n "${REDIS_PORT:-}" ]; then
    for f in $(grep -lsF -- ":$REDIS_PORT" /proc/[0-9]*/cmdline); do
      p=${f#/proc/}; p=${p%/cmdline}
      [[ $(pid_cmdline "$p") == redis-server* ]] &&
        [ "$(readlink "/proc/$p/cwd" 2>/dev/null)" = "$STACK_DIR/redis" ] && pid_alive "$p" && echo "$p"
    done
  fi
  return 0
}

STOP_KILLED=0
stop_pid() { # NAME PID   (sets STOP_KILLED=1 when SIGKILL was needed)
  local name=$1 pid=$2 i
  STOP_KILLED=0
  pid_alive "$pid" || return 0
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
    pid_alive "$pid" || return 0
    sleep 0.1
  done
  log "$name (pid $pid) still alive after ${STOP_TIMEOUT}s: SIGKILL"
  STOP_KILLED=1
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    pid_alive "$pid" || return 0
    sleep 0.1
  done
  die "$name (pid $pid) survived SIGKILL"
}

stop_kafka() {
  local pid tmp="$STACK_DIR/kafka.jsa.tmp" arch
  if pid=$(kafka_pid); then
    stop_pid kafka "$pid"
    # A broker started without a class-data archive wrote one as it exited on SIGTERM:
    # keep it in the jar cache for every later start (see start_kafka_proc).
    if [ "$STOP_KILLED" = 0 ] && [ -s "$tmp" ]; then
      arch=$(cds_archive)
      cp -f "$tmp" "$arch.$$.tmp" && mv -f "$arch.$$.tmp" "$arch" &&
        log "saved class-data archive $arch ($(du -h "$arch" | cut -f1)): later starts are faster"
    fi
  fi
  rm -f "$KAFKA_PIDFILE" "$tmp"
}
stop_redis() {
  local pid
  if pid=$(redis_pid); then stop_pid redis "$pid"; fi
  rm -f "$REDIS_PIDFILE"
}

# ---------------------------------------------------------------------------------------------
# prerequisites

apt_install() {
  [ "$(id -u)" -eq 0 ] || die "missing: $* (install them: sudo apt-get install -y $*)"
  log "installing from Debian: $*"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null ||
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@" >/dev/null; } ||
    die "apt-get install $* failed"
}

ensure_prereqs() {
  local missing=()
  command -v kcat >/dev/null || missing+=(kcat)
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v redis-cli >/dev/null || missing+=(redis-tools)
  command -v flock >/dev/null || missing+=(util-linux)
  command -v ss >/dev/null || missing+=(iproute2)
  JAVA=$(java_bin)
  command -v "$JAVA" >/dev/null || missing+=(openjdk-17-jre-headless)
  [ -d "$KAFKA_LIBS_DIR" ] && [ -f "$KAFKA_LIBS_DIR/.complete" ] || command -v mvn >/dev/null || missing+=(maven)
  [ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
  local jv
  jv=$("$JAVA" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)
  [ -n "$jv" ] && [ "$jv" -ge 17 ] || die "Kafka $KAFKA_VERSION needs Java 17+ (found: $("$JAVA" -version 2>&1 | head -1))"
}

check_version() {
  [[ $KAFKA_VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "KAFKA_VERSION must look like 4.3.1, got '$KAFKA_VERSION'"
  [ "$(kafka_major)" -ge 3 ] || die "KAFKA_VERSION $KAFKA_VERSION: only 3.x (KRaft, 3.9 tested) and 4.x are supported"
}

# Jars: mvn copy-dependencies of scripts/kafka/pom.xml into the cache, once per version.
# A ".complete" marker is written last; concurrent `up`s serialize on a lock in the cache.
fetch_jars() {
  [ -f "$KAFKA_LIBS_DIR/.complete" ] && return 0
  command -v mvn >/dev/null || apt_install maven
  local parent tmp out rc
  parent=$(dirname "$KAFKA_LIBS_DIR")
  mkdir -p "$parent"
  exec 8>"$parent/.fetch.lock"
  flock -w 900 8 || die "timed out waiting for $parent/.fetch.lock"
  if [ -f "$KAFKA_LIBS_DIR/.complete" ]; then exec 8>&-; return 0; fi
  log "fetching Kafka $KAFKA_VERSION jars with mvn into $KAFKA_LIBS_DIR (first run only)"
  tmp="$parent/.libs.tmp.$$"
  out="$parent/.mvn.$$.log"
  rm -rf "$tmp"
  local mvnopts=(-q -B -f "$KAFKA_CFG_DIR/pom.xml" -Dkafka.version="$KAFKA_VERSION")
  [ "$(kafka_major)" -ge 4 ] || mvnopts+=(-Dkafka3)
  rc=0
  mvn "${mvnopts[@]}" dependency:copy-dependencies -DoutputDirectory="$tmp" >"$out" 2>&1 || rc=$?
  if [ $rc -ne 0 ]; then
    # Some releases publish kafka_2.13 but not (yet) kafka-tools: take the broker alone, and
    # `topic` falls back to scripts/kafka/CreateTopic.java (Admin API).
    if grep -q 'kafka-tools' "$out"; then
      log "kafka-tools $KAFKA_VERSION is not available; fetching the broker without it"
      rm -rf "$tmp"
      rc=0
      mvn "${mvnopts[@]}" -Dno-tools dependency:copy-dependencies -DoutputDirectory="$tmp" \
        >>"$out" 2>&1 || rc=$?
    fi
  fi
  if [ $rc -ne 0 ]; then
    grep -E 'ERROR|error:' "$out" | head -30 >&2 || tail -30 "$out" >&2
    rm -rf "$tmp"
    die "mvn could not fetch org.apache.kafka:kafka_2.13:$KAFKA_VERSION (full output: $out)"
  fi
  ls "$tmp"/kafka_2.13-"$KAFKA_VERSION".jar >/dev/null 2>&1 || die "mvn ran but $tmp has no kafka_2.13-$KAFKA_VERSION.jar"
  touch "$tmp/.complete"
  rm -rf "$KAFKA_LIBS_DIR"
  mv "$tmp" "$KAFKA_LIBS_DIR"
  rm -f "$out"
  exec 8>&-
  log "cached $(ls "$KAFKA_LIBS_DIR" | wc -l) jars ($(du -sh "$KAFKA_LIBS_DIR" | cut -f1))"
}

# ---------------------------------------------------------------------------------------------
# ports

# A port no TCP socket on this machine uses, outside the kernel's ephemeral range (so an
# outgoing connection cannot take it between the pick and the bind), not in "$@".
pick_port() {
  local lo hi from=20000 to=32000 p i x taken
  read -r lo hi </proc/sys/net/ipv4/ip_local_port_range || { lo=32768; hi=60999; }
  if [ "$lo" -le "$from" ]; then from=$((hi + 1)); to=$((hi + 4000)); [ $to -le 65535 ] || to=65535; fi
  [ "$to" -lt "$lo" ] || [ "$from" -gt "$hi" ] || to=$((lo - 1))
  for ((i = 0; i < 500; i++)); do
    p=$(shuf -i "$from-$to" -n 1)
    taken=0
    for x in "$@"; do [ "$x" = "$p" ] && taken=1; done
    [ $taken -eq 0 ] || continue
    if [ -z "$(ss -Htan "( sport = :$p )" 2>/dev/null)" ]; then echo "$p"; return 0; fi
  done
  die "found no free TCP port in $from-$to"
}

port_free() { [ -z "$(ss -Htln "( sport = :$1 )" 2>/dev/null)" ]; }

# ---------------------------------------------------------------------------------------------
# kafka

new_cluster_id() {
  # Same as `kafka.tools.StorageTool random-uuid` (Uuid.randomUuid: 16 random bytes, URL-safe
  # base64 without padding, never starting with '-'), without paying for a JVM start.
  local id
  while :; do
    id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
    [ "${id:0:1}" != - ] && [ ${#id} -eq 22 ] && { echo "$id"; return; }
  done
}

write_server_props() {
  mkdir -p "$STACK_DIR/kafka/data"
  local listeners="PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT"
  local advertised="PLAINTEXT://127.0.0.1:$KAFKA_PORT"
  local protomap="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
  if [ "${KAFKA_SECURE:-0}" = 1 ]; then
    listeners="$listeners,SSL://127.0.0.1:$KAFKA_SSL_PORT,SASL_SSL://127.0.0.1:$KAFKA_SASL_PORT"
    advertised="$advertised,SSL://127.0.0.1:$KAFKA_SSL_PORT,SASL_SSL://127.0.0.1:$KAFKA_SASL_PORT"
    protomap="$protomap,SSL:SSL,SASL_SSL:SASL_SSL"
  fi
  cat >"$SERVER_PROPS" <<EOF
# written by scripts/stack.sh up (Kafka $KAFKA_VERSION, single combined broker+controller, KRaft)
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
listeners=$listeners
advertised.listeners=$advertised
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=$protomap
log.dirs=$STACK_DIR/kafka/data
num.partitions=4
default.replication.factor=1
auto.create.topics.enable=${KAFKA_AUTO_CREATE:-false}
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# Keep every message: generated clickstreams carry event-time timestamps weeks in the past, which
# the default 7-day time retention would delete at the next retention check (every 5 min) —
# taking the start of a test topic away in the middle of a test.
log.retention.ms=-1
# 2-core machines: fewer threads than the defaults (3 network, 8 io), smaller cleaner buffer.
num.network.threads=2
num.io.threads=4
log.cleaner.dedupe.buffer.size=33554432
EOF
  if [ "${KAFKA_SECURE:-0}" = 1 ]; then
    cat >>"$SERVER_PROPS" <<EOF
# KAFKA_SECURE=1: TLS on the SSL and SASL_SSL listeners with the stack's own CA ($TLS_DIR).
# The broker's keystore is PKCS#12; the truststore (client certificates of the SSL listener) is
# the CA's PEM file.
ssl.keystore.type=PKCS12
ssl.keystore.location=$TLS_DIR/broker.p12
ssl.keystore.password=$TLS_PASSWORD
ssl.key.password=$TLS_PASSWORD
ssl.truststore.type=PEM
ssl.truststore.location=$TLS_DIR/ca.crt
# SSL listener: mutual TLS (the client's certificate is its identity)
listener.name.ssl.ssl.client.auth=required
# SASL_SSL listener: SCRAM-SHA-512 users live in the cluster metadata (added at format with
# --add-scram), PLAIN users are the user_NAME entries of the JAAS config
listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$PLAIN_USER="$PLAIN_PASSWORD";
EOF
  fi
  if [ -n "${KAFKA_EXTRA_PROPS:-}" ]; then
    printf '# KAFKA_EXTRA_PROPS\n%s\n' "$KAFKA_EXTRA_PROPS" >>"$SERVER_PROPS"
  fi
}

# ---------------------------------------------------------------------------------------------
# KAFKA_SECURE=1: certificates, users, client property files

# 24 characters of [A-Za-z0-9]: safe in every file and command line the stack writes it to.
random_password() {
  local p=""
  while [ ${#p} -lt 24 ]; do p="$p$(head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')"; done
  echo "${p:0:24}"
}

# DIR/tls: a self-signed CA; the broker's key and certificate (SAN IP:127.0.0.1, since
# librdkafka >= 2.0 verifies the broker's host name) in a PKCS#12 keystore; a client certificate
# for the SSL listener, its key encrypted (PKCS#8, AES-256) and the same pair as a PKCS#12
# keystore, both with TLS_PASSWORD. EC P-256 keys: made in milliseconds. Valid 30 days.
make_tls() {
  local d=$TLS_DIR ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1)
  command -v openssl >/dev/null || apt_install openssl
  rm -rf "$d"
  mkdir -p "$d"
  chmod 700 "$d"
  if ! (
    set -e
    cd "$d"
    export STACK_TLS_PW=$TLS_PASSWORD   # passwords through the environment, not argv
    openssl req -x509 -new "${ec[@]}" -nodes -keyout ca.key -out ca.crt -days 30 \
      -subj "/CN=clickstage local stack CA" \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
    openssl req -new "${ec[@]}" -nodes -keyout broker.key -out broker.csr -subj "/CN=127.0.0.1"
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >broker.ext
    openssl x509 -req -in broker.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
      -extfile broker.ext -out broker.crt
    openssl pkcs12 -export -in broker.crt -inkey broker.key -certfile ca.crt -name broker \
      -out broker.p12 -passout env:STACK_TLS_PW
    openssl req -new "${ec[@]}" -nodes -keyout client.plain.key -out client.csr \
      -subj "/CN=clickstage-client"
    printf 'extendedKeyUsage=clientAuth\n' >client.ext
    openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
      -extfile client.ext -out client.crt
    openssl pkcs8 -topk8 -v2 aes-256-cbc -in client.plain.key -out client.key \
      -passout env:STACK_TLS_PW
    openssl pkcs12 -export -in client.crt -inkey client.plain.key -certfile ca.crt \
      -name client -out client.p12 -passout env:STACK_TLS_PW
    rm -f client.plain.key ./*.csr ./*.ext ca.srl
  ) >"$d/openssl.log" 2>&1; then
    cat "$d/openssl.log" >&2
    die "openssl could not make the stack's certificates in $d"
  fi
  # librdkafka property files, one per way in (also kcat -F files): KEY=VALUE lines
  write_client_props ssl "security.protocol=ssl" "ssl.ca.location=$d/ca.crt" \
    "ssl.certificate.location=$d/client.crt" "ssl.key.location=$d/client.key" \
    "ssl.key.password=$TLS_PASSWORD"
  write_client_props scram "security.protocol=sasl_ssl" "ssl.ca.location=$d/ca.crt" \
    "sasl.mechanisms=SCRAM-SHA-512" "sasl.username=$SCRAM_USER" "sasl.password=$SCRAM_PASSWORD"
  write_client_props plain "security.protocol=sasl_ssl" "ssl.ca.location=$d/ca.crt" \
    "sasl.mechanisms=PLAIN" "sasl.username=$PLAIN_USER" "sasl.password=$PLAIN_PASSWORD"
  # the same for Kafka's Java tools (--command-config), e.g. `stack.sh tool ...TopicCommand`
  write_client_props scram-java "security.protocol=SASL_SSL" "sasl.mechanism=SCRAM-SHA-512" \
    "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"$SCRAM_USER\" password=\"$SCRAM_PASSWORD\";" \
    "ssl.truststore.type=PEM" "ssl.truststore.location=$d/ca.crt"
}

write_client_props() { # NAME KEY=VALUE...
  local f="$TLS_DIR/$1.properties" kv_
  shift
  {
    echo "# librdkafka client properties for this stack (scripts/stack.sh, KAFKA_SECURE=1)"
    for kv_ in "$@"; do echo "$kv_"; done
  } >"$f"
  chmod 600 "$f"
}

# librdkafka before 2.6.1 (Debian 12 has 2.0.2) cannot authenticate with SCRAM to Kafka 4.x:
# its client-final-message repeats the client nonce, which 3.x brokers tolerate and 4.x rejects
# as invalid credentials (librdkafka #4895). 0 when kcat's librdkafka can.
kcat_scram_ok() {
  [ "$(kafka_major)" -lt 4 ] && return 0
  local v
  v=$(kcat -V 2>&1 | sed -n 's/.*librdkafka \([0-9][0-9.]*\).*/\1/p' | head -1)
  [ -n "$v" ] && [ "$(printf '%s\n2.6.1\n' "$v" | sort -V | head -1)" = 2.6.1 ]
}

# Every secure way in answers metadata for its client: the SSL listener with the client
# certificate, the SASL_SSL listener as the SCRAM and as the PLAIN user. SCRAM on Kafka 4.x with
# an old librdkafka is checked with the broker's Java client instead (see kcat_scram_ok).
check_secure() {
  local w b
  for w in ssl scram plain; do
    b=127.0.0.1:$KAFKA_SASL_PORT
    [ $w = ssl ] && b=127.0.0.1:$KAFKA_SSL_PORT
    if [ $w = scram ] && ! kcat_scram_ok; then
      log "note: kcat's librdkafka cannot do SCRAM with Kafka $KAFKA_VERSION (needs librdkafka >= 2.6.1); checking the SCRAM user with the Java client"
      if [ -f "$KAFKA_LIBS_DIR/kafka-tools-$KAFKA_VERSION.jar" ]; then
        kafka_java org.apache.kafka.tools.TopicCommand --bootstrap-server "$b" \
          --command-config "$TLS_DIR/scram-java.properties" --list >"$TLS_DIR/check-$w.log" 2>&1 ||
          { cat "$TLS_DIR/check-$w.log" >&2; die "the SCRAM user is not accepted on $b"; }
      fi
      continue
    fi
    timeout 20 kcat -F "$TLS_DIR/$w.properties" -L -b "$b" -m 10 2>"$TLS_DIR/check-$w.log" |
      grep -q ' 1 brokers:' ||
      { cat "$TLS_DIR/check-$w.log" >&2; die "the $w listener/user does not answer on $b"; }
  done
}

# Kafka 3.x logs through reload4j (log4j 1.x config), 4.x through log4j2.
kafka_major() { echo "${KAFKA_VERSION%%.*}"; }
log_opt() { # broker|tools
  if [ "$(kafka_major)" -lt 4 ]; then
    if [ "$1" = broker ]; then echo "-Dlog4j.configuration=file:$KAFKA_CFG_DIR/log4j.properties"
    else echo "-Dlog4j.configuration=file:$KAFKA_CFG_DIR/tools-log4j.properties"; fi
  else
    if [ "$1" = broker ]; then echo "-Dlog4j2.configurationFile=$KAFKA_CFG_DIR/log4j2.properties"
    else echo "-Dlog4j2.configurationFile=$KAFKA_CFG_DIR/log4j2-tools.properties"; fi
  fi
}

kafka_java() { # runs a Kafka CLI class with the tools' quiet logging
  "$JAVA" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
    "$(log_opt tools)" -cp "$KAFKA_LIBS_DIR/*" "$@" 9>&- 8>&-
}

format_storage() {
  local out scram=()
  # KRaft keeps SCRAM credentials in the cluster metadata: the first ones come with the format
  [ "${KAFKA_SECURE:-0}" = 1 ] &&
    scram=(--add-scram "SCRAM-SHA-512=[name=$SCRAM_USER,password=$SCRAM_PASSWORD]")
  out=$(kafka_java kafka.tools.StorageTool format -t "$CLUSTER_ID" -c "$SERVER_PROPS" \
    ${scram[@]+"${scram[@]}"} 2>&1) ||
    { printf '%s\n' "$out" >&2; die "StorageTool format failed"; }
}

# Application class-data sharing (JDK 17 dynamic CDS archive) of the broker's classes, one per
# Kafka version and JDK build, next to the jars. It cuts the broker's start by ~1-4 s on 2 cores.
# The first broker of a version/JDK records it as it exits (at `down`/`kafka-restart`); if the
# archive does not fit (other JDK, changed jars) the JVM says so in kafka.log and runs without it.
# KAFKA_CDS=0 turns all of this off.
cds_archive() {
  local key
  key=$("$JAVA" -version 2>&1 | md5sum | cut -c1-12)
  echo "$(dirname "$KAFKA_LIBS_DIR")/broker-cds-$key.jsa"
}

start_kafka_proc() {
  local heap=${KAFKA_HEAP_OPTS:--Xmx512m -Xms512m} cds=() arch
  if [ "${KAFKA_CDS:-1}" = 1 ]; then
    arch=$(cds_archive)
    cds=(-XX:SharedArchiveFile="$arch")
    # shellcheck disable=SC2054  # the commas belong to one -Xlog option
    [ -s "$arch" ] || cds=(-XX:ArchiveClassesAtExit="$STACK_DIR/kafka.jsa.tmp" -Xlog:cds=error,cds+dynamic=error)
  fi
  printf '==== stack.sh: starting Kafka %s at %s\n' "$KAFKA_VERSION" "$(date '+%F %T')" >>"$KAFKA_LOG"
  # shellcheck disable=SC2086
  setsid "$JAVA" $heap -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
    -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true ${cds[@]+"${cds[@]}"} ${KAFKA_JVM_OPTS:-} \
    "$(log_opt broker)" -cp "$KAFKA_LIBS_DIR/*" kafka.Kafka "$SERVER_PROPS" \
    </dev/null >>"$KAFKA_LOG" 2>&1 9>&- 8>&- &
  echo $! >"$KAFKA_PIDFILE"
}

kafka_answers() {
  (exec 3<>"/dev/tcp/127.0.0.1/$KAFKA_PORT") 2>/dev/null || return 1
  timeout 10 kcat -L -b "127.0.0.1:$KAFKA_PORT" -m 3 2>/dev/null | grep -q ' 1 brokers:'
}

wait_kafka() {
  local deadline=$((SECONDS + KAFKA_START_TIMEOUT)) pid
  pid=$(cat "$KAFKA_PIDFILE")
  while :; do
    if ! pid_alive "$pid"; then
      tail -n 40 "$KAFKA_LOG" >&2
      die "Kafka broker (pid $pid) exited during startup; log: $KAFKA_LOG"
    fi
    kafka_answers && return 0
    if [ $SECONDS -ge $deadline ]; then
      tail -n 40 "$KAFKA_LOG" >&2
      die "Kafka broker did not answer metadata on 127.0.0.1:$KAFKA_PORT within ${KAFKA_START_TIMEOUT}s; log: $KAFKA_LOG"
    fi
    sleep 0.25
  done
}

# ---------------------------------------------------------------------------------------------
# redis

redis_sock_path() {
  local s="$STACK_DIR/redis.sock"
  # sun_path holds 107 bytes; a deep state dir gets a socket under /tmp instead.
  if [ ${#s} -gt 100 ]; then
    s="${TMPDIR:-/tmp}/clickstage-redis-$(printf '%s' "$STACK_DIR" | md5sum | cut -c1-12).sock"
  fi
  echo "$s"
}

start_redis_proc() {
  local persist
  mkdir -p "$STACK_DIR/redis"
  if [ "${REDIS_AOF:-0}" = 1 ]; then
    persist=(--save "" --appendonly yes --appendfsync "${REDIS_FSYNC:-always}")
  else
    persist=(--save "" --appendonly no)
  fi
  printf '==== stack.sh: starting redis at %s\n' "$(date '+%F %T')" >>"$REDIS_LOG"
  # cwd = data dir too, which lets `down` recognise a stray redis of this stack.
  (cd "$STACK_DIR/redis" && exec setsid redis-server --bind 127.0.0.1 --port "$REDIS_PORT" \
    --unixsocket "$REDIS_SOCK" --unixsocketperm 700 --dir "$STACK_DIR/redis" \
    --daemonize no --logfile "" "${persist[@]}" ${REDIS_EXTRA_ARGS:-} \
    </dev/null >>"$REDIS_LOG" 2>&1 9>&- 8>&-) &
  echo $! >"$REDIS_PIDFILE"
}

wait_redis() {
  local deadline=$((SECONDS + REDIS_START_TIMEOUT)) pid
  pid=$(cat "$REDIS_PIDFILE")
  while :; do
    if ! pid_alive "$pid"; then
      tail -n 20 "$REDIS_LOG" >&2
      die "redis-server (pid $pid) exited during startup; log: $REDIS_LOG"
    fi
    if [ "$(timeout 5 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] &&
       [ "$(timeout 5 redis-cli -s "$REDIS_SOCK" ping 2>/dev/null)" = PONG ]; then
      return 0
    fi
    if [ $SECONDS -ge $deadline ]; then
      tail -n 20 "$REDIS_LOG" >&2
      die "redis-server did not answer PING on 127.0.0.1:$REDIS_PORT within ${REDIS_START_TIMEOUT}s"
    fi
    sleep 0.1
  done
}

# ---------------------------------------------------------------------------------------------
# redis over TLS (REDIS_TLS=1): a TLS-only redis-server and an stunnel client in front of it

rtls_pid() { # NAME PIDFILE: the pid if alive and its command line names NAME
  local pid
  pid=$(cat "$2" 2>/dev/null) || return 1
  pid_alive "$pid" && [[ $(pid_cmdline "$pid") == *"$1"* ]] && echo "$pid"
}
stop_redis_tls() {
  local pid
  if pid=$(rtls_pid stunnel "$STUNNEL_PIDFILE"); then stop_pid stunnel "$pid"; fi
  if pid=$(rtls_pid redis-server "$RTLS_PIDFILE"); then stop_pid redis-tls "$pid"; fi
  rm -f "$STUNNEL_PIDFILE" "$RTLS_PIDFILE"
}
# CA + server certificate (SAN IP:127.0.0.1: stunnel checks it), EC P-256, 30 days; the
# server's config (its password in a file, not on a command line) and stunnel's
make_redis_tls() {
  local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1)
  command -v openssl >/dev/null || apt_install openssl
  rm -rf "$RTLS_DIR"; mkdir -p "$RTLS_DIR"; chmod 700 "$RTLS_DIR"
  if ! (
    set -e
    cd "$RTLS_DIR"
    openssl req -x509 -new "${ec[@]}" -nodes -keyout ca.key -out ca.crt -days 30 \
      -subj "/CN=clickstage local stack redis CA" \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
    openssl req -new "${ec[@]}" -nodes -keyout server.key -out server.csr -subj "/CN=127.0.0.1"
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
      -extfile server.ext -out server.crt
    rm -f ./*.csr ./*.ext ca.srl ca.key
  ) >"$RTLS_DIR/openssl.log" 2>&1; then
    cat "$RTLS_DIR/openssl.log" >&2
    die "openssl could not make the redis TLS certificates in $RTLS_DIR"
  fi
  printf 'requirepass %s\n' "$REDIS_TLS_PASSWORD" >"$RTLS_DIR/redis.conf"
  chmod 600 "$RTLS_DIR/redis.conf"
  # the stunnel client: plaintext on loopback in, TLS out, the server's certificate checked
  # against the CA and the address (the same file shape as deploy/k8s/redis-tls)
  {
    echo "; stunnel client in front of the TLS-only redis-server (scripts/stack.sh REDIS_TLS=1)"
    echo "foreground = yes"
    echo "pid ="
    echo "[redis]"
    echo "client = yes"
    echo "accept = 127.0.0.1:$REDIS_TLS_PROXY_PORT"
    echo "connect = 127.0.0.1:$REDIS_TLS_PORT"
    echo "CAfile = $RTLS_DIR/ca.crt"
    echo "verifyChain = yes"
    echo "checkIP = 127.0.0.1"
    echo "sslVersionMin = TLSv1.2"
  } >"$RTLS_DIR/stunnel.conf"
}
start_redis_tls() {
  command -v stunnel >/dev/null || apt_install stunnel4
  mkdir -p "$RTLS_DIR/data"
  (cd "$RTLS_DIR/data" && exec setsid redis-server "$RTLS_DIR/redis.conf" --bind 127.0.0.1 \
    --port 0 --tls-port "$REDIS_TLS_PORT" --tls-cert-file "$RTLS_DIR/server.crt" \
    --tls-key-file "$RTLS_DIR/server.key" --tls-ca-cert-file "$RTLS_DIR/ca.crt" \
    --tls-auth-clients no --dir "$RTLS_DIR/data" --save "" --appendonly no --daemonize no \
    --logfile "" </dev/null >>"$STACK_DIR/redis-tls.log" 2>&1 9>&- 8>&-) &
  echo $! >"$RTLS_PIDFILE"
  (exec setsid stunnel "$RTLS_DIR/stunnel.conf" </dev/null >>"$STACK_DIR/stunnel.log" 2>&1 9>&- 8>&-) &
  echo $! >"$STUNNEL_PIDFILE"
}
wait_redis_tls() { # PONG through stunnel (TLS to the server), with the password
  local deadline=$((SECONDS + REDIS_START_TIMEOUT))
  while :; do
    [ "$(REDISCLI_AUTH=$REDIS_TLS_PASSWORD timeout 5 redis-cli -h 127.0.0.1 -p "$REDIS_TLS_PROXY_PORT" ping 2>/dev/null)" = PONG ] && return 0
    if [ $SECONDS -ge $deadline ]; then
      tail -n 10 "$STACK_DIR/redis-tls.log" "$STACK_DIR/stunnel.log" >&2
      die "redis over TLS (stunnel 127.0.0.1:$REDIS_TLS_PROXY_PORT -> 127.0.0.1:$REDIS_TLS_PORT) did not answer within ${REDIS_START_TIMEOUT}s"
    fi
    sleep 0.1
  done
}

# ---------------------------------------------------------------------------------------------
# subcommands

UP_STARTED=0
up_cleanup() {
  # `up` failed: leave no process behind (logs stay for inspection).
  if [ "$UP_STARTED" = 1 ]; then
    log "up failed: stopping what it started"
    STOP_TIMEOUT=5 stop_kafka || true
    STOP_TIMEOUT=5 stop_redis || true
    STOP_TIMEOUT=5 stop_redis_tls || true
  fi
}

cmd_up() {
  # What the caller asks for; stack.conf of an earlier run (loaded below) must not override it.
  local want_version=${KAFKA_VERSION:-$DEFAULT_KAFKA_VERSION} want_libs=${KAFKA_LIBS_DIR:-}
  local want_aof=${REDIS_AOF:-0} want_fsync=${REDIS_FSYNC:-always} t0ns kp rp p
  local want_secure=${KAFKA_SECURE:-0} want_rtls=${REDIS_TLS:-0}
  case $want_secure in 0|1) ;; *) die "KAFKA_SECURE must be 0 or 1, got '$want_secure'" ;; esac
  case $want_rtls in 0|1) ;; *) die "REDIS_TLS must be 0 or 1, got '$want_rtls'" ;; esac
  t0ns=$(date +%s%N)
  lock_dir
  if load_conf; then
    kp=$(kafka_pid || true); rp=$(redis_pid || true)
    if [ -n "$kp" ] && [ -n "$rp" ] && kafka_answers; then
      [ "$want_secure" = 0 ] || [ "${KAFKA_SECURE:-0}" = 1 ] ||
        die "the stack in $STACK_DIR runs without KAFKA_SECURE=1; run: $0 down $STACK_DIR, then up again"
      [ "$want_rtls" = 0 ] || [ "${REDIS_TLS:-0}" = 1 ] ||
        die "the stack in $STACK_DIR runs without REDIS_TLS=1; run: $0 down $STACK_DIR, then up again"
      log "already up in $STACK_DIR (kafka pid $kp, redis pid $rp)"
      write_env; cat "$ENV_FILE"; return 0
    fi
    if [ -n "$kp" ] || [ -n "$rp" ]; then
      log "partly up in $STACK_DIR: stopping the rest, starting afresh"
      stop_kafka; stop_redis
    fi
    stop_redis_tls
    for p in $(stray_pids); do stop_pid "stray process" "$p"; done
  fi
  # A fresh stack: new ports, empty data. Logs of earlier runs are kept (appended).
  KAFKA_VERSION=$want_version
  KAFKA_LIBS_DIR=${want_libs:-${XDG_CACHE_HOME:-$HOME/.cache}/clickstage/kafka-$KAFKA_VERSION/libs}
  REDIS_AOF=$want_aof
  REDIS_FSYNC=$want_fsync
  KAFKA_SECURE=$want_secure
  REDIS_TLS=$want_rtls
  check_fsync
  check_version
  ensure_prereqs
  fetch_jars
  rm -rf "$STACK_DIR/kafka" "$STACK_DIR/redis" "$ENV_FILE" "$KAFKA_PIDFILE" "$REDIS_PIDFILE"
  KAFKA_PORT=$(pick_port)
  CONTROLLER_PORT=$(pick_port "$KAFKA_PORT")
  REDIS_PORT=$(pick_port "$KAFKA_PORT" "$CONTROLLER_PORT")
  if [ "$KAFKA_SECURE" = 1 ]; then
    KAFKA_SSL_PORT=$(pick_port "$KAFKA_PORT" "$CONTROLLER_PORT" "$REDIS_PORT")
    KAFKA_SASL_PORT=$(pick_port "$KAFKA_PORT" "$CONTROLLER_PORT" "$REDIS_PORT" "$KAFKA_SSL_PORT")
    TLS_PASSWORD=$(random_password)
    SCRAM_PASSWORD=$(random_password)
    PLAIN_PASSWORD=$(random_password)
    make_tls
  else
    rm -rf "$TLS_DIR"
  fi
  if [ "$REDIS_TLS" = 1 ]; then
    REDIS_TLS_PORT=$(pick_port "$KAFKA_PORT" "$CONTROLLER_PORT" "$REDIS_PORT" "${KAFKA_SSL_PORT:-0}" "${KAFKA_SASL_PORT:-0}")
    REDIS_TLS_PROXY_PORT=$(pick_port "$KAFKA_PORT" "$CONTROLLER_PORT" "$REDIS_PORT" "${KAFKA_SSL_PORT:-0}" "${KAFKA_SASL_PORT:-0}" "$REDIS_TLS_PORT")
    REDIS_TLS_PASSWORD=$(random_password)
    make_redis_tls
  else
    rm -rf "$RTLS_DIR"
  fi
  REDIS_SOCK=$(redis_sock_path)
  rm -f "$REDIS_SOCK"
  CLUSTER_ID=$(new_cluster_id)
  write_conf
  write_server_props
  UP_STARTED=1
  trap up_cleanup EXIT
  trap 'exit 130' INT TERM HUP
  format_storage
  start_kafka_proc
  start_redis_proc   # boots while the JVM does
  [ "$REDIS_TLS" = 0 ] || start_redis_tls
  wait_redis
  [ "$REDIS_TLS" = 0 ] || wait_redis_tls
  wait_kafka
  [ "$KAFKA_SECURE" = 0 ] || check_secure
  trap - EXIT INT TERM HUP
  write_env
  local sec=""
  [ "$KAFKA_SECURE" = 0 ] || sec=" (SSL on $KAFKA_SSL_PORT, SASL_SSL on $KAFKA_SASL_PORT)"
  [ "$REDIS_TLS" = 0 ] || sec+=", redis over TLS on $REDIS_TLS_PORT (stunnel on $REDIS_TLS_PROXY_PORT)"
  log "up in $(( ($(date +%s%N) - t0ns) / 1000000 )) ms: Kafka $KAFKA_VERSION on 127.0.0.1:$KAFKA_PORT$sec (pid $(cat "$KAFKA_PIDFILE")), redis on 127.0.0.1:$REDIS_PORT (pid $(cat "$REDIS_PIDFILE")); env: $ENV_FILE"
  cat "$ENV_FILE"
}

cmd_down() {
  [ -d "$STACK_DIR" ] || { log "no stack in $STACK_DIR"; return 0; }
  lock_dir
  load_conf || true
  stop_kafka
  stop_redis
  stop_redis_tls
  local p
  for p in $(stray_pids); do stop_pid "stray process" "$p"; done
  [ -n "${REDIS_SOCK:-}" ] && rm -f "$REDIS_SOCK"
  rm -f "$ENV_FILE"
  log "down ($STACK_DIR)"
}

cmd_status() {
  if ! load_conf; then echo "no stack in $STACK_DIR"; return 3; fi
  local kp rp up=0 k r
  if kp=$(kafka_pid); then
    if kafka_answers; then k="running (pid $kp), answers on 127.0.0.1:$KAFKA_PORT"; up=$((up + 1))
    else k="process $kp alive but NOT answering on 127.0.0.1:$KAFKA_PORT"; fi
  else k="stopped (port $KAFKA_PORT)"; fi
  if rp=$(redis_pid); then
    if [ "$(timeout 5 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; then
      r="running (pid $rp), PONG on 127.0.0.1:$REDIS_PORT and $REDIS_SOCK"; up=$((up + 1))
    else r="process $rp alive but NOT answering PING on 127.0.0.1:$REDIS_PORT"; fi
  else r="stopped (port $REDIS_PORT)"; fi
  echo "stack $STACK_DIR"
  echo "kafka $KAFKA_VERSION: $k"
  echo "redis (aof=${REDIS_AOF:-0}): $r"
  case $up in 2) return 0 ;; 0) return 3 ;; *) return 1 ;; esac
}

cmd_env() {
  [ -f "$ENV_FILE" ] || die "stack in $STACK_DIR is not up (no $ENV_FILE); run: $0 up"
  cat "$ENV_FILE"
}

need_conf() { load_conf || die "no stack in $STACK_DIR; run: $0 up"; JAVA=$(java_bin); }

cmd_redis_restart() {
  lock_dir
  need_conf
  stop_redis
  port_free "$REDIS_PORT" || die "redis port $REDIS_PORT was taken while redis was down"
  rm -f "$REDIS_SOCK"
  start_redis_proc
  wait_redis
  write_env
  log "redis restarted (pid $(cat "$REDIS_PIDFILE"), aof=${REDIS_AOF:-0})"
}

cmd_kafka_restart() {
  lock_dir
  need_conf
  stop_kafka
  port_free "$KAFKA_PORT" && port_free "$CONTROLLER_PORT" ||
    die "Kafka port $KAFKA_PORT or $CONTROLLER_PORT was taken while the broker was down"
  start_kafka_proc
  wait_kafka
  write_env
  log "kafka restarted (pid $(cat "$KAFKA_PIDFILE"))"
}

# Single-service faults for the fault suite (tests/faults/run.sh): stop or kill one service and
# start it again later with the same ports and data, each step on its own.
check_fsync() {
  case ${REDIS_FSYNC:-always} in always|everysec|no) ;;
    *) die "REDIS_FSYNC must be always, everysec or no, got '$REDIS_FSYNC'" ;; esac
  case ${REDIS_AOF:-0} in 0|1) ;; *) die "REDIS_AOF must be 0 or 1, got '$REDIS_AOF'" ;; esac
}

kill_pid() { # NAME PID: SIGKILL and wait until it is gone
  local i
  pid_alive "$2" || return 0
  log "killing $1 (pid $2) with SIGKILL"
  kill -KILL "$2" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    pid_alive "$2" || return 0
    sleep 0.05
  done
  die "$1 (pid $2) survived SIGKILL"
}

cmd_redis_stop() {
  lock_dir
  need_conf
  redis_pid >/dev/null || { log "redis is not running"; return 0; }
  stop_redis
  log "redis stopped"
}

cmd_redis_kill() {
  local pid
  lock_dir
  need_conf
  if pid=$(redis_pid); then kill_pid redis "$pid"; else log "redis is not running"; fi
  rm -f "$REDIS_PIDFILE"
}

cmd_redis_start() {
  # Settings given now win over stack.conf's (and are saved there for later restarts).
  local want_aof=${REDIS_AOF:-} want_fsync=${REDIS_FSYNC:-} empty=${REDIS_EMPTY:-0}
  lock_dir
  need_conf
  [ -z "$want_aof" ] || REDIS_AOF=$want_aof
  [ -z "$want_fsync" ] || REDIS_FSYNC=$want_fsync
  check_fsync
  if redis_pid >/dev/null; then die "redis of $STACK_DIR is running; stop it first"; fi
  port_free "$REDIS_PORT" || die "redis port $REDIS_PORT is taken"
  rm -f "$REDIS_SOCK"
  if [ "$empty" = 1 ]; then
    rm -rf "$STACK_DIR/redis"
    log "redis data dir deleted"
  fi
  write_conf
  start_redis_proc
  wait_redis
  write_env
  log "redis started (pid $(cat "$REDIS_PIDFILE"), aof=${REDIS_AOF:-0}, fsync=${REDIS_FSYNC:-always})"
}

cmd_kafka_stop() {
  lock_dir
  need_conf
  kafka_pid >/dev/null || { log "Kafka is not running"; return 0; }
  stop_kafka
  log "kafka stopped"
}

cmd_kafka_kill() {
  local pid
  lock_dir
  need_conf
  if pid=$(kafka_pid); then kill_pid kafka "$pid"; else log "Kafka is not running"; fi
  rm -f "$KAFKA_PIDFILE" "$STACK_DIR/kafka.jsa.tmp"
}

cmd_kafka_start() {
  lock_dir
  need_conf
  if kafka_pid >/dev/null; then die "Kafka of $STACK_DIR is running; stop it first"; fi
  if ! port_free "$KAFKA_PORT" || ! port_free "$CONTROLLER_PORT"; then
    die "Kafka port $KAFKA_PORT or $CONTROLLER_PORT is taken"
  fi
  start_kafka_proc
  wait_kafka
  write_env
  log "kafka started (pid $(cat "$KAFKA_PIDFILE"))"
}

# Partition count of TOPIC as the broker's metadata shows it ("" if unknown).
topic_partitions() {
  timeout 15 kcat -L -b "127.0.0.1:$KAFKA_PORT" -t "$1" -m 5 2>/dev/null |
    sed -n 's/.*topic "\(.*\)" with \([0-9]*\) partitions:.*/\1 \2/p' |
    awk -v t="$1" '$1 == t {print $2}'
}

cmd_topic() { # NAME PARTITIONS [key=value ...]
  local name=$1 parts=$2 n i
  shift 2
  [[ $parts =~ ^[1-9][0-9]*$ ]] || die "PARTITIONS must be a positive number, got '$parts'"
  need_conf
  kafka_pid >/dev/null || die "Kafka of $STACK_DIR is not running"
  if [ -f "$KAFKA_LIBS_DIR/kafka-tools-$KAFKA_VERSION.jar" ]; then
    local cfg=() kv_
    for kv_ in "$@"; do cfg+=(--config "$kv_"); done
    kafka_java org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$KAFKA_PORT" \
      --create --if-not-exists --topic "$name" --partitions "$parts" --replication-factor 1 \
      ${cfg[@]+"${cfg[@]}"} >&2 || die "TopicCommand --create $name failed"
  else
    kafka_java "$KAFKA_CFG_DIR/CreateTopic.java" "127.0.0.1:$KAFKA_PORT" "$name" "$parts" "$@" >&2 ||
      die "creating topic $name failed"
  fi
  for ((i = 0; i < 60; i++)); do
    n=$(topic_partitions "$name")
    [ -n "$n" ] && break
    sleep 0.25
  done
  [ "$n" = "$parts" ] || die "topic $name has ${n:-no} partitions, wanted $parts (it existed before?)"
  log "topic $name: $parts partitions"
}

cmd_tool() {
  [ $# -ge 1 ] || die "usage: $0 tool MAINCLASS [ARGS...]   (e.g. org.apache.kafka.tools.consumer.group.ConsumerGroupCommand)"
  load_conf || true
  KAFKA_VERSION=${KAFKA_VERSION:-$DEFAULT_KAFKA_VERSION}
  KAFKA_LIBS_DIR=${KAFKA_LIBS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/clickstage/kafka-$KAFKA_VERSION/libs}
  JAVA=$(java_bin)
  [ -f "$KAFKA_LIBS_DIR/.complete" ] || die "no jars in $KAFKA_LIBS_DIR; run: $0 fetch"
  kafka_java "$@"
}

cmd_fetch() {
  KAFKA_VERSION=${KAFKA_VERSION:-$DEFAULT_KAFKA_VERSION}
  KAFKA_LIBS_DIR=${KAFKA_LIBS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/clickstage/kafka-$KAFKA_VERSION/libs}
  check_version
  ensure_prereqs
  fetch_jars
  echo "$KAFKA_LIBS_DIR"
}

main() {
  local cmd=${1:-}
  [ $# -gt 0 ] && shift
  case $cmd in
    up|down|status|env|redis-restart|kafka-restart|redis-stop|redis-kill|redis-start|kafka-stop|kafka-kill|kafka-start|purge)
      [ $# -le 1 ] || usage
      resolve_dir "${1:-}"
      case $cmd in
        up) cmd_up ;;
        down) cmd_down ;;
        status) cmd_status ;;
        env) cmd_env ;;
        redis-restart) cmd_redis_restart ;;
        kafka-restart) cmd_kafka_restart ;;
        redis-stop) cmd_redis_stop ;;
        redis-kill) cmd_redis_kill ;;
        redis-start) cmd_redis_start ;;
        kafka-stop) cmd_kafka_stop ;;
        kafka-kill) cmd_kafka_kill ;;
        kafka-start) cmd_kafka_start ;;
        purge) cmd_down; rm -rf "$STACK_DIR"; log "removed $STACK_DIR" ;;
      esac ;;
    topic)
      [ $# -ge 2 ] || usage
      local name=$1 parts=$2
      shift 2
      if [ $# -gt 0 ] && [[ $1 != *=* ]]; then resolve_dir "$1"; shift; else resolve_dir ""; fi
      cmd_topic "$name" "$parts" "$@" ;;
    tool)
      resolve_dir ""
      cmd_tool "$@" ;;
    fetch) cmd_fetch ;;
    -h|--help|help|"") usage ;;
    *) log "unknown subcommand: $cmd"; usage ;;
  esac
}

main "$@"
