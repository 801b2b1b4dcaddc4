#!/usr/bin/env bash
# Build the release binaries and run the suite benchmark (figures and ratios
# against baselines measured in the same run). See docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/peers.sh
source scripts/peers.sh
cargo build --locked --release --workspace --bins
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
