"""Exclusive locks: one writer per run folder (and per dataset being made), live-job registration.

A lock is an advisory ``flock`` on a file, held for the life of the holder. The operating system
releases it when the process exits or is killed, so a crashed run can be resumed at once; the
file itself stays and records the holder's PID for the message a second writer gets.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

from rlreg.errors import RlregError

__all__ = ["FileLock", "FolderLock", "try_lock_file", "LOCK_NAME"]

LOCK_NAME = ".lock"

try:
    import fcntl
except ImportError:  # Windows: no advisory locks here; one writer is then the user's job
    fcntl = None  # type: ignore[assignment]


class FileLock:
    """An exclusive, non-blocking ``flock`` on ``path`` that writes the holder's PID into it."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> str | None:
        """Take the lock; None on success, else the holder's PID as written in the file.

        Raises ``OSError`` when the file cannot be created (read-only folder, ...).
        """
        if self._fd is not None:
            return None
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                return holder
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return None

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        os.close(fd)  # closing drops the flock


def try_lock_file(path: str | os.PathLike) -> FileLock | None:
    """The held lock on ``path``, or None when another holder has it."""
    lock = FileLock(path)
    return lock if lock.try_acquire() is None else None


class FolderLock(FileLock):
    """``with FolderLock(folder, what="run folder"):`` or ``acquire()``/``release()``.

    A second holder (another process, or another lock object in this one) gets an
    :class:`~rlreg.errors.RlregError` naming the folder and the holder's PID, at once (no waiting).
    """

    def __init__(self, folder: str | os.PathLike, what: str = "folder", fix: str | None = None) -> None:
        self.folder = Path(folder)
        super().__init__(self.folder / LOCK_NAME)
        self.what = what
        self.fix = fix or "wait for that process to finish, or stop it, or choose another folder"

    def acquire(self) -> FolderLock:
        holder = self.try_acquire()
        if holder is not None:
            raise RlregError(
                f"{self.what} {self.folder} is in use by another rlreg process (PID {holder})", self.fix
            )
        return self

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
