#!/usr/bin/env bash
# Builds wardgate's nginx module (module/) against Debian's nginx-dev headers, with the packaged
# nginx's own configure flags (--with-compat), so the packaged nginx can load it.
# Usage: scripts/build-module.sh OUT_DIR   -> OUT_DIR/ngx_http_wardgate_module.so
# Idempotent: rebuilds only when the module's source or the nginx version changed.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
OUT=${1:?usage: build-module.sh OUT_DIR}
SRC=/usr/share/nginx/src
[ -f "$SRC/conf_flags" ] || { echo "wardgate: nginx-dev is not installed ($SRC missing)" >&2; exit 1; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
stamp="$(nginx -v 2>&1) $(cat module/config module/*.c module/*.h | sha256sum | cut -c1-16)"
if [ -f "$OUT/ngx_http_wardgate_module.so" ] && [ "$(cat "$OUT/.stamp" 2>/dev/null)" = "$stamp" ]; then
  exit 0
fi
BUILD="$OUT/.build"
rm -rf "$BUILD"
mkdir -p "$BUILD"
cp -r "$SRC/." "$BUILD/nginx"
# shellcheck disable=SC1091
. "$SRC/conf_flags"  # NGX_CONF_FLAGS: the packaged nginx's configure flags
(
  cd "$BUILD/nginx"
  ./configure "${NGX_CONF_FLAGS[@]}" --add-dynamic-module="$REPO/module" \
    --with-cc-opt="-O2 -g -Wall -Wextra -Wno-unused-parameter -Werror" >"$BUILD/configure.log" 2>&1 \
    || { tail -20 "$BUILD/configure.log" >&2; exit 1; }
  make -s -f objs/Makefile modules >"$BUILD/make.log" 2>&1 || { tail -40 "$BUILD/make.log" >&2; exit 1; }
)
cp "$BUILD/nginx/objs/ngx_http_wardgate_module.so" "$OUT/ngx_http_wardgate_module.so.tmp"
mv "$OUT/ngx_http_wardgate_module.so.tmp" "$OUT/ngx_http_wardgate_module.so"
echo "$stamp" >"$OUT/.stamp"
rm -rf "$BUILD"
echo "built $OUT/ngx_http_wardgate_module.so"
