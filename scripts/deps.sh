#!/usr/bin/env bash
# Installs the Debian packages Tollgate needs, only those that are missing.
#   scripts/deps.sh run    what `make run` needs (build + serve)
#   scripts/deps.sh test   plus the test tools (Criterion, Node.js, PostgreSQL, Redis, nginx, clang,
#                          clang-format for the style check)
#   scripts/deps.sh bench  plus wrk and nginx
set -euo pipefail
what=${1:-run}

pkgs=(build-essential cmake pkgconf libh2o-evloop-dev libcurl4-openssl-dev libjansson-dev
      libyaml-dev libssl-dev libsqlite3-dev libpq-dev libhiredis-dev zlib1g-dev)
case "$what" in
  test)  pkgs+=(libcriterion-dev nodejs npm postgresql redis-server nginx-light clang
                libclang-rt-14-dev clang-format curl procps) ;;
  bench) pkgs+=(wrk nginx-light curl procps nodejs) ;;
  fuzz)  pkgs+=(clang libclang-rt-14-dev) ;;
esac

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js may come from elsewhere than Debian's package; a working node+npm is enough.
if command -v node >/dev/null && command -v npm >/dev/null; then
  filtered=()
  for p in "${missing[@]}"; do [[ $p == nodejs || $p == npm ]] || filtered+=("$p"); done
  missing=("${filtered[@]}")
fi
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO=sudo; else
    echo "deps: these Debian packages are missing and I am not root: ${missing[*]}" >&2
    echo "deps: run as root: apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
else SUDO=""; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || true
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
