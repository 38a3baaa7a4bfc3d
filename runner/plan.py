"""The plan: cells turned into jobs, each with its wire request, its key and its estimated cost."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import re
import stat
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner import catalog
from runner.catalog import Violation
from runner.config import (MAX_JOBS, OUTPUT_DIR_PLACEHOLDERS, RunSettings, http_url_problem,
                           shown_url, told_under)
from runner.errors import Issue, ManifestError, UsageError
from runner.manifest import (
    Document,
    Path_,
    SchemaResult,
    check_prices,
    check_schema,
    load_document,
    whole_number,
)
from runner.matrix import (
    BUILTIN_NAMES,
    Cell,
    Expansion,
    expand,
    merged_warning,
    placeholders,
    template_issues,
    value_text,
    var_names,
)

KEY_VERSION = "hailuo-job/v1"
# The cells a plan may go through, kept or not: about 30 s on a 2-CPU laptop when on_invalid:
# skip drops them all.
MAX_CELLS = 2_000_000
# The longest name a job's files may have below the output folder, in bytes of UTF-8: Linux takes
# paths of up to 4,096 bytes, which the folder's own path and a staged file's mark share.
MAX_NAME_BYTES = 3900
# Names cut a placeholder's value to this many characters, and a part of a path to this many bytes.
_PART_CHARS, _PART_BYTES = 80, 120
CELLS_SHOWN = 20  # of the cells that break one model rule, those named; the rest are counted
UPLOAD_PREFIX = "upload:sha256:"
_TILDE_RE = re.compile(r"~[^/]+")  # `~name`: another user's home, to a shell
# An environment variable as a shell would expand it, at the start of a folder's name: $HOME/x,
# out/${USER}; a `$` further in (a$b, price$5) is a plain character of the name.
_VARIABLE_RE = re.compile(r"(?:^|(?<=/))\$(?:[A-Za-z_]\w*|\{[A-Za-z_]\w*\})")
# An extension a name ends with: a dot, then 2 to 4 letters and digits starting with a letter
# (.mov, .webm, .m4v); the dot of a version or a decimal (_v2.5, 1.5x speed) starts none.
_EXTENSION_RE = re.compile(r"\.[A-Za-z][A-Za-z0-9]{1,3}\Z")


def canonical_json(value: Any) -> str:
    """Sorted-key compact JSON: the form every hash in the runner is taken of."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def job_key(request: Mapping[str, Any], sample: int) -> str:
    """A stable, versioned hash of the canonical wire request and the sample index."""
    return _key_of(canonical_json(request), sample)


def _key_of(canonical: str, sample: int) -> str:
    """`job_key` of a request already in its `canonical_json` form."""
    text = f"{KEY_VERSION}\n{canonical}\n{sample}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Upload:
    """A local start frame that must be uploaded before its jobs are created."""

    path: Path
    sha256: str
    extension: str

    @property
    def placeholder(self) -> str:
        """The image id the planned request carries until the upload's real id is known."""
        return UPLOAD_PREFIX + self.sha256


@dataclass(frozen=True, slots=True)
class FrameChange:
    """A start frame of the plan whose file changed since jobs in the output folder were made
    from it: the plan's jobs of it are new ones, paid again, unless the old image is put back."""

    name: str  # as the manifest names it
    made: dict[str, int]  # the folder's jobs made from its earlier contents, by state
    new: int  # the plan's jobs of it that are new
    jobs: int  # the plan's jobs of it


@dataclass(frozen=True, slots=True)
class Job:
    """One generation to make.

    `request` is the wire body exactly as it will be sent, except that a start frame given by
    path carries `Upload.placeholder` as its image id until it is uploaded: the key is taken of
    that, so it does not change when the file is uploaded.
    """

    key: str
    index: int
    axes: dict[str, Any]
    styles: tuple[str, ...]
    request: dict[str, Any]
    estimated_cost: float
    filename: str
    upload: Upload | None = None

    @property
    def short_key(self) -> str:
        return self.key[:10]

    @property
    def sample(self) -> int:
        return self.axes["n"]

    def wire(self, upload_ids: Mapping[str, str]) -> dict[str, Any]:
        """The request to send, with the start frame's placeholder replaced by its uploaded id."""
        if self.upload is None:
            return self.request
        text = canonical_json(self.request).replace(self.upload.placeholder,
                                                    upload_ids[self.upload.sha256])
        return json.loads(text)


