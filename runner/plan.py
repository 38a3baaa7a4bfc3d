"""The plan: cells turned into jobs, each with its wire request, its key and its estimated cost."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from runner.config import RunSettings

KEY_VERSION = "hailuo-job/v1"
UPLOAD_PREFIX = "upload:sha256:"


def canonical_json(value: Any) -> str:
    """Sorted-key compact JSON: the form every hash in the runner is taken of."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def job_key(request: Mapping[str, Any], sample: int) -> str:
    """A stable, versioned hash of the canonical wire request and the sample index."""
    text = f"{KEY_VERSION}\n{canonical_json(request)}\n{sample}"
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
    skipped_invalid: int = 0
    warnings: tuple[str, ...] = field(default=())

    @property
    def estimated_usd(self) -> float:
        return round(sum(job.estimated_cost for job in self.jobs), 2)
