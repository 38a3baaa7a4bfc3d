"""Run settings: the command line wins over the manifest's `run:` block, which wins over defaults."""

from __future__ import annotations

import dataclasses
import datetime
import math
import os
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.errors import UsageError

_DURATION_RE = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*$")


def parse_duration(value: str | int | float, *, name: str = "duration", zero: bool = False) -> float:
    """Seconds from `90`, `5s`, `15m`, `2h` or `1h30m`; more than zero, or with `zero` also zero."""
    if isinstance(value, bool):
        raise UsageError(f"{name}: {value!r} is not a duration (use e.g. 5s, 15m, 2h)")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION_RE.match(str(value))
        if not match or not any(match.groups()):
            raise UsageError(f"{name}: {value!r} is not a duration (use e.g. 5s, 15m, 2h)")
        hours, minutes, secs = (float(g) if g else 0.0 for g in match.groups())
        seconds = hours * 3600 + minutes * 60 + secs
    if seconds < 0 or (seconds == 0 and not zero):
        raise UsageError(f"{name}: must be {'zero or more' if zero else 'more than zero'}, not {value!r}")
    return seconds


def told_under(flag: str, setting: str, error: UsageError) -> UsageError:
    """The mistake of a setting given by a flag, told under the flag its user typed
    (`--max-runtime: must be more than zero, not '0'`), where the setting tells it under its own
    name (`max_runtime: ...`, `max_runtime must be ...`)."""
    said = str(error).removeprefix(f"{setting}: ").removeprefix(f"{setting} ")
    return UsageError(f"{flag}: {said}")


def http_url_problem(url: str) -> str | None:
    """Why `url` cannot serve as --base-url, --notify-url or the manifest's `notify:`, or None
    when it is an http or https URL with a host (and a port, if any, that is one), with no space
    or control character in it (urlsplit would take `exa mple.com` for a host) and no user or
    password (they would be written wherever the URL is shown, the log included)."""
    try:
        parts = urllib.parse.urlsplit(url)
        usable = (" " not in url and url.isprintable() and parts.scheme in ("http", "https")
                  and bool(parts.hostname) and parts.port != 0)
    except ValueError:  # a bracket left open, a port out of range
        usable = False
    if not usable:
        return "give an http:// or https:// URL"
    if parts.username is not None or parts.password is not None:
        return ("leave out its user and password, which would be shown wherever the URL is "
                "(the API key goes in a header of its own; a webhook's secret, in its path)")
    return None


# A line copied from a .env file or a shell profile: `NAME=value`, `export NAME=value`. The value
# must not start with `=`: a key ending in base64's padding (`abc==`) is no such line.
_ASSIGNMENT_RE = re.compile(r"(?:export\s+)?[A-Za-z_]\w*\s*=\s*[^=\s]")
# Straight quote marks, and those a document or a chat puts around a pasted key.
_QUOTES = tuple("\"'`\u201c\u201d\u2018\u2019\u201e\u00ab\u00bb")


def api_key_problem(key: str) -> str | None:
    """Why `key` cannot be an API key as written, or None for one line of printable text with no
    space in it, which is sent as it is. The shapes a key pasted with its surroundings takes are
    named, so that the user is not left with the API's refusal (a 500 for a key it cannot read);
    what is said never holds any of the key's text."""
    if key.startswith("\ufeff"):  # as Windows editors save "UTF-8 with BOM"
        return ("it starts with a byte order mark (U+FEFF, which some editors put before UTF-8 "
                "text): remove it (save the file as UTF-8 without BOM)")
    if not key.isprintable():  # it would go into a request header as it is
        return "it holds a line break or another control character (a key is one line)"
    if key[:7].lower() == "bearer ":
        return "it starts with 'Bearer ': keep only the key (the runner sends 'Bearer ' itself)"
    if _ASSIGNMENT_RE.match(key):
        return "it reads as a NAME=value line, as in a .env file: keep only the value"
    if key.startswith(_QUOTES) or key.endswith(_QUOTES):
        return "it is in quote marks: keep only the key, without them"
    if " " in key:
        return "it holds a space: a key is one word"
    return None


