#!/usr/bin/env bash
# clickstage-rules as a user runs it: check and explain, exit codes and the lines they print.
# Prints "PASS name" / "FAIL name: why"; the last line is "rules-cli: N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/../.."
B=${BUILD:-build}
make -s "$B/clickstage-rules" >/dev/null || { echo "rules-cli: 0 passed, 1 failed"; exit 1; }
R=$B/clickstage-rules
pass=0; fail=0
ok() { echo "PASS $1"; pass=$((pass+1)); }
bad() { echo "FAIL $1: $2"; fail=$((fail+1)); }
run() { OUT=$("$R" "$@" 2>&1); RC=$?; }
expect() { # name want-rc pattern
  if [ "$RC" = "$2" ] && grep -qE -- "$3" <<<"$OUT"; then ok "$1"
  else bad "$1" "rc=$RC, output: $(head -3 <<<"$OUT" | tr '\n' '|')"; fi
}

run check deploy/rules/retail.yaml
expect check_ok 0 '^deploy/rules/retail.yaml: ok: journey retail, 5 stages'
run check tests/rules/bad_unknown_stage.yaml
expect check_bad_names_file_line_col 1 '^tests/rules/bad_unknown_stage.yaml:[0-9]+:[0-9]+: '
# issue 16: a device with a wrong clock, explained
run explain deploy/rules/retail.yaml '{"userId":"clock-skewed-device","event":"page","timestamp":"9999-12-31T23:59:59Z"}'
expect explain_future_time 2 '^invalid:  future_time$'
expect explain_future_time_why 2 '^why: .*more than session.max_future \(3600000 ms\) ahead'
run explain --message-time 2026-11-01T10:00:00Z deploy/rules/retail.yaml '{"userId":"x","event":"page","channel":"social","timestamp":"2026-11-01T11:00:00Z"}'
expect explain_max_future_boundary_ok 0 '^stage:    awareness'
run explain --message-time 1793527200000 deploy/rules/retail.yaml '{"userId":"x","event":"page","timestamp":"2026-11-01T11:00:00.001Z"}'
expect explain_max_future_boundary_plus_1ms 2 '^invalid:  future_time$'
run explain deploy/rules/retail.yaml '{"userId":"x","event":"page","ts":0}'
expect explain_epoch_is_bad_time 2 'before 2000-01-01'
run explain --message-time 5 deploy/rules/retail.yaml '{"userId":"x","event":"page"}'
expect explain_message_time_before_2000 2 '^invalid:  bad_time$'
run explain deploy/rules/retail.yaml '{"userId":"x","event":"product_view"}'
expect explain_no_time_uses_message_time 0 'no time field: the message time used'
run explain --message-time yesterday deploy/rules/retail.yaml '{}'
expect explain_bad_message_time 64 'neither epoch ms nor RFC 3339'
run --frobnicate
expect unknown_option 64 "unknown option '--frobnicate'"

# issue 19: formats and time units
run check tests/data/formats/mixpanel.yaml
expect check_prints_format 0 ', format mixpanel, sha256 '
run explain tests/data/formats/mixpanel.yaml '{"event":"$mp_web_page_view","properties":{"distinct_id":"u1","time":1790000393.702,"utm_medium":"social"}}'
expect explain_prints_format 0 '^format:   mixpanel \(JSON; numeric times: auto'
expect explain_mixpanel_float_seconds 0 '^time:     1790000393702 ms = 2026-09-21T14:19:53.702Z$'
expect explain_mixpanel_stage 0 '^stage:    awareness'
run explain tests/data/formats/rudderstack.yaml '{"type":"page","channel":"server","userId":"u1","timestamp":"2026-11-01T08:00:00Z","context":{"campaign":{"medium":"social"}}}'
expect explain_rudderstack_channel_is_medium 0 '^channel:  "social"$'
run explain tests/data/formats/snowplow-enriched.yaml "$(printf 'a\tb\tc')"
expect explain_not_tsv 2 '^invalid:  not_tsv$'
expect explain_not_tsv_why 2 '^why:      3 tab-separated columns; Snowplow.s enriched TSV has 131$'
line=$(python3 -c "c=['']*131; c[12]='u1'; c[126]='page_view'; c[124]='2026-11-01 08:00:00.123'; c[47]='social'; print('\t'.join(c))")
run explain tests/data/formats/snowplow-enriched.yaml "$line"
expect explain_snowplow_tsv 0 '^time:     1793520000123 ms = 2026-11-01T08:00:00.123Z$'
fmt_tmp=$(mktemp -d)
printf 'journey: j\nstages: [a]\nformat: mixpanl\n' >"$fmt_tmp/f1.yaml"
run check "$fmt_tmp/f1.yaml"
expect check_unknown_format_lists_known 1 "f1.yaml:3:9: unknown format 'mixpanl' \(known formats: segment, rudderstack, posthog, mixpanel, amplitude, snowplow-enriched\)$"
printf 'journey: j\nstages: [a]\nfields:\n  time_unit: seconds\n' >"$fmt_tmp/f2.yaml"
run check "$fmt_tmp/f2.yaml"
expect check_unknown_time_unit 1 "f2.yaml:4:14: unknown time unit 'seconds' for fields.time_unit \(expected ms, s, us, ns or auto\)$"
printf 'journey: j\nstages: [a]\nformat: snowplow-enriched\nfields: {time_unit: ms}\n' >"$fmt_tmp/f3.yaml"
run check "$fmt_tmp/f3.yaml"
expect check_time_unit_not_numeric 1 "f3.yaml:4:21: fields.time_unit does not apply to format snowplow-enriched"
rm -rf "$fmt_tmp"

echo "rules-cli: $pass passed, $fail failed"
[ $fail -eq 0 ]
