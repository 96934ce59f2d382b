#!/usr/bin/env bash
# Set everything up, then run the main demo inside a throwaway namespace.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec bash scripts/sandbox.sh .venv/bin/python examples/demo.py
