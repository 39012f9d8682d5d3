#!/usr/bin/env bash
# Runs the three-gateways example: three echo backends on 127.0.0.1:3001..3003 and wardgate with
# one nginx per Gateway (public :8080, internal :8081, phishing :8082), admin on :9902.
# Install first (bash scripts/install.sh); Ctrl-C, or killing this script, stops everything.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${WARDGATE_VENV:-.venv}/bin
STATE=.wardgate/three-gateways
# Start clean: empty logs and fresh rate-limit counters, so the README's walkthrough gives the
# answers it shows.
rm -rf "$STATE"
PIDS=()
# Whatever stops this script (Ctrl-C, kill, timeout) stops the gateways, their nginx and the backends.
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
start_echo 3001 apps shop-0
start_echo 3002 apps wiki-0
start_echo 3003 phish-sim campaign-0
"$BIN/wardgate" run -f examples/three-gateways --state-dir "$STATE" --admin-port 9902 &
PIDS+=($!)
echo "three-gateways: public :8080, internal :8081, phishing :8082, admin http://127.0.0.1:9902/readyz"
echo "walkthrough: examples/three-gateways/README.md"
wait "${PIDS[-1]}"
