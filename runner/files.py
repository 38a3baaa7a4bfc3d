"""The output folder's files: where each job's video lands, and how it gets there whole.

A file is written beside its destination under a hidden partial name, checked, flushed to disk
and renamed into place, so a crash at any instant leaves either no file or a whole one; only
after the rename does the journal call the job downloaded.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from runner.errors import TransientError

_ATOM_HEADER = struct.Struct(">I4s")
Check = Callable[[BinaryIO, int], "str | None"]


@dataclass(frozen=True, slots=True)
class Targets:
    """A job's files, relative to the output folder (POSIX form, as the results record them)."""

    video: str
    poster: str
    sidecar: str


def targets(out_dir: Path, filename: str, key: str, owner: Callable[[str], str | None]) -> Targets:
    """Where a job's files go: its planned name, unless that escapes the folder (then its key),
    or another job's video already holds it (then the name with the short key added)."""
    name = filename if _inside(out_dir, filename) else f"{key[:10]}.mp4"
    pure = PurePosixPath(name)
    if pure.suffix.lower() != ".mp4":
        pure = pure.with_name(pure.name + ".mp4")
    taken = owner(str(pure))
    if taken is not None and taken != key:
        pure = pure.with_name(f"{pure.stem}_{key[:10]}.mp4")
    return Targets(str(pure), str(pure.with_suffix(".jpg")), str(pure.with_suffix(".json")))


def _inside(out_dir: Path, filename: str) -> bool:
    """Whether `filename` names a file below `out_dir` (by its text: `..`, absolute paths,
    backslashes and NUL are refused; no disk access, so it costs nothing per job)."""
    if not filename or "\x00" in filename or "\\" in filename or filename.startswith("/"):
        return False
    root = os.path.abspath(out_dir)
    target = os.path.normpath(os.path.join(root, filename))
    return target.startswith(root + os.sep)


@contextmanager
def staged(dest: Path, *, tag: str) -> Iterator[BinaryIO]:
    """A partial file beside `dest` to write into, removed unless `commit` renamed it into place."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f".{dest.name}.{tag}.part")
    try:
        with open(partial, "w+b") as sink:
            yield sink
    finally:
        partial.unlink(missing_ok=True)


def commit(sink: BinaryIO, dest: Path, check: Check) -> None:
    """Check the staged file, flush it to disk and rename it into place.

    A file that fails its check is a broken transfer, so it raises TransientError (retry)."""
    sink.flush()
    size = sink.tell()
    problem = check(sink, size)
    if problem is not None:
        raise TransientError(f"the downloaded file is broken: {problem}")
    os.fsync(sink.fileno())
    os.replace(sink.name, dest)


def write_text(dest: Path, text: str) -> None:
    """A text file written whole or not at all."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f".{dest.name}.part")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, dest)


def write_json(dest: Path, value: Any) -> None:
    """A JSON file written whole or not at all."""
    write_text(dest, json.dumps(value, sort_keys=True, ensure_ascii=False) + "\n")


def check_mp4(handle: BinaryIO, size: int) -> str | None:
    """None when the file is a whole MP4: an `ftyp` box first and top-level boxes that end
    exactly at the end of the file (ISO/IEC 14496-12, 4.2), which a cut-off transfer breaks."""
    offset, first = 0, True
    while offset < size:
        handle.seek(offset)
        header = handle.read(16)
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


def check_jpeg(handle: BinaryIO, size: int) -> str | None:
    """None when the file starts and ends with the JPEG markers (SOI, EOI)."""
    if size < 4:
        return "too short for a JPEG"
    handle.seek(0)
    head = handle.read(2)
    handle.seek(size - 2)
    tail = handle.read(2)
    if head != b"\xff\xd8":
        return "not a JPEG"
    return None if tail == b"\xff\xd9" else "cut off before the end of the JPEG"


def check_file(path: Path, check: Check) -> str | None:
    """`check` applied to a file already in place."""
    with open(path, "rb") as handle:
        return check(handle, path.stat().st_size)
