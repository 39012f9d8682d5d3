#!/usr/bin/env bash
# Installs wardgate and runs lint, types and the whole test suite against real nginx.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
python3 -m ruff check src tests $([ -d bench ] && echo bench)
python3 -m mypy
python3 -m pytest -q "$@"
