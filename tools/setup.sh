#!/usr/bin/env bash
# Set up FaceKey from a clean clone and run one job.
#   bash tools/setup.sh demo [DIR]   backend + Blender module, then `facekey demo -o DIR`
#   bash tools/setup.sh test [ARGS]  everything for the tests (+ Debian's blender), then pytest ARGS
# Needs only Python 3.11 with pip/venv, and apt-get (as root or with passwordless sudo) for the system
# libraries OpenCV and Blender load when the machine lacks them, and for Debian's blender (the
# `blender -b` tests; without it those tests skip with a reason).
set -euo pipefail
job="${1:-}"; shift || true
if [ "$job" = demo ]; then   # the output folder is taken from where the command was run
  out="${1:-demo_out}"; case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
fi
cd "$(dirname "$0")/.."

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

# apt-get install PACKAGES as root (or with passwordless sudo); fails when that is not possible.
apt_install() {
  command -v apt-get >/dev/null 2>&1 || return 1
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null || return 1
    sudo="sudo -n"
  fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
    && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# The system libraries OpenCV (MediaPipe's) and the bpy module load, as SONAME=Debian package; a slim
# image (python:3.11-slim) has none of them.  Missing ones are installed with apt-get.
RUNTIME_LIBS="libGL.so.1=libgl1 libglib-2.0.so.0=libglib2.0-0 libX11.so.6=libx11-6 libXi.so.6=libxi6
  libXrender.so.1=libxrender1 libXfixes.so.3=libxfixes3 libxkbcommon.so.0=libxkbcommon0 libSM.so.6=libsm6
  libXext.so.6=libxext6 libICE.so.6=libice6"
ensure_runtime_libs() {
  [ "$(uname -s)" = Linux ] || return 0          # the sonames and packages below are Linux's
  local missing="" pkgs="" pair
  for pair in $RUNTIME_LIBS; do
    "$py" -c 'import ctypes, sys; ctypes.CDLL(sys.argv[1])' "${pair%%=*}" 2>/dev/null \
      || { missing="$missing ${pair%%=*}"; pkgs="$pkgs ${pair#*=}"; }
  done
  [ -z "$missing" ] && return 0
  echo "== apt-get install$pkgs (system libraries OpenCV and Blender load:$missing)"
  # shellcheck disable=SC2086
  apt_install $pkgs || { echo "FaceKey needs the system libraries$missing: run 'apt-get install$pkgs' as root," \
    "then this command again." >&2; exit 1; }
}

install_blender_binary() {
  command -v blender >/dev/null 2>&1 && [ -d /usr/lib/python3/dist-packages/numpy ] && return 0
  echo "== apt-get install blender python3-numpy (Debian's, for the blender -b tests)"
  apt_install blender python3-numpy || echo "(no apt-get as root or sudo, or it failed: blender -b tests will skip)"
}

case "$job" in
  demo)
    echo "== installing facekey[backend,blender]"
    .venv/bin/python -m pip install -q -e ".[backend,blender]"
    ensure_runtime_libs
    .venv/bin/facekey demo -o "$out"
    ;;
  test)
    echo "== installing facekey[dev]"
    .venv/bin/python -m pip install -q -e ".[dev]"
    .venv/bin/python -m pip install -q --no-deps face-alignment==1.5.0   # optional FAN source (see pyproject)
    ensure_runtime_libs
    install_blender_binary
    .venv/bin/python -m pytest "$@"
    ;;
  *)
    echo "usage: bash tools/setup.sh demo [DIR] | test [PYTEST ARGS]" >&2; exit 2 ;;
esac
