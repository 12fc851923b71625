#!/usr/bin/env bash
# chat_bench.sh — green's chat server against plain Go and Tokio chat
# servers, with the same load generator (examples/chat_load, built on green)
# in the same run.
#
#   bench/chat_bench.sh [--quick] [--runs N] [--workers "1 2"] [--users C]
#                       [--lines M] [--load-workers N] [--csv FILE] [--build DIR]
#
# For each worker count W, each server runs with W worker threads (green:
# --workers W; Go: GOMAXPROCS=W; Tokio: worker_threads = W) and chat_load
# connects C users (default
# 100) that each send M lines (default 200) as fast as they can, one write
# per line; every user must get every other user's lines exactly once, in
# order. The table gives, over the runs (the servers alternate), the median
# and min-max of delivered lines per second and of the p99 delivery latency
# (send to receipt), and green's lines/s ratio to each peer. Any lost, duplicated
# or reordered line stops the script with an error. chat_load runs with W
# workers too (--load-workers to change) and shares the cores with the
# server: compare the two servers with each other, not with figures taken
# elsewhere. Go comes from Debian's golang-go; Tokio is built offline by
# bench/peers/tokio/build.sh (Debian's cargo and librust-tokio-dev); without
# them their columns say "missing" and a note says why (never silently
# dropped). --csv writes every run.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$root/build-release"
runs=5
workers_list=""
users=100
lines=200
load_workers=""
csv=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) runs=3; shift ;;
    --runs) runs="$2"; shift 2 ;;
    --workers) workers_list="$2"; shift 2 ;;
    --users) users="$2"; shift 2 ;;
    --lines) lines="$2"; shift 2 ;;
    --load-workers) load_workers="$2"; shift 2 ;;
    --csv) csv="$2"; shift 2 ;;
    --build) build="$(realpath -m "$2")"; shift 2 ;;  # absolute: GOCACHE needs it
    --help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "chat_bench: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
done
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || { echo "chat_bench: --runs must be >= 1" >&2; exit 2; }
[[ -n "$workers_list" ]] || workers_list="$(seq 1 "$(nproc)")"
server="$build/examples/chat_server"
load="$build/examples/chat_load"
for f in "$server" "$load"; do
  [[ -x "$f" ]] || { echo "chat_bench: $f not built (cmake --build $build)" >&2; exit 1; }
done
go_server=""
if command -v go >/dev/null; then
  go_server="$build/bench/go_chat_server"
  mkdir -p "$build/bench"
  (cd "$root/bench/peers/go" && GOFLAGS=-mod=mod GOCACHE="$build/go-cache" go build -o "$go_server" chat_server.go) ||
    { echo "chat_bench: building bench/peers/go/chat_server.go failed" >&2; exit 1; }
fi
tokio_server="" tokio_note=""
if tokio_msg="$("$root/bench/peers/tokio/build.sh" "$build/bench/tokio" 2>&1)"; then
  tokio_server="$build/bench/tokio/tokio_chat_server"
else
  tokio_note="tokio: missing, $(tail -n1 <<<"$tokio_msg")"
fi
# The peers, in column order; an empty program is a missing one.
peers=(go tokio)
declare -A peer_bin=([go]="$go_server" [tokio]="$tokio_server")
[[ -z "$csv" ]] || echo "server,workers,run,users,lines,lines_per_s,p50_us,p99_us" >"$csv"

pids=()
cleanup() { for p in "${pids[@]:-}"; do [[ -n "$p" ]] && kill "$p" 2>/dev/null || true; done; }
logs="$(mktemp -d)"
trap 'cleanup; rm -rf "$logs"' EXIT
# wait_listening LOG PID: sets port once the server says it listens (every
# server prints "listening on ADDR:PORT"; they start on port 0, a free one).
# No probe connection, which the servers would log as a client that left.
wait_listening() {
  for _ in $(seq 1 200); do
    port="$(sed -nE 's/.*listening on .*:([0-9]+) with.*/\1/p' "$1" 2>/dev/null)"
    [[ -n "$port" ]] && return 0
    kill -0 "$2" 2>/dev/null || break
    sleep 0.05
  done
  echo "chat_bench: server did not come up:" >&2; cat "$1" >&2; exit 1
}

