"""Exit 0 only when this interpreter's ``cbor2`` is the 5.x line's pure-Python implementation.

Run by ``tools/ci_cbor2_pure.sh`` inside its environment before the tests, so that a green run
means the codec and the charger node were tested without cbor2's compiled code. The 5.x line
(``cbor2/__init__.py``) first defines the pure-Python ``dumps``, ``loads``, ``CBOREncoder`` and
``CBORDecoder`` and then, if a top-level ``_cbor2`` C extension imports, replaces them with its
built-ins; 6.x is a Rust extension (``cbor2._cbor2``) and has no pure-Python implementation.
Checked: the version; that no ``_cbor2`` module can be found; that ``dumps``, ``loads``,
``CBOREncoder.encode`` and ``CBORDecoder.decode`` are Python functions; that the installed
files hold no compiled module; one encode/decode through ``ocpp_iot.codecs.cbor``.

    python tools/cbor2_pure_check.py   # prints what it found; exit 1 with the reasons if not pure
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys
import types


def problems() -> list[str]:
    """What is not pure-Python cbor2 5.x here (empty: all is well)."""
    import cbor2

    found: list[str] = []
    version = importlib.metadata.version("cbor2")
    if int(version.split(".")[0]) != 5:
        found.append(f"cbor2 {version} is installed, not 5.x")
    for name in ("_cbor2", "cbor2._cbor2"):
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is not None:
            found.append(f"a compiled module {name} can be imported: {spec.origin}")
    for name in ("dumps", "loads"):
        obj = getattr(cbor2, name)
        if not isinstance(obj, types.FunctionType):
            found.append(f"cbor2.{name} is a {type(obj).__name__}, not a Python function")
    for name, method in (("CBOREncoder", "encode"), ("CBORDecoder", "decode")):
        obj = getattr(getattr(cbor2, name), method)
        if not isinstance(obj, types.FunctionType):  # a C or Rust method descriptor
            found.append(f"cbor2.{name}.{method} is a {type(obj).__name__}, not a Python function")
    compiled = [
        str(f)
        for f in importlib.metadata.files("cbor2") or []
        if f.suffix in {".so", ".pyd"} or ".so." in f.name
    ]
    if compiled:
        found.append(f"the cbor2 distribution ships compiled modules: {compiled}")

    from ocpp_iot.codecs import cbor
    from ocpp_iot.rpc import Call

    if cbor.cbor2 is not cbor2:
        found.append("ocpp_iot.codecs.cbor does not use this cbor2 module")
    frame = Call("19223201", "Heartbeat", {})
    if cbor.decode(cbor.encode(frame, "2.0.1")) != ("2.0.1", frame):
        found.append("a Heartbeat CALL did not round-trip through the codec")
    return found


def main() -> int:
    import cbor2

    found = problems()
    where = cbor2.__file__
    version = importlib.metadata.version("cbor2")
    if found:
        print(f"cbor2 {version} at {where} is not the pure-Python implementation:")
        for line in found:
            print(f"  - {line}")
        return 1
    print(f"cbor2 {version} at {where}: pure Python (no _cbor2 extension), codec round trip ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
