"""The output folder's files: where each job's video lands, and how it gets there whole.

A file is written beside its destination under a hidden partial name, checked, flushed to disk
and renamed into place, so a crash at any instant leaves either no file or a whole one; only
after the rename does the journal call the job downloaded.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import pwd
import re
import secrets
import stat
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path, PurePosixPath
from typing import Any, TextIO

from runner.errors import TransientError
from runner.lock import process_alive

_ATOM_HEADER = struct.Struct(">I4s")
Read = Callable[[int, int], bytes]  # (count, offset) -> bytes, as os.pread after its descriptor
Check = Callable[[Read, int], "str | None"]
# How long a staged text file must have been left alone before a later writer takes its writer
# for gone (a page of 20,000 jobs is written in about a second).
ORPHAN_SECONDS = 600
# Characters JSON leaves as they are that some readers of lines take for line breaks.
_BREAKS = {ord(c): f"\\u{ord(c):04x}" for c in "\x85\u2028\u2029"}
# The longest path (its closing NUL counted) and the longest name of one of its parts, in bytes,
# of Linux's own file systems: the limits of a folder whose file system does not tell its own.
PATH_MAX, NAME_MAX = 4096, 255
SHORTER_NAMES = "use a shorter --out or output.filename"


@dataclass(frozen=True, slots=True)
class Targets:
    """A job's files, relative to the output folder (POSIX form, as the results record them)."""

    video: str
    poster: str
    sidecar: str


