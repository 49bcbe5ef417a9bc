"""One process at a time on a data folder (``node.lock``): a second one is refused at once with
the holder's pid, a killed holder leaves nothing behind, and ``charger-node run`` / ``simulate``
refuse to start on a folder in use instead of running a station twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ocpp_iot.charger_node.cli import main
from ocpp_iot.charger_node.dir_lock import LOCK_NAME, DataDirInUse, DirLock

HOLD = (
    "import sys, time\n"
    "from ocpp_iot.charger_node.dir_lock import DirLock\n"
    "DirLock(sys.argv[1]).acquire()\n"
    "print('held', flush=True)\n"
    "time.sleep(60)\n"
)


def test_a_second_holder_is_refused_until_the_first_lets_go(tmp_path: Path) -> None:
    first = DirLock(tmp_path / "d").acquire()
    assert first.held and (tmp_path / "d" / LOCK_NAME).read_text().strip() == str(os.getpid())
    with pytest.raises(DataDirInUse, match=f"in use by process {os.getpid()}"):
        DirLock(tmp_path / "d").acquire()
    first.release()
    assert not first.held
    with DirLock(tmp_path / "d") as again:
        assert again.held


def test_a_killed_holder_leaves_the_folder_free(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        with pytest.raises(DataDirInUse) as caught:
            DirLock(tmp_path).acquire()
        assert caught.value.holder == str(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        with DirLock(tmp_path) as lock:  # no stale lock to clean up
            assert lock.held
            assert (tmp_path / LOCK_NAME).read_text().strip() == str(os.getpid())
    finally:
        proc.kill()
        proc.wait(10)


def test_run_refuses_a_data_folder_in_use(tmp_path: Path) -> None:
    with DirLock(tmp_path / "CP1"):
        result = CliRunner().invoke(
            main, ["run", "--station-id", "CP1", "--data-dir", str(tmp_path / "CP1")]
        )
    assert result.exit_code != 0
    assert "cannot start the station" in result.output
    assert f"in use by process {os.getpid()}" in result.output


def test_simulate_refuses_a_data_folder_in_use(tmp_path: Path) -> None:
    with DirLock(tmp_path):
        result = CliRunner().invoke(
            main, ["simulate", "--stations", "2", "--data-dir", str(tmp_path), "--duration", "1"]
        )
    assert result.exit_code != 0
    assert "cannot start the simulation" in result.output and "in use by process" in result.output
    assert not (tmp_path / "outbox.db").exists()
