#!/usr/bin/env bash
# suite.sh — green's scaling benchmarks side by side with Go, Tokio,
# Boost.Fiber and plain threads, in one command (bench/README.md explains
# every case and what it does not measure).
#
#   bench/suite.sh [--quick] [--runs N] [--workers "1 2"] [--out DIR]
#
# Installs what is missing (scripts/setup.sh bench), builds green and the
# peers, runs every case at workers = 1..nproc (or --workers) `runs` times
# (3: about 9.5 minutes on 2 cores; --quick: one run, smaller counts, shorter network runs, no 1M-thread
# memory case: a smoke test of a few minutes), and writes to DIR (default
# bench/results):
#   results.csv   impl,case,workers,median,min,max,unit,better (one row each)
#   results.json  the same rows
#   table.md      the table printed at the end: medians, min–max, and
#                 green's advantage over each peer (>1 = green is better)
#   *.png         one plot per case: the metric against workers, per impl
# A peer whose toolchain or package is missing is reported as "missing" in
# the table and named in a note; it is never silently dropped.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
runs=3
quick=0
workers_list=""
out="$root/bench/results"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) quick=1; runs=1; shift ;;
    --runs) runs="$2"; shift 2 ;;
    --workers) workers_list="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "suite: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
done
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || { echo "suite: --runs must be a positive number" >&2; exit 2; }
[[ -n "$workers_list" ]] || workers_list="$(seq 1 "$(nproc)")"
mkdir -p "$out"
build="$root/build-release"
notes=()

echo "=== set-up and build"
scripts/setup.sh bench
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGREEN_SANITIZE= \
      -DGREEN_BUILD_BENCH=ON >/dev/null
cmake --build "$build" -j "$(nproc)" >/dev/null

# ---- peers -------------------------------------------------------------------
have_go=0 have_tokio=0 have_fiber=0
if command -v go >/dev/null; then
  for prog in sched_cases echo_server chat_server; do
    (cd bench/peers/go && GOFLAGS=-mod=mod GOCACHE="$build/go-cache" go build -o "$build/bench/go_$prog" "$prog.go")
  done
  have_go=1
else
  notes+=("Go: golang-go is not installed; its columns say missing")
fi
if tokio_msg="$(bench/peers/tokio/build.sh "$build/bench/tokio" 2>&1)"; then
  have_tokio=1
else
  notes+=("Tokio: not built ($(tail -n1 <<<"$tokio_msg")); its columns say missing")
fi
if [[ -x "$build/bench/boost_fiber_cases" ]]; then
  have_fiber=1
else
  notes+=("Boost.Fiber: boost_fiber_cases was not built (libboost-fiber1.81-dev missing); its columns say missing")
fi

# ---- rows --------------------------------------------------------------------
raw="$out/raw.csv"  # impl,case,workers,value,unit,better: one line per run
echo "impl,case,workers,value,unit,better" >"$raw"
add() { echo "$1,$2,$3,$4,$5,$6" >>"$raw"; }

# Case table: green_bench's row name | peer case | -n full | -n quick |
# unit | better. Peers print "case=... ns_per_op=X" (or ms=, bytes_per_*=).
cases=(
  "spawn+join warm|spawn_join|100000|20000|ns|lower"
  "yield|yield|1000000|200000|ns|lower"
  "hand-off 1 worker|handoff_same|500000|100000|ns|lower"
  "hand-off unpinned|handoff_cross|250000|50000|ns|lower"
  "queue ping-pong 1 w|queue_same|500000|100000|ns|lower"
  "queue unpinned|queue_cross|250000|50000|ns|lower"
  "skynet 1M|skynet|1000000|1000000|ms|lower"
  "contended lock|lock|1000|200|ns|lower"
  "pool.map|pool_map|1000000|200000|ns|lower"
  "memory 100k parked|memory|100000|100000|B|lower"
  "memory 1M parked|memory|1000000|0|B|lower"
)

# The value a peer printed: the first of ns_per_op=, ms=, bytes_per_*=.
peer_value() {  # the key must follow a space: not cold_ns_per_op, sys_bytes_...
  sed -nE 's/.* (ns_per_op|ms|bytes_per_[a-z]+)=([0-9.]+).*/\2/p' <<<"$1" | head -n1
}

run_peer() {  # impl W case n -> prints the peer's line
  local impl="$1" w="$2" c="$3" n="$4"
  case "$impl" in
    go) GOMAXPROCS="$w" "$build/bench/go_sched_cases" -case "$c" -n "$n" ;;
    tokio) "$build/bench/tokio/tokio_cases" -workers "$w" -case "$c" -n "$n" ;;
    fiber) "$build/bench/boost_fiber_cases" -workers "$w" -case "$c" -n "$n" ;;
  esac
}

