#!/usr/bin/env bash
# pq_bench.sh — libpq's blocking PQexec("SELECT 1") from 100 clients on
# their own connections: green threads under green::monkey (pq_bench_green,
# at each worker count) against one OS thread per client (pq_bench_threads),
# alternating in one run against one PostgreSQL server that this script
# starts in a temporary folder on a free loopback port and always stops.
#
#   bench/pq_bench.sh [--quick] [--runs N] [--workers "1 2"] [--clients N]
#                     [--csv FILE] [--build DIR]
#
# Prints the median queries/s per mode and green's ratio to the threads
# (issue 14: green at least equal). The clients and the server share the
# machine's cores: compare the two modes with each other, not with figures
# measured elsewhere. PostgreSQL comes from Debian's postgresql package
# (scripts/setup.sh bench); the server refuses to run as root, so as root
# it runs as the postgres user (setpriv: no process in between, so the
# stop signal reaches the server itself).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$root/build-release"
runs=5
duration=3
workers_list=""
clients=100
csv=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) runs=3; duration=1; shift ;;
    --runs) runs="$2"; shift 2 ;;
    --workers) workers_list="$2"; shift 2 ;;
    --clients) clients="$2"; shift 2 ;;
    --csv) csv="$2"; shift 2 ;;
    --build) build="$(realpath -m "$2")"; shift 2 ;;
    --help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "pq_bench: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
done
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || { echo "pq_bench: --runs must be a positive number" >&2; exit 2; }
[[ -n "$workers_list" ]] || workers_list="$(seq 1 "$(nproc)")"
for f in "$build/bench/pq_bench_green" "$build/bench/pq_bench_threads"; do
  [[ -x "$f" ]] || { echo "pq_bench: $f not built (cmake --build $build)" >&2; exit 1; }
done
pg_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)"
[[ -x "$pg_bin/postgres" ]] || { echo "pq_bench: no PostgreSQL server (scripts/setup.sh bench installs it)" >&2; exit 1; }

# The server: its own folder, a free port, trust on loopback only.
dir="$(mktemp -d /tmp/green-pq-bench.XXXXXX)"
as_pg=()
if [[ $(id -u) -eq 0 ]]; then
  chown postgres: "$dir"
  as_pg=(setpriv --reuid=postgres --regid=postgres --init-groups --)
fi
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]]; then
    kill -INT "$server_pid" 2>/dev/null || true  # "fast" shutdown
    for _ in $(seq 1 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
}
trap cleanup EXIT
"${as_pg[@]}" "$pg_bin/initdb" -D "$dir/data" -U postgres -A trust --no-sync >"$dir/initdb.log" 2>&1 ||
  { cat "$dir/initdb.log" >&2; exit 1; }
port=$((20000 + RANDOM % 20000))  # one nobody listens on
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
"${as_pg[@]}" "$pg_bin/postgres" -D "$dir/data" -h 127.0.0.1 -p "$port" -k "$dir" \
  -c max_connections=$((clients + 20)) -c fsync=off -c shared_buffers=64MB >"$dir/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 200); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$dir/server.log" >&2; exit 1; }
  sleep 0.05
done
(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "pq_bench: server did not come up" >&2; exit 1; }

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
qps() { sed -E 's/.*queries_per_s=([0-9]+).*/\1/' <<<"$1"; }

[[ -z "$csv" ]] || echo "mode,workers,clients,run,queries_per_s" >"$csv"
printf "%-7s %8s %14s %16s %14s\n" workers clients "green q/s" "threads q/s" green/threads
for w in $workers_list; do
  g=() t=()
  for run in $(seq 1 "$runs"); do
    # Alternating, so that a noisy spell on the machine hits both.
    out="$("$build/bench/pq_bench_green" --port "$port" --clients "$clients" --duration "$duration" --workers "$w")"
    g+=("$(qps "$out")")
    out="$("$build/bench/pq_bench_threads" --port "$port" --clients "$clients" --duration "$duration")"
    t+=("$(qps "$out")")
    if [[ -n "$csv" ]]; then
      echo "green,$w,$clients,$run,${g[-1]}" >>"$csv"
      echo "threads,$w,$clients,$run,${t[-1]}" >>"$csv"
    fi
  done
  gm=$(printf '%s\n' "${g[@]}" | median)
  tm=$(printf '%s\n' "${t[@]}" | median)
  printf "%-7s %8s %14.0f %16.0f %13.2fx\n" "$w" "$clients" "$gm" "$tm" "$(awk -v a="$gm" -v b="$tm" 'BEGIN {print a / b}')"
done
