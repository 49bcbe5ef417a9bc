"""The README's code runs as written, and its examples are the files in examples/."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
EXAMPLES = ["basic_charger.py", "basic_charge_system.py"]


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, flags=re.S)


@pytest.mark.parametrize("name", EXAMPLES)
def test_readme_shows_the_example_verbatim(name: str) -> None:
    assert (ROOT / "examples" / name).read_text() in python_blocks()


def run_example(name: str) -> list[tuple[list, list]]:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = done.stdout.splitlines()
    pairs = []
    for question, answer in zip(lines, lines[1:], strict=False):
        if answer.startswith("  -> "):
            try:
                pairs.append((json.loads(question), json.loads(answer[5:])))
            except json.JSONDecodeError:
                pairs.append((question, json.loads(answer[5:])))
    return pairs


def test_basic_charger_example_answers() -> None:
    answers = [a for _, a in run_example("basic_charger.py")]
    assert answers[0] == [3, "1", {"status": "Accepted"}]
    assert answers[1] == [
        3,
        "2",
        {"status": "Unlocked", "statusInfo": {"reasonCode": "cable unlocked"}},
    ]
    assert answers[2][:3] == [4, "3", "PropertyConstraintViolation"]
    assert answers[3][:3] == [4, "4", "NotSupported"]  # known action, not handled (4.3)
    assert len(answers) == 4  # the CALLRESULT it received is not answered


def test_basic_charge_system_example_answers() -> None:
    answers = [a for _, a in run_example("basic_charge_system.py")]
    assert answers[0][0] == 3 and answers[0][2]["status"] == "Accepted"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", answers[0][2]["currentTime"])
    assert answers[1] == [3, "2", {"idTokenInfo": {"status": "Accepted"}}]
    assert answers[2] == [3, "3", {"status": "Accepted", "data": "hello"}]
    assert answers[3][:2] == [3, "4"]
    assert answers[4][:3] == [4, "5", "OccurrenceConstraintViolation"]
    assert answers[5][:3] == [4, "-1", "RpcFrameworkError"]


def test_other_readme_python_blocks_run() -> None:
    examples = {(ROOT / "examples" / n).read_text() for n in EXAMPLES}
    blocks = [b for b in python_blocks() if b not in examples]
    assert blocks, "the README lost its model example"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {"__name__": "readme"})
