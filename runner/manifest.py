"""Loading a manifest: safe YAML with the place of every value, then the schema, every error at once.

PyYAML builds a node tree that knows where each value stood; the document is constructed from it
here, so each JSON path of the data maps to a line and column. Hostile input is refused before it
can cost time or memory: files too large, nesting too deep, aliases that expand too far.
"""

from __future__ import annotations

import datetime
import decimal
import difflib
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from runner.catalog import read_data
from runner.errors import Issue, ManifestError, UsageError

MAX_BYTES = 5 * 1024 * 1024
MAX_DEPTH = 64
MAX_VALUES = 1_000_000
_BUILDING = object()

Path_ = tuple[str | int, ...]
Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_INT_TAG, _FLOAT_TAG = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
_MERGE_TAG = "tag:yaml.org,2002:merge"
# Plain scalars that YAML 1.1 turns into something other than what was written stay the text
# written, as YAML 1.2 (editors, check-jsonschema) keeps them or as a prompt means them: `16:9`
# (the base-60 number 969 in 1.1), `0600` (octal 384), `0x1F`, `1_000`, a number past what a
# double holds exactly, `on`/`yes` (only true and false are booleans), a date or a timestamp.
_WHOLE = re.compile(r"-?(0|[1-9][0-9]{0,14})")
_BOOL_TAG = "tag:yaml.org,2002:bool"
_TEXT_WHEN = {_INT_TAG: lambda text: not _WHOLE.fullmatch(text),
              _FLOAT_TAG: lambda text: ":" in text or "_" in text or _significant_digits(text) > 15,
              _BOOL_TAG: lambda text: text.lower() not in ("true", "false"),
              "tag:yaml.org,2002:timestamp": lambda text: True}
_RESOLVER = yaml.resolver.Resolver()
# A number with an exponent that YAML 1.1 reads as text: no point, or no sign after the e (1e3).
_EXPONENT = re.compile(r"[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]{1,3}")
# What YAML counts as a line break, as the parser counts the lines of the places it gives.
_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")


def _significant_digits(number: str) -> int:
    """The digits of a written decimal that a double may not keep (past 15 it may round)."""
    mantissa = re.split("[eE]", number)[0].lstrip("+-")
    return len(mantissa.replace(".", "").lstrip("0"))


def json_path(path: Path_) -> str:
    """`$.prompts[1].text` for ("prompts", 1, "text")."""
    parts = ["$"]
    for part in path:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        elif part.isidentifier():
            parts.append(f".{part}")
        else:
            parts.append(f"[{json.dumps(part)}]")
    return "".join(parts)


def did_you_mean(word: str, choices: Iterator[str] | list[str]) -> str:
    """A hint naming the closest choice, or an empty string."""
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.75)
    return f"did you mean {close[0]!r}?" if close else ""


