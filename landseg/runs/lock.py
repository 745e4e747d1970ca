"""A run folder's lock: one training process per run folder.

The lock file (:attr:`RunFolder.LOCK`) holds the holder's pid, host and start time. A second copy of the same training
(same command started twice, e.g. by a scheduler) is refused at once with who holds the folder;
a lock left by a process that died (kill -9, power cut) on this host is taken over, saying so.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path

from landseg.runs.folder import RunFolder

log = logging.getLogger(__name__)


class RunLockedError(OSError):
    """Another live process trains in this run folder. Message names the folder, pid and host."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def read_lock(run_dir: str | os.PathLike) -> dict | None:
    try:
        with open(RunFolder(run_dir).lock_file) as f:
            info = json.load(f)
        return info if isinstance(info, dict) else {}
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # unreadable or half-written: treated as stale


def held_by_other(run_dir: str | os.PathLike) -> dict | None:
    """The lock's holder when a live process other than this one holds ``run_dir``, else None."""
    info = read_lock(run_dir)
    if not info:
        return None
    pid, host = info.get("pid"), info.get("host")
    if pid == os.getpid() and host == socket.gethostname():
        return None
    if host != socket.gethostname():
        return info  # cannot see another machine's processes: assume it lives
    return info if isinstance(pid, int) and _alive(pid) else None


class RunLock:
    """``with RunLock(run_dir):`` - acquire (or raise :class:`RunLockedError`), release on exit."""

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)
        self.path = RunFolder(run_dir).lock_file
        self.acquired = False

    def acquire(self) -> "RunLock":
        self.run_dir.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                info = read_lock(self.run_dir)
                if info is None:
                    continue  # released meanwhile: try again
                holder = held_by_other(self.run_dir)
                if holder is not None:
                    raise RunLockedError(
                        f"{self.run_dir}: this run is in use by process {holder.get('pid')} on host "
                        f"{holder.get('host')} (since {holder.get('started', '?')}); wait for it to finish, stop it, "
                        f"or give this run another run.name. If that process is gone, delete {self.path}") from None
                if info.get("pid") != os.getpid():
                    log.warning(f"{self.path}: taking over the lock of process {info.get('pid', '?')} "
                                f"(host {info.get('host', '?')}), which is no longer running")
                try:
                    os.remove(self.path)
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self.acquired = True
            return self
        raise RunLockedError(f"{self.run_dir}: could not take the run lock {self.path} (another process keeps "
                             "taking it)")

    def release(self) -> None:
        if not self.acquired:
            return
        self.acquired = False
        info = read_lock(self.run_dir)
        if info and info.get("pid") == os.getpid():
            try:
                os.remove(self.path)
            except OSError:
                pass

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
