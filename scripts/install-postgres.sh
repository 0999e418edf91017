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

# shellcheck source=scripts/_apt.sh
source "$(dirname "$0")/_apt.sh"
apt_install PostgreSQL postgresql
if bin=$(find_initdb); then
  echo "PostgreSQL installed: $bin"
else
  echo "PostgreSQL installation failed; its tests will skip" >&2
  exit 1
fi
