#!/usr/bin/env bash
# The OpenAPI document, checked by tools that are not paygate's:
#   1. openapi-spec-validator validates /v1/openapi.json as served by a live gateway against the OpenAPI 3.1 schema;
#   2. schemathesis generates requests from the document (examples, boundary values, random and invalid data,
#      sequences that follow the document's links) and checks every answer: no 5xx, the status and content type
#      documented, the body matching its schema, invalid input refused, a bad key refused.
#   tests/openapi/run.sh [path/to/paygate] [sqlite|postgres://USER@HOST:PORT/DB]
#   MAX_EXAMPLES=200 SEED=7 tests/openapi/run.sh ...     # a longer or a different run (default 50, seed 1)
# A fresh database every run (a temporary directory, or a new PostgreSQL database dropped afterwards). The
# Python tools go into tests/openapi/.venv, pinned in requirements.txt. Prints schemathesis's summary; exits
# non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE="tests/openapi"
BIN="${1:-target/debug/paygate}"
BACKEND="${2:-sqlite}"
MAX_EXAMPLES="${MAX_EXAMPLES:-50}"
SEED="${SEED:-1}"

if [ ! -x "$HERE/.venv/bin/st" ] || [ ! -x "$HERE/.venv/bin/openapi-spec-validator" ]; then
  python3 -m venv "$HERE/.venv" 2>/dev/null || {
    echo "python3 -m venv failed; install python3-venv"; exit 1; }
  "$HERE/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$HERE/requirements.txt"
fi

DIR="$(mktemp -d)"
DB_NAME=""
cleanup() {
  [ -n "${GW_PID:-}" ] && kill "$GW_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  if [ -n "$DB_NAME" ]; then psql "$BACKEND" -qAtc "drop database if exists $DB_NAME" >/dev/null || true; fi
  rm -rf "$DIR"
}
trap cleanup EXIT

case "$BACKEND" in
  sqlite) DB_ARGS=(--data-dir "$DIR/data") ;;
  postgres://*)
    DB_NAME="paygate_openapi_$$_$(date +%s)"
    psql "$BACKEND" -qAtc "create database $DB_NAME" >/dev/null
    DB_ARGS=(--data-dir "$DIR/data" --database-url "${BACKEND%/*}/$DB_NAME") ;;
  *) echo "backend must be sqlite or a postgres:// URL"; exit 2 ;;
esac
echo "backend: ${BACKEND%%://*}"

"$BIN" migrate "${DB_ARGS[@]}" >/dev/null
KEY="$("$BIN" merchant create "${DB_ARGS[@]}" --name "OpenAPI fuzz" --json \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["testSecretKey"])')"

# A free port, then the gateway. The failed-authentication budget and the per-key rate limit are off: the fuzzer
# sends thousands of requests from one address, many with a bad key on purpose, and must see each one's own
# answer (401), not the budget's 429.
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
PAYGATE_LOG__FORMAT=json PAYGATE_RATE_LIMIT__AUTH_FAILURES_PER_MINUTE=0 PAYGATE_RATE_LIMIT__PER_KEY_PER_SECOND=0 \
  "$BIN" serve "${DB_ARGS[@]}" --listen "127.0.0.1:$PORT" >"$DIR/gateway.log" 2>&1 &
GW_PID=$!
BASE="http://127.0.0.1:$PORT"
deadline=$(( $(date +%s) + 30 ))
until curl -sf "$BASE/readyz" >/dev/null; do
  if [ "$(date +%s)" -ge "$deadline" ] || ! kill -0 "$GW_PID" 2>/dev/null; then
    echo "the gateway did not become ready"; cat "$DIR/gateway.log"; exit 1
  fi
  sleep 0.1
done

curl -sf "$BASE/v1/openapi.json" -o "$DIR/openapi.json"
echo "openapi-spec-validator: $("$HERE/.venv/bin/openapi-spec-validator" --schema 3.1.0 "$DIR/openapi.json")"

# Every check but positive_data_acceptance ("schema-valid data should be accepted"): the document states the
# fields' types, ranges and patterns, not the rules that need the database or the outside world (a card number's
# Luhn digit, an orderId already used, a webhook host that must resolve to a public address, an Idempotency-Key
# reused with another body), and those answers are documented 4xx errors.
status=0
ROOT="$PWD"
# From the temporary directory, where schemathesis keeps its cache.
(cd "$DIR" && "$ROOT/$HERE/.venv/bin/st" --config-file "$ROOT/$HERE/schemathesis.toml" run "$BASE/v1/openapi.json" --url "$BASE" \
  -H "Authorization: Bearer $KEY" \
  --exclude-checks positive_data_acceptance \
  --max-examples "$MAX_EXAMPLES" --seed "$SEED" \
  --request-timeout 30 --no-color >"$DIR/schemathesis.txt" 2>&1) || status=$?
if [ "$status" -ne 0 ]; then
  cat "$DIR/schemathesis.txt"
  echo "schemathesis failed (exit $status); gateway log:"; tail -n 50 "$DIR/gateway.log"
  exit "$status"
fi
sed -n '/SUMMARY/,$p' "$DIR/schemathesis.txt"
if grep -q '"level":"ERROR"\|panicked' "$DIR/gateway.log"; then
  echo "the gateway logged errors during the run:"; grep '"level":"ERROR"\|panicked' "$DIR/gateway.log" | head -20
  exit 1
fi
