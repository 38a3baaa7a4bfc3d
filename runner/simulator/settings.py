"""Every knob of the local Leonardo API simulator, with its default and why it is what it is.

The contract is `shared/design/leonardo-api.md`. Where that page marks a behaviour "inferred" or
says "accept both", the simulator makes it a setting so that clients can be tested against every
variant; the defaults below are the best guess at what the live API does.

Time. Every duration here is in *simulated* seconds. `time_scale` is how many simulated seconds
pass in one real second: at 60 a 90 s render takes 1.5 real seconds and the per-minute limits
count over one real second. A test can also jump the clock (`Simulator.clock.advance`).

Account
    api_key               "": the key derived from user_id (`account_key`, a UUID), so an account
                          kept in a state file takes the same key after a restart without the
                          key being written anywhere. It is therefore no secret: it guards
                          against a client that forgets or garbles its key, not against anyone
                          who knows the user id. The only key it accepts. A key that is not a
                          UUID answers 500 "Invalid response from authorization hook", a wrong
                          or missing one 401 "access-denied", as the live API does.
    user_id, username     a fresh random UUID, "simulator": what `GET /v1/me` reports.
    balance_credits       None: unlimited (`apiPaidTokens` then reads 1,000,000,000). Otherwise
                          each accepted create spends its price in credits (1 credit = $0.0015,
                          so 180 credits ~ $0.27) and a create that costs more than is left is
                          refused with `out_of_credit_status` (402 by default: the live answer
                          is undocumented, "requests pause until credit is added").
    subscription_credits  0: the credits of the account's API plan, as `apiSubscriptionTokens`
                          shows them beside the balance. Shown only: creates are paid from
                          balance_credits alone.
    port                  0: a free port on 127.0.0.1.

Rendering
    render_seconds        90: the live API takes 1 to 4 minutes a clip.
    render_jitter_seconds 30: each render takes render_seconds plus or minus up to this much.
    slots                 10 concurrent renders per key (`apiConcurrencySlots`).
    queue_per_slot        20: renders beyond the slots wait in a queue of slots x 20; a create
                          that finds the queue full answers 429 (inferred).

Limits
    requests_per_minute   2000 over every API endpoint (not the CDN, not the upload form);
                          None: unlimited.
    creates_per_minute    100 create requests; None: unlimited. Both answer 429.
    retry_after           True: 429 answers carry Retry-After, in *real* seconds (the simulated
                          wait divided by time_scale): a whole number at time_scale 1, a decimal
                          when scaled. The live API's 429 is undocumented; turn it off to test
                          a client without the header.
    upload_expiry_seconds 120: the presigned upload form expires after 2 minutes.
    clock_ahead           0: real seconds the simulated API's clock is ahead of this machine's
                          (below 0: behind), read by the `createdAt` of the generations it
                          makes and by the Date header of every answer, as a server's clock
                          set apart from the client's would be.
    date_header           True; False: every answer's Date is empty, as a server without a
                          clock may leave it out (RFC 9110): a client cannot tell its clock.

Faults, each a probability from 0 to 1, drawn from one random source seeded by `seed`
    fault_500             any call (API, CDN, upload form) answers 500 before doing anything.
    fault_create_500      a create is accepted (and billed) but answers 500: the double-billing
                          trap a client must reconcile through the generations list.
    fault_create_late     a create answers 500 at once and is carried out `late_seconds` (10,
                          simulated) later all the same: a server that finishes work it said
                          had failed, which a client that looks for it too soon pays twice for.
    fault_reset           any call has its connection reset before doing anything.
    fault_slow            any call waits `slow_seconds` (simulated, so scaled) before answering.
    fault_not_json        an API call that succeeded answers 200 with an HTML body instead
                          (a create so answered was accepted).
    fault_failed          a generation ends FAILED instead of COMPLETE.
    fault_truncate        a CDN download (not a Range request, as a resume makes) announces the
                          whole length and sends half of it before closing.
    fault_not_video       a CDN download of a video answers 200 with an HTML page instead (a
                          proxy's or a cache's), whole and of the length it announces.
    moderation_word       prompts holding this word (any case) are moderated; None: never.
    moderation_status     400 or 403 (the live API is seen to use both).
    moderation_stage      "create": the create answers moderation_status with
                          {"error": "content moderation filter: ...", "code": "unexpected"};
                          "render": it is accepted and ends FAILED with `prompt_moderations`.
    seed                  None: a different run every time.

Answer shapes where the contract says "accept both" or "inferred"
    create_answer         "nested": {"generate": {"generationId", "cost": {"amount", "unit"}}},
                          as the live API answers; "flat": {"generationId", "apiCreditCost"}, as
                          the published spec says.
    answer_cost           True; False leaves the cost out (a client must cope with its absence).
    unknown_generation    "null": an unknown or deleted id polls as {"generations_by_pk": null}
                          with 200 (inferred); "404": a 404 with a v1 error body.

Books
    log_path              None; a path: one JSON line per request (time, endpoint, method, path,
                          status, fault, generation id, real milliseconds), never the key. Status
                          0: the simulator reset the connection; 499: the client hung up first.
    state_path            None: the account lives and dies with the process. A path: the account
                          is kept in that file across processes (`statefile` says how): read at
                          start when it exists (its user id, username, balance, generations and
                          uploaded start frames then win over the settings above, but for a
                          balance_credits given: it sets the kept account's balance), rewritten
                          whole at start and stop, and every accepted create, upload and delete
                          appended before it is answered, so even a killed process loses
                          nothing a client was told. Renders go on while the simulator is
                          stopped, at the time scale it had. One simulator per file.
"""

