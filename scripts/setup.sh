#!/usr/bin/env bash
# Set up a fresh machine for ganzoo: Debian packages the embedded datasets need (apt-get, only when
# missing), a virtual environment in .venv, and the project with its dev extras.
#   TORCH_SPEC   torch requirement installed first (default torch==2.13.0: on the project's CPU machines
#                a CPU wheel is on local disk; a bare `torch` would pull a multi-GB CUDA build)
#   PYTHON       interpreter for the venv (default python3)
set -euo pipefail
cd "$(dirname "$0")/.."

# chromium + chromium-driver: tests/test_report.py opens the HTML report of `zoo compare` in headless Chromium
APT_PACKAGES=(fonts-noto-color-emoji unicode-data dataset-fashion-mnist chromium chromium-driver)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
# the distribution was called "ganzoo" until it moved its stages under the `zoo` namespace: drop the old one
.venv/bin/python -m pip uninstall -q -y ganzoo >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q -e ".[dev]"
.venv/bin/zoo --version
