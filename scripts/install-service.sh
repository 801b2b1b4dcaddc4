#!/usr/bin/env bash
# Install the login service for coworkd: the LaunchAgent on macOS, the
# systemd user unit elsewhere, pointing at BINDIR/coworkd.
#   scripts/install-service.sh [BINDIR]   (default: target/release)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
bindir="$(cd "${1:-$here/target/release}" && pwd)"
[ -x "$bindir/coworkd" ] || { echo "no coworkd in $bindir (build with: cargo build --release)" >&2; exit 1; }
if [ "$(uname)" = Darwin ]; then
  dest="$HOME/Library/LaunchAgents/ai.cowork.coworkd.plist"
  mkdir -p "$(dirname "$dest")"
  sed "s#/usr/local/bin/coworkd#$bindir/coworkd#" "$here/launchd/ai.cowork.coworkd.plist" > "$dest"
  launchctl bootout "gui/$(id -u)" "$dest" 2>/dev/null || true
  launchctl bootstrap "gui/$(id -u)" "$dest"
  echo "installed $dest"
else
  dest="$HOME/.config/systemd/user/coworkd.service"
  mkdir -p "$(dirname "$dest")"
  sed "s#/usr/local/bin/coworkd#$bindir/coworkd#" "$here/launchd/coworkd.service" > "$dest"
  systemctl --user daemon-reload
  systemctl --user enable --now coworkd.service
  echo "installed $dest"
fi
