#!/usr/bin/env bash
# Fetch the Debian packages that ship the demo dataset's CT and MR volumes and unpack them (no root
# needed to unpack) under .cache/demo-sources/root. Idempotent: unpacked packages are left alone.
set -euo pipefail

CACHE_DIR="${CTRLGENAUG_DEMO_SOURCES_DIR:-$(cd "$(dirname "$0")/.." && pwd)/.cache/demo-sources}"
PACKAGES=(invesalius-examples mricron-data insighttoolkit5-examples)

download() {
  (cd "$CACHE_DIR/debs" && apt-get download -q "$1" 2>&1 | grep -v "unsandboxed" || true)
  compgen -G "$CACHE_DIR/debs/${1}_*.deb" > /dev/null
}

mkdir -p "$CACHE_DIR/debs" "$CACHE_DIR/root" "$CACHE_DIR/stamps"
for package in "${PACKAGES[@]}"; do
  [[ -f "$CACHE_DIR/stamps/$package" ]] && continue
  if ! download "$package"; then
    echo "apt-get download $package failed; refreshing the package lists once (apt-get update)" >&2
    apt-get update -qq
    download "$package" || { echo "cannot download Debian package $package" >&2; exit 1; }
  fi
  for deb in "$CACHE_DIR/debs/${package}"_*.deb; do
    dpkg-deb -x "$deb" "$CACHE_DIR/root"
    rm -f "$deb"
  done
  touch "$CACHE_DIR/stamps/$package"
done
echo "demo sources ready in $CACHE_DIR/root"
