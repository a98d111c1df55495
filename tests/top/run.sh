#!/usr/bin/env bash
# clickstage-top end to end: its own redis-server (Debian /usr/bin/redis-server) on a free
# loopback port in a temp dir, the known counts of tests/top/fixture.redis, then
#   0. the unit tests of the pure layers (tests/top/test_model.c, cmocka);
#   1. --once: the exact numbers and conversion percentages (expected strings computed here from
#      what redis-cli reads back), journey discovery, --dimension, STALE, unix socket, errors;
#      the same numbers under a decimal-comma locale (de_DE.UTF-8, made here with localedef);
#      SPEC 3.1 identity: a real Kafka broker (scripts/stack.sh, in the temp dir) and
#      `clickstage --drain` of a --login stream with identity: -> the merges line with the
#      identity hash's numbers (= the generator's ground truth); the same stream drained without
#      identity: -> no merges line (TOP_NO_KAFKA=1 skips this part);
#   2. the live view in tmux (140x45): numbers on screen; HINCRBY + PUBLISH shows within 2 s
#      (with --poll 30, so only the update message can have caused it); 'r' refreshes; 'd'
#      switches the breakdown dimension; Redis stopped -> "REDIS DOWN" banner; Redis restarted on
#      the same port -> resubscribed and recovered; 'q' exits 0.
# Never touches a Redis it did not start. Leaves nothing running. Screen captures go to
# tests/top/out/ (screen.txt: the live view after start-up).
# Each check prints "PASS name" or "FAIL name: why"; the last line is "top: N passed, N failed".
#   TOP_BIN=/path/to/clickstage-top tests/top/run.sh   test another build (e.g. ASan)
#   KEEP=1                                             keep the temp dir
#   TOP_NO_KAFKA=1                                     skip the identity drain (no broker)
set -uo pipefail
cd "$(dirname "$0")/../.."
B=${BUILD:-build}
OUT=tests/top/out
FIX=tests/top/fixture.redis
mkdir -p "$OUT"
pass=0; fail=0
ok() { echo "PASS $1"; pass=$((pass+1)); }
bad() { echo "FAIL $1: $2"; fail=$((fail+1)); }
check() { if [ "$2" = "$3" ]; then ok "$1"; else bad "$1" "got '$2', want '$3'"; fi; }
finish() { echo "top: $pass passed, $fail failed"; [ "$fail" -eq 0 ]; exit $?; }

for t in redis-server redis-cli tmux; do
  command -v $t >/dev/null || { bad deps "$t not installed (make deps)"; finish; }
done

