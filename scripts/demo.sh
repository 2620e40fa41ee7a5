#!/usr/bin/env bash
# Set up everything on a fresh machine and run the demo: the main job on embedded defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e .
exec .venv/bin/seedvault demo "$@"
