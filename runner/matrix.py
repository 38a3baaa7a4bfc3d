"""Expansion, exactly as the manifest language says: prompts x vars x style axes x matrix axes,
then exclude, then include. Pure: a document in, cells and located issues out.

Every cell remembers where each of its values was written, so a model rule it breaks can be
reported at that place in the file.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import string
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from math import prod
from typing import Any

from runner.catalog import Catalog
from runner.errors import Issue
from runner.manifest import Document, Path_, SchemaResult, did_you_mean, json_path, whole_number

BUILTIN_DEFAULTS: dict[str, Any] = {"model": "hailuo-2_3", "resolution": "768p", "duration": 6,
                                    "aspect_ratio": "16:9", "public": False}
MATRIX_AXES = ("model", "resolution", "duration", "aspect_ratio")
# What a file name template can say besides the vars and the style categories: no var may take
# one of these names, or the two would be one placeholder with two meanings.
BUILTIN_NAMES = ("name", "prompt", "vars", "styles", "n", "key", "start_frame", "style_set", *MATRIX_AXES)
# The results' own columns (results.csv, the gallery's filters) beside the axes: a var so named
# would make two columns of one name. report.py's CSV header is held to this list by a test.
RESULT_COLUMNS = ("index", "short_key", "state", "planned", "prompt_id", "sample", "cost_usd",
                  "spent_usd", "spent_estimated_usd", "estimated_cost_usd", "render_seconds",
                  "attempts", "file", "poster", "reason", "generation_id", "submitted_at",
                  "completed_at", "downloaded_at", "video_gone", "error_kind", "failed_for_now")
NONE = "none"
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


@dataclass(frozen=True, slots=True)
class Prompt:
    id: str
    template: str
    path: Path_
    vars: tuple[str, ...]
    start_frame: dict[str, Any] | None
    frame_path: Path_
    own_frame: bool  # the prompt says which start frame it has, null (none) included

    def render(self, values: dict[str, Any]) -> str:
        return self.template.format_map({name: value_text(values[name]) for name in self.vars})


@dataclass(slots=True)
class Cell:
    """One point of the matrix: every axis value, and where each one was written."""

    prompt: Prompt
    values: dict[str, Any]
    sources: dict[str, Path_]
    start_frame: dict[str, Any] | None
    styles: tuple[str, ...] = ()

    def twin_axis(self, kept: Cell) -> str | None:
        """The axis whose value this cell, merged into `kept` (the same request), has from
        another place in the manifest, when it is the only one: a style set of the same styles,
        `pro photo` beside `Pro Photo`. An include's cell, written whole in one place, has none."""
        axes = [axis for axis in self.sources.keys() | kept.sources.keys()
                if self.sources.get(axis) != kept.sources.get(axis)]
        if len(axes) != 1 or self.sources[axes[0]][:2] == ("matrix", "include"):
            return None
        return axes[0]


def merged_warning(doc: Document, axis: str, here: Path_, kept: Cell) -> Issue:
    """What to tell of the value written at `here`, whose cells were merged into those of
    `kept`'s value of the same axis: the gallery has no column or row of its own for them."""
    there = kept.sources[axis]
    place = json_path(there).removeprefix("$.")
    line = doc.place(there, key=axis == "style_set")[0]
    if axis == "style_set":
        message = f"the same styles as {place} (line {line}): its cells are {kept.values[axis]}'s"
    else:
        value = (kept.values[axis] if axis in kept.values
                 else kept.start_frame.get("path") or kept.start_frame["id"])
        owner = f"prompt {value!r}" if axis == "prompt" else repr(value_text(value))
        noun = "text" if axis == "prompt" else axis.replace("_", " ")
        message = f"the same {noun} as {place} (line {line}): its cells are those of {owner}"
    return doc.issue(here, message, "remove one, or make them differ", key=axis == "style_set")