def whole_number(value: Any) -> Any:
    """`6.0` as the `6` it equals, any other value as it is: the schema takes 6.0 for the
    integer 6, so the wire request, the job key and the price must too."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


@dataclass
class Document:
    """A loaded manifest: its data, and where each value (and each mapping key) stood."""

    file: str
    data: Any
    places: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    key_places: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    # Keys left out while loading (written twice, or not a name): the schema's issues open with
    # them, so that they are reported with every other problem of the document.
    issues: list[Issue] = field(default_factory=list)
    # The text as read, and where each text value written in place (not through an alias)
    # starts and ends in it: a problem in a part of a long text is placed at that part.
    text: str = ""
    extents: dict[Path_, tuple[int, int]] = field(default_factory=dict)

    @property
    def folder(self) -> Path:
        return Path(self.file).parent

    def place(self, path: Path_, *, key: bool = False,
              part: tuple[int, int] | None = None) -> tuple[int, int]:
        """Line and column of the value at `path` (or of its key), else of its nearest ancestor.
        With `part` (a start and an end in the text value: a placeholder, say), of that piece
        where the file has it, when it can be found there."""
        if part is not None and path in self.extents:
            found = self._part_place(path, *part)
            if found:
                return found
        table = self.key_places if key else self.places
        if path in table:
            return table[path]
        for end in range(len(path) - 1, -1, -1):
            if path[:end] in self.places:
                return self.places[path[:end]]
        return (1, 1)

    def issue(self, path: Path_, message: str, hint: str = "", *, key: bool = False,
              part: tuple[int, int] | None = None) -> Issue:
        line, column = self.place(path, key=key, part=part)
        return Issue(self.file, line, column, json_path(path), message, hint)

    def _part_place(self, path: Path_, start: int, end: int) -> tuple[int, int] | None:
        """Where a piece of a text value is written: its nth time as written in the value's
        source, when the source holds the piece as many times as the value does. An escape, a
        line folded within the piece or a comment after a `|` can make them differ: None then."""
        value: Any = self.data
        for step in path:
            value = value[step]
        piece = value[start:end]
        first, last = self.extents[path]
        source = self.text[first:last]
        if not piece or source.count(piece) != value.count(piece):
            return None
        at = -1
        for _ in range(value.count(piece, 0, start) + 1):
            at = source.index(piece, at + 1)
        line, column = self.places[path]
        breaks = list(_BREAK.finditer(source, 0, at))
        if not breaks:
            return line, column + at
        return line + len(breaks), at - breaks[-1].end() + 1


class _Builder:
    """Constructs plain data from a composed node tree, recording the place of every value."""

    def __init__(self, loader: Any, doc: Document) -> None:
        self.loader = loader
        self.doc = doc
        self.values = 0
        self.built: dict[int, tuple[Any, int]] = {}
        self.own_keys: dict[int, int] = {}  # by mapping node: the keys it writes itself
        self.issues: list[Issue] = []

    def build(self, node: yaml.Node, path: Path_) -> Any:
        """The value of a node; a node met again (an alias) is reused, and counted again."""
        if id(node) in self.built:
            value, size = self.built[id(node)]
            if value is _BUILDING:
                raise ManifestError([self.doc.issue(path[:4], "an alias refers to itself")])
            self._count(size, path)
            return value
        before = self.values
        self._count(1, path)
        self.doc.places[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.ScalarNode):
            value = self._scalar(node)
            if isinstance(value, str):
                self.doc.extents[path] = (node.start_mark.index, node.end_mark.index)
            return value
        self.built[id(node)] = (_BUILDING, 0)
        if isinstance(node, yaml.MappingNode):
            value: Any = self._mapping(node, path)
        else:
            value = [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
        self.built[id(node)] = (value, self.values - before)
        return value

    def _count(self, size: int, path: Path_) -> None:
        self.values += size
        if self.values > MAX_VALUES:
            raise ManifestError([self.doc.issue(path[:4], f"the document expands to more than "
                                                f"{MAX_VALUES:,} values (aliases that repeat aliases?)")])

    def _scalar(self, node: yaml.ScalarNode) -> Any:
        if not node.style and node.tag in _TEXT_WHEN and _TEXT_WHEN[node.tag](node.value):
            return node.value
        value = self.loader.construct_object(node, deep=True)
        if isinstance(value, datetime.date | datetime.datetime):
            return value.isoformat()
        if isinstance(value, bytes):
            return value.decode("latin-1")
        return value

    def _mapping(self, node: yaml.MappingNode, path: Path_) -> dict[str, Any]:
        """A mapping; keys brought in by a merge key (`<<: *base`) yield to the mapping's own,
        as YAML says, while a key written twice in the mapping itself is an error."""
        self._note_own_keys(node)
        self.loader.flatten_mapping(node)
        first_own = len(node.value) - self.own_keys[id(node)]
        result: dict[str, Any] = {}
        own: set[str] = set()
        for index, (key_node, value_node) in enumerate(node.value):
            place = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if not isinstance(key_node, yaml.ScalarNode):  # `? [a, b]: 1`, an alias bomb's way in
                self.issues.append(Issue(self.doc.file, *place, json_path(path),
                                         "a key must be a name, not a list or a mapping"))
                continue
            key = str(self._scalar(key_node))
            here = path + (key,)
            if key in own:
                first = self.doc.key_places[here][0]
                self.issues.append(Issue(self.doc.file, *place, json_path(here),
                                         f"duplicate key {key!r} (first at line {first})"))
                continue
            if index >= first_own:
                own.add(key)
            self.doc.key_places[here] = place
            result[key] = self.build(value_node, here)
        return result


    def _note_own_keys(self, node: yaml.MappingNode) -> None:
        """Count the keys of a mapping and of those it merges before flatten_mapping merges
        them in place: a mapping merged into another, then met again through an alias, would
        take its merged keys for its own."""
        if id(node) in self.own_keys:
            return
        self.own_keys[id(node)] = sum(1 for key_node, _ in node.value if key_node.tag != _MERGE_TAG)
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merged = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                for base in merged:
                    if isinstance(base, yaml.MappingNode):
                        self._note_own_keys(base)


def _check_depth(text: str, file: str, loader: Any = Loader) -> None:
    """Refuse deep nesting from the event stream, before the recursive composer sees it."""
    depth = 0
    for event in yaml.parse(text, Loader=loader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                mark = event.start_mark
                raise ManifestError([Issue(file, mark.line + 1, mark.column + 1, "$",
                                           f"nesting deeper than {MAX_DEPTH} levels")])
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _read_text(path: Path, file: str, what: str) -> str:
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise ManifestError([Issue(file, 1, 1, "$", "not a file")])
        if size > MAX_BYTES:
            raise ManifestError([Issue(file, 1, 1, "$", f"the file is {size:,} bytes, more than "
                                       f"the {MAX_BYTES // (1024 * 1024)} MiB a {what} may be")])
        raw = path.read_bytes()
    except OSError as exc:
        raise ManifestError([Issue(file, 1, 1, "$", f"cannot read the file: {exc.strerror}")]) from exc
    if b"\0" in raw:
        raise ManifestError([Issue(file, 1, 1, "$", "this is a binary file, not YAML text")])
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise ManifestError([Issue(file, line, 1, "$", "the file is not UTF-8 text")]) from exc


_QUOTE_HINT = "put the text in quotes (\"...\"): unquoted, a ': ' in it makes YAML read a key"
_INDENT_HINT = ("check this line's indentation against the line above: the keys of one mapping "
                "start in the same column")
# What the parser says when a line stands in a column its mapping or list does not have.
_MISPLACED = ("mapping values are not allowed", "did not find expected key",
              "did not find expected '-' indicator", "expected <block end>")
# A quote, the other kind of quotes, and how the quote is written inside text in its own kind.
_QUOTES = {"'": ("\"...\"", "''"), '"': ("'...'", '\\"')}
# What a plain value opening with the bracket that a closing one ends is read as.
_FLOWS = {"]": "[ is a list", "}": "{ is a mapping"}


def _syntax_hint(problem: str, written: str, column: int) -> str:
    """What likely went wrong where YAML stopped reading, at `column` of the line `written`: a
    tab, a ': ' in unquoted text (a key already stands earlier on the line), text after the
    quote or the bracket that ended a value (`- 'It's a lake'`, `- [draft] A lake`), or an
    indentation."""
    before, after = written[:column - 1], written[column - 1:]
    if "\t" in written:
        return "indent with spaces, not tabs"
    if problem.startswith("mapping values are not allowed") and re.search(r":\s", before):
        return _QUOTE_HINT
    if not problem.startswith(_MISPLACED):
        return ""
    ended = before.rstrip()[-1:]
    if ended in _QUOTES:
        around, inside = _QUOTES[ended]
        if before.count(ended) % 2:  # the quote closes one opened on a line above
            return (f"the text quoted from a line above ends at the {ended} before this place: "
                    f"close its quote where the text ends, or write each {ended} inside it as {inside}")
        return (f"the quoted text ends at the {ended} before this place: put the whole text in "
                f"{around}, or write each {ended} inside it as {inside}")
    if ended in _FLOWS:
        return "" if after[:1] in ",]}" else (f"a value that starts with {_FLOWS[ended]} in YAML: "
                                              "put the whole text in quotes (\"...\")")
    return _INDENT_HINT


def load_document(path: Path | str, *, what: str = "manifest") -> Document:
    """Read and parse a manifest (or another document of `what`) safely; YAML errors come back
    as located issues."""
    file = str(path)
    text = _read_text(Path(path), file, what)
    doc = Document(file, None, text=text)
    try:
        _check_depth(text, file)
        loader = Loader(text)
        try:
            node = loader.get_single_node()
            builder = _Builder(loader, doc)
            doc.data = builder.build(node, ()) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        # libyaml's own nesting limit (bundled from PyYAML 6.0.4) scans ahead of the runner's:
        # the Python parser, which streams, finds where the runner's limit is passed.
        if "maximum nesting depth" in str(exc.problem):
            _check_depth(text, file, yaml.SafeLoader)
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        begun = exc.context_mark
        context = exc.context
        if context and begun and mark and begun.line != mark.line:
            context = f"{context} (begun at line {begun.line + 1}, column {begun.column + 1})"
        message = " ".join(str(p) for p in (context, exc.problem) if p)
        lines = text.splitlines()
        written = lines[line - 1] if 0 < line <= len(lines) else ""
        hint = _syntax_hint(str(exc.problem), written, column)
        raise ManifestError([Issue(file, line, column, "$", f"YAML syntax: {message}", hint)]) from exc
    except yaml.YAMLError as exc:
        raise ManifestError([Issue(file, 1, 1, "$", f"YAML: {exc}")]) from exc
    doc.issues = builder.issues
    if doc.data is None:
        raise ManifestError([Issue(file, 1, 1, "$", f"the {what} is empty",
                                   "start from an example in jobs/" if what == "manifest" else "")])
    return doc


def _not_finite(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def _is_finite_number(checker: jsonschema.TypeChecker, value: Any) -> bool:
    """JSON Schema's number, less YAML's `.nan` and `.inf`: no price, budget or rate is one."""
    return jsonschema.Draft202012Validator.TYPE_CHECKER.is_type(value, "number") and not _not_finite(value)


_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("number", _is_finite_number))
_NOT_FINITE_HINT = "write a number such as 0.5, or leave the key out for its default"


def _not_finite_message(error: jsonschema.ValidationError) -> str:
    """What is wrong with a `.nan` or `.inf` where a number belongs; "" for any other error."""
    if error.validator == "type" and _not_finite(error.instance):
        return f"{_short(error.instance)} is not a finite number"
    return ""


@cache
def schema() -> dict[str, Any]:
    return read_data("manifest.schema.json")


@cache
def _validator() -> jsonschema.Draft202012Validator:
    return _Validator(schema())


def check_prices(table: Any, source: str) -> dict[str, Any]:
    """A price table from outside a manifest, held to the manifest's own `prices:` rule.

    Durations written as numbers (`6:` in YAML) become the strings the table is keyed by.
    """
    data = json.loads(json.dumps(table, default=str))
    error = jsonschema.exceptions.best_match(_Validator(_prices_rule(wrapped=False)).iter_errors(data))
    if error is not None:
        message = _not_finite_message(error) or error.message
        raise UsageError(f"{source}: {json_path(tuple(error.absolute_path))}: {message}")
    return data


def load_prices(path: Path | str) -> dict[str, Any]:
    """A price table file (JSON or YAML: the table itself, or a document holding it under
    `prices:` as `schemas/prices.json` does), read like a manifest and held to the manifest's
    `prices:` rule, every problem located in the file."""
    doc = load_document(path, what="price table")
    wrapped = isinstance(doc.data, dict) and "prices" in doc.data
    checked = check_schema(doc, _Validator(_prices_rule(wrapped=wrapped)))
    if checked.issues:
        raise ManifestError(checked.issues)
    table: dict[str, Any] = doc.data["prices"] if wrapped else doc.data
    return table


def _prices_rule(*, wrapped: bool) -> dict[str, Any]:
    """The manifest's `prices:` rule, for a table alone or under a `prices:` key beside the
    keys `schemas/prices.json` has: a copy of that file is read as it is, and an unknown key,
    prices in another currency or another rate of a credit (which `--prices` does not set) are
    refused rather than left unread."""
    rule = schema()["properties"]["prices"]
    if not wrapped:
        return {"$defs": schema()["$defs"], **rule}
    rate = read_data("prices.json")["usd_per_credit"]
    return {"$defs": schema()["$defs"], "type": "object", "additionalProperties": False,
            "properties": {
                "prices": rule, "$comment": {"type": "string"},
                "estimate": {"const": True, "x-message": (
                    "prices given before a run are estimates whatever a file says: the cost "
                    "each create reports is what is recorded")},
                "currency": {"const": "USD",
                             "x-message": "prices are read in USD only, not {value}"},
                "usd_per_credit": {"const": rate, "x-message": (
                    f"{{value}} is not the rate of a credit, which --prices does not set "
                    f"(${rate:g} a credit, as schemas/prices.json says)")}}}


@dataclass
class SchemaResult:
    """The schema's issues, and which top-level sections they are in ("" for the root itself)."""

    issues: list[Issue]
    bad: set[str]

    def ok(self, *sections: str) -> bool:
        return "" not in self.bad and not self.bad.intersection(sections)