class Folder:
    """An output folder as the engine writes into it: its absolute path worked out once and the
    directories it already made remembered, so a job's files cost no repeated path checks."""

    def __init__(self, root: Path, *, reserved: frozenset[str] = frozenset()) -> None:
        self.given = str(root)  # as the user wrote it, for messages
        self.root = os.path.abspath(root)
        self.reserved = frozenset(name.lower() for name in reserved)
        self._made: set[str] = set()
        self._files: dict[str, bool] = {}  # folders on the way to videos: whether a file is there
        self._taking: set[str] = set()  # folders a job's file was made in, before its create
        self._began_as = _identity(self.root)

    def moved(self) -> bool:
        """Whether the folder is no longer at its path (moved or deleted since this began)."""
        return _identity(self.root) != self._began_as

    def targets(self, filename: str, key: str, owner: Callable[[str], str | None]) -> Targets:
        """Where a job's files go: its planned name, unless that escapes the folder (then its
        key), or another job's video already holds it, or one of its files would take one of
        the run's own files (`reserved`, names at the top of the folder, in any case): then the
        name with the short key added. A folder on the way that would take one gets the key, and
        so does one that is in fact a file (another job's video, or anyone's), below which no
        video could ever be written."""
        name = filename if self._inside(filename) else f"{key[:10]}.mp4"
        pure = PurePosixPath(name)
        if pure.suffix.lower() != ".mp4":
            pure = pure.with_name(pure.name + ".mp4")
        top, *rest = pure.parts
        if rest and top.lower() in self.reserved:
            pure = PurePosixPath(f"{top}_{key[:10]}", *rest)
        pure = self._way(pure, key, owner)
        taken = owner(str(pure))
        if ((taken is not None and taken != key) or (taken is None and self._foreign(str(pure), key))
                or not self.reserved.isdisjoint(str(pure.with_suffix(suffix)).lower()
                                                for suffix in (".mp4", ".jpg", ".json"))):
            pure = pure.with_name(f"{pure.stem}_{key[:10]}.mp4")
        return Targets(str(pure), str(pure.with_suffix(".jpg")), str(pure.with_suffix(".json")))

    def _way(self, pure: PurePosixPath, key: str, owner: Callable[[str], str | None]) -> PurePosixPath:
        """`pure` with the short key added to each folder on its way that is a video of the
        journal's or this run's jobs, or a file on disk (each folder looked at once a run)."""
        parts = list(pure.parts)
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth])
            if owner(folder) is not None or self._is_file(folder):
                parts[depth - 1] = f"{parts[depth - 1]}_{key[:10]}"
        return PurePosixPath(*parts)

    def _is_file(self, folder: str) -> bool:
        """Whether something other than a folder is at `folder`: a file, or a symbolic link,
        which could take the job's files out of the output folder."""
        found = self._files.get(folder)
        if found is None:
            try:
                found = not stat.S_ISDIR(os.lstat(os.path.join(self.root, folder)).st_mode)
            except OSError:  # nothing there (or no way there), as os.path.lexists says
                found = False
            self._files[folder] = found
        return found

    def _foreign(self, video: str, key: str) -> bool:
        """Whether a file the journal knows nothing of is already at `video`, or at its poster's
        or sidecar's name: someone else's, never to be replaced, unless the sidecar there, a
        plain file, names job `key` (its own files, placed before a crash kept the journal from
        recording them; the sidecar is placed first)."""
        stem = os.path.join(self.root, video)[:-4]
        if not any(os.path.lexists(stem + suffix) for suffix in (".mp4", ".jpg", ".json")):
            return False
        try:
            fd = os.open(stem + ".json", os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            return True
        with open(fd, encoding="utf-8") as stream:
            try:
                found = json.load(stream) if stat.S_ISREG(os.fstat(fd).st_mode) else None
            except (OSError, ValueError):
                return True
        return not isinstance(found, dict) or found.get("key") != key

    def _inside(self, filename: str) -> bool:
        """Whether `filename` names a file below the folder (by its text: `..`, absolute paths,
        backslashes and NUL are refused; no disk access, so it costs nothing per job)."""
        if not filename or "\x00" in filename or "\\" in filename or filename.startswith("/"):
            return False
        return os.path.normpath(os.path.join(self.root, filename)).startswith(self.root + os.sep)

    def refusal(self, video: str, tag: str) -> OSError | None:
        """Why the folder cannot take the job's video `video` (marked `tag`) now, found before
        it is paid for, or None: the error making its partial file (removed at once) in the
        video's folder, or in the nearest one on its way that exists (which would make it). A
        folder that took one is trusted for the rest of the run (`distrust` says otherwise)."""
        directory = os.path.dirname(os.path.join(self.root, video))
        while directory not in self._taking and directory != self.root and not os.path.lexists(directory):
            directory = os.path.dirname(directory)
        if directory in self._taking:
            return None
        refused = _takes_files(directory, os.path.basename(video), tag)
        if refused is None:
            self._taking.add(directory)
        return refused

    def distrust(self, error: OSError) -> None:
        """The folder of `error`'s file refused it: `refusal` looks at that folder again."""
        self._taking.discard(os.path.dirname(os.fsdecode(error.filename or "")))

    def denied_below(self, error: OSError, tag: str) -> str | None:
        """The folder below the top of the output folder (as the user names it) whose
        permissions refused `error`'s file while the top still takes files: a refusal of that
        folder alone, not of the whole output folder. None for any other error."""
        if error.errno not in (errno.EACCES, errno.EPERM) or not error.filename:
            return None
        directory = os.path.dirname(os.fsdecode(error.filename))
        if (not directory.startswith(self.root + os.sep)
                or _takes_files(self.root, os.path.basename(directory), tag) is not None):
            return None
        return os.path.join(self.given, os.path.relpath(directory, self.root))

    def staging(self, tag: str) -> Staging:
        return Staging(self, tag)

    def place(self, relative: str) -> str:
        """The absolute path of `relative`, its directory made once per run. Each time, a
        folder on its way that is a symbolic link (put there since the job's name was chosen,
        even during the run) is refused, never made or written through."""
        path = os.path.join(self.root, relative)
        directory = os.path.dirname(path)
        self._refuse_links(relative)
        if directory not in self._made:
            if self.moved():  # never make the folder anew where it was
                raise FileNotFoundError(errno.ENOENT, "the output folder was moved or deleted",
                                        self.root)
            os.makedirs(directory, exist_ok=True)
            self._made.add(directory)
        return path

    def _refuse_links(self, relative: str) -> None:
        """An OSError (ELOOP) when a folder on the way to `relative` is a symbolic link: one
        `lstat` a folder, up to the first that does not exist yet."""
        step = self.root
        for part in relative.split("/")[:-1]:
            step = f"{step}/{part}"
            try:
                linked = stat.S_ISLNK(os.lstat(step).st_mode)
            except FileNotFoundError:
                return
            if linked:
                raise OSError(errno.ELOOP, "a folder on its way is a symbolic link", step)


def _takes_files(directory: str, name: str, tag: str) -> OSError | None:
    """Why no file can be made in `directory`, or None: the partial file of `name` marked
    `tag` made there and removed."""
    path = _staged(os.path.join(directory, name), tag)
    try:
        os.close(_fresh(path, os.O_WRONLY))
        os.unlink(path)
    except OSError as exc:
        return exc
    return None


@cache
def user() -> str:
    """The name of the user this process runs as (its uid when it has none)."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid {os.geteuid()}"


def _identity(path: str | Path) -> tuple[int, int] | None:
    """The device and inode of what is at `path` (links not followed), or None for nothing."""
    try:
        found = os.lstat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino


class Part:
    """A download staged beside its destination under a hidden partial name, written straight
    to its file descriptor (no buffering layer: the socket's chunks are already large). Its name
    is the job's own and fixed, as one run at a time writes a folder (its lock): a partial file
    that a killed run left is taken over by the next one, never left to pile up."""

    def __init__(self, dest: str, tag: str) -> None:
        self.dest = dest
        self.path = _staged(dest, tag)
        self.size = 0
        self._fd: int | None = None

    def open(self) -> Part:
        """The partial file, empty."""
        self.close()
        self._fd = _fresh(self.path, os.O_RDWR)
        self.size = 0
        return self

    def write(self, chunk: bytes) -> None:
        assert self._fd is not None
        _write_all(self._fd, chunk)
        self.size += len(chunk)

    def restart(self) -> None:
        """Empty again, for a transfer that starts over."""
        assert self._fd is not None
        os.ftruncate(self._fd, 0)
        os.lseek(self._fd, 0, os.SEEK_SET)
        self.size = 0

    def verify(self, check: Check) -> None:
        """Raise TransientError (a broken transfer: retry) unless the staged file passes `check`."""
        assert self._fd is not None
        problem = check(partial(os.pread, self._fd), self.size)
        if problem is not None:
            raise TransientError(f"the downloaded file is broken: {problem}")

    def commit(self) -> None:
        """Flush the checked file to disk and rename it into place."""
        assert self._fd is not None
        os.fsync(self._fd)
        self.close()
        os.replace(self.path, self.dest)
        self.path = ""

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class Staging:
    """A job's downloads, staged and checked one by one, then put in place together with their
    sidecar (`commit`, one call for a worker thread); whatever was not committed is removed."""

    def __init__(self, folder: Folder, tag: str) -> None:
        self.folder = folder
        self.tag = tag
        self.parts: list[Part] = []

    def part(self, relative: str) -> Part:
        part = Part(self.folder.place(relative), self.tag)
        self.parts.append(part)
        return part

    def commit(self, parts: list[Part], sidecar: str, text: str) -> None:
        """The sidecar written whole (staged under the job's name, as its parts are), then each
        checked part flushed and renamed into place: a video in place always has beside it the
        sidecar that names its job."""
        with _replacing(self.folder.place(sidecar), self.tag) as stream:
            stream.write(text)
        for part in parts:
            part.commit()

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc: object) -> None:
        for part in self.parts:
            part.close()
            if part.path:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(part.path)


@dataclass(frozen=True, slots=True)
class Placing:
    """One job's checked downloads and its sidecar, to be put in place together."""

    staging: Staging
    parts: list[Part]
    sidecar: str
    text: str


def place_all(jobs: list[Placing]) -> list[OSError | None]:
    """Several jobs' files put in place (for a worker thread); for each job, what went wrong."""
    outcomes: list[OSError | None] = []
    for job in jobs:
        try:
            job.staging.commit(job.parts, job.sidecar, job.text)
        except OSError as exc:
            outcomes.append(exc)
        else:
            outcomes.append(None)
    return outcomes


def write_text(dest: Path, text: str) -> None:
    """A text file written whole or not at all (`writing`)."""
    with writing(dest) as stream:
        stream.write(text)


@contextlib.contextmanager
def writing(dest: Path) -> Iterator[TextIO]:
    """A stream whose text is put at `dest` whole once the block ends, or, the block broken off,
    not at all, into a folder that exists (one moved away is never made anew by writing into
    it): a file of a million lines is written as it is made, never held whole. It is staged
    under a name of this writer's own: two writers of one file at once (`report` while a run
    ends) each put a whole file in place, the last one staying. The staged files of `dest` that
    writers killed while writing left behind are removed first."""
    _remove_orphans(str(dest))
    with _replacing(str(dest), f"{os.getpid()}-{secrets.token_hex(4)}") as stream:
        yield stream


def _remove_orphans(dest: str) -> None:
    """Remove the staged files of `dest` (named as `write_text` names them: its writer's process
    id and a random mark) whose writer is gone and that nothing has written to for
    `ORPHAN_SECONDS`: a writer whose process runs may be at work, and so may one on another
    machine sharing the folder, whose process id means nothing here. Any other name is never
    touched. What cannot be removed is left to the next writer: the file itself is what matters."""
    folder, name = os.path.split(dest)
    staged = re.compile(rf"\.{re.escape(name)}\.([1-9][0-9]*)-[0-9a-f]{{8}}\.part")
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder or "."):
            found = staged.fullmatch(entry.name)
            if found and not process_alive(int(found[1])):
                with contextlib.suppress(OSError):
                    if entry.stat(follow_symlinks=False).st_mtime < time.time() - ORPHAN_SECONDS:
                        os.unlink(entry.path)


def name_limits(root: str) -> tuple[int, int]:
    """The longest path (PATH_MAX, its closing NUL counted) and the longest name of one of its
    parts (NAME_MAX), in bytes, that the file system of the folder `root` takes, read from the
    nearest folder on its way that exists (a run makes its output folder)."""
    folder = root
    while not os.path.isdir(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    return _limit(folder, "PC_PATH_MAX", PATH_MAX), _limit(folder, "PC_NAME_MAX", NAME_MAX)


def _limit(folder: str, name: str, default: int) -> int:
    """The file system's limit `name` (an `os.pathconf` name) at `folder`, else `default`."""
    try:
        found = os.pathconf(folder, name)
    except (OSError, ValueError):  # a system without it, a folder that cannot be read
        return default
    return found if found > 0 else default  # -1: the file system tells no limit


def longest_name(video: str, tag: str) -> str:
    """The longest path below the output folder that a job whose video is `video` (a name
    ending in `.mp4`, as every planned one does) writes: its sidecar's staged name
    (`.<name>.json.<tag>.part`, a byte longer than its video's)."""
    return _staged(video[:-4] + ".json", tag)


def _staged(dest: str, tag: str) -> str:
    """The hidden partial name, marked `tag`, that `dest` is written under before it is whole
    (by partition, not `os.path`: a plan's check names one for each of 100,000 jobs)."""
    folder, slash, name = dest.rpartition("/")
    return f"{folder}{slash}.{name}.{tag}.part"


def _fresh(path: str, flags: int) -> int:
    """A new empty file at the staged name `path`, opened with `flags`. Whatever was there (a
    partial file a killed run left, or a symbolic link someone put at the predictable name) is
    removed first, and the file is made anew, so nothing is ever written through a link."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    return os.open(path, flags | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)


@contextlib.contextmanager
def _replacing(dest: str, tag: str) -> Iterator[TextIO]:
    """A stream to the staged name of `dest` marked `tag`, renamed onto `dest` once the block
    ends; the staged file never outlives an error, and an OSError names `dest`, the file the
    user knows."""
    staged = _staged(dest, tag)
    try:
        fd = _fresh(staged, os.O_WRONLY)
        try:
            with open(fd, "w", encoding="utf-8", newline="") as stream:
                yield stream
            os.replace(staged, dest)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(staged)
            raise
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, dest) from exc


def _write_all(fd: int, data: bytes) -> None:
    """All of `data` written (`os.write` may take only part of it)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def write_json(dest: Path, value: Any) -> None:
    """A JSON file written whole or not at all."""
    write_text(dest, json_text(value))


def json_text(value: Any) -> str:
    """`value` as one line of JSON: the characters some readers take for line breaks (U+0085,
    U+2028, U+2029, as Python's `splitlines` does), which a prompt may hold, escaped too."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text.translate(_BREAKS) + "\n"


def check_mp4(read: Read, size: int) -> str | None:
    """None when the file is a whole MP4: an `ftyp` box first and top-level boxes that end
    exactly at the end of the file (ISO/IEC 14496-12, 4.2), which a cut-off transfer breaks."""
    offset, first = 0, True
    while offset < size:
        header = read(16, offset)
        if len(header) < 8:
            return f"a box header is cut off at byte {offset}"
        length, kind = _ATOM_HEADER.unpack_from(header)
        if first and kind != b"ftyp":
            return "not an MP4 (no ftyp box first)"
        if length == 1:
            if len(header) < 16:
                return f"a box header is cut off at byte {offset}"
            length = struct.unpack_from(">Q", header, 8)[0]
        elif length == 0:
            length = size - offset
        if length < 8 or offset + length > size:
            return f"cut off: a box needs {offset + length} bytes, the file has {size}"
        offset += length
        first = False
    return None if size else "empty"


def check_jpeg(read: Read, size: int) -> str | None:
    """None when the file starts and ends with the JPEG markers (SOI, EOI)."""
    if size < 4:
        return "too short for a JPEG"
    head, tail = read(2, 0), read(2, size - 2)
    if head != b"\xff\xd8":
        return "not a JPEG"
    return None if tail == b"\xff\xd9" else "cut off before the end of the JPEG"


def gone(root: str | Path, relative: str) -> bool:
    """Whether the file recorded at `relative` is no longer a file in the folder `root` (deleted,
    moved away, or something else in its place)."""
    return not os.path.isfile(os.path.join(root, relative))


def check_file(path: Path, check: Check) -> str | None:
    """`check` applied to a file already in place."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return check(partial(os.pread, fd), os.fstat(fd).st_size)
    finally:
        os.close(fd)