@dataclass(frozen=True, slots=True)
class Plan:
    """Every job of a manifest, in a stable order, with the counts of how they were made."""

    name: str
    source: Path
    jobs: tuple[Job, ...]
    settings: RunSettings
    output_dir: str
    notify_url: str | None = None
    cells: int = 0
    excluded: int = 0
    included: int = 0
    merged: int = 0
    # the cells on_invalid: skip left out, by the rule each breaks
    skipped: Mapping[str, int] = field(default_factory=dict)
    warnings: tuple[Issue | str, ...] = field(default=())  # an Issue where it has a place

    @property
    def estimated_usd(self) -> float:
        return estimated_usd(self.jobs)

    @property
    def skipped_invalid(self) -> int:
        return sum(self.skipped.values())

    def warnings_for(self, to_create_usd: float | None = None) -> tuple[str, ...]:
        """The warnings of `placed_warnings` as text, a placed one starting with its place."""
        return tuple(warning if isinstance(warning, str) else warning.render()
                     for warning in self.placed_warnings(to_create_usd))

    def placed_warnings(self, to_create_usd: float | None = None) -> tuple[Issue | str, ...]:
        """The plan's warnings, one with a place in the manifest as its Issue, and whether the
        jobs still to create (`to_create_usd`, all of them when unknown: a new folder) are
        estimated above the budget."""
        budget = self.settings.budget_usd
        estimated = self.estimated_usd if to_create_usd is None else round(to_create_usd, 2)
        if budget is None or estimated <= budget:
            return self.warnings
        which = "the jobs" if to_create_usd is None else "the jobs still to create in the folder"
        return (*self.warnings, f"{which} are estimated at ${estimated:,.2f}, above budget_usd "
                f"(${budget:,.2f}): a run stops submitting at the budget (exit 3), and the next run "
                "goes on")


def skipped_rules(skipped: Mapping[str, int]) -> str:
    """The rules cells left out by on_invalid: skip break, the rule of most first, each with how
    many it left out, as the plan's warning, `status` and the gallery's header name them:
    `text-to-video is 16:9 only, ... (4); hailuo-2_3-fast needs a start frame ... (2)`."""
    ranked = sorted(skipped.items(), key=lambda item: -item[1])
    return "; ".join(f"{rule} ({count:,})" for rule, count in ranked)


def estimated_usd(jobs: Iterable[Job]) -> float:
    """What the jobs are estimated to cost, to the cent."""
    return round(sum(job.estimated_cost for job in jobs), 2)


DEFAULT_FILENAME = "{prompt}/{vars}_{styles}_{model}_{resolution}_{duration}s_{aspect_ratio}_{n}.mp4"
DEFAULT_OUTPUT_DIR = "out/{name}"
_RULE_AXIS = {"duration": "duration", "size": "aspect_ratio", "auto-size": "aspect_ratio",
              "text-to-video-aspect": "aspect_ratio", "start-frame-required": "model",
              "prompt-length": "prompt"}
