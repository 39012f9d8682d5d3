#!/usr/bin/env bash
# Migrates cluster.yaml and serves the result beside echo backends, without a cluster:
# `wardgate migrate -f cluster.yaml -o .wardgate/migration/out`, three echo backends on
# 127.0.0.1:3101..3103, and `wardgate run` on the migrated files plus backends.yaml, each Gateway
# on its own address from 127.0.100.0/24 and port 80+9000 (9080), admin on :9903.
# Install first (bash scripts/install.sh); Ctrl-C, or killing this script, stops everything.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${WARDGATE_VENV:-.venv}/bin
STATE=.wardgate/migration
rm -rf "$STATE"
mkdir -p "$STATE"
"$BIN/wardgate" migrate -f examples/migration/cluster.yaml -o "$STATE/out"
PIDS=()
cleanup() {
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
start_echo() {  # port namespace pod
  "$BIN/wardgate" echo --listen "127.0.0.1:$1" --namespace "$2" --pod "$3" --quiet &
  PIDS+=($!)
}
start_echo 3101 web shop-0
start_echo 3102 tools wiki-0
start_echo 3103 phish-sim campaign-0
FILES=()
for f in "$STATE"/out/*.yaml; do FILES+=(-f "$f"); done  # not report.json: it is no manifest
"$BIN/wardgate" run "${FILES[@]}" -f examples/migration/backends.yaml --state-dir "$STATE/run" \
  --address-pool 127.0.100.0/24 --port-offset 9000 --admin-port 9903 &
PIDS+=($!)
echo "migration example: report in $STATE/out/report.txt; addresses: wardgate status --admin http://127.0.0.1:9903"
wait "${PIDS[-1]}"
