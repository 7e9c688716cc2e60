#!/usr/bin/env bash
# Installs Debian's headless Chromium for the dashboard browser test (test/e2e/dashboard.integration.test.ts,
# run with L02_TEST_BROWSER=1), idempotently: nothing is installed when /usr/bin/chromium already runs.
set -euo pipefail

CHROMIUM="${L02_CHROMIUM:-/usr/bin/chromium}"
if ! "$CHROMIUM" --version >/dev/null 2>&1; then
  echo "installing chromium"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
"$CHROMIUM" --version
