"""The simulated account behind the routes: key, limits, balance, generations, faults.

Everything here is plain Python called from the event loop, one request at a time: the routes
in `app.py` and `media.py` only translate HTTP to these calls and back. A refusal is raised as
`Refusal(status, body)`.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import math
import random
import re
import uuid
from collections.abc import Mapping
from itertools import islice
from typing import Any

from runner import catalog
from runner.catalog import UUID_RE
from runner.plan import canonical_json
from runner.simulator import answers
from runner.simulator.answers import Refusal, v1_error
from runner.simulator.books import Books, Summary
from runner.simulator.limits import RateWindow, SimClock
from runner.simulator.render import COMPLETE, FAILED, Generation, Renderer
from runner.simulator.settings import FAULTS, SimSettings
from runner.simulator.statefile import Account, StateFile
from runner.simulator.uploads import Uploads

DEFAULT_PAGE = 10


class Backend:
    """One simulated API key and its account."""

    def __init__(self, settings: SimSettings, clock: SimClock, *, clips: int) -> None:
        self.settings = settings
        self.clock = clock
        self.catalog = catalog.load()
        self.books = Books(settings.log_path)
        self.renderer = Renderer(settings.slots, settings.slots * settings.queue_per_slot)
        self.uploads = Uploads(user_id=settings.user_id, clock=clock,
                               expiry=settings.upload_expiry_seconds,
                               extensions=self.catalog.rules["image_extensions"])
        self.generations: dict[str, Generation] = {}
        self.balance = settings.balance_credits
        self.origin = ""
        self.kept: StateFile | None = None  # where each change is written, if anywhere
        self._clips = clips
        self._late: list[tuple[float, Any]] = []  # creates still to be carried out: (when, body)
        self._rng = random.Random(settings.seed)
        self._rates = {name: settings.fault_rate(name) for name in FAULTS}
        self._requests = RateWindow(settings.requests_per_minute)
        self._creates = RateWindow(settings.creates_per_minute)
        self._bearer = f"Bearer {settings.api_key}".encode()
        word = settings.moderation_word
        self._marker = re.compile(rf"(?i)(?<!\w){re.escape(word)}(?!\w)") if word else None

    def server_time(self) -> float:
        """Real time by the simulated API's clock, `clock_ahead` seconds off this machine's."""
        return self.clock.wall() + self.settings.clock_ahead

    def hit(self, fault: str) -> bool:
        """Whether this call meets the fault (named as in settings.FAULTS), by its rate."""
        rate = self._rates[fault]
        if rate > 0 and self._rng.random() < rate:
            self.books.record_fault(fault)
            return True
        return False

    def authorize(self, header: str | None) -> None:
        """Pass the right key; answer a malformed one 500 and a wrong or missing one 401."""
        if header is not None and hmac.compare_digest(header.encode(), self._bearer):
            return
        scheme, _, token = (header or "").partition(" ")
        if scheme.casefold() == "bearer" and token.strip() and not UUID_RE.match(token.strip()):
            raise Refusal(500, answers.MALFORMED_KEY)
        raise Refusal(401, answers.UNAUTHORIZED)

    def admit(self) -> None:
        """Count one API call against the requests-per-minute limit, or refuse it with 429."""
        now = self.clock.now()
        self._within(self._requests, now, "requests a minute")
        self._requests.add(now)

    def _within(self, window: RateWindow, now: float, what: str) -> None:
        wait = window.wait(now)
        if wait > 0:
            raise self._too_many(f"rate limit exceeded: {window.limit} {what}", wait)

    def _too_many(self, message: str, wait: float) -> Refusal:
        headers = {}
        if self.settings.retry_after:
            headers["Retry-After"] = retry_after(self.clock.real_seconds(wait),
                                                 whole=self.clock.scale == 1)
        return Refusal(429, v1_error(message, "rate-limited"), headers=headers)

    def create(self, body: Any) -> tuple[Generation, dict[str, Any]]:
        """Check, bill and queue one create; the generation and the answer to send."""
        now = self.clock.now()
        self._within(self._creates, now, "creates a minute")
        self._creates.add(now)
        violations = self.catalog.check_request(body, uploaded=self.uploads.uploaded)
        if violations:
            raise Refusal(400, answers.validation_errors(violations))
        params = body["parameters"]
        moderated = bool(self._marker and self._marker.search(params["prompt"]))
        if moderated and self.settings.moderation_stage == "create":
            raise Refusal(self.settings.moderation_status,
                          answers.moderation(str(self.settings.moderation_word)))
        usd = self.catalog.price(body["model"], str(self.catalog.resolution_of(params["mode"])),
                                 params["duration"]) or 0.0
        credits = round(usd / self.catalog.usd_per_credit)
        if self.balance is not None and credits > self.balance:
            raise Refusal(self.settings.out_of_credit_status, v1_error(
                f"not enough API credits: this generation costs {credits}, {self.balance} left",
                "insufficient-credits"))
        wait = self.renderer.room_in(now)
        if wait is not None:
            raise self._too_many(f"the generation queue is full ({self.renderer.queued} waiting)", wait)
        failed = moderated or self.hit("failed")
        jitter = self.settings.render_jitter_seconds
        generation = Generation(
            id=str(uuid.uuid4()), request=body, created_at=now,
            render_seconds=self.settings.render_seconds + self._rng.uniform(-jitter, jitter),
            outcome=FAILED if failed else COMPLETE, clip=self.pick_clip(params),
            cost_credits=credits, image_id=str(uuid.uuid4()), moderated=moderated,
            made_at=self.server_time())
        self.renderer.submit(generation, now)
        self.generations[generation.id] = generation
        if self.balance is not None:
            self.balance -= credits
        self.books.record_create(generation, rendering=self.renderer.rendering,
                                 queued=self.renderer.queued)
        if self.kept is not None:
            self.kept.created(generation, balance=self.balance)
        return generation, answers.created(generation, self.settings, usd)

    def create_later(self, body: Any) -> None:
        """A create carried out `late_seconds` from now, whatever was answered meanwhile (a
        refusal then, by the limits or the balance, drops it)."""
        self._late.append((self.clock.now() + self.settings.late_seconds, body))

    def _catch_up(self) -> float:
        """Bring the account up to now, late creates that came due first; now."""
        now = self.clock.now()
        due = [body for at, body in self._late if at <= now]
        if due:
            self._late = [(at, body) for at, body in self._late if at > now]
            for body in due:
                with contextlib.suppress(Refusal):
                    self.create(body)
        self.renderer.catch_up(now)
        return now

    def pick_clip(self, params: Mapping[str, Any]) -> int:
        """The clip a request shows: by its prompt and styles, so a sweep shows variety."""
        text = canonical_json([params.get("prompt"), params.get("style_ids", [])])
        return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:4], "big") % self._clips

    def held(self, generation_id: str) -> Generation | None:
        """A generation not deleted, brought up to the present."""
        self._catch_up()
        generation = self.generations.get(generation_id)
        return None if generation is None or generation.deleted else generation

    def poll(self, generation_id: str) -> dict[str, Any]:
        generation = self.held(generation_id)
        if generation is None:
            if self.settings.unknown_generation == "404":
                raise Refusal(404, v1_error(f"generation {generation_id} not found", "not-found"))
            return {"generations_by_pk": None}
        return {"generations_by_pk": self.describe(generation)}

    def describe(self, generation: Generation) -> dict[str, Any]:
        return answers.generation_json(generation, origin=self.origin,
                                       user_id=self.settings.user_id, clock=self.clock)

    def listing(self, user_id: str, query: Mapping[str, str]) -> dict[str, Any]:
        """The user's generations, newest first, a page at a time."""
        offset = _count(query, "offset", 0, least=0)
        limit = _count(query, "limit", DEFAULT_PAGE, least=1)
        if user_id != self.settings.user_id:
            return {"generations": []}
        self._catch_up()
        live = (g for g in reversed(self.generations.values()) if not g.deleted)
        return {"generations": [self.describe(g) for g in islice(live, offset, offset + limit)]}

    def delete(self, generation_id: str) -> dict[str, Any]:
        """Delete from the account and the CDN; a render under way keeps its slot until it ends."""
        generation = self.held(generation_id)
        if generation is None:
            return {"delete_generations_by_pk": None}
        generation.deleted = True
        if self.kept is not None:
            self.kept.deleted(generation_id)
        return {"delete_generations_by_pk": {"id": generation_id}}

    def upload(self, fields: dict[str, str], file_size: int | None, *, authorized: bool) -> None:
        """A posted start-frame form, taken (and kept) or refused."""
        image_id = self.uploads.receive(fields, file_size, authorized=authorized)
        if self.kept is not None:
            self.kept.uploaded(image_id)

    def me(self) -> dict[str, Any]:
        return answers.me(self.settings, self.balance)

    def summary(self) -> Summary:
        self._catch_up()
        return self.books.summary(self.generations.values())

    def account(self) -> Account:
        """The account as of now, as a state file keeps it."""
        now = self._catch_up()
        return Account(user_id=self.settings.user_id, username=self.settings.username,
                       balance=self.balance, epoch=self.clock.epoch, scale=self.clock.scale,
                       at=now, wall=self.clock.wall(), generations=self.generations,
                       uploads=set(self.uploads.uploaded))

    def restore(self, account: Account) -> None:
        """Take over a saved account: its balance (unless the settings give one: then theirs),
        generations (renders carry on) and uploads."""
        if self.settings.balance_credits is None:
            self.balance = account.balance
        self.generations = dict(account.generations)
        self.uploads.uploaded = frozenset(account.uploads)
        self.renderer.restore(self.generations.values(), self.clock.now())
        self.books.remember(self.generations.values())

    def stop(self) -> None:
        """Close the request log, and leave the state file (if any) as one snapshot."""
        self.books.close()
        if self.kept is not None:
            self.kept.close(self.account())
            self.kept = None


def _count(query: Mapping[str, str], name: str, default: int, *, least: int) -> int:
    text = query.get(name)
    if text is None:
        return default
    if not text.isdigit() or int(text) < least:
        raise Refusal(400, v1_error(f"{name} must be an integer of at least {least}",
                                    "validation-failed", f"$.{name}"))
    return int(text)


def retry_after(seconds: float, *, whole: bool) -> str:
    """A Retry-After value: whole seconds rounded up, or milliseconds when time is scaled."""
    if whole:
        return str(max(1, math.ceil(seconds)))
    return f"{max(seconds, 0.001):.3f}".rstrip("0").rstrip(".")
