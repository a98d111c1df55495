#!/bin/sh
# decode-ab.sh BASE_TREE [ROUNDS] — the decoder of this tree against the one of another
# checkout (e.g. a worktree of the previous release), on the same machine in the same run:
# bench/bench_decode.c is built against each tree's library, then the two binaries run
# alternately ROUNDS times (default 7) on the same generated Segment stream (the generator's
# Segment bytes are the same in both). Prints each round and the medians; the last line is JSON
# with the ratio new/base (< 1: faster now). CPU time, so other load on a shared machine
# inflates both alike.
set -eu
BASE=$1; ROUNDS=${2:-7}
HERE=$(cd "$(dirname "$0")/.." && pwd)
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
CFLAGS="-std=c11 -D_GNU_SOURCE -O2 -g -pthread"
( cd "$BASE" && make -s build/libclickstage.a build/loadgen/gen.o build/loadgen/counts.o >/dev/null )
( cd "$HERE" && make -s build/libclickstage.a build/loadgen/gen.o build/loadgen/counts.o >/dev/null )
cc $CFLAGS -I"$BASE/include" -I"$BASE/pipeline" -I"$BASE/loadgen" -I"$HERE/bench" \
   -o "$OUT/base" "$HERE/bench/bench_decode.c" "$BASE/build/loadgen/gen.o" \
   "$BASE/build/libclickstage.a" -lxxhash -lyaml -lcrypto -lm
cc $CFLAGS -I"$HERE/include" -I"$HERE/pipeline" -I"$HERE/loadgen" -I"$HERE/bench" \
   -o "$OUT/new" "$HERE/bench/bench_decode.c" "$HERE/build/loadgen/gen.o" \
   "$HERE/build/libclickstage.a" -lxxhash -lyaml -lcrypto -lm
cd "$HERE"
b=""; n=""
i=1
while [ $i -le "$ROUNDS" ]; do
  if [ $((i % 2)) = 1 ]; then
    x=$("$OUT/base" | tail -1); y=$("$OUT/new" | tail -1)
  else
    y=$("$OUT/new" | tail -1); x=$("$OUT/base" | tail -1)
  fi
  xb=$(echo "$x" | sed 's/.*"ns_per_message":\([0-9.]*\).*/\1/')
  yb=$(echo "$y" | sed 's/.*"ns_per_message":\([0-9.]*\).*/\1/')
  echo "round $i: base $xb ns, new $yb ns"
  b="$b $xb"; n="$n $yb"
  i=$((i + 1))
done
python3 - "$b" "$n" <<'PY'
import statistics, sys
b = [float(x) for x in sys.argv[1].split()]; n = [float(x) for x in sys.argv[2].split()]
mb, mn = statistics.median(b), statistics.median(n)
print('{"bench":"decode_ab","base_ns":%.1f,"new_ns":%.1f,"ratio":%.3f,"rounds":%d}' % (mb, mn, mn / mb, len(b)))
PY
