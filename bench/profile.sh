#!/usr/bin/env bash
# bench/profile.sh — one drain under perf, CPU by thread and by symbol (make profile).
#
# Starts its own Kafka broker + redis-server (scripts/stack.sh up in a temp dir, stopped at the
# end), produces PROFILE_EVENTS generated events (PROFILE_COMPRESSION, 8 partitions), then runs
# `clickstage --drain --threads PROFILE_THREADS` under `perf record` (user and kernel samples of
# the daemon's threads, PROFILE_FREQ Hz; PROFILE_CALLGRAPH=1 adds call graphs) while sampling
# /proc/PID/task/*/stat. Writes into bench/out/ (created if missing, other files left alone):
#   profile.data               the perf recording (perf report -i bench/out/profile.data)
#   profile-threads.txt        CPU seconds and ns per event of each thread (/proc), and perf's
#                              share of samples by thread (comm)
#   profile-symbols.txt        perf's top symbols by thread (comm, dso, symbol)
#   profile-symbols-all.txt    perf's top symbols over all threads (dso, symbol)
# Progress goes to stdout; the last line is one JSON object (events, CPU ns per event, CPU per
# thread, the top symbols). Thread names: cs-worker-N (workers), rdk:broker<id> (librdkafka's
# fetch threads, one per broker and consumer handle), clickstage (control thread: polling,
# flushes), rdk:main (librdkafka's timers).
#
# Knobs: PROFILE_EVENTS=4000000 PROFILE_CUSTOMERS=100000 PROFILE_THREADS=2 PROFILE_FETCH_THREADS=auto
#        PROFILE_COMPRESSION=lz4 PROFILE_FREQ=999 PROFILE_CALLGRAPH= PROFILE_ARGS= (more daemon
#        flags) E2E_NO_BUILD=1 (use $BUILD as it is) KEEP=1 (keep the temp dir)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
B=${BUILD:-build}
EVENTS=${PROFILE_EVENTS:-4000000}
CUSTOMERS=${PROFILE_CUSTOMERS:-100000}
THREADS=${PROFILE_THREADS:-2}
FETCH=${PROFILE_FETCH_THREADS:-auto}
COMP=${PROFILE_COMPRESSION:-lz4}
FREQ=${PROFILE_FREQ:-999}
OUT=$ROOT/bench/out
RULES=$ROOT/deploy/rules/retail.yaml
say() { printf '[%s] %s\n' "$(date +%T)" "$*"; }
die() { say "FAILED: $*"; exit 1; }
command -v perf >/dev/null || die "no perf (apt-get install linux-perf)"
mkdir -p "$OUT"
if [ -z "${E2E_NO_BUILD:-}" ]; then
  make -s "$B/clickstage" "$B/clickstage-loadgen" >/dev/null || die "make"
