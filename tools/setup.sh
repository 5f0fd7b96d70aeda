#!/usr/bin/env bash
# Set up FaceKey from a clean clone and run one job.
#   bash tools/setup.sh demo [DIR]   backend + Blender module, then `facekey demo -o DIR`
#   bash tools/setup.sh test [ARGS]  everything for the tests (+ Debian's blender), then pytest ARGS
# Needs only Python 3.11 with pip/venv (and apt-get, as root or with sudo, for the
# `blender -b` tests; without it those tests skip with a reason).
set -euo pipefail
cd "$(dirname "$0")/.."
job="${1:-}"; shift || true

py=""
for cand in python3.11 python3 python; do
  if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    py="$cand"; break
  fi
done
[ -n "$py" ] || { echo "FaceKey needs Python 3.11 (python3.11 not found on PATH)." >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv with $($py --version)"
  "$py" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip

install_blender_binary() {
  command -v blender >/dev/null 2>&1 && [ -d /usr/lib/python3/dist-packages/numpy ] && return 0
  command -v apt-get >/dev/null 2>&1 || { echo "(no apt-get: blender -b tests will skip)"; return 0; }
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo -n"; else
      echo "(not root and no passwordless sudo: blender -b tests will skip)"; return 0; fi
  fi
  echo "== apt-get install blender python3-numpy (Debian's, for the blender -b tests)"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq blender python3-numpy >/dev/null \
    || echo "(apt-get install blender failed: blender -b tests will skip)"
}

case "$job" in
  demo)
    echo "== installing facekey[backend,blender]"
    .venv/bin/python -m pip install -q -e ".[backend,blender]"
    .venv/bin/facekey demo -o "${1:-demo_out}"
    ;;
  test)
    echo "== installing facekey[dev]"
    .venv/bin/python -m pip install -q -e ".[dev]"
    .venv/bin/python -m pip install -q --no-deps face-alignment==1.5.0   # optional FAN source (see pyproject)
    install_blender_binary
    .venv/bin/python -m pytest "$@"
    ;;
  *)
    echo "usage: bash tools/setup.sh demo [DIR] | test [PYTEST ARGS]" >&2; exit 2 ;;
esac
