#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs the pinned third-party peers, then
# checks formatting, lints and the API docs (every public item documented, every link
# resolved), then runs every test (unit, property, integration against
# the real peers, and the official conformance suite).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-peers.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --lib
cargo test --workspace
