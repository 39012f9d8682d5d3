#!/usr/bin/env bash
# Installs what wardgate needs on Debian/Ubuntu: nginx with its modules, and the Python package
# in a virtual environment (.venv; Debian's own Python refuses system-wide pip installs).
# Idempotent: apt-get runs only when a package is missing, the venv is made once.
set -euo pipefail
cd "$(dirname "$0")/.."

# lua-resty-core: the Lua module needs it to start (nginx -t passes without it, nginx does not).
DEB_PACKAGES=(nginx libnginx-mod-http-js libnginx-mod-http-lua lua-resty-core libnginx-mod-http-headers-more-filter
              libnginx-mod-http-modsecurity libnginx-mod-stream modsecurity-crs python3-venv curl jq
              wrk caddy haproxy valgrind  # the benchmarks' load generator, peers and instruction counter
              nginx-dev gcc make)         # to build wardgate's nginx module against the packaged nginx
missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  # Root (containers, CI images) installs directly; anyone else through sudo, asked only here.
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null; then
      echo "wardgate: these Debian packages are missing: ${missing[*]}" >&2
      echo "wardgate: run this script as root, or install sudo, or install them with apt-get first" >&2
      exit 1
    fi
    SUDO="sudo"
  fi
  echo "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian may start system nginx/caddy/haproxy services; wardgate and the bench run their own.
  for svc in nginx caddy haproxy; do
    if command -v systemctl >/dev/null && systemctl is-active -q "$svc" 2>/dev/null; then
      $SUDO systemctl disable --now "$svc" || true
    fi
  done
fi
PY=${PYTHON:-python3}
VENV=${WARDGATE_VENV:-.venv}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
export PIP_ROOT_USER_ACTION=ignore
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[test]"
# Byte-compile the package (an editable install doesn't; with PYTHONDONTWRITEBYTECODE set, every
# `wardgate` command would compile its modules again: 0.17 s of each start)
"$VENV/bin/python" -m compileall -q src/wardgate >/dev/null
# wardgate's nginx module, into the venv, where render looks for it (RenderOptions.wardgate_module)
bash scripts/build-module.sh "$VENV/lib/nginx/modules"
