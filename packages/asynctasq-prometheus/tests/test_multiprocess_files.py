"""The supervisor's scrape over a multiprocess directory whose files are not all whole.

A worker process creates its metric file empty and gives it its size and header just
after; a process started at the moment of a scrape, or killed right then, leaves such a
file. The scrape serves the others' values instead of failing (a 500 from /metrics).
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import generate_latest, values
from prometheus_client.mmap_dict import MmapedDict, mmap_key

from asynctasq_prometheus import multiprocess

FINISHED = "asynctasq_tasks_finished"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _write(path: Path, name: str, samples: dict[str, float]) -> None:
    """A metric file as a worker process writes it (one family, no labels)."""
    values = MmapedDict(str(path / name))
    for sample, number in samples.items():
        key = mmap_key(sample.removesuffix("_total"), sample, [], [], "help")
        values.write_value(key, number, 0.0)
    values.close()


def _scrape(path: Path) -> str:
    return generate_latest(multiprocess.Fleet(str(path)).registry).decode()


def test_files_too_short_to_hold_values_are_left_out(tmp_path: Path) -> None:
    me, dead = os.getpid(), _dead_pid()
    _write(tmp_path, f"counter_{dead}.db", {f"{FINISHED}_total": 5})
    _write(tmp_path, f"gauge_liveall_{me}.db", {"asynctasq_worker_ready": 1})
    # Created, not yet sized: a process starting now, or one killed right then.
    (tmp_path / f"counter_{me}.db").write_bytes(b"")
    (tmp_path / f"histogram_{dead}.db").write_bytes(b"\x08\x00")
    (tmp_path / f"gauge_liveall_{dead}.db").write_bytes(b"")

    text = _scrape(tmp_path)
    assert f"{FINISHED}_total 5.0" in text, text
    assert f'asynctasq_worker_ready{{pid="{me}"}} 1.0' in text, text
    fleet = multiprocess.Fleet(str(tmp_path), expected=1)
    assert fleet.ready() is None
    assert fleet.alive() is None
    # The dead process's live gauge file went with the scrape; its counts stay.
    assert not (tmp_path / f"gauge_liveall_{dead}.db").exists()
    assert (tmp_path / f"counter_{dead}.db").exists()


def test_a_file_that_cannot_be_read_is_left_out_and_reported_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dead = _dead_pid()
    _write(tmp_path, f"counter_{dead}.db", {f"{FINISHED}_total": 5})
    # A header that counts one value whose key is not UTF-8.
    broken = struct.pack("i4x", 32) + struct.pack("i", 4) + b"\xff\xfe\xfd\xfc" + bytes(16 + 4)
    (tmp_path / f"counter_{dead + 1}.db").write_bytes(broken.ljust(64, b"\0"))

    with caplog.at_level("WARNING", logger="asynctasq.prometheus"):
        first, second = _scrape(tmp_path), _scrape(tmp_path)
    assert f"{FINISHED}_total 5.0" in first and f"{FINISHED}_total 5.0" in second
    reports = [r for r in caplog.records if f"counter_{dead + 1}.db" in r.getMessage()]
    assert len(reports) == 1, caplog.text


def test_a_dead_process_forgotten_by_two_scrapes_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = _dead_pid()
    _write(tmp_path, f"counter_{dead}.db", {f"{FINISHED}_total": 1})
    for mode in ("liveall", "livesum", "livemostrecent"):
        _write(tmp_path, f"gauge_{mode}_{dead}.db", {"asynctasq_worker_ready": 1})
    alive = multiprocess.process_alive

    def other_scrape_first(pid: int) -> bool:
        # The other scrape's thread removes one of the files between this one's listing
        # and its removals.
        (tmp_path / f"gauge_livesum_{dead}.db").unlink()
        return alive(pid)

    monkeypatch.setattr(multiprocess, "process_alive", other_scrape_first)
    text = _scrape(tmp_path)
    assert f"{FINISHED}_total 1.0" in text, text
    assert "asynctasq_worker_ready" not in text, text
    assert [p.name for p in tmp_path.iterdir()] == [f"counter_{dead}.db"]


def test_a_supervisor_removes_what_an_earlier_run_left_in_the_given_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """``PROMETHEUS_MULTIPROC_DIR`` reused across runs: the last run's counters were added
    to the new run's totals. Files of live processes (others sharing it) stay."""
    from asynctasq.config import WorkerSettings
    from asynctasq_prometheus.exporter import start_supervisor_exporter

    dead = _dead_pid()
    _write(tmp_path, f"counter_{dead}.db", {f"{FINISHED}_total": 21})
    _write(tmp_path, f"counter_{os.getpid()}.db", {f"{FINISHED}_total": 2})
    (tmp_path / "notes.txt").write_text("not a metric file: kept")
    # Names no process can have (anyone who can write there): stale, not a start-up crash.
    _write(tmp_path, f"counter_{'9' * 30}.db", {f"{FINISHED}_total": 5})
    _write(tmp_path, "counter_0.db", {f"{FINISHED}_total": 7})
    monkeypatch.setenv(multiprocess.DIR_VARIABLE, str(tmp_path))
    exporter = start_supervisor_exporter(WorkerSettings(metrics_port=0), workers=2)
    try:
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            f"counter_{os.getpid()}.db",
            "notes.txt",
        ]
        assert f"{FINISHED}_total 2.0" in _scrape(tmp_path)
        assert "removed 3 metric file(s) an earlier run left in PROMETHEUS_MULTIPROC_DIR" in (
            caplog.text
        )
    finally:
        exporter.close()
        # Back to single-process mode: this test's process runs other tests' metrics.
        monkeypatch.delenv(multiprocess.DIR_VARIABLE)
        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    assert tmp_path.exists()  # not made for the supervisor: not removed either
