"""Smoke test of bench/lora_airtime.py: its functions on a tiny configuration, so that the
benchmark cannot rot (the full run is `python bench/lora_airtime.py`)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

# bench/ is not a package: the script's folder goes on the path as when it runs. Imported by
# name at run time, so that test_fresh_install's scan of the tests' imports does not take it
# for a third-party module (the bench imports only the standard library and ocpp_iot).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
la = importlib.import_module("lora_airtime")


def test_reference_session_is_the_issue_s_charging_hour() -> None:
    session = la.reference_session()
    actions = [e.call.action for e in session]
    assert actions[:3] == ["BootNotification", "StatusNotification", "Authorize"]
    events = [e.call.payload["eventType"] for e in session if e.call.action == "TransactionEvent"]
    assert events == ["Started"] + ["Updated"] * 60 + ["Ended"]
    assert [
        e.call.payload["seqNo"] for e in session if e.call.action == "TransactionEvent"
    ] == list(range(62))
    assert all(e.result.message_id == e.call.message_id for e in session)
    cbor_sizes = [len(m.up) for m in la.encoded("ours (compact CBOR)")]
    json_sizes = [len(m.up) for m in la.encoded("OCPP-J, UUID ids")]
    assert sum(cbor_sizes) * 4 < sum(json_sizes)


def test_our_link_sends_two_frames_an_exchange_and_the_naive_one_four() -> None:
    session = la.encoded("ours (compact CBOR)")[:4]
    ours = la.run_pair("ours", session, 7, ans=True)
    naive = la.run_pair("ours", session, 7, ans=False)
    assert ours.delivered == ours.once == 8 and ours.frames_up + ours.frames_down == 8
    assert naive.delivered == 8 and naive.frames_up + naive.frames_down == 16
    assert naive.airtime == pytest.approx(la.formula_acked(session, 7, 255), abs=1e-9)
    assert ours.airtime < naive.airtime


def test_lossy_channel_ours_delivers_all_and_the_baseline_misses_its_sf12_acks() -> None:
    session = la.encoded("ours (compact CBOR)")[:3]
    ours = la.run_pair("ours", session, 7, loss=0.2, seed=3)
    assert ours.lost == 0 and ours.duplicates == 0 and ours.retransmissions > 0
    base = la.run_pair("radiohead", session, 12, loss=0.0, seed=1)
    # a 5-byte ACK is 827 ms on air at SF12: every message is sent 4 times and "failed"
    assert base.told_failed == base.offered and base.retransmissions == 3 * base.offered
    assert base.lost > 0


def test_tables_goals_and_the_docs_section(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = tmp_path / "lora.md"
    doc.write_text("# LoRa\n\n## Not here yet\n\nstuff\n", encoding="utf-8")
    monkeypatch.setattr(la, "DOC", doc)
    monkeypatch.setattr(la, "SFS", (7, 12))
    monkeypatch.setattr(la, "LOSSES", (0.0, 0.2))
    assert la.main(["--seeds", "1", "--site-seeds", "0"]) == 0
    text = doc.read_text(encoding="utf-8")
    assert text.index("## Airtime") < text.index("## Not here yet")
    assert "Goal 'ours delivers everything" in text and "| 12 | 20% |" in text
    la.main(
        ["--seeds", "1", "--site-seeds", "0"]
    )  # a rerun replaces the section, it does not add one
    assert doc.read_text(encoding="utf-8").count(la.BEGIN) == 1


def test_site_simulation_counts_uplink_losses_at_the_gateway() -> None:
    site = la.simulate_site(3, 7, seed=2)
    assert site["offered"] == 3 * 2 * len(la.reference_session())
    assert site["delivered"] == site["offered"] and site["duplicates"] == 0
    assert 0.0 <= site["uplink_lost"] < 0.1
    assert la.aloha_stations(5.7, 67, 3.1, 67, 0.1) > la.aloha_stations(18.7, 67, 10.9, 67, 0.1)
    assert la._site(3, [site, site]).startswith("3: ")