def check_schema(doc: Document, validator: jsonschema.Validator | None = None) -> SchemaResult:
    """Every schema error of the document (against the manifest schema, or `validator`'s), in
    document order, each located and explained."""
    issues: list[Issue] = list(doc.issues)
    bad: set[str] = set()
    for error in (validator or _validator()).iter_errors(doc.data):
        bad.update(_sections(error))
        issues.extend(_explain(doc, error))
    unique = {(i.line, i.column, i.path, i.message): i for i in issues}
    return SchemaResult(sorted(unique.values(), key=lambda i: (i.line, i.column, i.path)), bad)


def _sections(error: jsonschema.ValidationError) -> set[str]:
    """The top-level sections an error makes unusable; "" when the whole document is."""
    if error.absolute_path:
        return {str(error.absolute_path[0])}
    if error.validator == "required":
        return {name for name in error.validator_value if name not in error.instance}
    if error.validator == "additionalProperties":
        return {"(unknown keys)"}
    return {""}


def _explain(doc: Document, error: jsonschema.ValidationError) -> list[Issue]:
    path: Path_ = tuple(error.absolute_path)
    if "propertyNames" in error.relative_schema_path:
        return [doc.issue(path + (error.instance,), issue.message, issue.hint, key=True)
                for issue in _explain(doc, _detached(error))]
    custom = error.schema.get("x-message") if isinstance(error.schema, dict) else None
    if isinstance(custom, dict):
        custom = custom.get(error.validator)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = list(error.schema.get("properties", {}))
        extra = [k for k in error.instance if k not in known]
        return [doc.issue(path + (k,), f"unknown key {k!r}", _owner_hint(error, k)
                          or did_you_mean(k, known) or f"allowed here: {', '.join(known)}", key=True)
                for k in extra]
    if key := _key_in_text(doc, error):
        return [doc.issue(path, f"YAML read this text as the key {key!r} and its value", _QUOTE_HINT)]
    if error.validator == "required":
        return [doc.issue(path, error.message.replace("is a required property",
                                                      "is required here"))]
    if error.validator in ("anyOf", "oneOf") and isinstance(error.instance, dict):
        branch = _matching_branch(error)
        if branch:
            return [issue for sub in branch for issue in _explain(doc, sub)]
    if custom:
        return [doc.issue(path, custom.format(value=_short(error.instance)),
                          _spelling_hint(error))]
    if error.validator == "enum":
        choices = ", ".join(str(c) for c in error.validator_value)
        return [doc.issue(path, f"{_short(error.instance)} is not one of: {choices}",
                          _enum_hint(error.instance, error.validator_value))]
    if not_finite := _not_finite_message(error):
        return [doc.issue(path, not_finite, _NOT_FINITE_HINT)]
    if error.validator == "type":
        wanted = error.validator_value
        wanted = " or ".join(wanted) if isinstance(wanted, list) else wanted
        return [doc.issue(path, f"{_short(error.instance)} is not of type {wanted}",
                          _spelling_hint(error))]
    return [doc.issue(path, error.message)]


