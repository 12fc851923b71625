#!/usr/bin/env bash
# echo_bench.sh — green's echo server against a plain Go echo server, a
# plain Tokio echo server and a thread-per-connection C++ server (the
# plain-threads baseline), with the same load generator (echo_load, built on
# green) in the same run.
#
#   bench/echo_bench.sh [--quick] [--runs N] [--workers "1 2"] [--load-workers L]
#                       [--csv FILE] [--build DIR]
#
# For each worker count W and each connection count C (100 and 1,000), each
# server runs with W worker threads (green: --workers W; Go: GOMAXPROCS=W;
# Tokio: worker_threads = W; threads: one OS thread per connection whatever
# W, bench/peers/threads; posix: green's worker threads running blocking
# POSIX code, socket/accept/recv/send under green::monkey, bench/monkey)
# and echo_load drives it for a fixed time with 64-byte requests, checking
# every reply (echo_load runs with W workers too, unless --load-workers).
# The table gives the median req/s and p50/p99 over the runs and green's
# ratio to each peer. The load generator shares the machine's cores
# with the server: compare the two servers with each other, not with
# figures measured elsewhere. Go comes from Debian's golang-go; Tokio is
# built offline by bench/peers/tokio/build.sh (Debian's cargo and
# librust-tokio-dev); without them their columns say "missing" and a note
# says why (never silently dropped). --csv writes every run.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$root/build-release"
runs=5
duration=4
workers_list=""
load_workers=""
csv=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) runs=3; duration=2; shift ;;
    --runs) runs="$2"; shift 2 ;;
    --workers) workers_list="$2"; shift 2 ;;
    --load-workers) load_workers="$2"; shift 2 ;;
    --csv) csv="$2"; shift 2 ;;
    --build) build="$(realpath -m "$2")"; shift 2 ;;  # absolute: GOCACHE needs it
    --help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "echo_bench: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
done
[[ -n "$workers_list" ]] || workers_list="$(seq 1 "$(nproc)")"
server="$build/examples/echo_server"
load="$build/bench/echo_load"
threads_server="$build/bench/threads_echo_server"
posix_server="$build/bench/posix_echo_server"
for f in "$server" "$load" "$threads_server" "$posix_server"; do
  [[ -x "$f" ]] || { echo "echo_bench: $f not built (cmake --build $build)" >&2; exit 1; }
done
go_server=""
if command -v go >/dev/null; then
  go_server="$build/bench/go_echo_server"
  (cd "$root/bench/peers/go" && GOFLAGS=-mod=mod GOCACHE="$build/go-cache" go build -o "$go_server" echo_server.go)
fi
tokio_server="" tokio_note=""
if tokio_msg="$("$root/bench/peers/tokio/build.sh" "$build/bench/tokio" 2>&1)"; then
  tokio_server="$build/bench/tokio/tokio_echo_server"
else
  tokio_note="tokio: missing, $(tail -n1 <<<"$tokio_msg")"
fi
# The peers, in column order; an empty program is a missing one.
peers=(go tokio threads posix)
declare -A peer_bin=([go]="$go_server" [tokio]="$tokio_server" [threads]="$threads_server" [posix]="$posix_server")

port=$((20000 + RANDOM % 20000))
pids=()
cleanup() { for p in "${pids[@]:-}"; do [[ -n "$p" ]] && kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

wait_port() {  # until something listens on $1 (bounded)
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "echo_bench: server on port $1 did not come up" >&2; return 1
}

# run_one NAME W C: one server run; sets R_RPS R_P50 R_P99 (no subshell, so
# the server's pid stays in `pids` for the cleanup and ports really advance).
run_one() {
  local name="$1" w="$2" c="$3" pid out
  port=$((port + 1))
  case "$name" in
    green) "$server" --port "$port" --workers "$w" --raw >/dev/null & pid=$! ;;
    go) GOMAXPROCS="$w" "$go_server" -port "$port" >/dev/null & pid=$! ;;
    tokio) "$tokio_server" -port "$port" -workers "$w" >/dev/null & pid=$! ;;
    threads) "$threads_server" --port "$port" >/dev/null & pid=$! ;;
    posix) "$posix_server" --port "$port" --workers "$w" >/dev/null & pid=$! ;;
  esac
  pids+=("$pid")
  wait_port "$port"
  if ! out="$("$load" --port "$port" --connections "$c" --duration "$duration" --warmup 1 \
                --workers "${load_workers:-$w}")"; then
    echo "echo_bench: echo_load failed against $name (workers $w, $c connections): $out" >&2
    exit 1
  fi
  kill "$pid"; wait "$pid" 2>/dev/null || true
  read -r R_RPS R_P50 R_P99 <<<"$(sed -E 's/.*req_per_s=([0-9]+) p50_us=([0-9]+) p99_us=([0-9]+) errors=0.*/\1 \2 \3/' <<<"$out")"
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
med() { tr ' ' '\n' <<<"$1" | grep . | median; }  # median of a space-separated list

header=$(printf "%-7s %7s %6s %12s %9s %9s" server workers conns "green req/s" "p50 us" "p99 us")
for name in "${peers[@]}"; do
  header+=$(printf " %12s %9s %9s %14s" "$name req/s" "p50 us" "p99 us" "green/$name")
done
echo "$header"
[[ -z "$csv" ]] || echo "server,workers,conns,run,req_per_s,p50_us,p99_us" >"$csv"
declare -A rps=() p50=() p99=()
for w in $workers_list; do
  for c in 100 1000; do
    rps=(); p50=(); p99=()
    for run in $(seq 1 "$runs"); do
      # Alternating, so that a noisy spell on the machine hits every server.
      for name in green "${peers[@]}"; do
        [[ $name == green || -n "${peer_bin[$name]}" ]] || continue
        run_one "$name" "$w" "$c"
        rps[$name]+=" $R_RPS"; p50[$name]+=" $R_P50"; p99[$name]+=" $R_P99"
        [[ -z "$csv" ]] || echo "$name,$w,$c,$run,$R_RPS,$R_P50,$R_P99" >>"$csv"
      done
    done
    gr=$(med "${rps[green]}")
    line=$(printf "%-7s %7s %6s %12.0f %9.0f %9.0f" echo "$w" "$c" "$gr" "$(med "${p50[green]}")" \
           "$(med "${p99[green]}")")
    for name in "${peers[@]}"; do
      if [[ -n "${peer_bin[$name]}" ]]; then
        r=$(med "${rps[$name]}")
        line+=$(printf " %12.0f %9.0f %9.0f %13.2fx" "$r" "$(med "${p50[$name]}")" "$(med "${p99[$name]}")" \
                "$(awk -v a="$gr" -v b="$r" 'BEGIN {print a / b}')")
      else
        line+=$(printf " %12s %9s %9s %14s" missing - - -)
      fi
    done
    echo "$line"
  done
done
[[ -n "$go_server" ]] || echo "go: missing, no Go compiler (install golang-go: scripts/setup.sh bench)"
[[ -z "$tokio_note" ]] || echo "$tokio_note"
