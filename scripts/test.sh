#!/usr/bin/env bash
# Installs wardgate and runs lint, types and the whole test suite against real nginx.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
PY=${WARDGATE_VENV:-.venv}/bin/python
"$PY" -m ruff check src tests $([ -d bench ] && echo bench)
"$PY" -m mypy
"$PY" -m pytest -q "$@"
