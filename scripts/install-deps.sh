#!/usr/bin/env bash
# Installs the Debian packages that hoist's tests and examples use, when any
# of them is missing. Safe to run again: it does nothing when all are present.
set -euo pipefail

packages=(
  docker-registry   # CNCF distribution 2.8, the registry the tests push to
  skopeo            # inspects and copies images
  umoci             # unpacks images into a root filesystem
  buildah           # the peer builder of the differential tests
  busybox-static    # the busybox base image
  debootstrap       # the Debian base image
  debian-archive-keyring
  openssl           # test certificates and keys
  apache2-utils     # htpasswd, for bcrypt password files
  ca-certificates
  curl
  jq
  unzip
  zip
)

missing=()
for pkg in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed'; then
    missing+=("$pkg")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  echo "install-deps: run as root to install: ${missing[*]}" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
echo "install-deps: apt-get install ${missing[*]}" >&2
log=$(mktemp)
if ! apt-get install -y -q "${missing[@]}" >"$log" 2>&1; then
  # The package lists may be missing or stale on a new machine.
  apt-get update -q >>"$log" 2>&1 || true
  if ! apt-get install -y -q "${missing[@]}" >>"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "install-deps: apt-get install failed" >&2
    exit 1
  fi
fi
rm -f "$log"
