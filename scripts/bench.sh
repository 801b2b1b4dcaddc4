#!/usr/bin/env bash
# Build the release binaries and run the suite benchmark (figures and ratios
# against baselines measured in the same run). See docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/peers.sh
source scripts/peers.sh
cargo build --locked --release --workspace --bins
# The browser benchmark's peers: Playwright for Python (driving Debian's
# chromium, no browser download) and the MiniWoB++ task pages (its HTML
# only: the gym environment it also ships is not used).
"$COWORK_TEST_PYTHON" -c "import playwright" 2>/dev/null \
  || "$COWORK_TEST_PYTHON" -m pip install -q "playwright==1.65.3"
"$COWORK_TEST_PYTHON" -c "import importlib.util as u; assert u.find_spec('miniwob')" 2>/dev/null \
  || "$COWORK_TEST_PYTHON" -m pip install -q --no-deps "miniwob==1.1.0"
cargo bench --locked -p cowork-e2e --bench suite
cargo bench --locked -p cowork-e2e --bench capture
cargo bench --locked -p agents-agent --bench router
cargo bench --locked -p agents-agent --bench chat
cargo bench --locked -p cowork-e2e --bench mcp
cargo bench --locked -p agents-agent --bench models
cargo bench --locked -p agents-agent --bench sessions
cargo bench --locked -p agents-agent --bench knn
cargo bench --locked -p cowork-e2e --bench memory_lag
cargo bench --locked -p cowork-e2e --bench retrieval
cargo bench --locked -p cowork-e2e --bench grounding
cargo bench --locked -p agents-agent --bench memory_scale
cargo bench --locked -p cowork-e2e --bench browser
