"""One run per output folder, enforced by an advisory lock the kernel drops when its process dies.

The lock file names its holder (process id, host, start time) so that a second run can say who
holds the folder. A lock left by a killed process is free again at once: flock(2) locks belong to
the open file, and the kernel closes it with the process; the new run then notes the takeover.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import json
import os
import socket
import stat
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from runner.errors import LockedError, StateError

LOCK_NAME = ".hailuo.lock"


def unusable(folder: Path) -> StateError | None:
    """Why `folder` cannot be an output folder, if it is a file or lies below one."""
    if os.path.exists(folder) and not os.path.isdir(folder):
        problem: str | None = "it is a file, not a folder"
    else:
        problem = file_in_the_way(folder / LOCK_NAME)
    return None if problem is None else StateError(f"output folder {folder} is unusable: {problem}")


def file_in_the_way(path: Path) -> str | None:
    """`x is a file, not a folder` when `x`, one of the folders on the way to `path`, is a file,
    else None. The system says only "File exists" or "Not a directory", which reads as if the
    trouble were `path` itself (a log that may not be appended to, say)."""
    part = next((p for p in reversed(path.parents) if os.path.exists(p) and not os.path.isdir(p)),
                None)
    return None if part is None else f"{part} is a file, not a folder"


@dataclass
class FolderLock:
    """Held for the life of a run: `with FolderLock.acquire(out) as lock: ...` (or of a
    simulator's state file, through `take`)."""

    path: Path
    fd: int
    took_over: dict[str, object] | None

    @classmethod
    def acquire(cls, folder: Path) -> FolderLock:
        """Take the folder's lock or raise LockedError naming the live process that holds it."""
        what = f"output folder {folder}"
        refused = unusable(folder)
        if refused is not None:
            raise refused
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError(f"{what} is unusable: cannot make {exc.filename}: {exc.strerror}") from exc
        return cls.take(folder / LOCK_NAME, what=what, user="run",
                        hint="wait for it to end, or use another --out")

    @classmethod
    def take(cls, path: Path, *, what: str, user: str, hint: str) -> FolderLock:
        """Take the lock file `path`, which guards `what` for one `user` at a time, or raise
        LockedError naming the live process that holds it, and the `hint`."""
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
        except OSError as exc:
            linked = exc.errno == errno.ELOOP
            problem = (f"{path.name} is a symbolic link; remove it" if linked
                       else f"cannot write {path}: {exc.strerror}")
            raise StateError(f"{what} is unusable: {problem}") from exc
        try:
            if not _plain_file(fd):
                raise StateError(f"{what} is unusable: {path.name} is not a plain file; remove it")
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise LockedError(f"{what} is in use by another {user}: {describe(holder)}; "
                              f"{hint}") from None
        except BaseException:
            os.close(fd)
            raise
        previous = _read_holder(fd)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        return cls(path, fd, previous or None)

    @staticmethod
    def holder(folder: Path) -> dict[str, object] | None:
        """Who holds `folder`'s lock now, or None if no one does; only looks, never takes it
        for longer than the probe, and never creates or changes the lock file."""
        try:  # never waiting on a pipe put there
            fd = os.open(folder / LOCK_NAME, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:  # none, or a link no run would take: nobody holds the folder
            return None
        try:
            if not _plain_file(fd):  # no run would take it either
                return None
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(fd)
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def fate(self) -> str:
        """What became of the folder once it is no longer at its path, as the lock file this
        run holds open tells: `deleted` when the file has no link left (the folder removed, or
        moved to another file system, which copies it and removes it), else `moved to PATH`,
        the path the system gives the open file (Linux's /proc), or `moved` where it gives none."""
        if os.fstat(self.fd).st_nlink == 0:
            return "deleted"
        try:
            now = Path(os.readlink(f"/proc/self/fd/{self.fd}"))
        except OSError:
            return "moved"
        return f"moved to {now.parent}" if now.name == LOCK_NAME else "moved"

    def release(self) -> None:
        os.ftruncate(self.fd, 0)
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)

    def __enter__(self) -> FolderLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@asynccontextmanager
async def directory_held(folder: Path, *, pause: float = 0.02) -> AsyncIterator[None]:
    """`folder` held for the block against every other holder, in this process or another: an
    flock on the directory itself (nothing is written there), waited for `pause` seconds at a
    time so that the event loop goes on meanwhile. A folder that cannot be opened (not made
    yet), or whose file system refuses to lock a directory (as NFS may), is not held."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        fd = None
    if fd is None:
        yield
        return
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                await asyncio.sleep(pause)
            except OSError:
                break
            else:
                break
        yield
    finally:
        os.close(fd)


def _plain_file(fd: int) -> bool:
    """Whether the lock file is a plain file, the only kind a run takes (taking it truncates and
    writes it): not a device or a pipe. A hard link is one, as a backup made with `cp -al` leaves."""
    return stat.S_ISREG(os.fstat(fd).st_mode)


def _read_holder(fd: int) -> dict[str, object]:
    """The holder the lock file names; {} for anything but a JSON object (garbage, a bare pid).
    A field that is not of its kind (a hand edit, another tool's file: a pid that is text, a
    start time past any date) is None, as if unknown, so that no message shows what it holds."""
    try:
        holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (ValueError, RecursionError):  # RecursionError: arrays nested a thousand deep
        return {}
    if not isinstance(holder, dict):
        return {}
    return {field: holder[field] if fits(holder[field]) else None
            for field, fits in _HOLDER_FIELDS.items() if field in holder}


def _a_pid(value: object) -> bool:
    return type(value) is int


def _a_host(value: object) -> bool:
    """One line of printable text: no line break, escape or reversal of the text after it."""
    return isinstance(value, str) and value.isprintable() and bool(value)


def _a_time(value: object) -> bool:
    """An epoch time from 1970 up to the year 9999, as `time.gmtime` can show it."""
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and 0 <= value < _YEAR_10000)


_YEAR_10000 = 253402300800
_HOLDER_FIELDS = {"pid": _a_pid, "host": _a_host, "started": _a_time}


def process_alive(pid: int) -> bool:
    """Whether a process `pid` runs on this machine (perhaps another one, given that number); a
    number no process id can hold is no process (0 and -1 would name groups of processes)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # another user's
        return True
    return True


def describe(holder: dict[str, object]) -> str:
    """The holder a lock file names, as messages show it: `process 4242 on host-1, started
    2026-11-24 22:00:00 UTC`, what it does not tell said to be unknown."""
    if not holder:
        return "a process that has not written its name yet"
    started = holder.get("started")
    when = (time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started))
            if isinstance(started, int | float) else "at an unknown time")
    return f"{who(holder)}, started {when}"


def who(holder: dict[str, object]) -> str:
    """`process 4242 on host-1`, the holder's process and host, either said to be unknown when
    the lock file does not tell it."""
    pid, host = holder.get("pid"), holder.get("host")
    return (f"{'a process of unknown number' if pid is None else f'process {pid}'} on "
            f"{'an unknown host' if host is None else host}")
