"""The extras in pyproject.toml name every third-party module the code imports.

``tools/test.sh`` installs ``.[test,demo]`` into a fresh virtual environment, so a module that
tests import but no extra lists fails there at collection; these tests say which one, and say
it on a developer's machine too, where it may have been installed by hand. Every import of
``tests/`` must come from the runtime dependencies or the ``test``/``demo`` extras, every import
of ``src/`` from the runtime dependencies or an extra, and every import of ``bench/`` from the
runtime dependencies or the ``bench`` extra (for these two, a dependency of a listed
distribution also counts: ``pydantic_core`` comes with ``pydantic``).
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
import tomllib
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def normalize(name: str) -> str:
    """A distribution name in the form PEP 503 compares (``Foo_Bar`` == ``foo-bar``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(req: str) -> str:
    """``"hypothesis-jsonschema==0.23.1"`` -> ``"hypothesis-jsonschema"``."""
    m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req)
    assert m, req
    return normalize(m.group(1))


def declared(*extras: str) -> set[str]:
    names = {requirement_name(r) for r in PROJECT["dependencies"]}
    for extra in extras:
        names |= {requirement_name(r) for r in PROJECT["optional-dependencies"][extra]}
    return names


def local_modules(folder: Path) -> set[str]:
    """Modules a file in ``folder`` imports from beside itself (``from test_cbor import ...``)."""
    return {p.stem for p in folder.glob("*.py")} | {p.name for p in folder.iterdir() if p.is_dir()}


def third_party_imports(folder: Path) -> dict[str, str]:
    """Top-level module -> first file importing it, for absolute imports that are neither the
    standard library, this project (``ocpp_iot``), nor a module beside the importing file."""
    found: dict[str, str] = {}
    for path in sorted(folder.rglob("*.py")):
        local = local_modules(path.parent)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top == "ocpp_iot" or top in local:
                    continue
                found.setdefault(top, str(path.relative_to(ROOT)))
    return found


@cache
def providers() -> dict[str, list[str]]:
    """Top-level module -> the installed distributions that provide it."""
    return {k: [normalize(d) for d in v] for k, v in md.packages_distributions().items()}


def requirements_of(dist: str) -> set[str]:
    try:
        reqs = md.requires(dist) or []
    except md.PackageNotFoundError:
        return set()
    return {requirement_name(r) for r in reqs if "extra ==" not in r}


def undeclared(
    folder: str, allowed: set[str], transitive: bool, installed: bool = True
) -> list[str]:
    """What ``folder`` imports that ``allowed`` does not provide. ``installed``: the extras
    are installed here, so every module must be; otherwise (the ``bench`` extra, which
    tools/test.sh does not install) a module that is not installed passes if a requirement
    has its name (``jsonschema_rs`` -> ``jsonschema-rs``)."""
    if transitive:
        allowed = allowed | {r for d in allowed for r in requirements_of(d)}
    problems = []
    for module, where in sorted(third_party_imports(ROOT / folder).items()):
        dists = providers().get(module)
        if not dists:
            if installed or normalize(module) not in allowed:
                problems.append(f"{module} (imported by {where}) is not installed at all")
        elif not set(dists) & allowed:
            problems.append(f"{module} (imported by {where}) comes from {dists}, listed nowhere")
    return problems


def test_the_scan_sees_the_imports_it_must_see() -> None:
    # The check is only as good as the scan: these are known imports of tests/ and src/.
    tests = third_party_imports(ROOT / "tests")
    assert {"pytest", "hypothesis", "rfc3339_validator", "jsonschema"} <= set(tests)
    assert not {"conftest", "test_cbor", "ocpp_iot", "json"} & set(tests)
    assert {"pydantic", "cbor2", "paho"} <= set(third_party_imports(ROOT / "src"))


def test_a_module_that_no_extra_lists_is_reported() -> None:
    # jsonschema is in the test extra but not among the runtime dependencies.
    problems = undeclared("tests", declared(), transitive=False)
    assert any(p.startswith("jsonschema ") for p in problems), problems


def test_the_test_extra_covers_every_import_of_the_tests() -> None:
    assert undeclared("tests", declared("test", "demo"), transitive=False) == []


def test_the_extras_cover_every_import_of_the_package() -> None:
    extras = list(PROJECT["optional-dependencies"])
    assert undeclared("src", declared(*extras), transitive=True) == []


@pytest.mark.skipif(not (ROOT / "bench").is_dir(), reason="no bench/ folder")
def test_the_bench_extra_covers_every_import_of_the_benchmarks() -> None:
    # psutil was missing here once (bridge_throughput.py); pydantic_core comes with pydantic
    assert undeclared("bench", declared("bench"), transitive=True, installed=False) == []


def test_a_benchmark_import_that_no_extra_names_is_reported() -> None:
    # psutil is in the bench extra only: without it, whether installed here or not, it is
    # reported (it was missing once: bridge_throughput.py failed on a fresh install).
    problems = undeclared("bench", declared(), transitive=True, installed=False)
    assert any(p.startswith("psutil ") for p in problems), problems


def test_the_tools_the_test_script_runs_are_in_the_test_extra() -> None:
    # tools/test.sh runs ruff, mypy and pytest from the fresh environment.
    assert {"ruff", "mypy", "pytest"} <= declared("test")
