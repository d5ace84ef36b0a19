#!/usr/bin/env bash
# System packages the test suite needs beyond the Python ones in .venv, from Debian's archive;
# `make install` runs this. Only what is missing is installed, so a second run costs nothing.
#   chromium: tests/test_live_page.py drives the live page in it through Playwright, which is
#             pointed at /usr/bin/chromium (`playwright install` downloads a browser: never).
#   golang-go: tests/test_compose.py builds deploy/compose-check (compose-go, pinned to a release
#             that builds with Debian bookworm's Go 1.19) to validate docker-compose.yml where
#             the docker compose plugin is not installed; any Go already there (on PATH or in
#             /usr/local/go, where the test also looks) will do.
set -euo pipefail

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if ! command -v go >/dev/null 2>&1 && [ ! -x /usr/local/go/bin/go ]; then
    missing+=(golang-go)
fi
if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-system-packages: install ${missing[*]} (no apt-get on this machine)" >&2
    exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
echo "install-system-packages: apt-get install ${missing[*]}"
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}"
