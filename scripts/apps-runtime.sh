#!/usr/bin/env bash
# The runtime installed apps are bundled with (seed 003: esbuild bundles
# TSX/TS and resolves every import at install, offline): esbuild, and the
# packages an AI Studio export imports (react, react-dom, @google/genai),
# installed once from the npm registry into ~/.cache/cowork/apps-runtime
# (agents-agent's default `[apps] runtime_dir`). Idempotent: a runtime with
# these versions is left as it is. Usage: scripts/apps-runtime.sh [DIR]
set -euo pipefail
dir="${1:-${COWORK_APPS_RUNTIME:-${XDG_CACHE_HOME:-$HOME/.cache}/cowork/apps-runtime}}"
want="esbuild@0.28.2 react@19.3.1 react-dom@19.3.1 @google/genai@3.6.1"
if [ -x "$dir/node_modules/.bin/esbuild" ] && [ "$(cat "$dir/.versions" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
if ! command -v npm >/dev/null; then
  if command -v apt-get >/dev/null; then
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo -n"; fi
    $SUDO apt-get install -y -qq nodejs npm >/dev/null || true
  fi
fi
command -v npm >/dev/null || { echo "npm not found: install Node.js to bundle apps (apps stay unavailable until then)" >&2; exit 1; }
echo "== installing the apps runtime ($want) into $dir"
mkdir -p "$dir"
# shellcheck disable=SC2086
npm install --silent --no-audit --no-fund --prefix "$dir" $want
"$dir/node_modules/.bin/esbuild" --version >/dev/null
echo "$want" > "$dir/.versions"
