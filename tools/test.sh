#!/usr/bin/env bash
# Install everything the test suite needs on a fresh Debian machine, then run it.
# Used by the README's test command and by .ci/run.  Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v mosquitto >/dev/null 2>&1 && ! [ -x /usr/sbin/mosquitto ]; then
  echo "== installing mosquitto (apt-get)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mosquitto mosquitto-clients >/dev/null
fi
# The Debian package starts a system broker on 1883; the tests run their own on free ports.
if command -v systemctl >/dev/null 2>&1; then systemctl stop mosquitto >/dev/null 2>&1 || true; fi

echo "== installing the package and its test dependencies (pip)"
python3 -m pip install -q --disable-pip-version-check -e ".[test,demo]"

echo "== ruff"
python3 -m ruff check src tests tools bench examples
python3 -m ruff format --check src tests tools bench examples

echo "== pytest"
python3 -m pytest -q -p no:cacheprovider "$@"
