#!/usr/bin/env bash
# Set everything up, then run the whole test suite (inside a throwaway namespace), mypy --strict and ruff.
# Checks that the machine's own network state is identical before and after.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
before=$(mktemp); after=$(mktemp)
bash scripts/host-snapshot.sh >"$before"
rc=0
bash scripts/sandbox.sh .venv/bin/python -m pytest "$@" || rc=$?
echo "== rootless: the fixtures' network, NAT and partition tests as an unprivileged user (uid 65534)"
bash scripts/unprivileged.sh .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_rootless.py || rc=1
echo "== rootless: scripts/sandbox.sh and an example as that user"
bash scripts/unprivileged.sh bash scripts/sandbox.sh .venv/bin/python examples/rootless.py || rc=1
bash scripts/host-snapshot.sh >"$after"
if ! diff -u "$before" "$after"; then
  echo "test.sh: the machine's own network state changed during the tests" >&2
  rc=1
fi
echo "== mypy --strict"
.venv/bin/mypy --strict || rc=1
echo "== ruff"
.venv/bin/ruff check . || rc=1
rm -f "$before" "$after"
exit $rc