from __future__ import annotations

import dataclasses
import math
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.config import parse_duration
from runner.errors import UsageError

KEY_NAMESPACE = uuid.UUID("5e1d3c1a-7a43-4f0e-9b8e-2a4c51d0b7c3")
FAULTS = ("500", "create_500", "create_late", "reset", "slow", "not_json", "failed", "truncate",
          "not_video")
_CHOICES = {"moderation_stage": ("create", "render"), "create_answer": ("nested", "flat"),
            "unknown_generation": ("null", "404")}


def _new_uuid() -> str:
    return str(uuid.uuid4())


def account_key(user_id: str) -> str:
    """The key of the account with this user id, unless one was given: a name-based UUID."""
    return str(uuid.uuid5(KEY_NAMESPACE, user_id))


@dataclass(frozen=True, slots=True)
class SimSettings:
    """How the simulator behaves; see the module docstring for each setting and its default."""

    api_key: str = field(default="", repr=False)
    user_id: str = field(default_factory=_new_uuid)
    username: str = "simulator"
    balance_credits: int | None = None
    subscription_credits: int = 0
    out_of_credit_status: int = 402
    port: int = 0
    render_seconds: float = 90.0
    render_jitter_seconds: float = 30.0
    slots: int = 10
    queue_per_slot: int = 20
    requests_per_minute: int | None = 2000
    creates_per_minute: int | None = 100
    retry_after: bool = True
    upload_expiry_seconds: float = 120.0
    time_scale: float = 1.0
    clock_ahead: float = 0.0
    date_header: bool = True
    seed: int | None = None
    fault_500: float = 0.0
    fault_create_500: float = 0.0
    fault_create_late: float = 0.0
    late_seconds: float = 10.0
    fault_reset: float = 0.0
    fault_slow: float = 0.0
    slow_seconds: float = 30.0
    fault_not_json: float = 0.0
    fault_failed: float = 0.0
    fault_truncate: float = 0.0
    fault_not_video: float = 0.0
    moderation_word: str | None = "moderate-me"
    moderation_status: int = 400
    moderation_stage: str = "create"
    create_answer: str = "nested"
    answer_cost: bool = True
    unknown_generation: str = "null"
    log_path: Path | None = None
    state_path: Path | None = None

    def __post_init__(self) -> None:
        if not self.api_key:
            object.__setattr__(self, "api_key", account_key(self.user_id))
        for name in FAULTS:
            rate = self.fault_rate(name)
            if not 0.0 <= rate <= 1.0:
                raise UsageError(f"fault_{name} must be a rate from 0 to 1, not {rate}")
        for name in ("render_seconds", "slow_seconds", "late_seconds", "upload_expiry_seconds",
                     "time_scale"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise UsageError(f"{name} must be a finite number more than 0, not {value}")
        if not math.isfinite(self.clock_ahead):
            raise UsageError(f"clock_ahead must be a finite number, not {self.clock_ahead}")
        if not 0 <= self.render_jitter_seconds < self.render_seconds:
            raise UsageError("render_jitter_seconds must be at least 0 and less than render_seconds")
        for name in ("slots", "requests_per_minute", "creates_per_minute"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UsageError(f"{name} must be at least 1, not {value}")
        for name in ("queue_per_slot", "balance_credits", "subscription_credits"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise UsageError(f"{name} must not be negative, not {value}")
        if not 0 <= self.port <= 65535:
            raise UsageError(f"port must be from 0 to 65535, not {self.port}")
        if self.moderation_status not in (400, 403):
            raise UsageError(f"moderation_status must be 400 or 403, not {self.moderation_status}")
        if not 400 <= self.out_of_credit_status <= 499:
            raise UsageError(f"out_of_credit_status must be a 4xx status, not {self.out_of_credit_status}")
        for name, allowed in _CHOICES.items():
            if getattr(self, name) not in allowed:
                raise UsageError(f"{name} must be one of {', '.join(allowed)}, not {getattr(self, name)!r}")

    def with_account(self, user_id: str, username: str) -> SimSettings:
        """These settings for a saved account: its names, and its key unless one was given."""
        given = self.api_key != account_key(self.user_id)
        return dataclasses.replace(self, user_id=user_id, username=username,
                                   api_key=self.api_key if given else "")

    def fault_rate(self, name: str) -> float:
        """The probability of the fault named as in FAULTS ("500", "create_500", ...)."""
        return getattr(self, f"fault_{name}")

    @classmethod
    def from_text(cls, values: Mapping[str, str | None]) -> SimSettings:
        """Settings from text values by field name, as a command line gives them; None skips.

        Durations (`*_seconds`) accept `90`, `90s`, `2m`; "none" sets an optional value to None.
        """
        fields = {f.name: f for f in dataclasses.fields(cls)}
        parsed: dict[str, Any] = {}
        for name, text in values.items():
            if text is None:
                continue
            if name not in fields:
                raise UsageError(f"unknown simulator setting {name!r} (one of: {', '.join(fields)})")
            parsed[name] = _convert(name, str(fields[name].type), text)
        return cls(**parsed)


def _boolean(text: str, name: str) -> bool:
    folded = text.strip().casefold()
    if folded in ("1", "true", "yes", "on"):
        return True
    if folded in ("0", "false", "no", "off"):
        return False
    raise UsageError(f"{name}: {text!r} is not true or false")


def _number(kind: Callable[[str], Any], spoken: str) -> Callable[[str, str], Any]:
    def convert(text: str, name: str) -> Any:
        try:
            return kind(text)
        except ValueError:
            raise UsageError(f"{name}: {text!r} is not {spoken}") from None
    return convert


_CONVERTERS: dict[str, Callable[[str, str], Any]] = {
    "str": lambda text, name: text, "int": _number(int, "a whole number"),
    "float": _number(float, "a number"),
    "bool": _boolean, "Path": lambda text, name: Path(text),
}


def _convert(name: str, kind: str, text: str) -> Any:
    optional = kind.endswith(" | None")
    if optional and text.strip().casefold() == "none":
        return None
    if name.endswith("_seconds"):
        return parse_duration(text, name=name, zero=True)
    return _CONVERTERS[kind.removesuffix(" | None")](text, name)
