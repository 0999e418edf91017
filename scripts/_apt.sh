#!/usr/bin/env bash
# Shared by the install-*.sh scripts: apt_install WHAT PACKAGE... installs Debian packages as
# root or with password-less sudo; returns 1 (with a message naming WHAT) when it cannot.

apt_install() {
  local what=$1
  shift
  local sudo_cmd
  if [ "$(id -u)" -eq 0 ]; then
    sudo_cmd=""
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo_cmd="sudo -n"
  else
    echo "cannot install $what: not root and no password-less sudo; its tests will skip" >&2
    return 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -qq &&
    $sudo_cmd apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
