#!/usr/bin/env bash
# Install what the test suite needs on a fresh Debian machine, then lint, type-check and test.
# Used by the README's test command and by .ci/run.  Extra arguments go to pytest.
#
# Every run installs the package into a virtual environment made fresh for that run, and every
# tool (ruff, mypy, pytest, and the `ruff` that tests shell out to) runs from it: nothing that
# was installed by hand can hide a dependency missing from pyproject.toml.
#
#   OCPP_IOT_TEST_VENV=DIR   make the fresh environment in DIR (deleted first) and keep it;
#                            default: a temporary directory removed at exit.
#   OCPP_IOT_SHARD=k/n       which slice of the long property tests to run (tests/test_model_schemas.py);
#   OCPP_IOT_SLOW=1          run all of them with many examples (as `-m slow` does);
#   OCPP_IOT_TEST_WORKERS=N  pytest-xdist workers (default 3: the end-to-end and fault tests
#                            mostly wait on processes and timers, so three keep two cores busy;
#                            0 runs in this process, as plain pytest does).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"

step_start=$SECONDS
step() {
  echo "== $1"
  step_start=$SECONDS
}
took() { echo "   ($((SECONDS - step_start)) s)"; }

# -- system packages, only those missing (the user's own broker is left alone: the tests start
#    their own mosquitto on free ports) ----------------------------------------------------------
missing=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || missing+=(mosquitto-clients)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# Debian splits venv/ensurepip out of the interpreter package.
"$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  step "installing ${missing[*]} (apt-get)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  took
fi

# -- a fresh virtual environment -----------------------------------------------------------------
if [ -n "${OCPP_IOT_TEST_VENV:-}" ]; then
  VENV="$OCPP_IOT_TEST_VENV"
  if [ -e "$VENV" ] && ! [ -f "$VENV/pyvenv.cfg" ]; then
    echo "OCPP_IOT_TEST_VENV=$VENV exists and is not a virtual environment: not deleting it" >&2
    exit 2
  fi
  rm -rf "$VENV"
else
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  VENV="$tmp/venv"
fi
step "fresh virtual environment in $VENV; installing .[test,demo] (pip)"
"$PYTHON" -m venv "$VENV"
export VIRTUAL_ENV="$VENV"
unset PYTHONPATH PYTHONHOME  # nothing from outside the fresh environment
export PATH="$VENV/bin:$PATH"
hash -r
PY="$VENV/bin/python"
"$PY" -m pip install -q --disable-pip-version-check --no-input -e ".[test,demo]"
took

step "ruff"
"$PY" -m ruff check src tests tools bench examples
"$PY" -m ruff format --check src tests tools bench examples
took

step "mypy (src/ and the generators, configured in pyproject.toml)"
"$PY" -m mypy
took

step "codec and charger node on cbor2 5.x pure Python, own fresh environment"; bash tools/ci_cbor2_pure.sh; took

step "pytest"
set +e
# Not -q: the header says which slice of the long property tests this run takes.
"$PY" -m pytest -rfEs -p no:cacheprovider -n "${OCPP_IOT_TEST_WORKERS:-3}" "$@"
rc=$?
set -e
took
if [ $rc -eq 5 ]; then
  # pytest's "no tests collected": a selection that matched nothing is not a green run.
  echo "pytest collected no tests (exit 5): check the arguments ($*)" >&2
fi
exit $rc
