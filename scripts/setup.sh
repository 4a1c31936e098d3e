#!/usr/bin/env bash
# Set up facebench on a fresh Debian/Ubuntu machine: system packages the tests use, a virtual
# environment, torch 2.13.0 (CPU) first, then facebench with its dev extra.
# Idempotent: re-running only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
if command -v dpkg >/dev/null 2>&1; then
  dpkg -s fonts-dejavu-core >/dev/null 2>&1 || need_apt+=(fonts-dejavu-core)
fi
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else SUDO=none; fi
  if [ "$SUDO" != none ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing ${need_apt[*]} (report browser test and its font, PostgreSQL history test)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
      "${need_apt[@]}" >/dev/null
  else
    echo "setup: cannot install ${need_apt[*]} (no root/apt); their tests will skip" >&2
  fi
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first, pinned: an open range would pull a multi-GB CUDA build.
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e ".[dev]"
# MTCNN weights ship inside facenet-pytorch; --no-deps because its pins (torch<2.3,
# torchvision) would replace torch. facebench reads only its pnet/rnet/onet.pt files.
.venv/bin/python -m pip install -q --no-deps facenet-pytorch==2.6.0
echo "setup: done — activate with: . .venv/bin/activate"
