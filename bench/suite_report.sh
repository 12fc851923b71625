#!/usr/bin/env bash
# suite_report.sh — the table and plots of a suite run (bench/suite.sh).
#
#   bench/suite_report.sh RESULTS.csv OUT_DIR [NOTE...]
#
# RESULTS.csv has rows impl,case,workers,median,min,max,unit,better. Prints
# the table (and writes it to OUT_DIR/table.md): per case and worker count,
# green's median with min–max, each peer's median, and green's advantage
# over the best peer measured: peer/green for times and sizes, green/peer for
# rates, so above 1 means green is ahead. The "POSIX on green" column is
# green too (blocking POSIX code under green::monkey), shown beside the
# peers but never counted as one. Draws OUT_DIR/<case>.png with
# gnuplot (the metric against workers, one line per implementation) when
# gnuplot is installed, and says so when it is not.
set -euo pipefail
summary="$1"
out="$2"
shift 2
impls=(green go tokio fiber threads posix)
peers_end=5  # impls[2..5] are the peers; posix is green's own
table="$out/table.md"

{
  echo "| case | workers | green (min–max) | Go | Tokio | Boost.Fiber | threads | POSIX on green | green vs best peer |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  # Cases in order of first appearance; every worker count of each.
  awk -F, -v impls="${impls[*]}" -v peers_end="$peers_end" '
    NR == 1 { next }
    {
      key = $2 SUBSEP $3
      if (!(key in seen)) { seen[key] = 1; order[++n] = key }
      med[$1, key] = $4; lo[$1, key] = $5; hi[$1, key] = $6
      unit[key] = $7; better[key] = $8
    }
    function fmt(x) { return x >= 1000 ? sprintf("%.0f", x) : sprintf("%.3g", x) }
    END {
      m = split(impls, im, " ")
      for (i = 1; i <= n; ++i) {
        key = order[i]; split(key, kw, SUBSEP)
        if (!(("green", key) in med)) continue
        g = med["green", key]
        line = "| " kw[1] " (" unit[key] ") | " kw[2] " | " fmt(g) " (" fmt(lo["green", key]) "–" fmt(hi["green", key]) ")"
        best = ""
        for (j = 2; j <= m; ++j) {
          p = im[j]
          if ((p, key) in med) {
            v = med[p, key]
            line = line " | " fmt(v)
            if (j <= peers_end && (best == "" || (better[key] == "higher" ? v > best : v < best))) best = v
          } else {
            line = line " | –"
          }
        }
        if (best == "" || g == 0 || best == 0) adv = "–"
        else adv = sprintf("%.2fx", better[key] == "higher" ? g / best : best / g)
        print line " | " adv " |"
      }
    }' "$summary"
} >"$table"
cat "$table"
if [[ $# -gt 0 ]]; then
  echo
  echo "Notes:"
  printf '  - %s\n' "$@" | tee -a "$table"
fi

if ! command -v gnuplot >/dev/null; then
  echo "suite_report: gnuplot is not installed (scripts/setup.sh bench installs it): no plots" >&2
  exit 0
fi
# One data file and one plot per case: workers, then each impl's median.
awk -F, 'NR > 1 { print $2 }' "$summary" | sort -u | while read -r name; do
  file="$(tr -c 'A-Za-z0-9\n' '_' <<<"$name")"
  awk -F, -v name="$name" -v impls="${impls[*]}" '
    NR > 1 && $2 == name { med[$1, $3] = $4; w[$3] = 1; unit = $7 }
    END {
      m = split(impls, im, " ")
      printf "workers"; for (j = 1; j <= m; ++j) printf " %s", im[j]; print ""
      for (x in w) {
        printf "%s", x
        for (j = 1; j <= m; ++j) printf " %s", ((im[j], x) in med) ? med[im[j], x] : "?"
        print ""
      }
    }' "$summary" | sort -n >"$out/$file.dat"
  unit="$(awk -F, -v name="$name" 'NR > 1 && $2 == name { print $7; exit }' "$summary")"
  better="$(awk -F, -v name="$name" 'NR > 1 && $2 == name { print $8; exit }' "$summary")"
  # gnuplot warns about implementations without points; those are expected.
  gnuplot 2>/dev/null <<EOF || echo "suite_report: gnuplot failed on $name" >&2
set terminal pngcairo size 640,400 noenhanced
set output "$out/$file.png"
set title "$name ($better is better)"
set xlabel "workers"
set ylabel "$unit"
set xtics 1
set key outside right
set datafile missing "?"
set yrange [0:*]
plot for [i=2:7] "$out/$file.dat" using 1:i with linespoints title columnhead(i)
EOF
done
echo "plots: $out/*.png"
