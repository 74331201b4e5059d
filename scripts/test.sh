#!/usr/bin/env bash
# The test command: install what the tests need, then lint, type-check and
# run the whole suite.  .ci/run calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --test
echo "== ruff check"; .venv/bin/ruff check borgd tests bench
echo "== ruff format --check"; .venv/bin/ruff format --check borgd tests bench
echo "== mypy"; .venv/bin/mypy
echo "== pytest"; .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
