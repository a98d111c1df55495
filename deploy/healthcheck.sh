#!/bin/bash
# Container health probe for clickstage: GET /healthz on the daemon's own HTTP server.
# Exit 0 = healthy (HTTP 200), 1 = unhealthy. Used by the image's HEALTHCHECK (docker, compose);
# Kubernetes uses httpGet probes instead (deploy/k8s/deployment.yaml).
#
# bash's /dev/tcp only: debian:12-slim has bash (it is Essential) but no curl or wget, and a
# probe should not bring an HTTP client library and its dependencies into the image.
#
#   CLICKSTAGE_HTTP_LISTEN   the daemon's listen address (host:port or [v6]:port); the probe
#                            connects to its port on loopback when the host is a wildcard
#   HEALTHCHECK_PATH         default /healthz (e.g. /readyz)
#   HEALTHCHECK_TIMEOUT      seconds for connect + answer, default 3
set -u

listen=${CLICKSTAGE_HTTP_LISTEN-0.0.0.0:9464}
path=${HEALTHCHECK_PATH:-/healthz}
timeout=${HEALTHCHECK_TIMEOUT:-3}

if [ -z "$listen" ]; then
  # HTTP is switched off (CLICKSTAGE_HTTP_LISTEN=""): nothing to ask; the container runtime
  # still sees the process die if it does.
  echo "healthcheck: HTTP server disabled (CLICKSTAGE_HTTP_LISTEN is empty); not probing"
  exit 0
fi

port=${listen##*:}
host=${listen%:*}
host=${host#[}
host=${host%]}
case $host in
  "" | 0.0.0.0 | "*") host=127.0.0.1 ;;
  :: | ::0) host=::1 ;;
esac
case $port in
  "" | *[!0-9]* | 0) echo "healthcheck: cannot probe listen address '$listen'"; exit 1 ;;
esac

# Connect, ask, and wait at most $timeout s for the status line: a daemon that accepts but
# never answers is unhealthy (the runtime's own --timeout is the outer bound).
if ! exec 3<>"/dev/tcp/$host/$port"; then
  echo "healthcheck: cannot connect to $host:$port"
  exit 1
fi 2>/dev/null
printf 'GET %s HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n\r\n' "$path" >&3
status=""
IFS=' ' read -r -t "$timeout" _ status _ <&3 || true
status=${status%$'\r'}
# read the rest (headers and a short body) so the server sees an orderly close, not a reset
while IFS= read -r -t "$timeout" _ <&3; do :; done
exec 3<&-
if [ "$status" = 200 ]; then
  exit 0
fi
echo "healthcheck: GET $path on $host:$port answered '${status:-nothing}'"
exit 1
