#!/usr/bin/env bash
# Set up everything the test suite needs on a fresh machine (only Python 3 is
# assumed), then run the whole suite; then the torch-free static tests on every
# other supported Python found (see below). Extra arguments go to pytest and
# skip the other Pythons.
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

status=0
.venv/bin/python -m pytest "$@" || status=$?

# The static analyzer on every other supported Python (requires-python >= 3.10):
# a venv per version with the package, pytest and hypothesis only (no torch), and
# the torch-free tests that exercise the parser guards, the engine and the CLI.
# Runs with the full suite (no pytest arguments) or when GRADLINT_PYTHONS names
# versions; a version without an interpreter is skipped with a message.
STATIC_TESTS=(tests/test_engine.py tests/test_robustness.py tests/test_torch_free.py
  tests/cli/test_parallel.py tests/cli/test_cache.py tests/cli/test_stdin.py)
if [ $# -eq 0 ] || [ -n "${GRADLINT_PYTHONS:-}" ]; then
  main=$(.venv/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  for v in ${GRADLINT_PYTHONS:-3.10 3.11 3.12 3.13 3.14}; do
    [ "$v" = "$main" ] && continue
    py=""
    # on PATH (a pyenv shim there may name a version that is not installed), else pyenv's newest build
    for cand in "$(command -v "python$v" || true)" \
      "$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$v".*/bin/python"$v" 2>/dev/null | sort -V | tail -n 1 || true)"; do
      if [ -n "$cand" ] && "$cand" -c '' >/dev/null 2>&1; then py=$cand; break; fi
    done
    if [ -z "$py" ]; then
      echo "scripts/test.sh: skipping Python $v: no working python$v on PATH or under pyenv"
      continue
    fi
    echo "scripts/test.sh: static tests on Python $v ($py)"
    [ -x ".venv-$v/bin/python" ] || "$py" -m venv ".venv-$v"
    ".venv-$v/bin/python" -m pip install -q --disable-pip-version-check -e . pytest hypothesis
    ".venv-$v/bin/python" -m pytest -q -p no:cacheprovider "${STATIC_TESTS[@]}" || status=$?
  done
fi
exit $status