# How each image kind begins, its first header whole: a PNG's signature and IHDR chunk (length,
# type, 13 bytes of data, CRC), a JPEG's start marker and the marker and length of its first
# segment, a WebP's RIFF header of form type WEBP and the name of its first chunk.
_PNG = re.compile(b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR.{17}", re.DOTALL)
_JPEG = re.compile(b"\xff\xd8\xff[\xc0-\xfe].{2}", re.DOTALL)
_IMAGE_MAGIC = {"png": _PNG, "jpg": _JPEG, "jpeg": _JPEG,
                "webp": re.compile(b"RIFF.{4}WEBPVP8[ LX]", re.DOTALL)}
_MAX_IMAGE_BYTES = 20 * 1024 * 1024
_RELATIVE_HINT = "paths are relative to the manifest"
_EXPORT_HINT = "export it again as a PNG, JPEG or WebP image"
_GRACE_ALONE = "grace goes with a max runtime"
_CHECK_ID = "00000000-0000-4000-8000-000000000000"


def make_plan(path: Path | str, *, overrides: Mapping[str, Any] | None = None,
              prices: Mapping[str, Any] | None = None) -> Plan:
    """Load, check and expand a manifest into its plan; every problem is raised at once.

    `overrides` are run settings from the command line (None values ignored); `prices` is a
    price table of the shape of `schemas/prices.json`'s `prices`, winning over the manifest's.
    """
    doc = load_document(path)
    checked = check_schema(doc)
    if not checked.ok():
        raise ManifestError(checked.issues)
    return _Planner(doc, checked, catalog.load(), dict(overrides or {}),
                    check_prices(prices or {}, "--prices")).plan()


def merge_prices(*tables: Mapping[str, Any]) -> dict[str, Any]:
    """Price tables merged entry by entry, later tables winning."""
    merged: dict[str, Any] = {}
    for table in tables:
        for model, resolutions in table.items():
            for resolution, durations in resolutions.items():
                merged.setdefault(model, {}).setdefault(resolution, {}).update(
                    {str(d): v for d, v in durations.items()})
    return merged


def safe_filename(rendered: str) -> str:
    """A relative path that cannot leave the output folder, whatever its parts said: each part
    keeps letters, marks and digits of any script (NFC) and `._+=-`, anything else becomes a
    dash; a file whose name says nothing before `.mp4` is `video.mp4`."""
    raw = rendered.replace("\\", "/").split("/")
    parts = [_safe_part(part) for part in raw]
    if parts[-1].lower() == "mp4" and raw[-1].lower().endswith(".mp4"):  # only `.mp4` was left
        parts[-1] = "video" + raw[-1][-4:]
    name = "/".join(part for part in parts if part) or "video"
    return name if name.lower().endswith(".mp4") else name + ".mp4"


def _safe_part(part: str) -> str:
    """One part of a path made safe, at most 120 bytes of UTF-8 (_PART_BYTES); none starts with
    what makes a spreadsheet read a cell as a formula (`=`, `+`, `-`), so results.csv names it as
    it is, and none is a Windows device name, which a copy of the folder there could not hold:
    such a stem gets a `_` (`CON_`, `nul_.txt`)."""
    kept = _UNDERSCORES.sub("_", _dashed(part)).lstrip("-_. =+").rstrip("-_. ")
    device = _DEVICE.match(kept)
    if device is not None:
        kept = f"{device[0]}_{kept[device.end():]}"
    return (kept[:_PART_BYTES] if kept.isascii()
            else kept.encode("utf-8")[:_PART_BYTES].decode("utf-8", "ignore"))


def _dashed(text: str) -> str:
    """`text` (NFC) with each run of characters other than letters, marks and digits of any
    script and `._+=-` made one dash (ASCII text by one pattern: a plan names 100,000 files)."""
    if text.isascii():
        return _ASCII_UNSAFE.sub("-", text)
    kept = "".join(char if char in "._+=-" or unicodedata.category(char)[0] in "LMN" else "/"
                   for char in unicodedata.normalize("NFC", text))
    return re.sub(r"/+", "-", kept)


_ASCII_UNSAFE = re.compile(r"[^A-Za-z0-9._+=-]+")
# The names Windows keeps for its devices, in any case and with any extension after them (up to
# the first dot): a file or folder of such a name cannot be made there, nor unzipped.
# https://learn.microsoft.com/windows/win32/fileio/naming-a-file
_DEVICE = re.compile(r"(?:CON|PRN|AUX|NUL|COM[0-9¹²³]|LPT[0-9¹²³])(?=\.|\Z)", re.IGNORECASE)
_UNDERSCORES = re.compile(r"_{2,}")


class _Planner:
    def __init__(self, doc: Document, checked: SchemaResult, cat: catalog.Catalog,
                 overrides: dict[str, Any], prices: dict[str, Any]) -> None:
        self.doc = doc
        self.checked = checked
        self.data: dict[str, Any] = doc.data
        self.catalog = cat
        self.issues: list[Issue] = list(checked.issues)
        self.warnings: list[Issue | str] = []
        self.settings = self._settings(overrides)
        self.max_jobs_given = overrides.get("max_jobs") is not None  # by --max-jobs
        self.repeat: int = whole_number(self.data.get("repeat", 1))
        self.prices = merge_prices(self.data.get("prices", {}) if checked.ok("prices") else {},
                                   prices)
        self.uploads: dict[Path, Upload] = {}
        output = self.data.get("output", {}) if checked.ok("output") else {}
        self.template = output.get("filename", DEFAULT_FILENAME)
        self.output_dir = output.get("dir", DEFAULT_OUTPUT_DIR)
        # A var given as one value, not a list, is a constant rather than an axis: it names the
        # files of every job, those of the prompts that do not name it too.
        known_vars = self.data.get("vars", {}) if checked.ok("vars") else {}
        self.constants = {name: value for name, value in known_vars.items()
                          if not isinstance(value, list)}

    def _settings(self, overrides: dict[str, Any]) -> RunSettings:
        """The run settings; a manifest value they refuse is an issue at its place, while a
        refused command-line value stays a usage error."""
        run = self.data.get("run", {}) if self.checked.ok("run") else {}
        usable: dict[str, Any] = {}
        for key, value in run.items():
            try:
                RunSettings.build({key: value})
            except UsageError as exc:
                self.issues.append(self.doc.issue(("run", key), str(exc).removeprefix(f"{key}: ")))
            else:
                usable[key] = value
        for key, value in overrides.items():  # a flag's own mistake is told under its name
            try:
                RunSettings.build({key: value})
            except UsageError as exc:
                raise told_under("--" + key.replace("_", "-"), key, exc) from None
        settings = RunSettings.build(usable, overrides)
        if settings.max_runtime is None and overrides.get("grace") is not None:
            raise UsageError(f"--{_GRACE_ALONE} (--max-runtime, or max_runtime in the manifest's run:)")
        if settings.max_runtime is None and "grace" in usable and "max_runtime" not in run:
            self.issues.append(self.doc.issue(("run", "grace"), _GRACE_ALONE,
                                              "add max_runtime to run:, or pass --max-runtime"))
        return settings

    def plan(self) -> Plan:
        expansion = expand(self.doc, self.catalog, self.checked)
        self.issues.extend(expansion.issues)
        names = var_names(self.data, self.checked)
        if self.checked.ok("output") and names is not None:
            self._check_placeholders("filename", self.template, [
                *BUILTIN_NAMES, *names, *self.catalog.categories])
            if not self._check_variables():
                self._check_placeholders("dir", self.output_dir, list(OUTPUT_DIR_PLACEHOLDERS))
        if self.checked.ok("notify") and "notify" in self.data:
            self._check_notify(self.data["notify"])
        frames = {path: self._frame(frame, path) for path, frame in self._frame_places()}
        if expansion.bound > MAX_CELLS:
            self.issues.append(self.doc.issue(
                (), f"the matrix holds {expansion.bound:,} cells, more than the {MAX_CELLS:,} a plan "
                "may go through (exclude and on_invalid: skip drop cells one by one)",
                "narrow the axes rather than excluding most of their cells"))
        if self.issues:
            raise ManifestError(sorted(self.issues, key=lambda i: (i.line, i.column)))
        cells, merged, skipped = self._unique_cells(expansion, frames)
        if self.issues:
            raise ManifestError(self.issues)
        jobs = self._jobs(cells)
        self._check_lengths(jobs)
        self._warn_unnamed_vars(jobs)
        self._warn_extension(jobs)
        if not jobs:
            self.warnings.append(f"the plan has no jobs (cells: {expansion.product:,}, excluded: "
                                 f"{expansion.excluded:,}, skipped as invalid: {skipped.total():,})")
        return Plan(name=self.data["name"], source=Path(self.doc.file), jobs=tuple(jobs),
                    settings=self.settings,
                    output_dir=self.output_dir,
                    notify_url=self.data.get("notify"), cells=expansion.product,
                    excluded=expansion.excluded, included=expansion.included, merged=merged,
                    skipped=skipped, warnings=tuple(expansion.warnings + self.warnings))

    def _check_lengths(self, jobs: list[Job]) -> None:
        """A name no file system takes would fail its job's download, after it was paid for."""
        long = [job for job in jobs if len(job.filename.encode("utf-8")) > MAX_NAME_BYTES]
        if long:
            size = max(len(job.filename.encode("utf-8")) for job in long)
            raise ManifestError([self.doc.issue(
                ("output", "filename"), f"the names of {len(long):,} job(s) are too long for the "
                f"output folder: up to {size:,} bytes, more than {MAX_NAME_BYTES:,}",
                "use fewer or shorter folders and placeholders")])

    def _warn_unnamed_vars(self, jobs: list[Job]) -> None:
        """A var given as a list (an axis) is `none` in the files of the prompts that do not
        name it: say so when output.filename names it."""
        for name in placeholders(self.template):
            if name not in self.data.get("vars", {}) or name in self.constants:
                continue
            prompts = sorted({job.axes["prompt"] for job in jobs if job.axes.get(name) is None})
            if prompts:
                shown = ", ".join(prompts[:5]) + (f" and {len(prompts) - 5} more" if len(prompts) > 5 else "")
                self.warnings.append(
                    f"output.filename names the var {{{name}}}, which these prompts do not: "
                    f"{shown}; their files have 'none' there (a var multiplies only the prompts "
                    "that name it)")

    def _warn_extension(self, jobs: list[Job]) -> None:
        """Every video is an MP4 file, whatever output.filename ends with: `.mp4` is added to a
        name that ends otherwise, so say so when the template writes another extension."""
        found = _EXTENSION_RE.search(self.template)
        if jobs and found is not None and found[0].lower() != ".mp4":
            self.warnings.append(self.doc.issue(
                ("output", "filename"), f"the videos are MP4 files, not {found[0]}: .mp4 is added "
                f"to every name, as in {jobs[0].filename}", "end output.filename with .mp4",
                part=found.span()))

    def _check_placeholders(self, field: str, template: str, known: list[str]) -> None:
        self.issues += template_issues(self.doc, ("output", field), template, known, noun="placeholder",
                                       otherwise=f"placeholders: {', '.join(known)}")[1]

    def _check_variables(self) -> bool:
        """Whether output.dir names an environment variable (`$HOME`, `${VIDEOS}`) or another
        user's home (`~name`), said at its place: only `~` (alone, or as `~/`) is expanded, to
        your home folder; a variable's `{VIDEOS}` is then no placeholder to tell of as well."""
        tilde = _TILDE_RE.match(self.output_dir)
        if tilde is not None:
            self.issues.append(self.doc.issue(
                ("output", "dir"), f"{tilde[0]} would be a user's home folder: only ~ alone or ~/ "
                "(yours) is expanded", f"write ~/ for yours, or ./{tilde[0]} for a folder of that name",
                part=tilde.span()))
            return True
        found = _VARIABLE_RE.search(self.output_dir)
        if found is not None:
            where = self.output_dir[:found.start()] or "the folder you run from"
            self.issues.append(self.doc.issue(
                ("output", "dir"), f"{found[0]} would be a folder named {found[0]} in {where}",
                "environment variables are not expanded; use ~ or a relative path",
                part=found.span()))
        return found is not None

    def _check_notify(self, url: str) -> None:
        """The manifest's webhook, held to the test --notify-url is: the schema only sees that it
        starts with http:// or https://."""
        problem = http_url_problem(url)
        if problem is not None:
            self.issues.append(self.doc.issue(
                ("notify",), f"notify {json.dumps(shown_url(url), ensure_ascii=False)}: {problem}",
                "a webhook URL such as https://chat.example.com/hooks/hailuo"))

    def _frame_places(self) -> Iterator[tuple[Path_, dict[str, Any]]]:
        """Every start frame written in the manifest, with where it was written."""
        data, ok = self.data, self.checked.ok
        if ok("defaults") and data.get("defaults", {}).get("start_frame"):
            yield ("defaults", "start_frame"), data["defaults"]["start_frame"]
        if ok("prompts"):
            for i, prompt in enumerate(data["prompts"]):
                if isinstance(prompt, dict) and prompt.get("start_frame"):
                    yield ("prompts", i, "start_frame"), prompt["start_frame"]
        if ok("matrix"):
            for i, frame in enumerate(data.get("matrix", {}).get("start_frame", [])):
                yield ("matrix", "start_frame", i), frame

    def _frame(self, frame: dict[str, Any], where: Path_) -> Upload | None:
        """The upload a start frame needs (None for an image id), checked once per file."""
        if "path" not in frame:
            return None
        written = frame["path"]
        # realpath, unlike Path.resolve, does not raise at a symlink loop: reading the file tells of it
        file = Path(os.path.realpath(self.doc.folder / written))
        if file in self.uploads:
            return self.uploads[file]
        extension = file.suffix.lower().lstrip(".")
        problem, hint, content = _image(file, written, extension)
        if problem:
            self.issues.append(self.doc.issue(where + ("path",), problem, hint or _RELATIVE_HINT))
            return None
        upload = Upload(file, hashlib.sha256(content).hexdigest(), extension)
        self.uploads[file] = upload
        return upload

    def _request(self, cell: Cell, upload: Upload | None) -> dict[str, Any]:
        v = cell.values
        width, height = self.catalog.size(v["resolution"], v["aspect_ratio"])
        params: dict[str, Any] = {"prompt": cell.prompt.render(v),
                                  "mode": self.catalog.mode(v["resolution"]),
                                  "duration": v["duration"], "width": width, "height": height}
        if cell.styles:
            params["style_ids"] = [self.catalog.style(name).id for name in cell.styles]
        enhance = self.doc.data.get("defaults", {}).get("prompt_enhance")
        if enhance is not None:
            params["prompt_enhance"] = {True: "ON", False: "OFF"}.get(enhance, enhance)
        if cell.start_frame:
            image = {"id": upload.placeholder if upload else cell.start_frame["id"],
                     "type": "UPLOADED" if upload else cell.start_frame["type"]}
            if self.settings.start_frame_field == "legacy":
                params["start_frame"] = image
            else:
                params["guidances"] = {"start_frame": [{"image": image}]}
        public = self.data.get("defaults", {}).get("public", False)
        return {"model": v["model"], "public": public, "parameters": params}

    def _unique_cells(self, expansion: Expansion, frames: dict[Path_, Upload | None]):
        """Cells with identical requests merged, each checked against the model rules, in one
        pass that stops as soon as the plan is known to have more than max_jobs jobs: a small
        manifest can describe a matrix of millions of cells. Each request is remembered by its
        digest, with its cell only when kept, so a matrix that on_invalid: skip drops holds
        little (a cell merged into a dropped one is counted, its twin untold: it runs neither)."""
        seen: dict[int, Cell | None] = {}
        kept = []
        merged = 0
        twins: dict[Path_, tuple[str, Cell]] = {}  # by a value merged away: its axis, and its twin
        skipped: Counter[str] = Counter()  # cells left out by on_invalid: skip, by the rule they break
        broken: dict[str, tuple[Issue | None, int]] = {}  # by rule: its first cell's issue, and the cells
        skip = self.data.get("on_invalid", "error") == "skip"
        for cell in expansion.cells:
            upload = frames.get(cell.sources["start_frame"]) if cell.start_frame else None
            request = self._request(cell, upload)
            text = canonical_json(request)
            digest = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=16).digest())
            if digest in seen:
                merged += 1
                twin = seen[digest]
                axis = None if twin is None else cell.twin_axis(twin)
                if axis is not None:
                    twins.setdefault(cell.sources[axis], (axis, twin))
                continue
            seen[digest] = None
            checked = json.loads(text.replace(upload.placeholder, _CHECK_ID)) if upload else request
            violations = self.catalog.check_request(checked)
            if not violations:
                seen[digest] = cell
                kept.append((cell, request, upload, text))
                if len(kept) * self.repeat > self.settings.max_jobs:
                    self.issues.append(self._too_many(expansion.bound * self.repeat))
                    break
            elif skip:
                skipped[violations[0].message] += 1
            else:
                for violation in violations:
                    first, count = broken.get(violation.message, (None, 0))
                    if count < CELLS_SHOWN:
                        self.issues.append(self._violation_issue(cell, violation))
                        first = first or self.issues[-1]
                    broken[violation.message] = (first, count + 1)
        for rule, (first, count) in broken.items():
            if first is not None and count > CELLS_SHOWN:
                self.issues.append(dataclasses.replace(
                    first, message=f"{count - CELLS_SHOWN:,} more cells: {rule}",
                    problems=count - CELLS_SHOWN))
        told = [merged_warning(self.doc, axis, here, twin) for here, (axis, twin) in twins.items()]
        self.warnings.extend(sorted(told, key=lambda i: (i.line, i.column)))
        if skipped:
            self.warnings.append("on_invalid: skip left out cells, by the rule each breaks: "
                                 + skipped_rules(skipped))
        return kept, merged, skipped

    def _too_many(self, most: int) -> Issue:
        given = self.max_jobs_given
        written = not given and "max_jobs" in self.data.get("run", {})
        limit = "--max-jobs" if given else "max_jobs"
        if self.settings.max_jobs < MAX_JOBS:
            hint = f"raise {'--max-jobs' if given else 'run.max_jobs (or --max-jobs)'}, or narrow the matrix"
        else:
            hint = (f"{MAX_JOBS:,} is the most {limit} allows: split the manifest into several, "
                    "or narrow the matrix")
        return self.doc.issue(("run", "max_jobs") if written else (),
                              f"the plan has more than {self.settings.max_jobs:,} jobs, the {limit} "
                              f"limit (its matrix holds up to {most:,} before merging)", hint)

    def _violation_issue(self, cell: Cell, violation: Violation) -> Issue:
        axis = _RULE_AXIS.get(violation.rule)
        if violation.rule == "prompt-enhance-model":
            where: Path_ = ("defaults", "prompt_enhance")
        else:
            where = cell.sources.get(axis, ()) if axis else ()
        return self.doc.issue(where, f"cell {describe(cell)}: {violation.message}",
                              "fix the axis, exclude the cell, or set on_invalid: skip")

    def _jobs(self, cells) -> list[Job]:
        jobs: list[Job] = []
        for cell, request, upload, canonical in cells:
            axes = dict(cell.values)
            if cell.start_frame:
                axes["start_frame"] = cell.start_frame.get("path") or cell.start_frame["id"]
            cost = self.catalog.price(axes["model"], axes["resolution"], axes["duration"],
                                      self.prices) or 0.0
            for n in range(1, self.repeat + 1):
                key = _key_of(canonical, n)
                job_axes = {**axes, "n": n}
                jobs.append(Job(key=key, index=len(jobs), axes=job_axes, styles=cell.styles,
                                request=request, estimated_cost=cost,
                                filename=self._filename(cell, job_axes, key), upload=upload))
        jobs, clashes = _unique_filenames(jobs)
        if clashes:
            self.warnings.append(f"output.filename gives {sum(map(len, clashes)):,} jobs a name "
                                 f"another job has: their short key was added ({self._clash_hint(clashes)})")
        return jobs

    def _clash_hint(self, clashes: list[list[Job]]) -> str:
        """What to do about `clashes`, the groups of jobs given one name: put in the template the
        axes that tell them apart, and, of those it names already, say why their names lost them."""
        named = set(placeholders(self.template))
        if "vars" in named:
            named.update(self.data.get("vars", {}))
        hints: dict[str, None] = {}  # each once, in order
        for group in clashes:
            first, *others = group
            apart = [axis for axis, value in first.axes.items()
                     if any(job.axes[axis] != value for job in others)]
            for axis in (axis for axis in apart if axis in named):
                values = [self._value(axis, job.axes[axis]) for job in group]
                whole, cut = ({told(value).lower() for value in values} for told in (_spelled, _part))
                if len(whole) > 1 and len(cut) == 1:
                    hint = (f"their {axis} values are cut to {_PART_CHARS} characters in names and "
                            "differ only after it: make them differ sooner")
                else:
                    hint = (f"their {axis} values differ only where names do not keep them: a part "
                            f"of a path is cut to {_PART_BYTES} bytes, a character other than letters, "
                            "digits and ._+=- becomes a dash, and case is not told apart")
                hints[hint] = None
            if not apart or not named.issuperset(apart):
                hints["put {n} or the axes that differ in the template"] = None
        return "; ".join(hints)

    def _value(self, axis: str, value: Any) -> Any:
        """An axis's value as names show it: a var a prompt does not use is its constant, if any."""
        return self.constants.get(axis) if value is None else value

    def _filename(self, cell: Cell, axes: dict[str, Any], key: str) -> str:
        values = {k: _part(self._value(k, v)) for k, v in axes.items()}
        values.update(name=_part(self.data["name"]), key=key[:10],
                      vars="-".join(_part(axes[name]) for name in cell.prompt.vars),
                      styles="+".join(_part(s) for s in cell.styles) or "no-style")
        values.setdefault("style_set", "none")
        for category in self.catalog.categories:
            values.setdefault(category, "none")
        values.setdefault("start_frame", "none")
        return safe_filename(self.template.format_map(values))