for w in $workers_list; do
  echo "=== workers $w: green_bench"
  "$build/bench/green_bench" --workers "$w" --runs "$runs" $([[ $quick == 1 ]] && echo --quick) \
    --csv "$out/green_$w.csv" | tail -n +2
  # green_bench summarises its own runs (median, min, max) in green_W.csv,
  # which the summary below takes as it is; the peers print one run a call.
  for peer in go tokio fiber; do
    var="have_$peer"
    [[ "${!var}" == 1 ]] || continue
    echo "=== workers $w: $peer"
    for entry in "${cases[@]}"; do
      IFS='|' read -r name c n_full n_quick unit better <<<"$entry"
      n=$([[ $quick == 1 ]] && echo "$n_quick" || echo "$n_full")
      [[ "$n" != 0 ]] || continue
      [[ "$c" != *_cross || "$w" -ge 2 ]] || continue
      local_runs=$runs
      [[ "$c" != memory || "$n" -le 100000 ]] || local_runs=$(( runs < 2 ? runs : 2 ))
      for _ in $(seq 1 "$local_runs"); do
        if ! line="$(run_peer "$peer" "$w" "$c" "$n" 2>&1)"; then
          notes+=("$peer $c at $w workers failed: $(tail -n1 <<<"$line")")
          break
        fi
        v="$(peer_value "$line")"
        [[ -n "$v" ]] || { notes+=("$peer $c: unreadable output: $line"); break; }
        add "$peer" "$name" "$w" "$v" "$unit" "$better"
      done
    done
  done
done

# ---- green::monkey: the hooks' cost on a plain thread ----------------------------
echo "=== green::monkey hook cost"
"$build/bench/hook_overhead" $([[ $quick == 1 ]] && echo "--batches 7" || echo "--batches 21") \
  --csv "$out/hooks.csv"
# case,median_hooked_ns,median_libc_ns,overhead_ns,batches: one row per shape,
# already a median over the batches (the plain thread is "1 worker").
tail -n +2 "$out/hooks.csv" | while IFS=, read -r shape hooked libc cost _; do
  add green "plain-thread read+write $shape" 1 "$hooked" ns lower
  add threads "plain-thread read+write $shape" 1 "$libc" ns lower
  add green "hooks' cost $shape" 1 "$cost" ns lower
done

# ---- network cases -------------------------------------------------------------
echo "=== echo servers"
bench/echo_bench.sh $([[ $quick == 1 ]] && echo --quick) --workers "$workers_list" --runs "$runs" \
  --csv "$out/echo.csv"
# server,workers,conns,run,req_per_s,p50_us,p99_us
tail -n +2 "$out/echo.csv" | while IFS=, read -r srv w conns _ rps _ p99; do
  add "$srv" "echo $conns conns" "$w" "$rps" "req/s" higher
  add "$srv" "echo $conns conns p99" "$w" "$p99" "us" lower
done
echo "=== chat servers"
bench/chat_bench.sh $([[ $quick == 1 ]] && echo --quick) --workers "$workers_list" --runs "$runs" \
  --csv "$out/chat.csv"
# server,workers,run,users,lines,lines_per_s,p50_us,p99_us
tail -n +2 "$out/chat.csv" | while IFS=, read -r srv w _ _ _ lps _ p99; do
  add "$srv" "chat fan-out" "$w" "$lps" "lines/s" higher
  add "$srv" "chat fan-out p99" "$w" "$p99" "us" lower
done

echo "=== PQexec from 100 clients (green::monkey)"
bench/pq_bench.sh $([[ $quick == 1 ]] && echo --quick) --workers "$workers_list" --runs "$runs" \
  --csv "$out/pq.csv"
# mode,workers,clients,run,queries_per_s (mode: green or threads)
tail -n +2 "$out/pq.csv" | while IFS=, read -r mode w clients _ q; do
  add "$mode" "PQexec SELECT 1, $clients clients" "$w" "$q" "queries/s" higher
done

# ---- summary -------------------------------------------------------------------
summary="$out/results.csv"
{
  echo "impl,case,workers,median,min,max,unit,better"
  # green_bench's own medians (its row names carry the case).
  for w in $workers_list; do
    tail -n +2 "$out/green_$w.csv" | while IFS=, read -r name ww med lo hi unit; do
      case "$name" in pool.map*) name="pool.map" ;; esac
      echo "green,$name,$ww,$med,$lo,$hi,$unit,lower"
    done
  done
  # Everything sampled per run here: median, min and max per group.
  tail -n +2 "$raw" | sort -t, -k1,1 -k2,2 -k3,3n -k4,4g | awk -F, '
    function flush() {
      if (n == 0) return
      med = n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
      printf "%s,%s,%s,%g,%g,%g,%s,%s\n", key1, key2, key3, med, v[1], v[n], unit, better
      n = 0
    }
    { k = $1 FS $2 FS $3
      if (k != last) { flush(); last = k; key1 = $1; key2 = $2; key3 = $3 }
      v[++n] = $4; unit = $5; better = $6 }
    END { flush() }'
} >"$summary"

awk -F, 'NR > 1 { printf "%s{\"impl\":\"%s\",\"case\":\"%s\",\"workers\":%s,\"median\":%s,\"min\":%s,\"max\":%s,\"unit\":\"%s\",\"better\":\"%s\"}", (n++ ? ",\n " : "[\n "), $1, $2, $3, $4, $5, $6, $7, $8 }
           END { print "\n]" }' "$summary" >"$out/results.json"

bench/suite_report.sh "$summary" "$out" "${notes[@]+"${notes[@]}"}"