def _owner_hint(error: jsonschema.ValidationError, key: str) -> str:
    """For an unknown key that belongs to an empty section written above it (`run:` and, not
    indented under it, `concurrency: 3`): indent it."""
    keys = list(error.instance)
    for owner in keys[:keys.index(key)]:
        rule = error.schema.get("properties", {}).get(owner, {})
        if error.instance[owner] is None and key in rule.get("properties", {}):
            return f"indent it under {owner}:, whose key it is"
    return ""


def _key_in_text(doc: Document, error: jsonschema.ValidationError) -> str:
    """The key YAML read in text whose ': ' was not quoted (`- A shot: rain at night` is a
    mapping), in a place that takes text or an object whose keys it is not (a prompt): "" for
    any other error. A key of one word or near a known key, or a value written in quotes or as a
    block, is a key meant as one (`- txt: "A calm lake"`, `- prompt: A calm lake`): told as an
    unknown key with the keys it may be, since quoting the whole would send the key in the prompt."""
    value = error.instance
    if error.validator not in ("anyOf", "oneOf") or not (isinstance(value, dict) and len(value) == 1):
        return ""
    [key] = value
    takes_text = any(sub.validator == "type" and "string" in sub.validator_value
                     and not sub.relative_path for sub in error.context)
    known = {name for sub in error.context if isinstance(sub.schema, dict)
             for name in sub.schema.get("properties", {})}
    wordy = len(key.split()) > 1 and not did_you_mean(key, known)
    written = doc.extents.get(tuple(error.absolute_path) + (key,))
    plain = written is not None and doc.text[written[0]] not in "'\"|>"
    return key if takes_text and wordy and plain else ""


