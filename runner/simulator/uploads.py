"""Start-frame uploads: `POST /v1/init-image` hands out a presigned S3-style form, the form takes
the file. An UPLOADED start frame is valid only once its form was really posted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from runner.simulator.answers import Refusal, s3_refusal, v1_error
from runner.simulator.limits import SimClock

UPLOAD_PATH = "/s3/"
_MEDIA_TYPES = {"jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}


@dataclass(frozen=True, slots=True)
class Form:
    """One presigned form: what it must carry and until when it is good."""

    image_id: str
    fields: dict[str, str]
    expires_at: float


class Uploads:
    """Forms handed out, by their object key, and the image ids really uploaded."""

    def __init__(self, *, user_id: str, clock: SimClock, expiry: float,
                 extensions: Sequence[str]) -> None:
        self._user_id = user_id
        self._clock = clock
        self._expiry = expiry
        self._extensions = tuple(extensions)
        self._secret = secrets.token_bytes(16)
        self._forms: dict[str, Form] = {}
        self.uploaded: frozenset[str] = frozenset()

    def issue(self, body: Any, origin: str) -> dict[str, Any]:
        """The `uploadInitImage` answer; `fields` is a JSON string, as the live API sends it."""
        extension = body.get("extension") if isinstance(body, dict) else None
        if extension not in self._extensions:
            raise Refusal(400, v1_error(f"extension must be one of {', '.join(self._extensions)}",
                                        "validation-failed", "$.extension"))
        image_id = str(uuid.uuid4())
        key = f"{self._user_id}/initImages/{image_id}.{extension}"
        expires_at = self._clock.now() + self._expiry
        policy = base64.b64encode(json.dumps({
            "expiration": self._clock.iso(expires_at),
            "conditions": [{"key": key}, {"Content-Type": _MEDIA_TYPES[extension]}],
        }).encode()).decode()
        fields = {"Content-Type": _MEDIA_TYPES[extension], "key": key,
                  "X-Amz-Algorithm": "AWS4-HMAC-SHA256", "Policy": policy,
                  "X-Amz-Signature": hmac.new(self._secret, policy.encode(), hashlib.sha256).hexdigest()}
        self._forms[key] = Form(image_id, fields, expires_at)
        return {"uploadInitImage": {"id": image_id, "url": origin + UPLOAD_PATH, "key": key,
                                    "fields": json.dumps(fields)}}

    def receive(self, fields: dict[str, str], file_size: int | None, *, authorized: bool) -> str:
        """Accept a posted form, or refuse it as S3 does (403 for anything about the policy);
        the image id it was for."""
        if authorized:
            raise s3_refusal(403, "AccessDenied", "the presigned form takes no Authorization header")
        form = self._forms.get(fields.get("key", ""))
        if form is None or any(fields.get(name) != value for name, value in form.fields.items()):
            raise s3_refusal(403, "AccessDenied", "Invalid according to Policy: Policy Condition failed")
        if self._clock.now() > form.expires_at:
            raise s3_refusal(403, "AccessDenied", "Invalid according to Policy: Policy expired.")
        if not file_size:
            raise s3_refusal(400, "InvalidArgument",
                             "POST requires a non-empty file field, after every field of the form")
        self.uploaded = self.uploaded | {form.image_id}
        return form.image_id
