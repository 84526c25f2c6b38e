#!/usr/bin/env bash
# Installs every Debian package ferry builds, tests and benchmarks with, when
# missing. Safe to run again: it only calls apt-get for what is absent.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev
  libssl-dev libjansson-dev libarchive-dev libsqlite3-dev libcurl4-openssl-dev
  libturbojpeg0-dev libspng-dev libwebp-dev libvips-dev libcmocka-dev libmicrohttpd-dev openssh-client curl
  imagemagick webp libjpeg-turbo-progs libimage-exiftool-perl python3 time openssh-server
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "deps: installing ${missing[*]}"
if [ "$(id -u)" != 0 ]; then
  echo "deps: need root to install packages (run as root or install them yourself)" >&2
  exit 3
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
