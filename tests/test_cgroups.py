"""cgroup limits read from fake /proc/self/cgroup and /sys/fs/cgroup trees (v1 and v2)."""

from pathlib import Path

import pytest

from landseg import cgroups
from landseg.data import cache_policy


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _limits(tmp_path):
    root, proc = str(tmp_path / "cg"), str(tmp_path / "proc")
    return cgroups.cpu_limit(root, proc), cgroups.memory_limit(root, proc)


def test_v2_quota_and_memory_of_the_process_cgroup_and_its_parents(tmp_path):
    _write(tmp_path / "proc", "0::/job/step\n")
    _write(tmp_path / "cg" / "job" / "step" / "cpu.max", "max 100000\n")
    _write(tmp_path / "cg" / "job" / "cpu.max", "150000 100000\n")  # a parent's quota binds too
    _write(tmp_path / "cg" / "job" / "step" / "memory.max", "3000000000\n")
    _write(tmp_path / "cg" / "job" / "memory.max", "max\n")
    cpu, memory = _limits(tmp_path)
    assert cpu == pytest.approx(1.5) and memory == 3_000_000_000
    _write(tmp_path / "cg" / "job" / "cpu.max", "max 100000\n")
    _write(tmp_path / "cg" / "job" / "step" / "memory.max", "max\n")
    assert _limits(tmp_path) == (None, None)


def test_v1_quota_and_memory_per_controller(tmp_path):
    _write(tmp_path / "proc", "4:memory:/docker/abc\n2:cpu,cpuacct:/docker/abc\n")
    ctl = tmp_path / "cg" / "cpu,cpuacct" / "docker" / "abc"
    _write(ctl / "cpu.cfs_quota_us", "50000\n")
    _write(ctl / "cpu.cfs_period_us", "100000\n")
    _write(tmp_path / "cg" / "memory" / "docker" / "abc" / "memory.limit_in_bytes", "2147483648\n")
    _write(tmp_path / "cg" / "memory" / "memory.limit_in_bytes", "9223372036854771712\n")  # v1's "no limit"
    cpu, memory = _limits(tmp_path)
    assert cpu == pytest.approx(0.5) and memory == 2147483648
    _write(ctl / "cpu.cfs_quota_us", "-1\n")
    _write(tmp_path / "cg" / "memory" / "docker" / "abc" / "memory.limit_in_bytes", "9223372036854771712\n")
    assert _limits(tmp_path) == (None, None)


def test_no_cgroup_files_means_no_limit(tmp_path):
    _write(tmp_path / "proc", "")
    assert _limits(tmp_path) == (None, None)


def test_cache_policy_memory_is_capped_by_the_cgroup_limit(monkeypatch):
    unlimited = cache_policy.usable_memory()
    monkeypatch.setattr(cgroups, "memory_limit", lambda: 123_456_789)
    assert cache_policy.usable_memory() == min(unlimited or 123_456_789, 123_456_789)
