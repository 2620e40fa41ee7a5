#!/usr/bin/env bash
# Set up everything on a fresh machine and run the checks: lint, types, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
# The web pages are tested in a real browser: Debian's Chromium (tests/test_pages_browser.py
# skips, saying why, where it cannot be installed: no apt-get, or not root).
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq chromium chromium-driver; } >/dev/null \
        || echo "test.sh: could not install chromium; the browser tests will skip" >&2
fi
# Several nodes on one index are tested against a real PostgreSQL (tests/test_postgres.py
# starts its own server with initdb/pg_ctl, and skips, saying why, where it cannot).
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
        && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq postgresql; } >/dev/null \
        || echo "test.sh: could not install postgresql; the PostgreSQL tests will skip" >&2
fi
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'
.venv/bin/ruff check seedvault tests bench manifests
.venv/bin/mypy
exec .venv/bin/python -m pytest -q "$@"
