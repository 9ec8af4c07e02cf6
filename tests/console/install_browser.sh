#!/usr/bin/env bash
# Make sure Debian's chromium and chromium-driver are installed: the console's browser tests drive them.
#
#     bash tests/console/install_browser.sh      # from `make test`; quick when both are there
#
# Idempotent, for `make test` and CI (root, Debian). Exits non-zero, saying why, when they
# cannot be installed: the browser tests fail loudly rather than skip.
set -euo pipefail
log() { echo "install_browser: $*" >&2; }

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    log "chromium and chromium-driver are missing and this is not root: run" \
        "'apt-get install -y chromium chromium-driver' as root, then make test"
    exit 1
fi
log "installing chromium and chromium-driver from Debian's packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq chromium chromium-driver >&2
command -v chromium >/dev/null && command -v chromedriver >/dev/null || {
    log "chromium or chromedriver is still missing after the install"; exit 1; }