def _image(file: Path, written: str, extension: str) -> tuple[str, str, bytes]:
    """Why the start frame written as `written` (found at `file`) cannot be sent and a hint (""
    where the place it was looked for is the likely fault), or "", "" and its content. Only a
    regular file is read: a pipe would never end."""
    if extension not in _IMAGE_MAGIC:
        return f"{written} is not a png, jpg, jpeg or webp file", _EXPORT_HINT, b""
    try:
        found = file.stat()
        if stat.S_ISDIR(found.st_mode):
            return f"start frame {written} is a folder, not a file", "", b""
        if not stat.S_ISREG(found.st_mode):
            return f"start frame {written} is not a regular file (a pipe or a device?)", "", b""
        if found.st_size > _MAX_IMAGE_BYTES:
            return f"start frame {written} is larger than 20 MiB", "", b""
        content = file.read_bytes()
    except FileNotFoundError:
        return f"start frame {written} does not exist (looked in {file.parent})", "", b""
    except OSError as exc:  # a symlink loop, a name too long, no permission
        return f"start frame {written} cannot be read: {exc.strerror}", "", b""
    if not _IMAGE_MAGIC[extension].match(content):
        return f"start frame {written} is not a {extension} image", _found_hint(content), b""
    return "", "", content


def _found_hint(content: bytes) -> str:
    """What a start frame that is not the image its name says holds, and what to do about it."""
    kind = next((kind for kind, magic in _IMAGE_MAGIC.items() if magic.match(content)), None)
    if kind:
        return f"it holds a {kind} image: give it a .{kind} name"
    if not content:
        return f"the file is empty: {_EXPORT_HINT}"
    if content[:512].isascii() and all(byte >= 32 or byte in b"\t\n\r" for byte in content[:512]):
        return f"it holds text, not an image: {_EXPORT_HINT}"
    return f"it holds another format, or an image cut short: {_EXPORT_HINT}"


