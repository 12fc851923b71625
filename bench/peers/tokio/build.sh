#!/usr/bin/env bash
# build.sh — builds the Tokio peers (tokio_cases, tokio_echo_server,
# tokio_chat_server) in release mode, offline, into OUT_DIR.
#
#   bench/peers/tokio/build.sh OUT_DIR
#
# Uses Debian 12's own toolchain (/usr/bin/cargo and /usr/bin/rustc from the
# `cargo` package, whatever else is on PATH) and the crate sources Debian's
# librust-*-dev packages install under /usr/share/cargo/registry, through a
# cargo directory source (.cargo/config.toml): nothing is downloaded. The
# sources are copied to OUT_DIR/src and built there (target in
# OUT_DIR/target), so nothing is written into this folder.
#
# Exit status: 0 built (the binaries are in OUT_DIR); 3 skipped because a
# package is missing (the last line says "skipped: <package> missing ...");
# 1 the build itself failed; 2 bad usage. Install the packages with
# `scripts/setup.sh bench`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
[[ $# -eq 1 ]] || { echo "usage: $0 OUT_DIR" >&2; exit 2; }
out="$(mkdir -p "$1" && cd "$1" && pwd)"
registry=/usr/share/cargo/registry

skip() { echo "tokio: skipped: $1 missing (install it: scripts/setup.sh bench)"; exit 3; }

[[ -x /usr/bin/cargo ]] || skip "cargo (Debian package cargo)"
[[ -x /usr/bin/rustc ]] || skip "rustc (Debian package rustc)"
# Every crate in the resolved Cargo.lock, with its Debian package. Cargo
# resolves target-specific dependencies for every platform, so winapi's
# sources must be there although nothing of it is built on Linux.
crates=(
  tokio:librust-tokio-dev tokio-macros:librust-tokio-macros-dev mio:librust-mio-dev
  socket2:librust-socket2-dev libc:librust-libc-dev
  signal-hook-registry:librust-signal-hook-registry-dev num_cpus:librust-num-cpus-dev
  memchr:librust-memchr-dev bytes:librust-bytes-dev log:librust-log-dev cfg-if:librust-cfg-if-dev
  pin-project-lite:librust-pin-project-lite-dev autocfg:librust-autocfg-dev
  proc-macro2:librust-proc-macro2-dev quote:librust-quote-dev syn:librust-syn-dev
  unicode-ident:librust-unicode-ident-dev winapi:librust-winapi-dev
  winapi-i686-pc-windows-gnu:librust-winapi-i686-pc-windows-gnu-dev
  winapi-x86_64-pc-windows-gnu:librust-winapi-x86-64-pc-windows-gnu-dev
)
for crate in "${crates[@]}"; do
  compgen -G "$registry/${crate%%:*}-[0-9]*/Cargo.toml" >/dev/null || skip "${crate#*:} (crate ${crate%%:*})"
done

# A private copy of the project: cargo writes Cargo.lock next to the manifest.
rm -rf "$out/src"
mkdir -p "$out/src"
cp -rp "$here/Cargo.toml" "$here/src" "$here/.cargo" "$out/src/"
cd "$out/src"
# nice: the build shares the machine with whatever else runs (benchmarks).
if ! RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc CARGO_HOME="$out/cargo-home" \
     nice -n 19 /usr/bin/cargo build --release --offline --target-dir "$out/target" \
     -j "${TOKIO_BUILD_JOBS:-$(nproc)}" >"$out/build.log" 2>&1; then
  tail -n 30 "$out/build.log"
  echo "tokio: build failed (log: $out/build.log)"
  exit 1
fi
for b in tokio_cases tokio_echo_server tokio_chat_server; do
  cp "$out/target/release/$b" "$out/$b"
done
echo "tokio: built $(basename "$(ls -d "$registry"/tokio-1.*)") with $(/usr/bin/rustc --version) into $out"
