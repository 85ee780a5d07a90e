#!/usr/bin/env bash
# Switchyard's resident memory at scale: with 10,000 idle handshake sessions, and with 1,000
# open SSE (GET) streams. Reads VmRSS of the switchyard process before and after.
# Usage: scripts/memory.sh   (env: SESSIONS=10000 STREAMS=1000)
set -euo pipefail
cd "$(dirname "$0")/.."
SESSIONS=${SESSIONS:-10000}
STREAMS=${STREAMS:-1000}
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
cargo build --release --workspace -q
LG=$PWD/target/release/switchyard-loadgen
SY=$PWD/target/release/switchyard
OUT=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$OUT"; }
trap cleanup EXIT
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

measure() { # label sessions [--streams]
  local label=$1 n=$2; shift 2
  cat > "$OUT/sy.toml" <<TOML
[limits]
max_sessions = $((n + 100))
[[servers]]
name = "mock"
command = "$LG"
args = ["mock-server", "--stdio"]
TOML
  SWITCHYARD_LOG=warn "$SY" serve --listen 127.0.0.1:0 --config "$OUT/sy.toml" > "$OUT/sy.out" 2>/dev/null &
  local sy=$!; PIDS+=("$sy")
  local url=""
  for _ in $(seq 100); do url=$(grep -o 'http://[^ ]*' "$OUT/sy.out" || true); [ -n "$url" ] && break; sleep 0.05; done
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

measure "$SESSIONS idle handshake sessions" "$SESSIONS"
measure "$STREAMS sessions with an open SSE stream" "$STREAMS" --streams
