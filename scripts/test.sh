#!/usr/bin/env bash
# Install crowdpin with its test extras into .venv, check lint, formatting and types, and run
# the whole test suite. Arguments go to pytest (the checks always run: they take seconds).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
echo "ruff check" >&2
.venv/bin/python -m ruff check .
echo "ruff format --check" >&2
.venv/bin/python -m ruff format --check .
echo "mypy" >&2
.venv/bin/python -m mypy
exec .venv/bin/python -m pytest -q "$@"
