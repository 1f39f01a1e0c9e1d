#!/usr/bin/env bash
# Makes sure the headless browser the dashboard's browser tests drive is installed: Debian's
# chromium at /usr/bin/chromium (Playwright cannot download its own browser builds here).
# Idempotent and quiet when it is already there; a failed install is reported, not fatal:
# the browser tests then skip with the reason (and fail under CI=true).
set -uo pipefail
[ -x /usr/bin/chromium ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
    echo "browser: /usr/bin/chromium is missing and apt-get is not available" >&2
    exit 0
fi
echo "browser: installing chromium"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1; then
    apt-get update -qq >/dev/null 2>&1
    apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 ||
        echo "browser: could not install chromium (apt-get install chromium failed)" >&2
fi
exit 0
