"""The bodies the simulator answers with, each shaped as `leonardo-api.md` says the live API does.

Inferred shapes (the 429, 402 and 404 bodies) follow the v1 error form `{"error", "path", "code"}`
that every documented v1 error uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from xml.sax.saxutils import escape

from runner.catalog import Violation
from runner.simulator.limits import SimClock, iso_time
from runner.simulator.render import COMPLETE, FAILED, Generation
from runner.simulator.settings import SimSettings

UNLIMITED_TOKENS = 1_000_000_000


class Refusal(Exception):
    """Any answer but success: the status, the body (JSON, or text for the upload form), headers."""

    def __init__(self, status: int, body: Any, *, headers: dict[str, str] | None = None,
                 content_type: str = "application/json") -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.content_type = content_type


def v1_error(message: str, code: str, path: str = "$") -> dict[str, str]:
    return {"error": message, "path": path, "code": code}


SERVICE_ERROR = v1_error("Service Error", "unexpected")
UNAUTHORIZED = v1_error("Authentication hook unauthorized this request", "access-denied")
MALFORMED_KEY = v1_error("Invalid response from authorization hook", "unexpected")
NOT_FOUND = v1_error("Endpoint not found", "not-found")
NOT_JSON = ("<html><head><title>502 Bad Gateway</title></head>"
            "<body><center><h1>502 Bad Gateway</h1></center></body></html>")


def validation_errors(violations: Sequence[Violation]) -> list[dict[str, Any]]:
    """The v2 validation-error list, one entry holding every broken rule."""
    errors = [{"message": f"{v.field}: {v.message}", "path": v.field, "rule": v.rule}
              for v in violations]
    return [{"message": "Validation error", "extensions": {"code": "VALIDATION_ERROR", "details": {
        "message": errors[0]["message"], "errors": errors}}}]


def moderation(word: str) -> dict[str, str]:
    return {"error": f"content moderation filter: the prompt contains {word!r}", "code": "unexpected"}


def created(generation: Generation, settings: SimSettings, usd: float) -> dict[str, Any]:
    """The create answer, nested as the live API answers or flat as the published spec says."""
    if settings.create_answer == "flat":
        answer: dict[str, Any] = {"generationId": generation.id}
        if settings.answer_cost:
            answer["apiCreditCost"] = generation.cost_credits
        return answer
    nested: dict[str, Any] = {"generationId": generation.id}
    if settings.answer_cost:
        nested["cost"] = {"amount": f"{usd:.2f}", "unit": "DOLLARS"}
    return {"generate": nested}


def generation_json(generation: Generation, *, origin: str, user_id: str,
                    clock: SimClock) -> dict[str, Any]:
    """A generation as `generations_by_pk` and the user's list show it."""
    params = generation.parameters
    images: list[dict[str, Any]] = []
    if generation.status == COMPLETE:
        stem = (f"{origin}/cdn/users/{user_id}/generations/{generation.id}/"
                f"{generation.request['model']}-0")
        images.append({"id": generation.image_id, "url": stem + ".jpg",
                       "motionMP4URL": stem + ".mp4", "nsfw": False})
    answer = {"id": generation.id, "status": generation.status, "prompt": params["prompt"],
              "imageWidth": params["width"], "imageHeight": params["height"],
              "public": generation.request.get("public", False),
              "createdAt": _made(generation, clock), "generated_images": images}
    if generation.moderated and generation.status == FAILED:
        answer["prompt_moderations"] = [{"moderationClassification": ["content moderation filter"]}]
    return answer


def me(settings: SimSettings, balance: int | None) -> dict[str, Any]:
    return {"user_details": [{
        "user": {"id": settings.user_id, "username": settings.username},
        "apiConcurrencySlots": settings.slots,
        "apiPaidTokens": UNLIMITED_TOKENS if balance is None else balance,
        "apiSubscriptionTokens": settings.subscription_credits, "tokenRenewalDate": None}]}


def s3_refusal(status: int, code: str, message: str) -> Refusal:
    """The refusal S3 answers a refused form upload or a missing object with: an XML body."""
    return Refusal(status, f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{escape(code)}</Code>'
                           f"<Message>{escape(message)}</Message></Error>", content_type="application/xml")


def _made(generation: Generation, clock: SimClock) -> str:
    """When the generation was made, as `createdAt` says it: the real time its create was
    accepted (the simulated instant, for one kept by a state file of before)."""
    if generation.made_at is None:
        return clock.iso(generation.created_at)
    return iso_time(generation.made_at)
