#!/usr/bin/env bash
# Installs the Debian packages green needs, if any are missing. Idempotent and
# quiet when everything is present. Needs root (or sudo) only when installing.
#
#   scripts/setup.sh            build + test dependencies
#   scripts/setup.sh bench      also the benchmark peers' toolchains
set -euo pipefail

packages=(cmake ninja-build g++ libboost-context1.81-dev libboost1.81-dev libtbb-dev
          libgtest-dev libbenchmark-dev)
if [[ "${1:-}" == "bench" ]]; then
  packages+=(gnuplot-nox golang-go libboost-fiber1.81-dev)
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
