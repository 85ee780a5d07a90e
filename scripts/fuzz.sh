#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 60), seeded from fuzz/seeds/.
# Works on the stable toolchain: libFuzzer's coverage instrumentation needs only stable
# codegen flags; `--sanitizer none` because AddressSanitizer needs nightly, and the crate
# has no unsafe code for it to guard. A crash leaves its input in fuzz/artifacts/<target>/;
# once fixed, copy it into fuzz/regressions/<target>/ (replayed by tests/fuzz_inputs.rs).
#
# Usage: scripts/fuzz.sh [SECONDS]   (env TARGETS="envelope config" to pick targets)
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECONDS_EACH=${1:-60}
TARGETS=${TARGETS:-"newline_framing decoder_limits sse_parse envelope http_request config"}
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz 0.13.2"
  cargo install cargo-fuzz --locked --version 0.13.2
fi
for t in $TARGETS; do
  mkdir -p "corpus/$t"
  cp -n seeds/"$t"/* "corpus/$t/" 2>/dev/null || true
  echo "fuzz: $t for ${SECONDS_EACH}s"
  cargo fuzz run --sanitizer none "$t" "corpus/$t" -- \
    -max_total_time="$SECONDS_EACH" -rss_limit_mb=4096 -timeout=10 -print_final_stats=1 2>&1 \
    | grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb|==|SUMMARY|Done|artifact_prefix|Test unit written)" || true
  # libFuzzer exits non-zero on a crash; grep above hides the status, so check artifacts.
  if [ -n "$(find "artifacts/$t" -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' \) 2>/dev/null)" ]; then
    echo "fuzz: $t found a failing input:"; ls artifacts/"$t"/
    exit 1
  fi
done
echo "fuzz: all targets ran ${SECONDS_EACH}s without a failure"