fi
WORK=$(mktemp -d /tmp/cs-profile.XXXXXX)
STACK=$WORK/stack
DPID=""
cleanup() {
  [ -n "$DPID" ] && kill "$DPID" 2>/dev/null
  [ -d "$STACK" ] && scripts/stack.sh down "$STACK" >/dev/null 2>&1
  if [ -n "${KEEP:-}" ]; then say "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
BIN=$WORK/bin   # a private copy: others may rebuild $B meanwhile
mkdir -p "$BIN"
cp "$B/clickstage" "$B/clickstage-loadgen" "$BIN/" || die "no binaries in $B"
COMMIT="$(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD -- cmd pipeline include 2>/dev/null || echo +dirty)"
say "clickstage $COMMIT; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); stack up in $STACK"
scripts/stack.sh up "$STACK" >"$WORK/stack-up.log" 2>&1 || { tail -20 "$WORK/stack-up.log"; die "stack up"; }
# shellcheck disable=SC1091
. "$STACK/env"
scripts/stack.sh topic prof 8 "$STACK" retention.ms=-1 >/dev/null 2>&1 || die "topic"
say "producing $EVENTS events of $CUSTOMERS customers ($COMP, 8 partitions)"
"$BIN/clickstage-loadgen" --brokers "$KAFKA_BROKERS" --rules "$RULES" --partitions 8 \
  --compression "$COMP" --progress 0 --topic prof --events "$EVENTS" --customers "$CUSTOMERS" \
  >"$WORK/gen.log" 2>&1 ||
  { tail -5 "$WORK/gen.log"; die "loadgen"; }
CG=()
[ -n "${PROFILE_CALLGRAPH:-}" ] && CG=(--call-graph dwarf)
say "perf record -F $FREQ ${CG[*]} -- clickstage --drain --threads $THREADS --fetch-threads $FETCH"
# shellcheck disable=SC2086
perf record -F "$FREQ" "${CG[@]}" -o "$OUT/profile.data" -- "$BIN/clickstage" --drain \
  --threads "$THREADS" --fetch-threads "$FETCH" --http-listen "" --brokers "$KAFKA_BROKERS" \
  --redis "$REDIS_URL" --rules "$RULES" --topics prof --group g-prof --prefix prof \
  --log-format json ${PROFILE_ARGS:-} >"$WORK/drain.log" 2>&1 & PPID_=$!   # perf's lines too
for _ in $(seq 1 200); do DPID=$(pgrep -P "$PPID_" | head -1); [ -n "$DPID" ] && break; sleep 0.01; done
: >"$WORK/threads"
while [ -n "$DPID" ] && [ -d "/proc/$DPID/task" ]; do
  cat /proc/"$DPID"/task/*/stat >>"$WORK/threads" 2>/dev/null; sleep 0.1
done
wait "$PPID_" || { tail -5 "$WORK/drain.log"; die "drain under perf"; }
DPID_SAVED=$DPID; DPID=""
cp "$WORK/drain.log" "$OUT/profile-drain.log"
perf report -i "$OUT/profile.data" --no-children --sort comm --stdio 2>/dev/null |
  grep -v '^#' | grep -v '^$' >"$WORK/perf-comm.txt"
perf report -i "$OUT/profile.data" --no-children --sort comm,dso,sym --stdio 2>/dev/null |
  grep -v '^#' | grep -v '^$' | head -120 >"$OUT/profile-symbols.txt"
perf report -i "$OUT/profile.data" --no-children --sort dso,sym --stdio 2>/dev/null |
  grep -v '^#' | grep -v '^$' | head -80 >"$OUT/profile-symbols-all.txt"
python3 - "$WORK" "$OUT" "$DPID_SAVED" "$(getconf CLK_TCK)" "$COMMIT" "$THREADS" "$FETCH" "$COMP" "$CUSTOMERS" <<'EOF'
import json, re, sys
w, out, dpid, hz, commit, threads, fetch, comp, customers = sys.argv[1:10]
hz = int(hz)
events = 0
for line in open(f'{w}/drain.log'):
    try: o = json.loads(line)
    except ValueError: continue
    m = re.match(r'drain \S+: from offset (-?\d+) to (\d+)', o.get('msg', ''))
    if m: events += int(m.group(2)) - max(0, int(m.group(1)))
thr = {}
for line in open(f'{w}/threads'):
    try:
        tid, rest = line.split(' (', 1); comm, rest = rest.rsplit(') ', 1); f = rest.split()
        thr[tid] = (comm if tid != dpid else comm + ' (main)', max(thr.get(tid, ('', 0))[1], (int(f[11]) + int(f[12])) / hz))
    except (ValueError, IndexError): pass
rows = sorted(thr.values(), key=lambda x: -x[1])
ev = max(events, 1)
total = sum(v for _, v in rows)
with open(f'{out}/profile-threads.txt', 'w') as fo:
    fo.write(f'# clickstage {commit}: --drain --threads {threads} --fetch-threads {fetch}, {events} {comp} events of {customers} customers\n')
    fo.write('# thread                 CPU s   ns/event (of the whole stream)   (from /proc/PID/task)\n')
    for c, v in rows:
        fo.write(f'{c:24s} {v:7.2f}  {v * 1e9 / ev:8.1f}\n')
    fo.write(f'{"all threads":24s} {total:7.2f}  {total * 1e9 / ev:8.1f}\n\n# perf: share of samples by thread\n')
    fo.write(open(f'{w}/perf-comm.txt').read())
syms = []
for line in open(f'{out}/profile-symbols.txt'):
    f = line.split(None, 3)
    if len(f) == 4 and f[0].endswith('%'):
        syms.append([f[1], f[2], f[3].strip(), float(f[0].rstrip('%'))])
print(open(f'{out}/profile-threads.txt').read())
print('top symbols (comm, dso, symbol):')
for s in syms[:25]: print(f'  {s[3]:6.2f}%  {s[0]:16s} {s[1]:24s} {s[2]}')
print(json.dumps(dict(bench='profile', commit=commit, events=events, customers=int(customers),
                      threads=int(threads), fetch_threads=fetch,
                      compression=comp, cpu_ns_per_event=round(total * 1e9 / ev, 1),
                      threads_ns_per_event=[[c, round(v * 1e9 / ev, 1)] for c, v in rows if v > 0],
                      top_symbols=syms[:15],
                      files=['bench/out/profile.data', 'bench/out/profile-threads.txt',
                             'bench/out/profile-symbols.txt', 'bench/out/profile-symbols-all.txt'])))
EOF