def _spelling_hint(error: jsonschema.ValidationError) -> str:
    """The hint for a value of the wrong kind: a number where text belongs (`name: 2024`), text
    the loader kept as it was written (see _TEXT_WHEN) where a number or a boolean does, a list
    written without its '- ', or a section left empty, its keys not indented under it."""
    value = error.instance
    wanted = error.validator_value if error.validator == "type" else None
    if isinstance(value, int | float) and wanted in ("string", ["string"]):
        return f"write it in quotes: \"{value}\""
    if wanted == "array" and isinstance(value, dict | str):
        return "start each item of the list on a line of its own with '- '"
    if wanted == "object" and value is None and error.absolute_path:
        return f"indent its keys under {error.absolute_path[-1]}:, or leave it out"
    tag = _RESOLVER.resolve(yaml.ScalarNode, value, (True, False)) if isinstance(value, str) else ""
    if tag in (_INT_TAG, _FLOAT_TAG):
        return "write it as a plain number: no quotes, no leading 0, 0x, + or _, at most 15 digits"
    if tag == _BOOL_TAG:
        return "only true and false are booleans; yes, no, on and off are text"
    if wanted in ("number", "integer"):
        return _exponent_hint(value)
    return ""


def _exponent_hint(value: Any) -> str:
    """For text written as a number with an exponent (`1e3`, text to YAML 1.1) where a number
    belongs: the number to write instead; "" for any other value."""
    if isinstance(value, str) and _EXPONENT.fullmatch(value):
        return f"YAML reads {value} as text: write it as {decimal.Decimal(value):f}"
    return ""


