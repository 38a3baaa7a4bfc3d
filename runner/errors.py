"""One exception tree for the whole runner.

    HailuoError                      base of every error the runner raises on purpose
    ├── UsageError                   bad command line or settings            exit 2
    ├── ManifestError                a manifest with problems (all of them)   exit 2
    ├── StateError                   output folder unusable or locked         exit 4
    │   ├── LockedError              another live run holds the folder        exit 4
    │   └── FolderLost               the folder moved or deleted under a run  exit 4
    └── ApiError                     the Leonardo API said no (api.py is the only translator)
        ├── TransientError           retry with backoff
        │   ├── RateLimited          429: slow down, honour retry_after
        │   └── Unreachable          no connection to the API: nothing was sent
        ├── UnknownOutcome           a create that may have happened: reconcile before retrying
        ├── PermanentError           validation: the job fails, never retried
        │   └── ModerationError      content moderation: the job fails, never retried
        ├── AuthError                key rejected: the run stops                exit 4
        └── QuotaError               balance exhausted: the run stops, resumable exit 3

A failed job is data, recorded with its reason; these exceptions are how the API client tells
the engine which kind of failure it met. Anything outside this tree is a bug and keeps its
traceback.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass


def one_line(text: str) -> str:
    """Text from outside (a prompt, an API's answer) as one line of a terminal or a file:
    control characters (newlines and escapes among them) and the marks that reverse the
    direction of what follows them shown as spaces."""
    return _NOT_ONE_LINE.sub(" ", text)


_NOT_ONE_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


class HailuoError(Exception):
    """Base of the runner's own errors. `announced` is set on one that ended a run whose end
    was already logged and sent to the webhook: it is not told of once more."""

    exit_code = 1
    announced = False


class UsageError(HailuoError):
    exit_code = 2


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem in a manifest, located: file, line, column, JSON path, message, hint; or, with
    `problems` above 1, that many of one kind, said once ("980 more cells: ...")."""

    file: str
    line: int
    column: int
    path: str
    message: str
    hint: str = ""
    problems: int = 1

    def render(self, kind: str = "") -> str:
        """`file:line:col: path: message (hint: ...)`; a `kind` ("warning") is said after the
        place, as compilers say theirs."""
        said = f"{kind}: " if kind else ""
        text = f"{self.file}:{self.line}:{self.column}: {said}{self.path}: {self.message}"
        return f"{text} (hint: {self.hint})" if self.hint else text

    def as_dict(self) -> dict[str, object]:
        return {"file": self.file, "line": self.line, "column": self.column,
                "path": self.path, "message": self.message, "hint": self.hint,
                "problems": self.problems}


def count_problems(issues: Iterable[Issue]) -> int:
    """How many problems `issues` report, those said once for many counted in full."""
    return sum(issue.problems for issue in issues)


class ManifestError(HailuoError):
    """Every problem found in one or more manifests, reported at once."""

    exit_code = 2

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        super().__init__("\n".join(issue.render() for issue in issues))


class StateError(HailuoError):
    exit_code = 4


class LockedError(StateError):
    pass


class FolderLost(StateError):
    """The output folder was moved or deleted during the run; `paid` is what the run paid for
    meanwhile (`generation_ids`, their `count` and `usd`), which a deleted folder no longer
    tells: its end is announced with it."""

    def __init__(self, message: str, *, paid: dict[str, object]) -> None:
        super().__init__(message)
        self.paid = paid


class ApiError(HailuoError):
    """An answer of the API that is not success; `status` is the HTTP status when there was one."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TransientError(ApiError):
    retry_after: float | None = None  # seconds the server asked for, when it said (RateLimited)


class RateLimited(TransientError):
    def __init__(self, message: str, *, status: int | None = 429,
                 retry_after: float | None = None) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class Unreachable(TransientError):
    pass


class UnknownOutcome(ApiError):
    pass


class PermanentError(ApiError):
    pass


class ModerationError(PermanentError):
    pass


class AuthError(ApiError):
    exit_code = 4


class QuotaError(ApiError):
    exit_code = 3
