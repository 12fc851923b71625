#!/usr/bin/env bash
# Installs the Debian packages green needs, if any are missing. Idempotent and
# quiet when everything is present. Needs root (or sudo) only when installing.
#
#   scripts/setup.sh            build + test dependencies
#   scripts/setup.sh bench      also the benchmark peers' toolchains
set -euo pipefail

packages=(cmake ninja-build g++ libboost-context1.81-dev libboost1.81-dev libtbb-dev
          libgtest-dev libbenchmark-dev libcli11-dev pkgconf)
# libunwind walks a parked green thread's stack from its saved context for
# dump() and the deadlock report (scheduler/src/unwind.cpp).
packages+=(libunwind-dev)
# OpenSSL 3 for TLS (io/src/tls_*.cpp); the tests make their certificates
# with its C API at run time, so the openssl command is not needed.
# ca-certificates: the system CA store that TlsContext::client() and
# http_get("https://...") trust by default (no test needs it).
packages+=(libssl-dev ca-certificates)
# The unmodified blocking libraries that green::monkey's tests and
# examples/monkey_downloader drive, and the real servers the tests start:
# PostgreSQL 15 (postgres, initdb; the package also creates the `postgres`
# user the server runs as when the tests run as root), Redis 7; setpriv
# (util-linux) starts them. libpq also serves bench/monkey/pq_bench.cpp.
packages+=(postgresql libpq-dev redis-server libhiredis-dev libcurl4-openssl-dev util-linux)
if [[ "${1:-}" == "bench" ]]; then
  packages+=(gnuplot-nox golang-go libboost-fiber1.81-dev)
  # Tokio 1.24 peers (bench/peers/tokio/build.sh), built offline with Debian's
  # cargo against these crate sources: every crate of their Cargo.lock.
  packages+=(cargo librust-tokio-dev librust-tokio-macros-dev librust-mio-dev librust-socket2-dev
             librust-libc-dev librust-signal-hook-registry-dev librust-num-cpus-dev librust-memchr-dev
             librust-bytes-dev librust-log-dev librust-cfg-if-dev librust-pin-project-lite-dev
             librust-autocfg-dev librust-proc-macro2-dev librust-quote-dev librust-syn-dev
             librust-unicode-ident-dev librust-winapi-dev librust-winapi-i686-pc-windows-gnu-dev
             librust-winapi-x86-64-pc-windows-gnu-dev)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
    missing+=("$p")
  fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "green: installing missing packages: ${missing[*]}"
sudo=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "green: need root to install ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
