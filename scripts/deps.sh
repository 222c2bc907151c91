#!/usr/bin/env bash
# Install the Debian 12 packages Pactum needs to build, test and run, if any
# are missing. Uses sudo when not root. Safe to run again: it installs only
# what is absent.
set -euo pipefail

PACKAGES=(
  gcc make cmake pkg-config
  nats-server
  libnats-dev libprotobuf-c-dev protobuf-c-compiler
  liblmdb-dev libsodium-dev libjansson-dev libmicrohttpd-dev libcurl4-openssl-dev
  curl openssl
  libcriterion-dev
  python3 python3-nacl python3-protobuf python3-pytest protobuf-compiler
  chromium
)
# Extra packages named on the command line (e.g. docker-compose for CI).
PACKAGES+=("$@")

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# Node.js and npm for the TypeScript SDK and its tests (any install will do: Debian's, or one
# already on the PATH).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  missing+=(nodejs npm)
fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "pactum: installing missing packages: ${missing[*]}" >&2
if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
else
  echo "pactum: not root and no sudo; run as root: apt-get install -y ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
