#!/usr/bin/env bash
# Build the release binaries and run the suite benchmark (figures and ratios
# against baselines measured in the same run). See docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export COWORK_TEST_PYTHON="${COWORK_TEST_VENV:-$HOME/.cache/cowork/venv}/bin/python"
export COWORK_TEST_NPM="${COWORK_TEST_NPM:-$HOME/.cache/cowork/npm}"
[ -x "$COWORK_TEST_PYTHON" ] && [ -d "$COWORK_TEST_NPM/node_modules" ] || {
  echo "run scripts/test.sh once first: it installs the Python and npm peers" >&2; exit 1; }
cargo build --locked --release --workspace --bins
cargo bench --locked -p cowork-e2e --bench suite
cargo bench --locked -p cowork-e2e --bench capture
cargo bench --locked -p agents-agent --bench router
cargo bench --locked -p cowork-e2e --bench chat
cargo bench --locked -p cowork-e2e --bench mcp
