#!/usr/bin/env bash
# Side by side, in one run on this machine: the same load
#   (a) straight at the mock MCP server over HTTP                      -> "direct"
#       and over stdio (the load generator spawns the mock itself)     -> "direct-stdio"
#   (b) through Switchyard to the mock over stdio, and over HTTP       -> "via-stdio", "via-http"
#   (c) at a minimal hyper responder with a fixed body (one HTTP hop)   -> "hop"
# first closed-loop (saturating), then open-loop at half the direct saturating rate, then
# each routed path at half and at a tenth of its own saturating rate (direct beside it).
# Prints throughput, latency percentiles, CPU microseconds per request of each server
# process (Switchyard's own CPU, not the mock's), and the through/direct ratios.
#
# Usage: scripts/bench.sh  (env: SESSIONS=256 DURATION=10 WARMUP=2 TOOL_ARGS='{"text":"hello"}'
#                          WORKERS=N for Switchyard's worker shards,
#                          POOL=N for the pool of each server it fronts (default 1),
#                          ERA=legacy|modern for the clients' protocol era,
#                          UPSTREAM_ERA=legacy|2026-07-28 for how Switchyard speaks to the mock,
#                          UPSTREAM_HTTP2=1 for HTTP/2 (prior knowledge) from Switchyard to the mock)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
SESSIONS=${SESSIONS:-256}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
ARGS=${TOOL_ARGS:-'{"text":"hello"}'}
ERA=${ERA:-legacy}
UPSTREAM_ERA=${UPSTREAM_ERA:-legacy}
UPSTREAM_HTTP2=${UPSTREAM_HTTP2:-0}
export ERA UPSTREAM_ERA UPSTREAM_HTTP2
OUT=${OUT:-target/bench/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"

cargo build --release --workspace -q
LG=$PWD/target/release/switchyard-loadgen
SY=$PWD/target/release/switchyard
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

# Start a server that prints "... listening on http://ADDR/mcp" first; sets URL and PID.
start() {
  local log=$1; shift
  "$@" > "$log" 2> "$log.err" &
  PID=$!
  PIDS+=("$PID")
  URL=$(wait_for_url "$log")
  [ -n "$URL" ] && return 0
  echo "bench: $* did not start" >&2; cat "$log.err" >&2; exit 1
}

start "$OUT/mock.log" "$LG" mock-server --http 127.0.0.1:0; MOCK_URL=$URL; MOCK_PID=$PID
start "$OUT/hop.log" "$LG" hop-server --http 127.0.0.1:0; HOP_URL=$URL; HOP_PID=$PID
stdio_mock_servers "$LG" "$UPSTREAM_ERA" "${POOL:-1}" > "$OUT/via-stdio.toml"
cat > "$OUT/via-http.toml" <<TOML
[[servers]]
name = "mock"
url = "$MOCK_URL"
prefix = ""
era = "$UPSTREAM_ERA"
pool = ${POOL:-1}
http2 = $([ "${UPSTREAM_HTTP2:-0}" = 1 ] && echo true || echo false)
TOML
export SWITCHYARD_LOG=warn
WORKERS=${WORKERS:+--workers $WORKERS}
start "$OUT/sy-stdio.log" "$SY" serve --listen 127.0.0.1:0 --config "$OUT/via-stdio.toml" $WORKERS; SYS_URL=$URL; SYS_PID=$PID
start "$OUT/sy-http.log" "$SY" serve --listen 127.0.0.1:0 --config "$OUT/via-http.toml" $WORKERS; SYH_URL=$URL; SYH_PID=$PID
sleep 1

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# run NAME URL PIDS... : one load run; writes $OUT/NAME.json and $OUT/NAME.cpu (ticks per pid)
run() {
  local name=$1 url=$2; shift 2
  local extra=()
  [ "$name" = hop ] || [[ "$name" == hop-* ]] && extra+=(--no-check)
  local before=() p
  for p in "$@"; do before+=("$(ticks "$p")"); done
  "$LG" run --url "$url" --era "$ERA" --sessions "$SESSIONS" --duration "$DURATION" --warmup "$WARMUP" --ramp-up 1 \
    --args "$ARGS" --quiet --json "$OUT/$name.json" "${extra[@]}" ${RATE:+--rate "$RATE"} > "$OUT/$name.txt"
  local i=0 cpu=""
  for p in "$@"; do cpu="$cpu $(( $(ticks "$p") - ${before[$i]} ))"; i=$((i + 1)); done
  echo "$cpu" > "$OUT/$name.cpu"
}

# The load generator straight at the mock over stdio: what a stdio server does with no router.
# The mock is the load generator's own child, so its CPU comes from the report (server_cpu_s).
run_stdio() {
  local name=$1
  "$LG" run --stdio "$LG mock-server --stdio" --era "$ERA" --sessions "$SESSIONS" --duration "$DURATION" \
    --warmup "$WARMUP" --ramp-up 1 --args "$ARGS" --quiet --json "$OUT/$name.json" ${RATE:+--rate "$RATE"} > "$OUT/$name.txt"
  echo "" > "$OUT/$name.cpu"
}

# Switchyard's stdio child (the mock it fronts), measured beside Switchyard itself.
CHILD_PID=$(pgrep -P "$SYS_PID" | head -1)  # with POOL > 1, the first of its children
RATE= run direct "$MOCK_URL" "$MOCK_PID"
RATE= run_stdio direct-stdio
RATE= run via-stdio "$SYS_URL" "$SYS_PID" "$CHILD_PID"
RATE= run via-http "$SYH_URL" "$SYH_PID" "$MOCK_PID"
RATE= run hop "$HOP_URL" "$HOP_PID"
HALF=$(python3 -c "import json; print(max(1, round(json.load(open('$OUT/direct.json'))['achieved_rps'] / 2)))")
RATE=$HALF run direct-fixed "$MOCK_URL" "$MOCK_PID"
RATE=$HALF run_stdio direct-stdio-fixed
RATE=$HALF run via-stdio-fixed "$SYS_URL" "$SYS_PID" "$CHILD_PID"
RATE=$HALF run via-http-fixed "$SYH_URL" "$SYH_PID" "$MOCK_PID"
RATE=$HALF run hop-fixed "$HOP_URL" "$HOP_PID"
# At half and at a tenth of each routed path's own saturating rate (issue 10's latency
# goals), with the mock straight over HTTP at the same rate beside it.
rate_of() { python3 -c "import json; print(max(1, round(json.load(open('$OUT/$1.json'))['achieved_rps'] * $2)))"; }
for path in stdio http; do
  for pct in 50 10; do
    r=$(rate_of "via-$path" "0.$pct")
    echo "$r" > "$OUT/at-$path-$pct.rate"
    RATE=$r run "direct-at-$path-$pct" "$MOCK_URL" "$MOCK_PID"
    if [ "$path" = stdio ]; then
      RATE=$r run "via-stdio-at-$pct" "$SYS_URL" "$SYS_PID" "$CHILD_PID"
    else
      RATE=$r run "via-http-at-$pct" "$SYH_URL" "$SYH_PID" "$MOCK_PID"
    fi
  done
done

python3 - "$OUT" "$SESSIONS" "$DURATION" "$HALF" <<'PY' | tee "$OUT/summary.md"
import json, os, sys
out, sessions, duration, half = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
tck = os.sysconf("SC_CLK_TCK")
def load(n):
    r = json.load(open(f"{out}/{n}.json"))
    cpu = [int(x) for x in open(f"{out}/{n}.cpu").read().split()]
    return r, cpu
def us_per_req(r, ticks):
    # The CPU was spent on every request of the run, warm-up included.
    return ticks * 1e6 / tck / max(r["total"], 1)
def server_us(r, cpu):
    # direct-stdio: the mock is the load generator's child, measured by it.
    if not cpu:
        return (r.get("server_cpu_s") or 0) * 1e6 / max(r["total"], 1)
    return us_per_req(r, cpu[0])
print(f"sessions {sessions}, {duration}s measured per run, fixed rate {half} req/s (half of direct), "
      f"clients {os.environ.get('ERA', 'legacy')}, upstream {os.environ.get('UPSTREAM_ERA', 'legacy')}"
      f"{' over HTTP/2' if os.environ.get('UPSTREAM_HTTP2') == '1' else ''}\n")
print("| run | req/s (closed loop) | p50 ms | p99 ms | errors | server CPU us/req | upstream mock CPU us/req | loadgen CPU us/req | p50 ms @ fixed | p99 ms @ fixed |")
print("|---|---|---|---|---|---|---|---|---|---|")
rows = {}
for n in ["direct", "direct-stdio", "via-stdio", "via-http", "hop"]:
    r, cpu = load(n)
    f, _ = load(n + "-fixed")
    cpu_us = server_us(r, cpu)
    rows[n] = (r, f, cpu_us)
    lat = r["latency_us"]; fl = f["latency_us"]
    errs = sum(r["errors"].values()) + sum(f["errors"].values())
    upstream = f"{us_per_req(r, cpu[1]):.1f}" if len(cpu) > 1 else "-"
    lg = (r.get("loadgen_cpu_s") or 0) * 1e6 / max(r["total"], 1)
    print(f"| {n} | {r['achieved_rps']:.0f} | {lat['p50']/1000:.3f} | {lat['p99']/1000:.3f} | {errs} | {cpu_us:.1f} | {upstream} | {lg:.1f} | {fl['p50']/1000:.3f} | {fl['p99']/1000:.3f} |")
d = rows["direct"]
ds = rows["direct-stdio"]
print()
print(f"direct-stdio: the mock over stdio without a router: {ds[0]['achieved_rps']:.0f} req/s, "
      f"{ds[0]['achieved_rps']/d[0]['achieved_rps']:.2f}x direct over HTTP; via-stdio reaches "
      f"{rows['via-stdio'][0]['achieved_rps']/ds[0]['achieved_rps']:.2f}x of it")
for n in ["via-stdio", "via-http"]:
    r, f, cpu_us = rows[n]
    print(f"{n}: throughput {r['achieved_rps']/d[0]['achieved_rps']:.2f}x direct; "
          f"at fixed rate p50 {f['latency_us']['p50']/d[1]['latency_us']['p50']:.2f}x, "
          f"p99 {f['latency_us']['p99']/d[1]['latency_us']['p99']:.2f}x direct "
          f"(goal: p99 <= 1.5x direct + 250us = {(1.5*d[1]['latency_us']['p99']+250)/1000:.3f} ms, got {f['latency_us']['p99']/1000:.3f} ms); "
          f"router CPU {cpu_us:.1f} us/req = {cpu_us/rows['hop'][2]:.2f}x the hop responder's {rows['hop'][2]:.1f}")
print()
print("At a share of each routed path's own saturating rate, direct at the same rate (goal: p99 at most direct's + 0.25 ms):\n")
print("| path | share | req/s | direct p50 ms | direct p99 ms | via p50 ms | via p99 ms | errors | goal met |")
print("|---|---|---|---|---|---|---|---|---|")
for path in ["stdio", "http"]:
    for pct in [50, 10]:
        rate = open(f"{out}/at-{path}-{pct}.rate").read().strip()
        dr, _ = load(f"direct-at-{path}-{pct}")
        vr, _ = load(f"via-{path}-at-{pct}")
        dl, vl = dr["latency_us"], vr["latency_us"]
        errs = sum(dr["errors"].values()) + sum(vr["errors"].values())
        met = "yes" if vl["p99"] <= dl["p99"] + 250 else "no"
        print(f"| via-{path} | {pct}% | {rate} | {dl['p50']/1000:.3f} | {dl['p99']/1000:.3f} | {vl['p50']/1000:.3f} | {vl['p99']/1000:.3f} | {errs} | {met} |")
PY
echo "bench: results in $OUT"
