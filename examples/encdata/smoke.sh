#!/usr/bin/env bash
# Proves the documented encData examples against a live gateway: starts paygate on a fresh SQLite data directory,
# fetches the merchant's key, encrypts with the Node and the Python example, pays with each, and checks DONE.
# Usage: examples/encdata/smoke.sh [path/to/paygate]   (needs node >= 18, python3 with `cryptography`, curl)
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN="${1:-target/debug/paygate}"
DIR="$(mktemp -d)"
trap 'kill "$PID" 2>/dev/null || true; rm -rf "$DIR"' EXIT
"$BIN" serve --init --data-dir "$DIR/data" --listen 127.0.0.1:0 > "$DIR/out" 2> "$DIR/err" &
PID=$!
for _ in $(seq 1 100); do grep -q "listening on" "$DIR/out" 2>/dev/null && break; sleep 0.1; done
BASE="$(grep -o 'http://127.0.0.1:[0-9]*' "$DIR/out" | tail -n1)"
SK="$(awk '/test secret key/ {print $4}' "$DIR/out")"
MID="$(awk '/mId:/ {print $2}' "$DIR/out")"
KEY="$(curl -sf -u "$SK:" "$BASE/v1/merchants/me/encryption-key" | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')"
FIELDS='{"cardNumber":"4330000000000003","cardExpirationYear":"29","cardExpirationMonth":"12","customerIdentityNumber":"900101"}'
export PAYGATE_ENC_KEY="$KEY" PAYGATE_ENC_KEY_VERSION=1 PAYGATE_MID="$MID" PAYGATE_MODE=test
for tool in "node examples/encdata/encrypt.mjs" "python3 examples/encdata/encrypt.py"; do
  ENC="$($tool "$FIELDS")"
  ORDER="encdata-$RANDOM$RANDOM"
  STATUS="$(curl -s -u "$SK:" -H 'Content-Type: application/json' \
    -d "{\"amount\":15000,\"orderId\":\"$ORDER\",\"orderName\":\"T-shirt\",\"encData\":\"$ENC\"}" \
    "$BASE/v1/payments/key-in" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("status"))')"
  echo "$tool -> $STATUS"
  [ "$STATUS" = "DONE" ] || { echo "encData example failed with $tool"; exit 1; }
done