@functools.lru_cache(maxsize=4096, typed=True)
def _part(value: Any) -> str:
    """One placeholder's value, unable to add a folder or a parent step to a path, cut to 80
    characters (_PART_CHARS); a var its prompt does not use is `none`, as an unused style axis is.

    Cached: a plan of 100,000 jobs asks for the same few axis values a million times.
    """
    return _spelled(value)[:_PART_CHARS] or "_"


def _spelled(value: Any) -> str:
    """A placeholder's value in the characters names keep, whole (names cut it, see `_part`)."""
    return _dashed("none" if value is None else value_text(value)).strip("-.")


def _unique_filenames(jobs: list[Job]) -> tuple[list[Job], list[list[Job]]]:
    """Jobs whose names collide all get their short key added, so every name stays stable;
    also the groups of jobs that shared a name."""
    named: dict[str, list[Job]] = {}
    for job in jobs:
        named.setdefault(job.filename.lower(), []).append(job)
    renamed = [dataclasses.replace(job, filename=f"{job.filename[:-4]}_{job.short_key}.mp4")
               if len(named[job.filename.lower()]) > 1 else job for job in jobs]
    return renamed, [group for group in named.values() if len(group) > 1]


def describe(cell: Cell) -> str:
    """A cell as `prompt=a time=dusk vibe='Pro Photo' ...`, for messages: a value with spaces
    (or none at all) is quoted, and a long one shortened, so one cell stays one readable line."""
    return " ".join(f"{k}={_shown(v)}" for k, v in cell.values.items() if v is not None)


def _shown(value: Any) -> str:
    text = str(value)
    text = text if len(text) <= 40 else text[:37] + "..."
    return repr(text) if not text or re.search(r"\s", text) else text
