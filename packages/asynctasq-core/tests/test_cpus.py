"""`asynctasq.utils.cpus`: a container's CPU limit caps the CPU count that sizes
``--workers auto`` and the process pool, read from fake cgroup trees of both versions."""

from __future__ import annotations

from pathlib import Path

import pytest

from asynctasq.config import Config
from asynctasq.executors.process import ProcessExecutor
from asynctasq.supervisor import parse_workers, process_pool_share
from asynctasq.utils import cpus


def tree(tmp_path: Path, membership: str, files: dict[str, str]) -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    root.mkdir(exist_ok=True)
    proc = tmp_path / "self-cgroup"
    proc.write_text(membership)
    return root, proc


def test_a_v2_limit_rounds_up(tmp_path: Path) -> None:
    root, proc = tree(tmp_path, "0::/\n", {"cpu.max": "150000 100000\n"})
    assert cpus.cpu_limit(root, proc) == 2
    assert cpus.cpu_quota(root, proc) == 1.5  # as set


def test_v2_without_a_limit(tmp_path: Path) -> None:
    root, proc = tree(tmp_path, "0::/\n", {"cpu.max": "max 100000\n"})
    assert cpus.cpu_limit(root, proc) is None


def test_v2_the_tightest_group_above_the_process_wins(tmp_path: Path) -> None:
    """systemd's CPUQuota= on a slice limits every service under it."""
    root, proc = tree(
        tmp_path,
        "0::/work.slice/worker.service\n",
        {
            "work.slice/cpu.max": "300000 100000\n",
            "work.slice/worker.service/cpu.max": "max 100000\n",
        },
    )
    assert cpus.cpu_limit(root, proc) == 3


def test_v1_quota_and_period(tmp_path: Path) -> None:
    root, proc = tree(
        tmp_path,
        "4:cpu,cpuacct:/\n3:memory:/\n",
        {"cpu,cpuacct/cpu.cfs_quota_us": "50000\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"},
    )
    assert cpus.cpu_limit(root, proc) == 1


def test_v1_unlimited(tmp_path: Path) -> None:
    root, proc = tree(
        tmp_path,
        "1:cpu:/\n",
        {"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"},
    )
    assert cpus.cpu_limit(root, proc) is None


def test_v1_in_a_container_whose_mount_is_its_own_group(tmp_path: Path) -> None:
    """/proc/self/cgroup names the host's path, which the container's mount does not have:
    the mount's root is the container's group."""
    root, proc = tree(
        tmp_path,
        "2:cpu,cpuacct:/docker/0123abcd\n",
        {"cpu/cpu.cfs_quota_us": "400000\n", "cpu/cpu.cfs_period_us": "100000\n"},
    )
    assert cpus.cpu_limit(root, proc) == 4


@pytest.mark.parametrize(
    "text", ["", "garbage", "0 100000", "-5 100000", "100000 0", "9" * 5000, "\x00\xff"]
)
def test_unreadable_limits_are_no_limit(tmp_path: Path, text: str) -> None:
    root, proc = tree(tmp_path, "0::/\n", {"cpu.max": text})
    assert cpus.cpu_limit(root, proc) is None


def test_no_cgroups_at_all(tmp_path: Path) -> None:
    assert cpus.cpu_limit(tmp_path / "none", tmp_path / "missing") is None


@pytest.fixture
def limited_to_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpus, "cpu_limit", lambda: 1)
    monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda _pid: {0, 1, 2, 3}, raising=False)


@pytest.mark.usefixtures("limited_to_one")
def test_the_limit_sizes_workers_auto_and_the_process_pool() -> None:
    assert cpus.cpu_count() == 1
    assert parse_workers("auto") == 1
    assert process_pool_share(1) == 1
    pool = ProcessExecutor(None, None, allowed_roots=[], config=Config())
    assert pool.size == 1


def test_without_a_limit_the_affinity_mask_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpus, "cpu_limit", lambda: None)
    monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda _pid: {0, 2, 5}, raising=False)
    assert cpus.cpu_count() == 3
    pool = ProcessExecutor(None, None, allowed_roots=[], config=Config())
    assert pool.size == 3
