#!/usr/bin/env bash
# Run every test of the suite: unit tests, and end-to-end tests that start
# the real binaries and talk to them with our clients and with Python grpcio.
# Installs what the tests need first, idempotently (scripts/peers.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/peers.sh
source scripts/peers.sh

echo "== building"
cargo build --locked --workspace --bins
echo "== testing"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# The fault suite records a row per fault it survived; clear the last
# run's, so a fault that fails now has no row left from before, and list
# the tests that should write one.
faults="${CARGO_TARGET_DIR:-target}/faults"
rm -rf "$faults" && mkdir -p "$faults"
cargo test --locked -p cowork-e2e --test faults -- --list 2>/dev/null | sed -n 's/: test$//p' > "$faults/expected" || true
# --no-fail-fast: one failing test binary does not hide the others.
set +e
cargo test --locked --workspace --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "total: %d passed, %d failed\n", p, f }' "$log"
# docs/RELIABILITY.md: the fault table of this run (a failed fault test
# has already failed the run above).
python3 scripts/reliability.py "$faults" || true
exit "$status"
