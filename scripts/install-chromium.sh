#!/usr/bin/env bash
# Install Chromium and ChromeDriver (Debian's packages) for the web viewer's browser tests.
# The tests (tests/web/test_browser.py) start them headless themselves and skip with a
# message when they are missing, so a failure here is reported but not fatal for CI.
set -uo pipefail

if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  echo "Chromium found: $(command -v chromium), $(command -v chromedriver)"
  exit 0
fi

# shellcheck source=scripts/_apt.sh
source "$(dirname "$0")/_apt.sh"
apt_install Chromium chromium chromium-driver
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  echo "Chromium installed: $(chromium --version 2>/dev/null | head -n 1)"
else
  echo "Chromium installation failed; browser tests will skip" >&2
  exit 1
fi