# run_one NAME W RUN -> sets lps and p99 (us); stops the script on any loss
run_one() {
  local name="$1" w="$2" run="$3" pid out rc=0 port
  local log="$logs/$name-$w-$run.log"
  case "$name" in
    green) "$server" --port 0 --workers "$w" >"$log" 2>&1 & pid=$! ;;
    go) GOMAXPROCS="$w" "$go_server" -port 0 >"$log" 2>&1 & pid=$! ;;
    tokio) "$tokio_server" -port 0 -workers "$w" >"$log" 2>&1 & pid=$! ;;
  esac
  pids+=("$pid")
  wait_listening "$log" "$pid"
  out="$("$load" --port "$port" --users "$users" --lines "$lines" --workers "${load_workers:-$w}" \
         --timeout 60 2>&1)" || rc=$?
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  if [[ $rc -ne 0 || "$out" != *" lost_or_bad=0"* ]]; then
    { echo "chat_bench: FAILED: $name server, workers=$w, run $run: chat_load exited $rc"
      echo "$out"; echo "server log:"; cat "$log"; } >&2
    exit 1
  fi
  local r p50
  r="$(sed -nE 's/.*lines_per_s=([0-9]+) p50_us=([0-9]+) p99_us=([0-9]+) lost_or_bad=0.*/\1 \2 \3/p' <<<"$out")"
  [[ -n "$r" ]] || { echo "chat_bench: cannot read chat_load's output: $out" >&2; exit 1; }
  read -r lps p50 p99 <<<"$r"
  [[ -z "$csv" ]] || echo "$name,$w,$run,$users,$lines,$lps,$p50,$p99" >>"$csv"
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# cell SCALE v1 v2 ... -> "median [min-max]", each divided by SCALE
cell() {
  local scale="$1"; shift
  printf "%s\n" "$@" | sort -n | awk -v s="$scale" '{a[NR]=$1/s}
    END {m = NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2
         f = s == 1 ? "%.0f [%.0f-%.0f]" : "%.1f [%.1f-%.1f]"; printf f, m, a[1], a[NR]}'
}

echo "chat fan-out: $users users x $lines lines, $runs runs per server; median [min-max]"
fmt="%7s  %-28s %-26s"
header=$(printf "$fmt" workers "green lines/s" "green p99 ms")
for name in "${peers[@]}"; do
  header+=$(printf "  %-28s %-26s %11s" "$name lines/s" "$name p99 ms" "green/$name")
done
echo "$header"
declare -A lps_of=() p99_of=()
for w in $workers_list; do
  lps_of=(); p99_of=()
  for run in $(seq 1 "$runs"); do
    # Alternating, so that a noisy spell on the machine hits every server.
    for name in green "${peers[@]}"; do
      [[ $name == green || -n "${peer_bin[$name]}" ]] || continue
      run_one "$name" "$w" "$run"; lps_of[$name]+=" $lps"; p99_of[$name]+=" $p99"
    done
  done
  gm=$(tr ' ' '\n' <<<"${lps_of[green]}" | grep . | median)
  # shellcheck disable=SC2086  # the lists split into cell's arguments
  line=$(printf "$fmt" "$w" "$(cell 1 ${lps_of[green]})" "$(cell 1000 ${p99_of[green]})")
  for name in "${peers[@]}"; do
    if [[ -n "${peer_bin[$name]}" ]]; then
      pm=$(tr ' ' '\n' <<<"${lps_of[$name]}" | grep . | median)
      # shellcheck disable=SC2086
      line+=$(printf "  %-28s %-26s %11s" "$(cell 1 ${lps_of[$name]})" "$(cell 1000 ${p99_of[$name]})" \
              "$(awk -v a="$gm" -v b="$pm" 'BEGIN {printf "%.2fx", a / b}')")
    else
      line+=$(printf "  %-28s %-26s %11s" missing missing -)
    fi
  done
  echo "$line"
done
[[ -n "$go_server" ]] || echo "go: missing, no Go compiler (install golang-go: scripts/setup.sh bench)"
[[ -z "$tokio_note" ]] || echo "$tokio_note"
