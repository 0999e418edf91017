#!/usr/bin/env bash
# Install PostgreSQL (Debian's package) for the registry's PostgreSQL tests.
# The tests start their own throw-away server (initdb + pg_ctl in a temporary folder, Unix
# socket only) and skip with a message when no server can be started, so a failure here is
# reported but not fatal for CI.
set -uo pipefail

find_initdb() {
  command -v initdb && return 0
  ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1 | grep . && return 0
  return 1
}

if bin=$(find_initdb); then
  echo "PostgreSQL found: $bin"
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  SUDO="sudo -n"
else
  echo "cannot install PostgreSQL: not root and no password-less sudo; its tests will skip" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null
if bin=$(find_initdb); then
  echo "PostgreSQL installed: $bin"
else
  echo "PostgreSQL installation failed; its tests will skip" >&2
  exit 1
fi
