#!/usr/bin/env bash
# The test command: installs what the tests need (Debian packages, when run as root) and runs
# every test. Tests start their own redis-server on free ports and their own headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)   # certificates for the TLS test
command -v wrk >/dev/null 2>&1 || missing+=(wrk)           # the benchmark's load generator
command -v caddy >/dev/null 2>&1 || missing+=(caddy)       # forward auth through real proxies
command -v nginx >/dev/null 2>&1 || missing+=(nginx)
command -v curl >/dev/null 2>&1 || missing+=(curl)         # a client sending its own Remote-User
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "== missing ${missing[*]}: run this script as root on Debian, or apt-get install them." >&2
    echo "   The tests that need them will fail and say so." >&2
  fi
fi

echo "== cargo test"
cargo test --all-targets "$@"
