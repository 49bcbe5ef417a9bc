#!/usr/bin/env bash
# The codec and the charger node against cbor2 5.x's pure-Python implementation: what a 32-bit
# Raspberry Pi OS (armv7l, armv6l) gets, where cbor2 6 (Rust) has no wheel and `cbor2<6` installs
# as its py3-none-any wheel (docs/raspberry-pi.md). Run by tools/test.sh; runs on its own too:
#
#   bash tools/ci_cbor2_pure.sh [extra pytest arguments]
#
# A separate virtual environment, made fresh and removed at exit, gets exactly that wheel, then
# the project (editable, as tools/test.sh installs it) and the test requirements (pyproject.toml's
# `test` extra, less ruff and mypy), with "cbor2<6" so that the resolver keeps the wheel.
# tools/cbor2_pure_check.py then fails the run if a compiled cbor2 (the 5.x C extension
# `_cbor2`, or 6.x) is what would be imported, before the tests and again after them. The tests
# (TESTS below): tests/test_cbor.py (the whole corpus round trip, value forms, malformed input),
# tests/test_cbor_fuzz.py without the slow marker (hostile input, through the pure decoder's own
# code), the charger node's outbox, EVSE and device model, and its station machine's charging
# sessions in every version (every frame through the CBOR codec).
#
#   PYTHON=...   interpreter to base the environment on (default python3). When its pip can
#                install into another interpreter (`pip --python`, pip >= 22.3) the environment
#                is made without pip of its own, which saves the ensurepip step.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
# the selection: 26-45 s of the step (the step as a whole should stay under 90 s); --no-compile
# below saves compiling every installed module (pygments alone is large): imports compile theirs
TESTS=(
  tests/test_cbor.py tests/test_cbor_fuzz.py tests/test_cbor_limits.py
  tests/test_node_outbox.py tests/test_node_evse.py tests/test_node_device_model.py
  tests/test_charger_station_session.py
)
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
VENV="$tmp/venv"
unset PYTHONPATH PYTHONHOME VIRTUAL_ENV

if "$PYTHON" -m pip --version >/dev/null 2>&1 \
  && "$PYTHON" -m venv --without-pip "$VENV" \
  && "$PYTHON" -m pip --python "$VENV/bin/python" --version >/dev/null 2>&1; then
  PIP=("$PYTHON" -m pip --python "$VENV/bin/python")
else
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  PIP=("$VENV/bin/python" -m pip)
fi
PY="$VENV/bin/python"
INSTALL=("${PIP[@]}" install -q --disable-pip-version-check --no-input --no-compile)

# cbor2 5.x as its pure-Python wheel, the one PyPI offers to a platform without a 5.x binary
"${PIP[@]}" download -q --disable-pip-version-check --no-input --no-deps --only-binary :all: \
  --platform any --implementation py --abi none -d "$tmp/wheels" "cbor2>=5.6,<6"
wheel=("$tmp"/wheels/cbor2-5.*-py3-none-any.whl)
[ -f "${wheel[0]}" ] || { echo "no pure-Python cbor2 5.x wheel was downloaded" >&2; exit 1; }
"${INSTALL[@]}" "${wheel[0]}"

# the project and this selection's test requirements, pinned as in pyproject.toml
mapfile -t test_reqs < <("$PY" - <<'EOF'
import re
import tomllib

with open("pyproject.toml", "rb") as f:
    extra = tomllib.load(f)["project"]["optional-dependencies"]["test"]
for req in extra:
    if re.split(r"[^A-Za-z0-9._-]", req, maxsplit=1)[0].lower() not in {"ruff", "mypy"}:
        print(req)
EOF
)
# "cbor2<6" again: the resolver must keep the wheel above, never move to 6.x
"${INSTALL[@]}" -e . "cbor2<6" "${test_reqs[@]}"

"$PY" tools/cbor2_pure_check.py
echo "   (environment ready after $SECONDS s)"

set +e
"$PY" -m pytest -q -rfEs -p no:cacheprovider -m "not slow" "${TESTS[@]}" "$@"
rc=$?
set -e
if [ $rc -eq 5 ]; then
  echo "pytest collected no tests (exit 5)" >&2
fi
# the tests ran against the same cbor2 the check saw (nothing replaced it meanwhile)
"$PY" tools/cbor2_pure_check.py >/dev/null || rc=1
exit $rc
