#!/usr/bin/env bash
# The router's CPU per request at a fixed rate, user and system apart (from /proc/PID/stat),
# for each era in turn: the timed counterpart of scripts/instructions.sh, same set-up (a stdio
# mock upstream of the handshake era), without valgrind.
#
# Usage: bash scripts/user_cpu.sh [ERA...]   (default: legacy modern)
# Environment: RATE (requests/s, default 3000), DURATION (seconds measured, default 15),
# SESSIONS (default 16).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
RATE=${RATE:-3000}
DURATION=${DURATION:-15}
SESSIONS=${SESSIONS:-16}
ERAS=${*:-legacy modern}
cargo build --release --workspace -q
LG=$PWD/target/release/switchyard-loadgen
SY=$PWD/target/release/switchyard
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
stdio_mock_servers "$LG" legacy 1 > "$dir/config.toml"
for era in $ERAS; do
  SWITCHYARD_LOG=warn "$SY" serve --listen 127.0.0.1:0 --config "$dir/config.toml" > "$dir/router.log" 2> "$dir/router.err" &
  pid=$!
  url=$(wait_for_url "$dir/router.log" 10)
  [ -n "$url" ] || { echo "user_cpu: the router did not start" >&2; cat "$dir/router.err" >&2; exit 1; }
  run() {
    "$LG" run --url "$url" --era "$era" --sessions "$SESSIONS" --duration "$1" --warmup "$2" \
      --rate "$RATE" --args '{"text":"hello"}' --quiet --json "$dir/run.json" > /dev/null
  }
  run 3 1
  before=$(awk '{print $14, $15}' "/proc/$pid/stat")
  run "$DURATION" 0
  after=$(awk '{print $14, $15}' "/proc/$pid/stat")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  python3 - "$era" "$before" "$after" "$dir/run.json" <<'PY'
import json, os, sys
era, before, after, run = sys.argv[1:]
hz = os.sysconf("SC_CLK_TCK")
(u0, s0), (u1, s1) = (map(int, t.split()) for t in (before, after))
r = json.load(open(run))
n = max(r["total"], 1)
per = lambda ticks: ticks / hz / n * 1e6
print(f"{era}: {r['total']} requests, user {per(u1 - u0):.2f} us, system {per(s1 - s0):.2f} us, "
      f"total {per(u1 - u0 + s1 - s0):.2f} us per request, {sum(r['errors'].values())} errors")
PY
done
