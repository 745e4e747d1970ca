"""What this process's cgroups allow it: a CPU quota (in cores) and a memory limit (in bytes).

Why here: the thread counts (``runtime``) and the decoded-scene cache (``data.cache_policy``) must
both follow a container's limits, not the host's cores and RAM, and both read the same files: the
process's cgroup from ``/proc/self/cgroup``, then that cgroup and its parents (a limit set on a
parent also binds), under ``/sys/fs/cgroup`` (v2) or its per-controller folders (v1). Inside a
container the process's own cgroup is usually mounted at the root, so the root files count too.
"""

from __future__ import annotations

import os

ROOT = "/sys/fs/cgroup"
PROC_CGROUP = "/proc/self/cgroup"
_UNLIMITED = 1 << 60  # v1 reports "no limit" as a huge number (page-rounded LONG_MAX)


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _paths(controller: str, proc_cgroup: str) -> tuple[str | None, str | None]:
    """(the v2 cgroup path, the v1 path of ``controller``) of this process, where listed."""
    v2 = v1 = None
    for line in (_read(proc_cgroup) or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            v2 = path
        elif controller in controllers.split(","):
            v1 = path
    return v2, v1


def _ancestors(path: str | None):
    """``/a/b`` -> ``/a/b``, ``/a``, ``/``; None (not listed) -> ``/`` only."""
    path = "/" + (path or "").strip("/")
    while True:
        yield path
        if path == "/":
            return
        path = os.path.dirname(path)


def _v2_files(root: str, v2: str | None, name: str):
    for rel in _ancestors(v2):
        yield _read(os.path.join(root, rel.lstrip("/"), name))


def _v1_dirs(root: str, v1: str | None, controller_dirs):
    for base in [os.path.join(root, d) for d in controller_dirs] + [root]:
        for rel in _ancestors(v1):
            yield os.path.join(base, rel.lstrip("/"))


def cpu_limit(root: str = ROOT, proc_cgroup: str = PROC_CGROUP) -> float | None:
    """The CPU quota in cores, or None when unlimited.

    v2: ``cpu.max`` = ``"<quota> <period>"`` or ``"max <period>"``; v1: ``cpu.cfs_quota_us``
    (-1 = unlimited) / ``cpu.cfs_period_us``.
    """
    v2, v1 = _paths("cpu", proc_cgroup)
    limits = []
    for text in _v2_files(root, v2, "cpu.max"):
        quota, _, period = (text or "max").partition(" ")
        if quota != "max":
            try:
                limits.append(int(quota) / int(period or 100000))
            except ValueError:
                pass
    for d in _v1_dirs(root, v1, ("cpu", "cpu,cpuacct")):
        quota, period = _read(os.path.join(d, "cpu.cfs_quota_us")), _read(os.path.join(d, "cpu.cfs_period_us"))
        try:
            q, p = int(quota), int(period)
        except (TypeError, ValueError):
            continue
        if q > 0 and p > 0:
            limits.append(q / p)
    return min(limits) if limits else None


def memory_limit(root: str = ROOT, proc_cgroup: str = PROC_CGROUP) -> int | None:
    """The memory limit in bytes, or None when unlimited.

    v2: ``memory.max`` (``max`` = unlimited); v1: ``memory.limit_in_bytes`` (a huge value = unlimited).
    """
    v2, v1 = _paths("memory", proc_cgroup)
    files = list(_v2_files(root, v2, "memory.max"))
    files += [_read(os.path.join(d, "memory.limit_in_bytes")) for d in _v1_dirs(root, v1, ("memory",))]
    limits = [int(t) for t in files if t and t.isdigit() and int(t) < _UNLIMITED]
    return min(limits) if limits else None
