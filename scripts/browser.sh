#!/usr/bin/env bash
# Makes sure the headless browser the dashboard's browser tests drive is installed: Debian's
# chromium at /usr/bin/chromium (Playwright cannot download its own browser builds here).
# Idempotent and quiet when it is already there; a failed install is reported, not fatal:
# the browser tests then skip with the reason (and fail under CI=true).
set -uo pipefail
# Any of these will do (the tests look in the same places, or at ASYNCTASQ_TEST_CHROMIUM).
for browser in "${ASYNCTASQ_TEST_CHROMIUM:-}" /usr/bin/chromium /usr/bin/chromium-browser \
    /usr/bin/google-chrome /usr/bin/google-chrome-stable; do
    [ -n "$browser" ] && [ -x "$browser" ] && exit 0
done
SUDO=""
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 && SUDO="sudo -n"
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "browser: /usr/bin/chromium is missing and apt-get is not available" >&2
    exit 0
fi
echo "browser: installing chromium"
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1; then
    $SUDO apt-get update -qq >/dev/null 2>&1
    $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 ||
        echo "browser: could not install chromium (apt-get install chromium failed)" >&2
fi
exit 0
