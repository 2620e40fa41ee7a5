#!/usr/bin/env bash
# Set up everything on a fresh machine and run the checks: lint, types, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'
.venv/bin/ruff check seedvault tests bench manifests
.venv/bin/mypy
exec .venv/bin/python -m pytest -q "$@"
