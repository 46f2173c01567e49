#!/usr/bin/env bash
# Browser end-to-end tests: hosted checkout, the SDK, receipts — in Debian's chromium, driven by playwright-core.
# Starts the gateway (fresh data dir, free port) and the example shop (examples/merchant), runs e2e.mjs, stops both.
#   tests/browser/run.sh                    # builds and uses target/debug/paygate
#   tests/browser/run.sh path/to/paygate    # a gateway binary you built
#   tests/browser/run.sh --stub             # against tests/browser/stub/gateway.mjs (develops the suite, proves nothing)
#   ONLY=receipt tests/browser/run.sh       # scenarios whose name contains "receipt" (and the hygiene check)
# Needs node >= 18 and /usr/bin/chromium (installed with apt-get when missing and allowed). Never downloads a
# browser. Screenshots: tests/browser/screenshots/; gateway and shop logs: tests/browser/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE="tests/browser"
STUB=""
BIN=""
for arg in "$@"; do
  case "$arg" in
    --stub) STUB=1 ;;
    *) BIN="$arg" ;;
  esac
done

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "installing Debian's chromium (no browser download)"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium
fi
if command -v fc-list >/dev/null && [ -z "$(fc-list :lang=ko 2>/dev/null | head -n1)" ]; then
  echo "note: no Korean font installed; Korean text in screenshots shows as boxes (apt-get install fonts-nanum)"
fi
if [ ! -d "$HERE/node_modules/playwright-core" ]; then
  (cd "$HERE" && npm ci --no-audit --no-fund)
fi

if [ -z "$STUB" ] && [ -z "$BIN" ]; then
  cargo build -p paygate
  BIN="target/debug/paygate"
fi

ARTIFACTS="$HERE/artifacts"
rm -rf "$ARTIFACTS" "$HERE/screenshots"
mkdir -p "$ARTIFACTS" "$HERE/screenshots"
DIR="$(mktemp -d)"
cleanup() {
  [ -n "${SHOP_PID:-}" ] && kill "$SHOP_PID" 2>/dev/null || true
  [ -n "${GW_PID:-}" ] && kill "$GW_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT

free_port() { node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
wait_for() { # file pattern seconds
  local tries=$(( $3 * 10 ))
  for _ in $(seq 1 "$tries"); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "timed out waiting for '$2' in $1"; cat "$1"; return 1
}

GW_PORT="$(free_port)"
GATEWAY="http://127.0.0.1:$GW_PORT"
if [ -n "$STUB" ]; then
  PORT="$GW_PORT" node "$HERE/stub/gateway.mjs" > "$ARTIFACTS/gateway.out" 2> "$ARTIFACTS/gateway.err" &
else
  PAYGATE_OUTBOX__ALLOW_LOOPBACK=true PAYGATE_OUTBOX__WORKER_INTERVAL_MS=50 \
  PAYGATE_PAYMENTS__CHECKOUT_BASE_URL="$GATEWAY" \
    "$BIN" serve --init --data-dir "$DIR/data" --listen "127.0.0.1:$GW_PORT" > "$ARTIFACTS/gateway.out" 2> "$ARTIFACTS/gateway.err" &
fi
GW_PID=$!
wait_for "$ARTIFACTS/gateway.out" "listening on" 60
MID="$(awk '/mId:/ {print $2}' "$ARTIFACTS/gateway.out")"
SK="$(awk '/test secret key:/ {print $4}' "$ARTIFACTS/gateway.out")"
CK="$(awk '/test client key:/ {print $4}' "$ARTIFACTS/gateway.out")"
[ -n "$SK" ] && [ -n "$CK" ] || { echo "could not read the demo keys"; cat "$ARTIFACTS/gateway.out"; exit 1; }

SHOP_PORT="$(free_port)"
SHOP="http://127.0.0.1:$SHOP_PORT"
PAYGATE_URL="$GATEWAY" PAYGATE_SECRET_KEY="$SK" PAYGATE_CLIENT_KEY="$CK" PAYGATE_MID="$MID" PORT="$SHOP_PORT" \
  node examples/merchant/server.mjs > "$ARTIFACTS/shop.out" 2>&1 &
SHOP_PID=$!
wait_for "$ARTIFACTS/shop.out" "listening on" 10

echo "gateway $GATEWAY${STUB:+ (stub)}, shop $SHOP"
status=0
PAYGATE_URL="$GATEWAY" PAYGATE_SECRET_KEY="$SK" SHOP_URL="$SHOP" CHROMIUM="$CHROMIUM" \
  SCREENSHOT_DIR="$PWD/$HERE/screenshots" \
  node "$HERE/e2e.mjs" || status=$?

if [ "$status" -ne 0 ]; then
  echo "---- gateway stderr (last 40 lines) ----"; tail -n 40 "$ARTIFACTS/gateway.err" || true
  echo "---- shop log (last 40 lines) ----"; tail -n 40 "$ARTIFACTS/shop.out" || true
  echo "browser e2e: FAILED (logs in $ARTIFACTS, screenshots in $HERE/screenshots)"
else
  echo "browser e2e: OK (screenshots in $HERE/screenshots)"
fi
exit "$status"
