#!/usr/bin/env bash
# Installs every Debian package ferry builds, tests and benchmarks with, when
# missing. Safe to run again: it only calls apt-get for what is absent.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev
  libssl-dev libjansson-dev libarchive-dev libsqlite3-dev libcurl4-openssl-dev
  libturbojpeg0-dev libspng-dev libwebp-dev libvips-dev libcmocka-dev libmicrohttpd-dev openssh-client curl
  imagemagick webp libjpeg-turbo-progs libimage-exiftool-perl python3 time openssh-server
  libexpat1-dev awscli python3-botocore bc shellcheck busybox git procps util-linux
)
# Node runs the S3 test world (tests/s3). A node installed some other way
# (nodesource, nvm) is kept: Debian's packages only when the commands are absent.
command -v node >/dev/null 2>&1 || packages+=(nodejs)
command -v npm >/dev/null 2>&1 || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  if [ "$(id -u)" != 0 ]; then
    echo "deps: need root to install packages (run as root or install them yourself)" >&2
    exit 3
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# s3rver, pinned by tests/s3/package-lock.json, into tests/s3/node_modules.
s3dir=$(cd "$(dirname "$0")/../tests/s3" && pwd)
want=$(sed -n 's/.*"s3rver": *"\([0-9.]*\)".*/\1/p' "$s3dir/package.json")
if ! grep -qs "\"version\": *\"$want\"" "$s3dir/node_modules/s3rver/package.json"; then
  echo "deps: installing s3rver $want into tests/s3/node_modules"
  (cd "$s3dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