WORK=$(mktemp -d /tmp/cs-top.XXXXXX)
trap 'rm -rf "$WORK"' EXIT   # replaced by the full cleanup below
CFLAGS="-std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wstrict-prototypes -Wno-unused-parameter -Werror -g -O1"
BIN=${TOP_BIN:-$B/clickstage-top}
if [ -z "${TOP_BIN:-}" ]; then
  if ! make -s BUILD="$B" WERROR=-Werror "$B/clickstage-top" >"$WORK/make.log" 2>&1; then
    # clickstage-top needs only the Redis layer of the library: when the tree's make is broken
    # for some other reason, still test these sources (the release build phase reports make).
    echo "NOTE: make $B/clickstage-top failed, building directly:"; sed 's/^/    /' "$WORK/make.log" | tail -5
    BIN=$WORK/clickstage-top
    cc $CFLAGS -Iinclude -Ipipeline -o "$BIN" cmd/clickstage-top/*.c pipeline/redis.c \
      pipeline/redisurl.c pipeline/rkeys.c pipeline/log.c pipeline/timeto.c -lhiredis -lncursesw 2>"$WORK/cc-top.log" ||
      { sed 's/^/    /' "$WORK/cc-top.log" | head -20; bad build "clickstage-top does not compile"; finish; }
  fi
fi
[ -x "$BIN" ] || { bad build "$BIN missing"; finish; }
TSOCK=$WORK/tmux.sock
RPID=
tm() { tmux -S "$TSOCK" "$@"; }
stop_redis() {
  if [ -n "$RPID" ] && kill -0 "$RPID" 2>/dev/null; then
    kill "$RPID" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$RPID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$RPID" 2>/dev/null
  fi
  wait "$RPID" 2>/dev/null
  RPID=
}
STACK=
cleanup() {
  tm kill-server >/dev/null 2>&1
  stop_redis
  [ -n "$STACK" ] && scripts/stack.sh down "$STACK" >/dev/null 2>&1
  [ -n "${KEEP:-}" ] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT

# ---- 0. unit tests of model/render/url -------------------------------------------------------
if cc $CFLAGS -Icmd/clickstage-top -Ipipeline -o "$WORK/test_model" tests/top/test_model.c \
     cmd/clickstage-top/model.c cmd/clickstage-top/render.c cmd/clickstage-top/url.c \
     pipeline/redisurl.c pipeline/rkeys.c pipeline/timeto.c -lcmocka \
     2>"$WORK/cc.log"; then
  uout=$("$WORK/test_model" 2>&1); urc=$?
  up=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' <<<"$uout" | tail -1)
  uf=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' <<<"$uout" | tail -1)
  pass=$((pass + ${up:-0})); fail=$((fail + ${uf:-0}))
  echo "unit (tests/top/test_model.c): ${up:-0} passed, ${uf:-0} failed"
  if [ "$urc" -ne 0 ]; then grep -E 'FAILED|ERROR|LINE' <<<"$uout" | sed 's/^/    /'
    [ "${uf:-0}" = 0 ] && bad unit "test_model exited $urc"; fi
else
  sed 's/^/    /' "$WORK/cc.log" | head -20; bad unit "test_model did not compile"
fi

# ---- Redis: our own, on a free loopback port ---------------------------------------------------
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# start_redis [PORT]: starts redis-server (on PORT, or a free random one) and sets PORT and RPID.
start_redis() {
  local want=${1:-} p i
  for i in $(seq 30); do
    p=${want:-$(( (RANDOM * 32768 + RANDOM) % 30000 + 20000 ))}
    if port_busy "$p"; then [ -n "$want" ] && { sleep 0.2; continue; }; continue; fi
    redis-server --port "$p" --bind 127.0.0.1 --unixsocket "$WORK/redis.sock" --unixsocketperm 700 \
      --save "" --appendonly no --dir "$WORK" --logfile "$WORK/redis.log" --daemonize no &
    RPID=$!
    for _ in $(seq 50); do
      kill -0 "$RPID" 2>/dev/null || break
      # ours, not some other server on that port: the pid must match
      if [ "$(redis-cli -p "$p" INFO server 2>/dev/null | tr -d '\r' | sed -n 's/^process_id://p')" = "$RPID" ]; then
        PORT=$p; return 0
      fi
      sleep 0.1
    done
    stop_redis
  done
  return 1
}
rcli() { redis-cli -p "$PORT" "$@"; }
now_ms() { date +%s%3N; }
load_fixture() {
  grep -v '^#' "$FIX" | rcli >"$WORK/load.log" 2>&1 || return 1
  grep -q ERR "$WORK/load.log" && return 1
  rcli HSET 'clickstage:{demo}:meta' updated_ms "$(now_ms)" >/dev/null
}
if ! start_redis; then bad redis "could not start redis-server"; finish; fi
echo "redis-server pid $RPID on 127.0.0.1:$PORT ($WORK)"
URL=redis://127.0.0.1:$PORT/0
if load_fixture; then ok fixture_loaded; else bad fixture_loaded "$(head -5 "$WORK/load.log")"; finish; fi

# ---- expected values, from what Redis holds -----------------------------------------------------
K='clickstage:{demo}'
IFS=, read -r -a STAGES <<<"$(rcli HGET "$K:meta" stages)"
# stage -> "open entered ended customers reached>= conv med p90 c.med c.p90 c.conv": reached>= is
# the SPEC §4.1 funnel (transitions crossing into the stage or beyond), conv its ratio, the times
# the median and p90 of time_to / customer_time_to interpolated within a bucket, c.conv the ratio
# of customers at the stage or further to those at the previous one or further; written out here
# from what redis-cli reads back (pipeline/timeto.c has its own)
declare -A EXP
exp_rows() {
  local s
  for s in active reached ended customers transitions; do rcli HGETALL "$K:$s" >"$WORK/h.$s"; done
  for s in "${STAGES[@]}"; do
    rcli HGETALL "$K:time_to:$s" >"$WORK/tt.$s"; rcli HGETALL "$K:customer_time_to:$s" >"$WORK/ctt.$s"
  done
  python3 - "$WORK" "${STAGES[@]}" <<'PYEOF'
import sys
work, stages = sys.argv[1], sys.argv[2:]
def h(path):
    l = open(path).read().split("\n")
    return {l[i]: int(l[i + 1]) for i in range(0, len(l) - 1, 2) if l[i]}
H = {n: h(f"{work}/h.{n}") for n in ("active", "reached", "ended", "customers", "transitions")}
pos = {s: i + 1 for i, s in enumerate(stages)}; pos["_entry"] = 0
def at_least(k):
    t = 0
    for f, v in H["transitions"].items():
        a, b = f.split(">")
        if a in pos and b in pos and pos[a] < k <= pos[b]: t += v
    return t
B = ["0", "10", "30", "60", "120", "300", "600", "1800", "3600", "7200", "21600", "43200", "86400",
     "172800", "604800", "1209600", "2592000", "7776000", "inf"]
def q(hist, p):
    n = sum(hist.values())
    if not n: return "-"
    rank, below = p * n, 0
    for i, b in enumerate(B):
        c = hist.get(b, 0)
        if c and below + c >= rank:
            if i == 0: x = 0.0
            elif b == "inf": return ">90d"
            else: x = float(B[i - 1]) + (float(b) - float(B[i - 1])) * (rank - below) / c
            if x < 60: return "%.0fs" % x
            if x < 3600: return "%.1fm" % (x / 60)
            if x < 86400: return "%.1fh" % (x / 3600)
            return "%.1fd" % (x / 86400)
        below += c
cal = lambda k: sum(H["customers"].get(x, 0) for x in stages[k:])
for i, s in enumerate(stages):
    al = at_least(i + 1)
    conv = "-" if i == 0 or not at_least(i) else "%.1f%%" % (100 * al / at_least(i))
    cconv = "-" if i == 0 or not cal(i - 1) else "%.1f%%" % (100 * cal(i) / cal(i - 1))
    tt, ctt = h(f"{work}/tt.{s}"), h(f"{work}/ctt.{s}")
    print(s, H["active"].get(s, 0), H["reached"].get(s, 0), H["ended"].get(s, 0), H["customers"].get(s, 0), al,
          conv, q(tt, 0.5), q(tt, 0.9), q(ctt, 0.5), q(ctt, 0.9), cconv)
PYEOF
}
while read -r s rest; do EXP[$s]=$rest; done < <(exp_rows)
sum_hash() { rcli HVALS "$1" | awk '{s+=$1} END {print s+0}'; }
EV_TOTAL=$(sum_hash "$K:events"); INV_TOTAL=$(sum_hash "$K:invalid")
# the stage table row of stage $2 in the screen text $1, as EXP has it (the bar between
# reached>= and conv may be empty: the columns after it are counted from the right)
row_of() { awk -v s="$2" '$1==s && NF>=12 {print $2, $3, $4, $5, $6, $(NF-5), $(NF-4), $(NF-3), $(NF-2), $(NF-1), $NF; exit}' <<<"$1"; }
check_rows() { # label text
  local s
  for s in "${STAGES[@]}"; do check "$1_row_$s" "$(row_of "$2" "$s")" "${EXP[$s]}"; done
  check "$1_row__none" "$(awk '$1=="_none" {print $2, $3, $4; exit}' <<<"$2")" \
    "$(rcli HGET "$K:active" _none) $(rcli HGET "$K:ended" _none) $(rcli HGET "$K:customers" _none)"
}
has() { grep -qF -- "$2" <<<"$1"; }
expect_has() { if has "$2" "$3"; then ok "$1"; else bad "$1" "'$3' not in output"; fi; }
expect_not() { if has "$2" "$3"; then bad "$1" "'$3' should not be shown"; else ok "$1"; fi; }

# ---- 1. --once ----------------------------------------------------------------------------------
export LANG=C.UTF-8 LC_ALL=C.UTF-8
once=$("$BIN" --redis "$URL" --once 2>"$WORK/once.err"); rc=$?
printf '%s\n' "$once" >"$OUT/once.txt"
check once_exit "$rc" 0
expect_has once_journey_discovered "$once" "journey demo"
expect_has once_redis_address "$once" "redis 127.0.0.1:$PORT/0"
check_rows once "$once"
expect_has once_seq "$once" "seq $(rcli HGET "$K:meta" seq:host-a) @host-a"
expect_not once_not_stale "$once" "STALE"
# top 8 transitions by count; the two smallest of the ten are left out
mapfile -t TR < <(rcli HGETALL "$K:transitions" | paste - - | sort -t$'\t' -k2,2nr -k1,1)
for i in "${!TR[@]}"; do
  f=${TR[$i]%%$'\t'*}; n=${TR[$i]#*$'\t'}; label="${f%%>*} > ${f#*>}"
  line=$(grep -F -- "$label " <<<"$once" | head -1)
  if [ "$i" -lt 8 ]; then
    if [[ "$line" =~ $'\x20'"$n"($|$'\x20') ]]; then ok "once_transition_$i"; else bad "once_transition_$i" "'$label $n' not shown"; fi
  else
    if [ -z "$line" ]; then ok "once_transition_${i}_hidden"; else bad "once_transition_${i}_hidden" "'$label' shown: $line"; fi
  fi
done
# "<label>  <rate>  <total>" in the events panel (it shares lines with the other panels)
ev_row() { grep -oE "(^| )$2 +[-0-9.]+ +[0-9]+" <<<"$1" | head -1 | awk '{print $2, $3}'; }
check once_events_total "$(ev_row "$once" events)" "- $EV_TOTAL"
check once_invalid_total "$(ev_row "$once" invalid)" "- $INV_TOTAL"
check once_late_total "$(ev_row "$once" late)" "- $(rcli HGET "$K:events" _late)"
check once_invalid_not_json "$(grep -oE ' not_json +[0-9]+' <<<"$once" | awk '{print $2}')" "$(rcli HGET "$K:invalid" not_json)"
check once_sessions_started "$(grep -o 'started *[0-9]*' <<<"$once" | awk '{print $2}')" "$(rcli HGET "$K:sessions" started)"
check once_ended_by_gap "$(grep -o ' gap *[0-9]*' <<<"$once" | awk '{print $2}')" "$(rcli HGET "$K:ended_by" gap)"
expect_has once_breakdown_title "$once" "By channel"
# breakdown cell: reached/active of value "paid social" (a value with a space) at the first stage
cell="$(rcli HGET "$K:by:channel:reached" "paid social/${STAGES[0]}")/$(rcli HGET "$K:by:channel:active" "paid social/${STAGES[0]}")"
check once_breakdown_cell "$(awk '/^paid social / {print $3; exit}' <<<"$once")" "$cell"
expect_not once_minute_keys_not_a_dimension "$once" "minute"

once=$("$BIN" --redis "$URL" --once --dimension device 2>&1)
expect_has once_dimension_flag "$once" "By device"
once=$(CLICKSTAGE_REDIS="unix://$WORK/redis.sock" "$BIN" --once 2>&1)
expect_has once_unix_socket_env "$once" "redis unix:$WORK/redis.sock"
rcli HSET "$K:meta" updated_ms $(( $(now_ms) - 10000 )) >/dev/null
once=$("$BIN" --redis "$URL" --once --stale 5 2>&1)
expect_has once_stale "$once" "STALE"
# why no flush arrives (issue 20): what INFO shows, on the status line; nothing it can see here
expect_has once_stale_no_visible_cause "$once" ": the daemon is stopped, or Redis refuses its writes for a reason INFO does not show"
rcli CONFIG SET maxmemory 1 >/dev/null
once=$("$BIN" --redis "$URL" --once --stale 5 2>&1)
rcli CONFIG SET maxmemory 0 >/dev/null
expect_has once_stale_names_oom "$once" "Redis is out of memory: used"
expect_has once_stale_oom_class "$once" "policy noeviction): the daemon's writes are refused (OOM)"
# the time-to histograms too are read while Redis refuses MULTI (OOM): no warning, medians shown
expect_not once_stale_oom_time_to_read "$once" "histograms not read"
rcli REPLICAOF 127.0.0.1 1 >/dev/null   # a master that is not there: the data stays
once=$("$BIN" --redis "$URL" --once --stale 5 2>&1)
rcli REPLICAOF NO ONE >/dev/null
expect_has once_stale_names_replica "$once" "Redis is a read-only replica of 127.0.0.1:1 (link down)"
rcli HSET "$K:meta" updated_ms "$(now_ms)" >/dev/null
once=$("$BIN" --redis "$URL" --once --stale 5 2>&1)
expect_not once_fresh_no_hint "$once" "no flush for"
# its own reads refused: the class's meaning leads Redis's text (a script busy for 2 s)
rcli CONFIG SET busy-reply-threshold 100 >/dev/null
rcli EVAL "local s = redis.call('TIME')[1] + 2 while tonumber(redis.call('TIME')[1]) < s do end return 1" 0 >/dev/null 2>&1 &
bpid=$!
sleep 0.5
err=$("$BIN" --redis "$URL" --once 2>&1); rc=$?
wait "$bpid" 2>/dev/null
rcli CONFIG SET busy-reply-threshold 5000 >/dev/null
if [ $rc -eq 1 ] && has "$err" "Redis is busy running a script:" && has "$err" "BUSY"; then ok once_busy_named
else bad once_busy_named "rc=$rc: $err"; fi
rcli HSET "$K:meta" updated_ms "$(now_ms)" >/dev/null
once=$("$BIN" --redis "$URL" --once --prefix other 2>&1)
expect_has once_other_prefix "$once" "journey elsewhere"
rcli HSET 'clickstage:{demo2}:meta' stages a >/dev/null
err=$("$BIN" --redis "$URL" --once 2>&1); rc=$?
if [ $rc -eq 1 ] && has "$err" "several journeys" && has "$err" "demo2"; then ok once_several_journeys_error
else bad once_several_journeys_error "rc=$rc: $err"; fi
once=$("$BIN" --redis "$URL" --once --journey demo 2>&1)
expect_has once_journey_flag "$once" "journey demo"
rcli DEL 'clickstage:{demo2}:meta' >/dev/null
"$BIN" --redis "redis://127.0.0.1:1/0" --once >/dev/null 2>&1; check once_redis_down_exit "$?" 1
"$BIN" --nope >/dev/null 2>&1; check usage_error_exit "$?" 64
"$BIN" --help >/dev/null 2>&1; check help_exit "$?" 0

# SPEC 3.1: no identity hash (the fixture, like every journey without identity:): no merges line
once=$("$BIN" --redis "$URL" --once 2>&1)
expect_not once_no_merges_line_without_identity "$once" "merges"

# ---- 1b. a decimal-comma locale: the numbers are the same (LC_NUMERIC stays "C") ---------------
# de_DE.UTF-8 compiled into the temp dir (glibc reads LOCPATH): no root, nothing installed
if mkdir -p "$WORK/locale" && localedef -i de_DE -f UTF-8 "$WORK/locale/de_DE.UTF-8" >"$WORK/localedef.log" 2>&1 &&
   [ "$(LOCPATH=$WORK/locale LC_ALL=de_DE.UTF-8 awk 'BEGIN { printf "%.1f", 1.5 }')" = "1,5" ]; then
  de=$(LOCPATH=$WORK/locale LANG=de_DE.UTF-8 LC_ALL=de_DE.UTF-8 "$BIN" --redis "$URL" --once 2>&1)
  printf '%s\n' "$de" >"$OUT/once-de_DE.txt"
  check_rows locale_de "$de"
  if grep -qE '[0-9],[0-9]' <<<"$de"; then bad locale_de_no_decimal_comma "$(grep -E '[0-9],[0-9]' <<<"$de" | head -3)"
  else ok locale_de_no_decimal_comma; fi
  expect_has locale_de_keeps_utf8_bars "$de" "█"
else
  echo "SKIP locale_de: localedef -i de_DE -f UTF-8 failed or the locale has no decimal comma ($(tail -1 "$WORK/localedef.log"))"
fi

# ---- 1c. SPEC 3.1 identity after a real drain: the merges line ----------------------------------
identity_case() {
  if ! make -s BUILD="$B" "$B/clickstage" "$B/clickstage-loadgen" >"$WORK/make-id.log" 2>&1; then
    bad identity_build "$(tail -3 "$WORK/make-id.log")"; return
  fi
  STACK=$WORK/stack
  if ! scripts/stack.sh up "$STACK" >"$WORK/stack-up.log" 2>&1; then
    bad identity_kafka "scripts/stack.sh up: $(tail -1 "$WORK/stack-up.log")"; return
  fi
  local KAFKA_BROKERS
  KAFKA_BROKERS=$(sed -n 's/^KAFKA_BROKERS=//p' "$STACK/env")
  scripts/stack.sh topic top-id 4 "$STACK" >/dev/null 2>&1
  local IDR=tests/data/identity/model-identity.yaml V1R=tests/data/model.yaml
  # anonymous-then-known journeys keyed by device (docs/identity.md "Generator and ground truth")
  if ! "$B/clickstage-loadgen" --brokers "$KAFKA_BROKERS" --topic top-id --partitions 4 --events 30000 \
       --customers 3000 --seed 21 --login 0.5 --rules "$IDR" --progress 0 --expect "$WORK/id-expect.json" \
       >"$WORK/id-gen.out" 2>"$WORK/id-gen.err"; then
    bad identity_loadgen "$(tail -3 "$WORK/id-gen.err")"; return
  fi
  drain() { # rules prefix
    timeout 300 "$B/clickstage" --brokers "$KAFKA_BROKERS" --redis "$URL" --rules "$1" --http-listen "" \
      --log-format text --drain --threads 2 --topics top-id --group "g-$2" --prefix "$2" >"$WORK/$2.log" 2>&1
  }
  if ! drain "$IDR" idt; then bad identity_drain "exit $?: $(tail -3 "$WORK/idt.log")"; return; fi
  local m c em ec out
  m=$(rcli HGET 'idt:{model}:identity' merged); c=$(rcli HGET 'idt:{model}:identity' conflicts)
  read -r em ec < <(python3 -c 'import json,sys; i=json.load(open(sys.argv[1])).get("identity",{}); print(i.get("merged",0), i.get("conflicts",0))' "$WORK/id-expect.json")
  # the drain is exact (tests/integration identity_drain): Redis holds the ground truth's numbers
  if [ "${m:-0}" -gt 0 ] && [ "${m:-}" = "$em" ] && [ "${c:-0}" = "$ec" ]; then
    ok "identity_drain_hash ($m merged, ${c:-0} conflicts, as the ground truth)"
  else bad identity_drain_hash "Redis merged=$m conflicts=$c, ground truth $em $ec"; fi
  out=$("$BIN" --redis "$URL" --prefix idt --once 2>&1)
  printf '%s\n' "$out" >"$OUT/once-identity.txt"
  check identity_merges_line "$(grep -oE '^merges +[0-9]+ merged +[0-9]+ conflicts' <<<"$out" | tr -s ' ')" \
    "merges ${em} merged ${ec} conflicts"
  # it sits under the stage table, whose customers column is the persons' journeys
  check identity_merges_under_stages "$(grep -B1 '^merges ' <<<"$out" | head -1 | awk '{print $1}')" "_none"
  check identity_customers_column "$(awk '$1=="_none" {print $4; exit}' <<<"$out")" \
    "$(rcli HGET 'idt:{model}:customers' _none)"
  # the same stream without identity: (v1 ids): no identity hash, no merges line
  if drain "$V1R" v1t; then
    out=$("$BIN" --redis "$URL" --prefix v1t --once 2>&1)
    if [ "$(rcli EXISTS 'v1t:{model}:identity')" = 0 ] && grep -q 'journey model' <<<"$out" &&
       ! grep -q '^merges' <<<"$out"; then ok identity_no_merges_line_v1_drain
    else bad identity_no_merges_line_v1_drain "identity hash or merges line after a drain without identity:"; fi
  else bad identity_no_merges_line_v1_drain "v1 drain exit $?: $(tail -3 "$WORK/v1t.log")"; fi
  scripts/stack.sh down "$STACK" >/dev/null 2>&1; STACK=
}
if [ -n "${TOP_NO_KAFKA:-}" ]; then echo "SKIP identity: TOP_NO_KAFKA set"; else identity_case; fi

# ---- 2. live, in tmux --------------------------------------------------------------------------
screen() { tm capture-pane -p -t top 2>/dev/null; }
# wait_for SECONDS CMD...: until CMD (run on the screen text in $S) succeeds
wait_for() {
  local limit=$1; shift
  local end=$(( $(date +%s%3N) + limit * 1000 ))
  while :; do
    S=$(screen)
    if "$@"; then return 0; fi
    [ "$(date +%s%3N)" -ge "$end" ] && return 1
    sleep 0.1
  done
}
on_screen() { grep -qF -- "$1" <<<"$S"; }
not_on_screen() { ! grep -qF -- "$1" <<<"$S"; }
row_is() { [ "$(row_of "$S" "$1")" = "$2" ]; }
rows_ok() { local s; for s in "${STAGES[@]}"; do row_is "$s" "${EXP[$s]}" || return 1; done; }
cat >"$WORK/tmux.conf" <<'EOF'
set -g default-terminal screen
set -g status off
EOF
cat >"$WORK/live.sh" <<EOF
#!/bin/sh
export LANG=C.UTF-8 LC_ALL=C.UTF-8
"$BIN" --redis "$URL" --poll 30 --stale 60 2>"$WORK/top.err"
echo \$? >"$WORK/top.rc"
EOF
chmod +x "$WORK/live.sh"
tm -f "$WORK/tmux.conf" new-session -d -s top -x 140 -y 45 "$WORK/live.sh"
if wait_for 5 on_screen "journey demo" && wait_for 3 rows_ok; then ok live_numbers_on_screen
else bad live_numbers_on_screen "$(screen | head -12)"; fi
screen >"$OUT/screen.txt"
expect_has live_breakdown "$S" "By channel"
expect_has live_conversion "$S" "$(awk '{print $6}' <<<"${EXP[${STAGES[1]}]}")"

# an update message makes it refresh within 2 s (--poll 30: no fallback poll in that time)
s3=${STAGES[3]}
newr=$(rcli HINCRBY "$K:reached" "$s3" 6)
rcli HINCRBY "$K:transitions" "${STAGES[2]}>$s3" 6 >/dev/null
rcli HINCRBY "$K:time_to:$s3" 1800 6 >/dev/null
while read -r s rest; do EXP[$s]=$rest; done < <(exp_rows)
rcli PUBLISH "$K:updates" "{\"updated_ms\":$(now_ms),\"seq\":4712,\"instance\":\"host-a\",\"commands\":12}" >/dev/null
t0=$(now_ms)
if wait_for 2 row_is "$s3" "${EXP[$s3]}"; then
  ok "live_update_message_refresh ($(( $(now_ms) - t0 )) ms)"
else bad live_update_message_refresh "$(row_of "$S" "$s3")"; fi
expect_has live_seq_from_message "$S" "seq 4712 @host-a"

# without a message nothing changes before the poll; 'r' refreshes at once
newr=$(rcli HINCRBY "$K:reached" "$s3" 1)
sleep 1
S=$(screen)
if [ "$(row_of "$S" "$s3" | awk '{print $2}')" = "$((newr - 1))" ]; then ok live_no_refresh_without_message
else bad live_no_refresh_without_message "$(row_of "$S" "$s3")"; fi
tm send-keys -t top r
if wait_for 2 eval '[ "$(row_of "$S" "$s3" | awk "{print \$2}")" = "$newr" ]'; then ok live_key_r_refresh
else bad live_key_r_refresh "$(row_of "$S" "$s3")"; fi

# events/s, invalid/s, late/s: deltas between refreshes over wall time (window >= 1 s)
rcli HINCRBY "$K:events" "${STAGES[0]}" 1000 >/dev/null
rcli HINCRBY "$K:events" _late 5 >/dev/null
rcli HINCRBY "$K:invalid" not_json 10 >/dev/null
rcli PUBLISH "$K:updates" "{\"updated_ms\":$(now_ms),\"seq\":4713,\"instance\":\"host-a\",\"commands\":9}" >/dev/null
rate_ok() { # label max: the rate is a number in (0, max]
  local r; r=$(ev_row "$S" "$1" | awk '{print $1}')
  awk -v r="$r" -v m="$2" 'BEGIN{exit !(r ~ /^[0-9.]+$/ && r > 0 && r <= m)}'
}
if wait_for 2 eval 'rate_ok events 1005 && rate_ok invalid 10 && rate_ok late 5'; then
  ok "live_rates ($(ev_row "$S" events | awk '{print $1}') events/s)"
else bad live_rates "$(grep -oE '(events|invalid|late) +[-0-9.]+ +[0-9]+' <<<"$S" | tr '\n' ' ')"; fi
expect_has live_events_total "$S" "$(sum_hash "$K:events")"
printf '%s\n' "$S" >"$OUT/screen-rates.txt"

# 'd': the breakdown switches to the other dimension
tm send-keys -t top d
if wait_for 2 on_screen "By device" && not_on_screen "By channel"; then ok live_key_d_dimension
else bad live_key_d_dimension "$(grep -E '^By ' <<<"$S")"; fi
expect_has live_dimension_rows "$S" "desktop"

# a smaller terminal: redrawn to fit (SIGWINCH), key help kept on the last row
tm resize-window -t top -x 80 -y 24
if wait_for 2 eval '[ "$(printf "%s\n" "$S" | wc -l)" -le 24 ] && on_screen "journey demo" && [ "$(printf "%s\n" "$S" | sed -n 24p | cut -c1-6)" = "q quit" ]'; then ok live_resize
else bad live_resize "$(printf '%s\n' "$S" | tail -3)"; fi
tm resize-window -t top -x 140 -y 45
wait_for 2 on_screen "By device" >/dev/null

# Redis goes away: banner, no crash
stop_redis
if wait_for 4 on_screen "REDIS DOWN"; then ok live_redis_down_banner
else bad live_redis_down_banner "$(screen | head -3)"; fi
screen >"$OUT/screen-down.txt"
sleep 1.5 # a few reconnect attempts
if tm has-session -t top 2>/dev/null && [ ! -e "$WORK/top.rc" ]; then ok live_survives_outage
else bad live_survives_outage "exited: $(cat "$WORK/top.rc" 2>/dev/null) $(cat "$WORK/top.err")"; fi

# Redis back on the same port with the fixture: resubscribed, banner gone, numbers back
if start_redis "$PORT" && load_fixture; then
  while read -r s rest; do EXP[$s]=$rest; done < <(exp_rows)
  if wait_for 5 eval '[ "$(rcli PUBSUB NUMSUB "$K:updates" | tail -1)" = 1 ]'; then ok live_resubscribed
  else bad live_resubscribed "no subscriber on $K:updates"; fi
  rcli PUBLISH "$K:updates" "{\"updated_ms\":$(now_ms),\"seq\":1,\"instance\":\"host-b\",\"commands\":3}" >/dev/null
  if wait_for 2 eval 'not_on_screen "REDIS DOWN" && rows_ok'; then ok live_recovered
  else bad live_recovered "$(screen | head -12)"; fi
  expect_has live_dimension_kept "$S" "By device"
else
  bad live_redis_restart "could not restart redis on port $PORT"
fi
screen >"$OUT/screen-recovered.txt"

# 'q' exits 0
tm send-keys -t top q
for _ in $(seq 30); do [ -s "$WORK/top.rc" ] && break; sleep 0.1; done
check live_key_q_exit "$(cat "$WORK/top.rc" 2>/dev/null)" 0
if [ -s "$WORK/top.err" ]; then bad live_stderr_clean "$(head -5 "$WORK/top.err")"; else ok live_stderr_clean; fi
for _ in $(seq 20); do tm has-session -t top 2>/dev/null || break; sleep 0.1; done
if tm has-session -t top 2>/dev/null; then bad live_session_gone "tmux session still there"; else ok live_session_gone; fi

tm kill-server >/dev/null 2>&1
stop_redis
finish
