#!/usr/bin/env bash
# Build the suite (release) and start coworkd in the foreground with its
# defaults. Extra arguments go to coworkd (e.g. --home DIR). Ctrl-C stops
# everything gracefully.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "cargo not found: install Rust (https://rustup.rs)" >&2; exit 1; }
cargo build --locked --release --workspace --bins
exec target/release/coworkd "$@"
