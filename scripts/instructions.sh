#!/usr/bin/env bash
# Instructions the router executes per request, counted by valgrind's callgrind: a figure
# that does not move with the machine's load, for comparing two trees or the two eras
# where a timed run cannot resolve the difference. User-space instructions only (syscalls
# and the kernel's work are not counted); every thread of the router counted.
#
# Usage: bash scripts/instructions.sh [ERA...]   (default: legacy modern)
# Environment: RATE (requests/s, default 200), DURATION (seconds measured, default 8),
# UPSTREAM (stdio, http, or http2 for HTTP/2 with prior knowledge; default stdio),
# OUT (default target/instructions/<UTC time>).
#
# The router runs under callgrind with the mock as its upstream (handshake era, over
# stdio or HTTP; the HTTP mock is not counted, it runs outside valgrind); the load
# generator warms it up, the counters are zeroed, a measured run at a fixed rate follows,
# and the counters are dumped. Needs valgrind (Debian: apt-get install valgrind).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
command -v valgrind >/dev/null || { echo "instructions: valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
RATE=${RATE:-200}
DURATION=${DURATION:-8}
OUT=${OUT:-target/instructions/$(date -u +%Y%m%dT%H%M%SZ)}
ERAS=${*:-legacy modern}
mkdir -p "$OUT"
cargo build --release --workspace -q
LG=$PWD/target/release/switchyard-loadgen
SY=$PWD/target/release/switchyard
UPSTREAM=${UPSTREAM:-stdio}
MOCK_PID=
trap '[ -z "$MOCK_PID" ] || kill "$MOCK_PID" 2>/dev/null || true' EXIT
case $UPSTREAM in
  stdio) stdio_mock_servers "$LG" legacy 1 > "$OUT/config.toml" ;;
  http|http2)
    "$LG" mock-server --http 127.0.0.1:0 > "$OUT/mock.log" 2>&1 &
    MOCK_PID=$!
    mock_url=$(wait_for_url "$OUT/mock.log")
    [ -n "$mock_url" ] || { echo "instructions: the HTTP mock did not start" >&2; exit 1; }
    printf '[[servers]]\nname = "mock"\nurl = "%s"\nprefix = ""\nera = "legacy"\nhttp2 = %s\n' \
      "$mock_url" "$([ "$UPSTREAM" = http2 ] && echo true || echo false)" > "$OUT/config.toml" ;;
  *) echo "instructions: UPSTREAM is stdio, http or http2, not $UPSTREAM" >&2; exit 2 ;;
esac
for era in $ERAS; do
  dir=$OUT/$era
  mkdir -p "$dir"
  SWITCHYARD_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$dir/callgrind.%p" \
    "$SY" serve --listen 127.0.0.1:0 --config "$OUT/config.toml" > "$dir/router.log" 2> "$dir/router.err" &
  vpid=$!
  url=$(wait_for_url "$dir/router.log" 30)  # valgrind starts it slowly
  [ -n "$url" ] || { echo "instructions: the router did not start" >&2; cat "$dir/router.err" >&2; exit 1; }
  run() {
    "$LG" run --url "$url" --era "$era" --sessions 4 --duration "$1" --warmup "$2" --rate "$RATE" \
      --args '{"text":"hello"}' --quiet --json "$3" > /dev/null
  }
  run 3 1 "$dir/warmup.json"
  callgrind_control -z "$vpid" > /dev/null 2>&1
  run "$DURATION" 0 "$dir/run.json"
  callgrind_control -d "$vpid" > /dev/null 2>&1
  sleep 1
  kill "$vpid"; wait "$vpid" 2>/dev/null || true
  dump=$(ls "$dir"/callgrind.*.1)
  python3 - "$era" "$dump" "$dir/run.json" "$UPSTREAM" <<'PY'
import json, re, subprocess, sys
era, dump, run, upstream = sys.argv[1:]
r = json.load(open(run))
out = subprocess.run(["callgrind_annotate", dump], capture_output=True, text=True).stdout
total = int(re.search(r"([\d,]+) \(100.0%\)\s+PROGRAM TOTALS", out).group(1).replace(",", ""))
errors = sum(r["errors"].values())
print(f"{era} via {upstream}: {total / max(r['total'], 1):,.0f} instructions per request "
      f"({total:,} over {r['total']} requests, {errors} errors)")
PY
done
