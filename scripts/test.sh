#!/usr/bin/env bash
# Set up everything the test suite needs on a fresh machine (only Python 3 is
# assumed), then run the whole suite. Extra arguments go to pytest.
# This is the README's test command; .ci/run runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv

# System tools the runtime tests need: Graphviz's `dot` (graph PNGs) and Chromium
# (the HTML report is checked in a real headless browser). Debian packages.
need=()
command -v dot >/dev/null 2>&1 || need+=(graphviz)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -gt 0 ] && [ "${GRADLINT_SKIP_APT:-0}" != 1 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# torch is pinned here (not in the package) so that pip takes the local CPU build
# instead of a multi-GB CUDA wheel; the package itself accepts a loose range.
.venv/bin/python -m pip install -q --disable-pip-version-check torch==2.13.0
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[runtime,test]'

exec .venv/bin/python -m pytest "$@"
