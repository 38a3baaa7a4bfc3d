"""Start frames given by path that cannot be sent: each a located problem, whichever command meets it."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from runner.cli import main

HINT = " (hint: paths are relative to the manifest)"
EXPORT = "export it again as a PNG, JPEG or WebP image)"
CUT_SHORT = " (hint: it holds another format, or an image cut short: " + EXPORT
LONG = "img/" + "a" * 300 + ".png"


def _nothing(img: Path) -> None:
    pass


def _loop(img: Path) -> None:
    (img / "loop1.png").symlink_to("loop2.png")
    (img / "loop2.png").symlink_to("loop1.png")


# The path as written, what is made in img/ beside the manifest, and the problem told.
CASES: dict[str, tuple[str, Callable[[Path], object], str]] = {
    "nul": ("img/ok.png\0x", _nothing, "a path holds no control characters (a NUL, a tab, a line "
            'break), not "img/ok.png\\u0000x"'),
    "name-too-long": (LONG, _nothing, f"start frame {LONG} cannot be read: File name too long" + HINT),
    "symlink-loop": ("img/loop1.png", _loop,
                     "start frame img/loop1.png cannot be read: Too many levels of symbolic links" + HINT),
    "not-a-folder": ("img/still.png/x.png", lambda img: (img / "still.png").write_bytes(b""),
                     "start frame img/still.png/x.png cannot be read: Not a directory" + HINT),
    "folder": ("img/still.png", lambda img: (img / "still.png").mkdir(),
               "start frame img/still.png is a folder, not a file" + HINT),
    "pipe": ("img/still.png", lambda img: os.mkfifo(img / "still.png"),
             "start frame img/still.png is not a regular file (a pipe or a device?)" + HINT),
    "png-signature-only": ("img/still.png", lambda img: (img / "still.png").write_bytes(
        b"\x89PNG\r\n\x1a\n"), "start frame img/still.png is not a png image" + CUT_SHORT),
    "png-header-cut-short": ("img/still.png", lambda img: (img / "still.png").write_bytes(
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00\x00\x02"),
        "start frame img/still.png is not a png image" + CUT_SHORT),
    "jpeg-start-marker-only": ("img/still.jpg", lambda img: (img / "still.jpg").write_bytes(
        b"\xff\xd8\xff"), "start frame img/still.jpg is not a jpg image" + CUT_SHORT),
    "webp-without-chunk": ("img/still.webp", lambda img: (img / "still.webp").write_bytes(
        b"RIFF\x04\x00\x00\x00WEBP"), "start frame img/still.webp is not a webp image" + CUT_SHORT),
    # Found where the manifest says, but not the image its name says: the hint tells what it holds.
    "jpeg-named-png": ("img/still.png", lambda img: (img / "still.png").write_bytes(
        b"\xff\xd8\xff\xe0\x00\x10JFIF"),
        "start frame img/still.png is not a png image (hint: it holds a jpg image: give it a .jpg name)"),
    "empty": ("img/still.png", lambda img: (img / "still.png").write_bytes(b""),
              "start frame img/still.png is not a png image (hint: the file is empty: " + EXPORT),
    "text": ("img/still.webp", lambda img: (img / "still.webp").write_text("not an image\n"),
             "start frame img/still.webp is not a webp image (hint: it holds text, not an image: " + EXPORT),
    "other-extension": ("img/still.gif", lambda img: (img / "still.gif").write_bytes(b"GIF89a"),
                        "img/still.gif is not a png, jpg, jpeg or webp file (hint: " + EXPORT),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("command", [["validate"], ["plan"], ["run", "--dry-run"]])
def test_a_start_frame_that_cannot_be_read_is_a_located_problem(
        case: str, command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    written, make, problem = CASES[case]
    (tmp_path / "img").mkdir()
    make(tmp_path / "img")
    (tmp_path / "frames.yaml").write_text(
        "version: 1\nname: frames\nprompts:\n"
        f'  - {{id: a, text: "a", start_frame: {{path: {json.dumps(written)}}}}}\n', "utf-8")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, [*command, "frames.yaml"])
    assert result.exit_code == 2, result.exc_info
    assert f"frames.yaml:4:44: $.prompts[0].start_frame.path: {problem}" in result.output.splitlines()
    assert not (tmp_path / "out").exists()
