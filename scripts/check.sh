#!/usr/bin/env bash
# The check that needs no root and no sandbox: ruff, mypy --strict and the pure tests
# (pytest -m "not kernel"; tests/conftest.py says which tests are pure). The kernel suite is
# scripts/test.sh (root, sandboxed); CI runs that one.
#
# Uses .venv (scripts/setup.sh makes it, as root). If .venv is missing it is made here, without apt
# and without root: ${PYTHON:-python3} -m venv .venv, then pip install -e '.[dev]' (needs PyPI).
# Arguments go to pytest (bash scripts/check.sh -k ipam -x). Run as root, the tests go through
# scripts/sandbox.sh, because tests/conftest.py refuses root outside it.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  echo "check.sh: no .venv here; making one (no apt, no root needed)"
  "${PYTHON:-python3}" -m venv .venv
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
fi
rc=0
echo "== ruff"
.venv/bin/ruff check . || rc=1
echo "== mypy --strict"
.venv/bin/mypy --strict || rc=1
echo "== pytest -m 'not kernel'"
wrap=()
if [ "$(id -u)" = 0 ]; then wrap=(bash scripts/sandbox.sh); fi
"${wrap[@]}" .venv/bin/python -m pytest -m "not kernel" "$@" || rc=1
exit $rc
