#!/usr/bin/env bash
# Proves the documented webhook receiver against a live gateway: starts paygate (loopback deliveries allowed),
# starts examples/webhooks/receiver.mjs, registers it, pays, and waits for a verified PAYMENT_STATUS_CHANGED.
# Usage: examples/webhooks/smoke.sh [path/to/paygate]   (needs node >= 18, curl, python3)
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN="${1:-target/debug/paygate}"
DIR="$(mktemp -d)"
cleanup() { kill "${GW:-}" "${RX:-}" 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT
PAYGATE_OUTBOX__ALLOW_LOOPBACK=true "$BIN" serve --init --data-dir "$DIR/data" --listen 127.0.0.1:0 > "$DIR/out" 2> "$DIR/err" &
GW=$!
for _ in $(seq 1 100); do grep -q "listening on" "$DIR/out" 2>/dev/null && break; sleep 0.1; done
BASE="$(grep -o 'http://127.0.0.1:[0-9]*' "$DIR/out" | tail -n1)"
SK="$(awk '/test secret key/ {print $4}' "$DIR/out")"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
ENDPOINT="$(curl -sf -u "$SK:" -H 'Content-Type: application/json' \
  -d "{\"url\":\"http://127.0.0.1:$PORT/webhooks\",\"eventTypes\":[\"PAYMENT_STATUS_CHANGED\"]}" "$BASE/v1/webhooks")"
SECRET="$(echo "$ENDPOINT" | python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])')"
PAYGATE_WEBHOOK_SECRET="$SECRET" PORT="$PORT" node examples/webhooks/receiver.mjs > "$DIR/receiver" 2>&1 &
RX=$!
for _ in $(seq 1 50); do grep -q listening "$DIR/receiver" 2>/dev/null && break; sleep 0.1; done
KEY="$(curl -sf -u "$SK:" -H 'Content-Type: application/json' \
  -d '{"amount":15000,"orderId":"webhook-smoke-1","orderName":"T-shirt","cardNumber":"4330000000000003","cardExpirationYear":"29","cardExpirationMonth":"12"}' \
  "$BASE/v1/payments/key-in" | python3 -c 'import json,sys; print(json.load(sys.stdin)["paymentKey"])')"
for _ in $(seq 1 100); do grep -q "verified .* $KEY DONE" "$DIR/receiver" && break; sleep 0.1; done
cat "$DIR/receiver"
grep -q "verified .* PAYMENT_STATUS_CHANGED $KEY DONE" "$DIR/receiver" || { echo "the webhook did not verify"; exit 1; }
! grep -q rejected "$DIR/receiver" || { echo "a webhook was rejected"; exit 1; }
echo "webhook receiver example: OK"
