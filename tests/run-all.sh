#!/usr/bin/env bash
# The whole test suite, as `make test` and CI run it. Phases:
#   1. release build with -Werror, unit + model tests
#   2. the same tests under ASan+UBSan
#   3. the multi-thread tests under ThreadSanitizer
#   4. clickstage-rules check/explain as a user runs them (tests/rules/cli.sh); every libFuzzer
#      target for FUZZ_SECONDS (default 20) each
#   5. clickstage-top driven in tmux against its own redis-server, its identity merges line after a
#      drain through its own Kafka broker (tests/top/run.sh); the HTTP
#      endpoints and the web view in headless Chromium (tests/http/run.sh); the deploy files
#      (scripts/deploy-check.sh: lint, validate, release build run with env-only configuration)
#   6. integration tests against a real Kafka broker and redis-server (tests/integration/*.sh),
#      the repartitioner's (tests/repartition/run.sh), the load generator's (tests/loadgen/run.sh)
#      and the bounded fault suite
#      (tests/faults/run.sh with FAULTS_PROFILE=ci: kill -9, members joining and leaving, a
#      SIGSTOPped zombie, broker and Redis restarts, Redis coming back empty, kill -9 and member
#      changes on a SPEC 3.1 identity stream; every live daemon there has --threads 2, so two
#      fetch handles by default), its kill -9, members and zombie cases again with one fetch
#      handle per daemon (phase faults-1handle: --fetch-threads 1, the opt-out), and the Redis
#      refusals (tests/refusals/run.sh with REFUSALS_PROFILE=ci: OOM, READONLY, NOPERM,
#      WRONGTYPE, BUSY, LOADING in a live run)
#   7. Kafka security (tests/kafka-security/run.sh): clickstage, its dead-letter producer, the load
#      generator and the repartitioner over SSL and SASL_SSL (PLAIN, SCRAM-SHA-512) listeners,
#      wrong credentials, and a search of every output for the secrets
#   8. Redis Cluster and Sentinel (tests/redis-ha/run.sh with REDIS_HA_PROFILE=ci): a drain through
#      a cluster node, the slot's master killed after its replica missed flushes, the slot
#      migrated key by key, a sentinel master killed likewise; counts exact every time
#   9. the soak's bounded profile (bench/soak.sh with SOAK_PROFILE=ci, about 4 min): one process
#      through >= 5,000 partition assignments, customer churn, reloads and fast event time;
#      RSS, tick and flush cost flat, Redis keys bounded, counts exact
# Each phase prints "LABEL: N passed, N failed"; the last line sums them all.
# SKIP="tsan fuzz integration" skips phases (for quick local runs; CI skips none).
set -u
cd "$(dirname "$0")/.."
# The same verdict whatever make called this (`make -s test`, `make -j2 test`): its flags do not
# reach the phases' own makes and scripts, which say what they want explicitly.
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES
JOBS=$(nproc 2>/dev/null || echo 2)
skip=" ${SKIP:-} "
total_p=0; total_f=0
phase() { # label, command...
  local label=$1; shift
  if [[ "$skip" == *" $label "* ]]; then echo "== skipping $label"; return; fi
  echo "== phase $label: $*"
  local log; log=$(mktemp)
  "$@" 2>&1 | tee "$log"; local rc=${PIPESTATUS[0]}
  local line; line=$(grep -E '^[A-Za-z0-9_./-]+: [0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
  local p f
  p=$(sed -n 's/.*: \([0-9]*\) passed, \([0-9]*\) failed.*/\1/p' <<<"$line")
  f=$(sed -n 's/.*: \([0-9]*\) passed, \([0-9]*\) failed.*/\2/p' <<<"$line")
  p=${p:-0}; f=${f:-0}
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; echo "!! phase $label failed (exit $rc)"; fi
  total_p=$((total_p + p)); total_f=$((total_f + f))
  rm -f "$log"
}
phase release make -j"$JOBS" WERROR=-Werror unit
phase asan make -j"$JOBS" WERROR=-Werror asan-test
phase tsan make -j"$JOBS" WERROR=-Werror tsan-test
phase rules-cli tests/rules/cli.sh
phase fuzz make fuzz FUZZ_SECONDS="${FUZZ_SECONDS:-20}"
phase top tests/top/run.sh
phase http tests/http/run.sh
phase deploy scripts/deploy-check.sh
if ls tests/integration/*.sh >/dev/null 2>&1; then
  phase integration tests/integration/run.sh
fi
phase repartition tests/repartition/run.sh
phase kafka-security tests/kafka-security/run.sh
phase loadgen tests/loadgen/run.sh
phase faults env FAULTS_PROFILE="${FAULTS_PROFILE:-ci}" tests/faults/run.sh
phase faults-1handle env FAULTS_PROFILE="${FAULTS_PROFILE:-ci}" CASES="kill9 members zombie" \
  FAULTS_DAEMON_ARGS="--fetch-threads 1" tests/faults/run.sh
phase refusals env REFUSALS_PROFILE="${REFUSALS_PROFILE:-ci}" tests/refusals/run.sh
phase redis-ha env REDIS_HA_PROFILE="${REDIS_HA_PROFILE:-ci}" tests/redis-ha/run.sh
phase soak env SOAK_PROFILE="${SOAK_PROFILE:-ci}" bench/soak.sh
echo "all phases: $total_p passed, $total_f failed"
[ "$total_f" -eq 0 ]
