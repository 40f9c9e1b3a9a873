"""Exclusive locks on folders: one writer per run folder (and per dataset being made).

A lock is an advisory ``flock`` on ``<folder>/.lock`` held for the life of the writer. The
operating system releases it when the process exits or is killed, so a crashed run can be resumed
at once; the file itself stays and records the holder's PID for the message a second writer gets.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

from rlreg.errors import RlregError

__all__ = ["FolderLock", "LOCK_NAME"]

LOCK_NAME = ".lock"

try:
    import fcntl
except ImportError:  # Windows: no advisory locks here; one writer is then the user's job
    fcntl = None  # type: ignore[assignment]


class FolderLock:
    """``with FolderLock(folder, what="run folder"):`` or ``acquire()``/``release()``.

    A second holder (another process, or another lock object in this one) gets an
    :class:`~rlreg.errors.RlregError` naming the folder and the holder's PID, at once (no waiting).
    """

    def __init__(self, folder: str | os.PathLike, what: str = "folder", fix: str | None = None) -> None:
        self.folder = Path(folder)
        self.what = what
        self.fix = fix or "wait for that process to finish, or stop it, or choose another folder"
        self._fd: int | None = None

    @property
    def path(self) -> Path:
        return self.folder / LOCK_NAME

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> FolderLock:
        if self._fd is not None:
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise RlregError(
                    f"{self.what} {self.folder} is in use by another rlreg process (PID {holder})", self.fix
                ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        os.close(fd)  # closing drops the flock

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
