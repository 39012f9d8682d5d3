#!/usr/bin/env bash
# Installs wardgate and runs the quickstart gateway on http://127.0.0.1:8080 (Ctrl-C stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
BIN=${WARDGATE_VENV:-.venv}/bin
"$BIN/python" -m wardgate.verify.echo --host 127.0.0.1 --port 3000 --namespace default --pod echo-0 --quiet &
ECHO_PID=$!
"$BIN/wardgate" run -f examples/quickstart --state-dir .wardgate/quickstart &
WARDGATE_PID=$!
# Whatever stops this script (Ctrl-C, kill, timeout) stops the gateway and its nginx too.
trap 'kill -TERM $WARDGATE_PID 2>/dev/null; wait $WARDGATE_PID 2>/dev/null; kill $ECHO_PID 2>/dev/null' EXIT INT TERM
echo "try: curl -H 'Host: localhost' http://127.0.0.1:8080/hello"
wait $WARDGATE_PID
