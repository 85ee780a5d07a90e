#!/usr/bin/env bash
# Switchyard's resident memory at scale: with 10,000 idle handshake sessions, with 1,000
# open SSE (GET) streams, and with 10,000 sessions that each send a call a second (each on
# its own connection; the load generator's p99 is printed too). Reads VmRSS of the
# switchyard process before and after (the most seen while the calls run).
# The last, again with the sessions sharing 100 connections (as a host serving many users
# over a small pool would), tells what a session costs apart from its connection.
# Usage: scripts/memory.sh   (env: SESSIONS=10000 STREAMS=1000 ACTIVE=10000 SHARED_CONNECTIONS=100)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
SESSIONS=${SESSIONS:-10000}
STREAMS=${STREAMS:-1000}
ACTIVE=${ACTIVE:-10000}
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
cargo build --release --workspace -q
LG=$PWD/target/release/switchyard-loadgen
SY=$PWD/target/release/switchyard
OUT=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$OUT"; }
trap cleanup EXIT
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

# Start Switchyard fronting the mock (a pool of two, one per worker here) for n sessions;
# sets SY_PID and URL.
start_router() {
  local n=$1
  {
    printf '[limits]\nmax_sessions = %d\nmax_connections_per_address = %d\n' $((n + 100)) $((n + 100))
    stdio_mock_servers "$LG" auto 2
  } > "$OUT/sy.toml"
  SWITCHYARD_LOG=warn "$SY" serve --listen 127.0.0.1:0 --config "$OUT/sy.toml" > "$OUT/sy.out" 2>/dev/null &
  SY_PID=$!; PIDS+=("$SY_PID")
  URL=$(wait_for_url "$OUT/sy.out")
}

measure() { # label sessions [--streams]
  local label=$1 n=$2; shift 2
  start_router "$n"
  local sy=$SY_PID url=$URL
  # Warm the process up with one session, so the baseline holds what any session needs.
  "$LG" hold --url "$url" --sessions 1 --seconds 0 > /dev/null
  sleep 0.5
  local base; base=$(rss_kib "$sy")
  "$LG" hold --url "$url" --sessions "$n" "$@" --seconds 600 > "$OUT/hold.out" &
  local hold=$!; PIDS+=("$hold")
  for _ in $(seq 1200); do grep -q holding "$OUT/hold.out" 2>/dev/null && break; sleep 0.1; done
  grep -q holding "$OUT/hold.out" || { echo "memory: hold did not finish" >&2; exit 1; }
  sleep 1
  local after; after=$(rss_kib "$sy")
  awk -v l="$label" -v b="$base" -v a="$after" -v n="$n" \
    'BEGIN { printf "%-38s base %7d KiB  with them %8d KiB  = %6.2f KiB each\n", l, b, a, (a - b) / n }'
  kill "$hold" "$sy" 2>/dev/null || true; wait "$hold" "$sy" 2>/dev/null || true
}

measure_active() { # sessions [connections shared by them; default one each]
  local n=$1 conns=${2:-}
  start_router "$n"
  local sy=$SY_PID url=$URL
  "$LG" run --url "$url" --sessions 1 --duration 0.5 --warmup 0.2 --quiet > /dev/null
  sleep 0.5
  local base; base=$(rss_kib "$sy")
  ( while kill -0 "$sy" 2>/dev/null; do rss_kib "$sy" >> "$OUT/rss"; sleep 0.5; done ) &
  PIDS+=("$!")
  rm -f "$OUT/rss"
  "$LG" run --url "$url" --sessions "$n" --rate "$n" --ramp-up 15 --warmup 10 --duration 20 \
    ${conns:+--connections "$conns"} --quiet --json "$OUT/active.json" > /dev/null
  local peak; peak=$(sort -n "$OUT/rss" | tail -1)
  python3 - "$n" "$base" "$peak" "$OUT/active.json" "${conns:-$n}" <<'PY'
import json, sys
n, base, peak, path, conns = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
r = json.load(open(path))
lat = r["latency_us"]
print(f"{n} sessions on {conns} connections, a call a second each: base {base:7d} KiB  peak {peak:8d} KiB  = "
      f"{(peak - base) / n:6.2f} KiB each; {r['ok']} ok, {sum(r['errors'].values())} errors, "
      f"p50 {lat['p50'] / 1000:.3f} ms, p99 {lat['p99'] / 1000:.3f} ms")
PY
  kill "$sy" 2>/dev/null || true; wait "$sy" 2>/dev/null || true
}

measure "$SESSIONS idle handshake sessions" "$SESSIONS"
measure "$STREAMS sessions with an open SSE stream" "$STREAMS" --streams
measure_active "$ACTIVE"
measure_active "$ACTIVE" "${SHARED_CONNECTIONS:-100}"
