#!/usr/bin/env bash
# The main demo: the talk's chat server on every core, driven by simulated
# users. Builds what is needed, starts chat_server on all workers, runs
# chat_load against it (200 users x 200 lines by default), prints delivered
# lines/s and that nothing was lost, then stops the server with SIGTERM.
#
#   scripts/demo.sh [--users C] [--lines M] [--workers W]
set -euo pipefail
cd "$(dirname "$0")/.."
users=200
lines=200
workers=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --users) users="$2"; shift 2 ;;
    --lines) lines="$2"; shift 2 ;;
    --workers) workers="$2"; shift 2 ;;
    --help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "demo: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
done
scripts/setup.sh
cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-release -j "$(nproc)" --target chat_server chat_load

log="$(mktemp)"
build-release/examples/chat_server --host 127.0.0.1 --port 0 --workers "$workers" >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; rm -f "$log"' EXIT
port=""
for _ in $(seq 1 100); do  # wait for "listening on 127.0.0.1:PORT"
  port="$(sed -nE 's/.*listening on 127\.0\.0\.1:([0-9]+).*/\1/p' "$log")"
  [[ -n "$port" ]] && break
  sleep 0.05
done
[[ -n "$port" ]] || { echo "demo: chat_server did not start:"; cat "$log"; exit 1; }
cat "$log"
echo "=== chat_load: $users users x $lines lines against port $port"
status=0
build-release/examples/chat_load --port "$port" --users "$users" --lines "$lines" || status=$?
kill -TERM "$server"
wait "$server" || { echo "demo: chat_server exited with an error"; status=1; }
trap - EXIT
rm -f "$log"
echo "=== chat_server stopped. To keep one running and join it yourself:"
echo "    build-release/examples/chat_server --port 7000 &   then   nc localhost 7000"
exit "$status"