@dataclass
class Expansion:
    """The cells of a manifest, made lazily: the counts are final once `cells` is consumed,
    so a planner can stop early on a matrix far larger than it may plan. `bound` is known at
    once: the number of cells before exclude, plus the includes."""

    cells: Iterable[Cell] = ()
    bound: int = 0
    product: int = 0
    excluded: int = 0
    included: int = 0
    issues: list[Issue] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def value_text(value: Any) -> str:
    """A value as a prompt, a file name or a match says it: a decimal in full (12999.99, not
    13000), a whole one as the number it equals (6.0 as 6)."""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return value if isinstance(value, str) else str(value)


def slug(text: str, limit: int = 40) -> str:
    """A prompt id made from its text: lowercase words joined by dashes."""
    words = re.findall(r"[a-z0-9]+", re.sub(r"\{[^}]*\}", "", text.lower()))
    return "-".join(words)[:limit].strip("-") or "prompt"


def prompt_ids(entries: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Each prompt's id, with the slug it was made of: the id written, else the slug of its
    text. A slug that is also another prompt's id, written or the slug of another text (texts
    that begin alike, or that have no Latin letters), takes the first 8 hex digits of its
    text's SHA-256, so that distinct texts have distinct ids whatever their order; a slug no
    other prompt has is the id as it always was, and so are the file names made of it."""
    slugs = [entry.get("id") or slug(entry["text"]) for entry in entries]
    owners: dict[str, set[str | None]] = {}  # by slug: the texts it is made of, None if written
    for entry, made in zip(entries, slugs):
        owners.setdefault(made, set()).add(None if entry.get("id") else entry["text"])
    return [(made if entry.get("id") or len(owners[made]) == 1 else
             f"{made}-{hashlib.sha256(entry['text'].encode('utf-8')).hexdigest()[:8]}", made)
            for entry, made in zip(entries, slugs)]


BRACES_HINT = "write {name} for a placeholder, {{ or }} for a literal brace"
# The braces of a template, left to right: an escaped one, a field, or one alone.
_BRACES = re.compile(r"\{\{|\}\}|\{[^{}]*\}|[{}]")


class BracesError(ValueError):
    """Braces in a template that are not a placeholder; `part` is where they stand, if known."""

    def __init__(self, message: str, part: tuple[int, int] | None) -> None:
        super().__init__(message)
        self.part = part


def field_part(template: str, written: str | None = None) -> tuple[int, int] | None:
    """Where the field `written` (`{mod}`) first stands in a template, not within an escaped
    `{{mod}}`; with None, the first brace that opens or closes nothing."""
    return next(((m.start(), m.end()) for m in _BRACES.finditer(template)
                 if m.group() == written or (written is None and len(m.group()) == 1)), None)


def placeholders(template: str) -> list[str]:
    """The `{names}` of a template; raises BracesError for braces that are not placeholders."""
    names = []
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise BracesError(f"unbalanced braces: {exc}", field_part(template)) from exc
    for _, name, spec, conversion in fields:
        if name is None:
            continue
        if spec or conversion or not name.isidentifier():
            written = name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
            written = f"{{{written}}}"
            raise BracesError(f"{written} is not a placeholder", field_part(template, written))
        names.append(name)
    return names


def template_issues(doc: Document, path: Path_, template: str, known: list[str], *, noun: str,
                    otherwise: str) -> tuple[list[str] | None, list[Issue]]:
    """The placeholder names of a template at `path`, each once (None when its braces are
    wrong), and the issues of its braces and of each name not `known`, told as an unknown
    `noun` with the known name it most likely means, else `otherwise`."""
    try:
        names = list(dict.fromkeys(placeholders(template)))
    except BracesError as exc:
        return None, [doc.issue(path, str(exc), BRACES_HINT, part=exc.part)]
    return names, [doc.issue(path, f"unknown {noun} {{{name}}}", did_you_mean(name, known) or otherwise,
                             part=field_part(template, f"{{{name}}}"))
                   for name in names if name not in known]


def var_names(data: Any, checked: SchemaResult) -> list[str] | None:
    """The vars' names, known once vars: is a mapping, whatever its values: the placeholders
    of prompts and file names are checked against them while a value is still wrong. None
    when they cannot be read."""
    written = data.get("vars", {}) if checked.ok() else None
    return list(written) if isinstance(written, dict) else None


class Expander:
    """Builds the cells of one document; all issues are collected, none raised."""

    def __init__(self, doc: Document, catalog: Catalog, checked: SchemaResult) -> None:
        self.doc = doc
        self.checked = checked
        self.data: dict[str, Any] = doc.data
        self.catalog = catalog
        self.result = Expansion()
        self.vars: dict[str, list[Any]] = {
            name: value if isinstance(value, list) else [value]
            for name, value in self._section("vars").items()}
        self.defaults = {name: whole_number(value)
                         for name, value in {**BUILTIN_DEFAULTS, **self._section("defaults")}.items()}
        self.var_names = var_names(self.data, checked)
        self.sets_mode = "sets" in self._section("styles")
        # every prompt's id and the slug it was made of, in order, as `_prompts` names them
        self.prompt_ids: list[tuple[str, str]] = []

    def _section(self, name: str) -> dict[str, Any]:
        return self.data.get(name, {}) if self.checked.ok(name) else {}

    def issue(self, path: Path_, message: str, hint: str = "", *, key: bool = False,
              part: tuple[int, int] | None = None) -> None:
        self.result.issues.append(self.doc.issue(path, message, hint, key=key, part=part))

    def run(self) -> Expansion:
        """Check every section the schema found usable; expand only when all of them are."""
        ok = self.checked.ok
        self._check_vars()
        prompts = self._prompts() if ok("prompts") and self.var_names is not None else []
        style_axes = self._style_axes() if ok("styles") else []
        matrix = self.data.get("matrix", {})
        excludes, includes = [], []
        if ok("prompts", "vars", "styles", "matrix"):
            excludes = [self._selector(e, ("matrix", "exclude", i), include=False)
                        for i, e in enumerate(matrix.get("exclude", []))]
            includes = [self._selector(e, ("matrix", "include", i), include=True)
                        for i, e in enumerate(matrix.get("include", []))]
        if self.result.issues or self.checked.issues:
            return self.result
        by_id = {p.id: p for p in prompts}
        included = [self._include(by_id[entry["prompt"]], entry, ("matrix", "include", i))
                    for i, entry in enumerate(includes)]
        if self.result.issues:
            return self.result
        self.result.bound = self._bound(prompts, style_axes) + len(included)
        self.result.cells = self._cells(prompts, style_axes, excludes, included)
        return self.result

    def _cells(self, prompts: list[Prompt], style_axes, excludes: list[dict[str, Any]],
               included: list[Cell | None]) -> Iterator[Cell]:
        matches = [0] * len(excludes)
        for cell in self._product(prompts, style_axes):
            self.result.product += 1
            hit = next((i for i, entry in enumerate(excludes) if _matches(cell, entry)), None)
            if hit is None:
                yield cell
            else:
                matches[hit] += 1
                self.result.excluded += 1
        for i, count in enumerate(matches):
            if count == 0:
                self.result.warnings.append(f"matrix.exclude[{i}] matches no cell")
        for cell in included:
            if cell is not None:
                self.result.included += 1
                yield cell

    def _bound(self, prompts: list[Prompt], style_axes) -> int:
        """How many cells the product has, counted without making them."""
        matrix = self.data.get("matrix", {})
        shared = prod(len(values) for _, values in style_axes) * \
            prod(len(matrix.get(name, [None])) for name in MATRIX_AXES)
        frames = len(matrix.get("start_frame", [None]))
        return sum(prod(len(self.vars[name]) for name in p.vars) * shared
                   * (1 if p.own_frame else frames) for p in prompts)

    # prompts and vars

    def _check_vars(self) -> None:
        """A var named like an axis would be silently hidden by it, or hide it, in prompts and
        file names alike; one named like a results column would give the results two. Its
        values, bound for prompts, are text, sent as written."""
        axes = [*BUILTIN_NAMES, *self.catalog.categories]
        for name in self.vars:
            if name in axes:
                self.issue(("vars", name), f"the var {name} has the name of an axis or a placeholder",
                           f"rename the var; taken: {', '.join(axes)}", key=True)
            elif name in RESULT_COLUMNS:
                self.issue(("vars", name), f"the var {name} has the name of a column of the results",
                           f"rename the var; taken: {', '.join(RESULT_COLUMNS)}", key=True)
            listed = isinstance(self.data["vars"][name], list)
            for i, value in enumerate(self.vars[name]):
                self._check_value(("vars", name, i) if listed else ("vars", name), value)

    def _check_text(self, path: Path_, value: Any) -> None:
        """A control character (a NUL, an escape) in text bound for a prompt is a slip: the API
        would be sent it. Line breaks and tabs are text."""
        found = _CONTROL.search(value) if isinstance(value, str) else None
        if found:
            self.issue(path, f"a control character (U+{ord(found.group()):04X}) has no place in a "
                       "prompt", "remove it; line breaks and tabs are fine")

    def _check_value(self, path: Path_, value: Any) -> None:
        """A var's value is put into a prompt as written, its braces too: a `{name}` in it
        would reach the API as it stands, never filled in, so it is refused as an unknown one
        in a prompt's text is."""
        self._check_text(path, value)
        fields = [m for m in _BRACES.finditer(value) if m.group()[1:-1].isidentifier()] \
            if isinstance(value, str) else []
        if fields:
            self.issue(path, f"{fields[0].group()} in a var's value would be sent as written: "
                       "placeholders are filled in only in a prompt's text",
                       f"write {fields[0].group()} in the prompt's text, or leave the braces out",
                       part=fields[0].span())

    def _prompts(self) -> list[Prompt]:
        prompts: list[Prompt] = []
        seen: dict[str, int] = {}
        raws = self.data["prompts"]
        entries = [raw if isinstance(raw, dict) else {"text": raw} for raw in raws]
        self.prompt_ids = prompt_ids(entries)
        for i, (raw, entry, (pid, _)) in enumerate(zip(raws, entries, self.prompt_ids)):
            path: Path_ = ("prompts", i)
            text_path = path + ("text",) if isinstance(raw, dict) else path
            if pid in seen:
                twice = isinstance(raw, str) and raw == raws[seen[pid]]
                self.issue(path + ("id",) if "id" in entry else path,
                           f"duplicate prompt id {pid!r} (also prompts[{seen[pid]}])",
                           "the same text twice: remove one (repeat: gives each prompt more "
                           "samples)" if twice else "give each prompt its own id")
            seen[pid] = i
            self._check_text(text_path, entry["text"])
            names, issues = template_issues(self.doc, text_path, entry["text"], self.var_names,
                                            noun="variable", otherwise="define it under vars:")
            self.result.issues += issues
            if names is None:
                continue
            prompts.append(Prompt(pid, entry["text"], text_path, tuple(names),
                                  entry.get("start_frame"), path + ("start_frame",),
                                  "start_frame" in entry))
        return prompts

    # styles

    def _style_value(self, name: str, path: Path_, category: str | None) -> str | None:
        """The canonical style name, `none`, or None after recording why it is unknown."""
        if name.strip().casefold() == NONE:
            return NONE
        style = self.catalog.style(name)
        if style is None:
            suggestion = self.catalog.suggest(name, category)
            hint = f"did you mean {suggestion!r}?" if suggestion else "hailuo-batch styles lists them"
            self.issue(path, f"unknown style {name!r}", hint)
            return None
        if category is not None and style.category != category:
            self.issue(path, f"{style.name!r} is a {self.catalog.categories[style.category]} style, "
                       f"not a {self.catalog.categories[category]} one",
                       f"move it to styles.{style.category}")
            return None
        return style.name

    def _style_axes(self) -> list[tuple[str, list[tuple[str, tuple[str, ...], Path_]]]]:
        """Each style axis as (axis name, [(value, style names, source path)])."""
        styles = self.data.get("styles", {})
        if self.sets_mode:
            values = []
            for set_name, names in styles["sets"].items():
                path: Path_ = ("styles", "sets", set_name)
                chosen: list[str] = []
                for j, name in enumerate(names):
                    value = self._style_value(name, path + (j,), None)
                    if value in chosen:  # the same style written twice, say in another case
                        self.issue(path + (j,), f"{value!r} is already in the set {set_name!r}",
                                   "name each style of a set once")
                    elif value not in (None, NONE):
                        chosen.append(value)
                values.append((set_name, tuple(chosen), path))
            return [("style_set", values)]
        axes = []
        for category in self.catalog.categories:
            if category not in styles:
                continue
            values = []
            for j, name in enumerate(styles[category]):
                path = ("styles", category, j)
                value = self._style_value(name, path, category)
                if value is not None:
                    values.append((value, () if value == NONE else (value,), path))
            axes.append((category, values))
        return axes

    # the product

    def _product(self, prompts: list[Prompt], style_axes) -> Iterator[Cell]:
        matrix = self.data.get("matrix", {})
        axes = [(name, [(whole_number(v), ("matrix", name, i)) for i, v in enumerate(matrix[name])]
                 if name in matrix else [(self.defaults[name], self._default_path(name))])
                for name in MATRIX_AXES]
        frames = ([(f, ("matrix", "start_frame", i)) for i, f in enumerate(matrix["start_frame"])]
                  if "start_frame" in matrix
                  else [(self.defaults.get("start_frame"), ("defaults", "start_frame"))])
        style_lists = [values for _, values in style_axes]
        for prompt in prompts:
            var_lists = [[(v, ("vars", name, i) if isinstance(self.data["vars"][name], list)
                           else ("vars", name)) for i, v in enumerate(self.vars[name])]
                         for name in prompt.vars]
            prompt_frames = [(prompt.start_frame, prompt.frame_path)] if prompt.own_frame else frames
            for var_combo in itertools.product(*var_lists):
                for style_combo in itertools.product(*style_lists):
                    for matrix_combo in itertools.product(*(vals for _, vals in axes), prompt_frames):
                        yield self._cell(prompt, var_combo, style_axes, style_combo, axes, matrix_combo)

    def _cell(self, prompt, var_combo, style_axes, style_combo, axes, matrix_combo) -> Cell:
        values: dict[str, Any] = {"prompt": prompt.id}
        sources: dict[str, Path_] = {"prompt": prompt.path}
        values.update(dict.fromkeys(self.vars))
        for name, (value, path) in zip(prompt.vars, var_combo):
            values[name], sources[name] = value, path
        styles: tuple[str, ...] = ()
        for (axis, _), (value, names, path) in zip(style_axes, style_combo):
            values[axis], sources[axis] = value, path
            styles += names
        for (axis, _), (value, path) in zip(axes, matrix_combo):
            values[axis], sources[axis] = value, path
        frame, frame_path = matrix_combo[-1]
        sources["start_frame"] = frame_path
        return Cell(prompt, values, sources, frame, styles)

    def _default_path(self, name: str) -> Path_:
        return ("defaults", name) if name in self.data.get("defaults", {}) else ()

    # exclude and include

    def _selector(self, entry: dict[str, Any], path: Path_, *, include: bool) -> dict[str, Any]:
        """Check an exclude/include entry and return it with canonical values."""
        style_keys = ["style_set"] if self.sets_mode else list(self.catalog.categories)
        known = ["prompt", *self.vars, *style_keys, *MATRIX_AXES]
        result: dict[str, Any] = {}
        for key, value in entry.items():
            here = path + (key,)
            if key not in known:
                self.issue(here, f"unknown axis {key!r}", did_you_mean(key, known)
                           or f"axes here: {', '.join(known)}", key=True)
            elif key == "prompt":
                result[key] = self._prompt_ref(str(value), here)
            elif key in self.catalog.categories:
                result[key] = self._style_value(str(value), here, key)
            elif key == "style_set" and value not in self.data["styles"]["sets"]:
                self.issue(here, f"unknown style set {value!r}",
                           did_you_mean(str(value), list(self.data["styles"]["sets"])))
            elif key in self.vars and include:
                self._check_value(here, value)
                result[key] = value
            elif key in self.vars and value not in self.vars[key]:
                values = [value_text(v) for v in self.vars[key]]
                self.issue(here, f"{value!r} is not a value of var {key}",
                           did_you_mean(value_text(value), values) or f"values: {', '.join(values)}")
            else:
                result[key] = value
        return result

    def _prompt_ref(self, value: str, path: Path_) -> str:
        """A prompt id named by a rule. The slug that prompts whose texts begin alike share
        names none of them: each has it with its own suffix, and the rule must say which."""
        ids = [pid for pid, _ in self.prompt_ids]
        alike = [pid for pid, made in self.prompt_ids if made == value and pid != value]
        if alike and value not in ids:
            self.issue(path, f"prompt id {value!r} is shared by {len(alike)} prompts whose texts "
                       "make the same slug: each has it with a suffix of its text",
                       f"name one of {', '.join(alike)}, or give the prompts ids of your own")
        elif value not in ids:
            self.issue(path, f"unknown prompt id {value!r}", did_you_mean(value, ids)
                       or f"prompt ids: {', '.join(ids)}")
        return value

    def _include(self, prompt: Prompt, entry: dict[str, Any], path: Path_) -> Cell | None:
        unnamed = [name for name in entry if name in self.vars and name not in prompt.vars]
        for name in unnamed:  # its value would be dropped, the video made without it
            self.issue(path + (name,), f"prompt {prompt.id!r} does not name the var {name}, so "
                       "this value would not be in it", f"add {{{name}}} to the prompt's text, or "
                       f"leave {name} out of this include", key=True)
        if unnamed:
            return None
        values: dict[str, Any] = {"prompt": prompt.id, **dict.fromkeys(self.vars)}
        sources: dict[str, Path_] = {"prompt": path + ("prompt",)}
        for name in prompt.vars:
            if name in entry:
                values[name], sources[name] = entry[name], path + (name,)
            elif len(self.vars[name]) == 1:
                values[name], sources[name] = self.vars[name][0], ("vars", name)
            else:
                self.issue(path, f"this include does not say which {name} to use for prompt "
                           f"{prompt.id!r}", f"add {name}: one of "
                           f"{', '.join(value_text(v) for v in self.vars[name])}")
                return None
        styles: tuple[str, ...] = ()
        axes = ["style_set"] if self.sets_mode else [c for c in self.catalog.categories
                                                      if c in self.data.get("styles", {}) or c in entry]
        for axis in axes:
            value = entry.get(axis, NONE)
            values[axis], sources[axis] = value, path + (axis,)
            if axis == "style_set" and value != NONE:
                styles += tuple(self.catalog.style(n).name for n in self.data["styles"]["sets"][value]
                                if n.strip().casefold() != NONE)
            elif value != NONE:
                styles += (value,)
        for axis in MATRIX_AXES:
            values[axis] = whole_number(entry.get(axis, self.defaults[axis]))
            sources[axis] = path + (axis,) if axis in entry else self._default_path(axis)
        if prompt.own_frame:
            frame, sources["start_frame"] = prompt.start_frame, prompt.frame_path
        else:
            frame, sources["start_frame"] = self.defaults.get("start_frame"), ("defaults", "start_frame")
        return Cell(prompt, values, sources, frame, styles)


def _matches(cell: Cell, entry: dict[str, Any]) -> bool:
    return all(value_text(cell.values.get(key)) == value_text(value) for key, value in entry.items())


def expand(doc: Document, catalog: Catalog, checked: SchemaResult) -> Expansion:
    return Expander(doc, catalog, checked).run()
