#!/usr/bin/env bash
# Install Chromium and ChromeDriver (Debian's packages) for the web viewer's browser tests.
# The tests (tests/web/test_browser.py) start them headless themselves and skip with a
# message when they are missing, so a failure here is reported but not fatal for CI.
set -uo pipefail

if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  echo "Chromium found: $(command -v chromium), $(command -v chromedriver)"
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  SUDO="sudo -n"
else
  echo "cannot install Chromium: not root and no password-less sudo; browser tests will skip" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq &&
  $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  echo "Chromium installed: $(chromium --version 2>/dev/null | head -n 1)"
else
  echo "Chromium installation failed; browser tests will skip" >&2
  exit 1
fi