def _detached(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """A property-name error as if about the name alone, so it is explained like any value."""
    return jsonschema.ValidationError(error.message, validator=error.validator,
                                      validator_value=error.validator_value,
                                      instance=error.instance, schema=error.schema)


def _enum_hint(value: Any, choices: list[Any]) -> str:
    """A list where one value belongs, a number written in quotes or with an exponent, or a near
    miss."""
    if isinstance(value, list):
        return "one value here, not a list"
    quoted = [c for c in choices if not isinstance(c, str) and str(c) == value]
    if quoted:
        return f"write {quoted[0]} without quotes"
    numbers = any(isinstance(c, int | float) and not isinstance(c, bool) for c in choices)
    return (numbers and _exponent_hint(value)) or did_you_mean(str(value), [str(c) for c in choices])


def _matching_branch(error: jsonschema.ValidationError) -> list[jsonschema.ValidationError]:
    """The errors of the alternative the value was meant for: the one whose type fits it, or,
    when several do, the one it misses by the fewest errors (a start frame with a bad `id` is
    an image reference with a bad id, not a file reference with two unknown keys)."""
    branches: dict[Any, list[jsonschema.ValidationError]] = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    fitting = sorted((subs for subs in branches.values()
                      if not any(s.validator == "type" and not s.relative_path for s in subs)),
                     key=len)
    if len(fitting) == 1 or (len(fitting) > 1 and len(fitting[0]) < len(fitting[1])):
        return fitting[0]
    return []


def _short(value: Any) -> str:
    """A value as the manifest spells it (`.nan`, not JSON's `NaN`), cut to one short line."""
    if _not_finite(value):
        return ".nan" if math.isnan(value) else "-.inf" if value < 0 else ".inf"
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."
