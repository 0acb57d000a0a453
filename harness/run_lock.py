"""Which runs are being written right now: one advisory lock file per run.

A process that writes a run (a new run, or ``--resume``) holds an exclusive ``flock`` on
``<out>/.locks/<run_id>.lock`` until it ends; the kernel releases it when the process dies,
however it dies. So a second ``--resume`` of the same run is refused with a clear message
while the first is alive, and a run stored as ``running`` whose lock is free was
interrupted (SIGKILL, a crash, a power cut) and can be resumed.

An ``flock`` belongs to the open file, which a forked child shares: a DataLoader reader,
a process pool's worker or any fork would keep the lock — and the run "being written" —
after its parent died. So every child closes its copy of the held locks' descriptors as
it starts (``os.register_at_fork``), and exec'd programs never get them (``O_CLOEXEC``);
closing a copy does not release the parent's lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from types import TracebackType

from harness.errors import HarnessError

LOCK_FOLDER = ".locks"
#: Descriptors of the locks this process holds (closed in forked children).
_HELD: set[int] = set()


def _close_held_in_child() -> None:
    for fd in _HELD:
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD.clear()


os.register_at_fork(after_in_child=_close_held_in_child)


def _lock_path(folder: Path, run_id: str) -> Path:
    return folder / LOCK_FOLDER / f"{run_id}.lock"


class RunLock:
    """Held while this process writes run ``run_id`` of the store in ``folder``."""

    def __init__(self, folder: str | Path, run_id: str) -> None:
        self.path = _lock_path(Path(folder), run_id)
        self.run_id = run_id
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise HarnessError(
                f"run {self.run_id} is being written by another process (pid {holder}); "
                "wait for it to finish, or stop it, before resuming this run"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        _HELD.add(fd)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._fd is not None:
            _HELD.discard(self._fd)
            os.close(self._fd)  # closing releases the lock
            self._fd = None


def run_is_live(folder: str | Path, run_id: str) -> bool:
    """True while some process holds the lock of run ``run_id`` (it is being written)."""
    path = _lock_path(Path(folder), run_id)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