def shown_url(url: str) -> str:
    """`url` as messages show it: all between its scheme (if it starts with one) and its last
    `@` (a user and a password, whatever they hold) replaced by `***`."""
    if "@" not in url:
        return url
    scheme = re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", url)
    return f"{scheme[0] if scheme else ''}***@{url.rpartition('@')[2]}"


# The most jobs max_jobs may allow (the schema says the same): a 2-CPU laptop plans a million
# in under a minute, and a matrix of billions is refused before it is expanded.
MAX_JOBS = 1_000_000
# The most generations a run may keep in flight (the schema says the same).
MAX_CONCURRENCY = 1000


@dataclass(frozen=True, slots=True)
class RunSettings:
    """How a run is driven. Durations are seconds; None means no limit. Numbers are finite: an
    infinite budget is refused, since leaving the budget out already means no cap."""

    concurrency: int = 10
    submit_per_minute: float = 100.0
    poll_interval: float = 5.0
    timeout: float = 900.0
    budget_usd: float | None = None
    max_jobs: int = 1000
    max_runtime: float | None = None
    grace: float = 300.0
    start_frame_field: str = "guidances"

    def __post_init__(self) -> None:
        if not 1 <= self.concurrency <= MAX_CONCURRENCY:
            raise UsageError(f"concurrency must be from 1 to {MAX_CONCURRENCY:,}, not {self.concurrency}")
        if not (math.isfinite(self.submit_per_minute) and self.submit_per_minute > 0):
            raise UsageError(f"submit_per_minute must be a finite number more than 0, "
                             f"not {self.submit_per_minute}")
        if self.budget_usd is not None and not (math.isfinite(self.budget_usd) and self.budget_usd >= 0):
            raise UsageError(f"budget_usd must be a finite number, 0 or more, not {self.budget_usd}")
        if not 1 <= self.max_jobs <= MAX_JOBS:
            raise UsageError(f"max_jobs must be from 1 to {MAX_JOBS:,}, not {self.max_jobs}")
        if self.start_frame_field not in ("guidances", "legacy"):
            raise UsageError("start_frame_field must be guidances or legacy")

    @classmethod
    def build(cls, *layers: dict[str, Any]) -> RunSettings:
        """Settings from layers of raw values, later layers winning; None values are skipped."""
        durations = {"poll_interval", "timeout", "max_runtime", "grace"}
        names = {f.name for f in dataclasses.fields(cls)}
        merged: dict[str, Any] = {}
        for layer in layers:
            for key, value in layer.items():
                if value is None:
                    continue
                if key not in names:
                    raise UsageError(f"unknown run setting {key!r}")
                merged[key] = parse_duration(value, name=key) if key in durations else value
        return cls(**merged)


OUTPUT_DIR_PLACEHOLDERS = ("name", "date", "time", "run_id")


# Added to the output folder of a simulated run, so that its clips never share a folder with
# paid videos.
SIMULATED_SUFFIX = "-simulated"


def output_folder(template: str, *, name: str, now: datetime.datetime,
                  run_id: str | None = None, simulated: bool = False) -> Path:
    """The output folder from `output.dir`: {name}, {date} (UTC YYYY-MM-DD), {time} (UTC HHMMSS),
    {run_id} (`--run-id`, by default the start's UTC YYYYMMDD-HHMMSS); a simulated run's with
    SIMULATED_SUFFIX."""
    now = now.astimezone(datetime.timezone.utc)
    values = {"name": name, "date": now.strftime("%Y-%m-%d"), "time": now.strftime("%H%M%S"),
              "run_id": run_id or now.strftime("%Y%m%d-%H%M%S")}
    try:
        folder = Path(template.format_map(values))
    except (KeyError, ValueError, IndexError) as exc:
        raise UsageError(f"output.dir {template!r}: placeholders are "
                         f"{', '.join('{' + p + '}' for p in OUTPUT_DIR_PLACEHOLDERS)}") from exc
    if folder.parts[:1] == ("~",):  # your home folder; `~name` (another's) the manifest refuses
        folder = Path.home().joinpath(*folder.parts[1:])
    if not simulated:
        return folder
    if folder.name in ("", ".."):  # `.` or `out/..` name no folder to add the suffix to
        folder = Path(os.path.abspath(folder))
    if not folder.name:
        raise UsageError(f"output.dir {template!r} is the root folder: give a simulated run --out")
    return folder.with_name(folder.name + SIMULATED_SUFFIX)
