#!/usr/bin/env bash
# Makes sure this machine can run Continuum: Node 20 or newer, and a nats-server binary. Installs
# Debian's nats-server package when it is missing and we may (root with apt-get); otherwise says
# exactly what to run. Safe to run any number of times.
set -euo pipefail

major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
  echo "continuum: Node.js 20 or newer is required (found $(node --version))." >&2
  exit 1
fi

find_nats() {
  if [ -n "${NATS_SERVER_BIN:-}" ] && [ -x "$NATS_SERVER_BIN" ]; then echo "$NATS_SERVER_BIN"; return; fi
  command -v nats-server 2>/dev/null && return
  for candidate in /usr/sbin/nats-server /usr/local/bin/nats-server; do
    if [ -x "$candidate" ]; then echo "$candidate"; return; fi
  done
}

if [ -z "$(find_nats)" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "continuum: nats-server not found; installing Debian's nats-server package ..." >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server >/dev/null
  else
    cat >&2 <<'MSG'
continuum: nats-server was not found. Install it, then run this again:
  Debian/Ubuntu:  sudo apt-get install -y nats-server
  elsewhere:      download a release from https://github.com/nats-io/nats-server/releases,
                  put nats-server on your PATH or set NATS_SERVER_BIN=/path/to/nats-server
MSG
    exit 1
  fi
fi
nats=$(find_nats)
echo "continuum: using $nats ($("$nats" --version))" >&2
