"""The Leonardo client: the one place where HTTP answers and socket errors become domain errors.

Every call returns plain values or raises one of `runner.errors`' API errors, chosen by what the
engine must do next (leonardo-api.md, "Errors"):

    TransientError   connection refused, reset, timeout, 5xx, a garbled answer: retry later
    RateLimited      429, with the Retry-After it carried
    Unreachable      no connection could be made (refused, timed out): nothing was sent
    UnknownOutcome   a create that may have happened (5xx, reset or timeout after sending, a 200
                     that could not be read): look for it before creating it again
    PermanentError   400 validation, 404 and other 4xx: the job fails, never retried
    ModerationError  the content moderation filter (400 or 403)
    AuthError        401, or the 500 "Invalid response from authorization hook": stop the run
    QuotaError       402 or an out-of-credit answer: stop the run, resumable

The key travels only in the `authorization` header of API calls; CDN downloads and the
presigned upload form get no auth header (the form answers 403 when given one), and no message
ever quotes a header.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import aiohttp

from runner.errors import (
    ApiError,
    AuthError,
    ModerationError,
    PermanentError,
    QuotaError,
    RateLimited,
    TransientError,
    UnknownOutcome,
    Unreachable,
    one_line,
)
from runner.schedule import http_time, parse_retry_after

DEFAULT_BASE_URL = "https://cloud.leonardo.ai/api/rest"
# The most an API answer (JSON of a few kB) is read to; one longer is garbled, and not kept.
ANSWER_LIMIT = 16 << 20
# What an out-of-credit refusal names, whatever its status (a 429 about slots or a 403 about
# permissions names none of them).
_QUOTA_WORDS = ("credit", "balance", "tokens")


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds allowed per call: connecting, an API call, a whole download."""

    connect: float = 10.0
    call: float = 30.0
    download: float = 300.0

    def __post_init__(self) -> None:
        if min(self.connect, self.call, self.download) <= 0:
            raise ValueError(f"timeouts must be more than zero: {self!r}")


@dataclass(frozen=True, slots=True)
class Created:
    """What a create answered: the generation id and the cost when it named one."""

    generation_id: str
    cost_usd: float | None
    cost_credits: float | None


@dataclass(frozen=True, slots=True)
class Generation:
    """A generation as a poll or the account's list shows it."""

    id: str
    status: str
    prompt: str
    created_at: float | None
    width: int | None
    height: int | None
    video_url: str | None
    poster_url: str | None
    moderation: str | None

    @property
    def done(self) -> bool:
        return self.status in ("COMPLETE", "FAILED")


class ServerClock:
    """How far the API's clock is ahead of this machine's (behind: below zero), within the
    bounds its answers' Date headers set: each was stamped, in whole seconds of the API's
    clock, between the request's sending and the answer's arrival by this machine's. An answer
    that contradicts the bounds so far (a clock set since) starts them afresh. The answers
    read are those of `/v1/me` (every run's first call), of creates and of the generations
    list."""

    def __init__(self) -> None:
        self.low, self.high = -math.inf, math.inf

    def note(self, stamped: float | None, *, asked: float, answered: float) -> None:
        if stamped is None:
            return
        low, high = stamped - answered, stamped + 1.0 - asked
        if low > self.high or high < self.low:
            self.low, self.high = low, high
        else:
            self.low, self.high = max(self.low, low), min(self.high, high)

    @property
    def known(self) -> bool:
        """Whether an answer has told the API's clock yet (one with a Date that could be read)."""
        return self.low > -math.inf

    @property
    def ahead(self) -> float:
        """The least offset the answers allow (0 before any): a moment of this machine's read
        on the API's clock by it is never later than the API's own reading of it, and at most
        a second and a round trip earlier. So a create's generation, made after its sending,
        never reads as made before it, where another's made since would be taken first."""
        return self.low if self.low > -math.inf else 0.0


@dataclass(frozen=True, slots=True)
class Account:
    user_id: str
    slots: int | None
    paid_credits: float | None = None  # `apiPaidTokens`; None when the answer has no number
    subscription_credits: float | None = None  # `apiSubscriptionTokens`: the API plan's, as above


class Sink(Protocol):
    """Where a download's bytes go: a staged file, or memory. `restart` forgets what was
    written, for a resumed download that the server answers with the whole file."""

    def write(self, chunk: bytes, /) -> object: ...

    def restart(self) -> object: ...


class LeonardoClient:
    """Calls of the Leonardo REST API over one `aiohttp.ClientSession` that the caller owns.

    `api` names the API that ids (of uploaded start frames) belong to: its root URL, unless
    the caller gives a name that outlives the URL (a simulator served on a new port each run)."""

    def __init__(self, session: aiohttp.ClientSession, *, base_url: str, api_key: str,
                 timeouts: Timeouts = Timeouts(), api: str | None = None) -> None:
        self._session = session
        self._root = base_url.rstrip("/")
        self.api = api or self._root
        self._key = api_key  # kept out of every message made of an answer (`_message`)
        self._headers = {"authorization": f"Bearer {api_key}", "accept": "application/json"}
        self._call_timeout = aiohttp.ClientTimeout(total=timeouts.call, connect=timeouts.connect)
        self._download_timeout = aiohttp.ClientTimeout(total=timeouts.download,
                                                       connect=timeouts.connect)
        self.server_clock = ServerClock()
        self.answers = 0  # API calls answered (whatever the status)
        self.refusals = 0  # API calls that could not connect at all

    def __repr__(self) -> str:
        return f"LeonardoClient({self._root!r})"

    async def create(self, body: dict[str, Any]) -> Created:
        answer = await self._call("POST", "/v2/generations", body, create=True, dated=True)
        found = answer.get("generate") if isinstance(answer, dict) else None
        found = found if isinstance(found, dict) else answer
        generation_id = found.get("generationId") if isinstance(found, dict) else None
        if not isinstance(generation_id, str) or not generation_id:
            raise UnknownOutcome("the create answered 200 without a generation id", status=200)
        return Created(generation_id, *_cost(found))

    async def generation(self, generation_id: str) -> Generation:
        answer = await self._call("GET", f"/v1/generations/{_segment(generation_id)}")
        if not isinstance(answer, dict) or "generations_by_pk" not in answer:
            raise TransientError("the poll answer has no generations_by_pk")
        if answer["generations_by_pk"] is None:
            raise PermanentError(f"generation {generation_id} was not found (deleted?)", status=200)
        return _generation(answer["generations_by_pk"], self._key)

    async def me(self) -> Account:
        answer = await self._call("GET", "/v1/me", dated=True)
        try:
            details = answer["user_details"][0]
            user_id = details["user"]["id"]
            paid, subscription = details.get("apiPaidTokens"), details.get("apiSubscriptionTokens")
        except (KeyError, IndexError, TypeError) as exc:
            raise TransientError("the /v1/me answer has no user") from exc
        if type(user_id) not in (str, int) or str(user_id) == "":  # null, empty: no account named
            raise TransientError("the /v1/me answer names no user")
        return Account(str(user_id), details.get("apiConcurrencySlots"), _credits(paid),
                       _credits(subscription))

    async def generations(self, user_id: str, *, offset: int, limit: int) -> list[Generation]:
        """A page of the account's generations, newest first."""
        answer = await self._call(
            "GET", f"/v1/generations/user/{_segment(user_id)}?offset={offset}&limit={limit}", dated=True)
        listed = answer.get("generations") if isinstance(answer, dict) else None
        if not isinstance(listed, list):
            raise TransientError("the generations list answer has no generations")
        return [_generation(item, self._key) for item in listed if isinstance(item, dict)]

    async def upload(self, content: bytes, name: str, extension: str) -> str:
        """Upload a start frame (`content`, from a file called `name`) through the presigned
        form; returns its init-image id."""
        answer = await self._call("POST", "/v1/init-image", {"extension": extension})
        try:
            form = answer["uploadInitImage"]
            fields = form["fields"]
            fields = json.loads(fields) if isinstance(fields, str) else dict(fields)
            url, image_id = str(form["url"]), str(form["id"])
        except (KeyError, TypeError, ValueError) as exc:
            raise TransientError("the init-image answer has no usable upload form") from exc
        data = aiohttp.FormData()
        for name, value in fields.items():
            data.add_field(name, str(value))
        data.add_field("file", content, filename=name,
                       content_type=f"image/{'jpeg' if extension == 'jpg' else extension}")
        async with self._request("POST", url, data=data, timeout=self._call_timeout) as response:
            body = await response.read()
            if not 200 <= response.status < 300:
                raise _upload_error(response.status, body, secret=self._key)
        return image_id

    async def download(self, url: str, sink: Sink, *, offset: int = 0) -> int:
        """Stream `url` into `sink`, from byte `offset` when it is more than 0 (the rest of a
        transfer that broke off, asked for with a Range request; a server that sends the whole
        file instead has the sink restarted); returns the byte count, checked against
        Content-Length."""
        ranged = {"Range": f"bytes={offset}-"} if offset else None
        async with self._request("GET", url, headers=ranged, timeout=self._download_timeout) as response:
            if offset and response.status in (206, 416):
                if not _rest_from(response, offset):  # another range, or none to give
                    sink.restart()
                    raise TransientError(f"the server could not go on from byte {offset}: the "
                                         "download starts over")
            elif response.status != 200:
                raise _status_error(response.status, await response.read(), response.headers,
                                    secret=self._key,
                                    create=False)
            elif offset:
                sink.restart()
            expected = response.content_length
            count = 0
            try:
                async for chunk in response.content.iter_chunked(1 << 16):
                    sink.write(chunk)
                    count += len(chunk)
            except (TimeoutError, aiohttp.ClientError) as exc:
                raise TransientError(f"the download broke off after {count} bytes") from exc
        if expected is not None and count != expected:
            raise TransientError(f"the download stopped at {count} of {expected} bytes")
        return count

    async def _call(self, method: str, path: str, body: Any = None, *, create: bool = False,
                    dated: bool = False) -> Any:
        """One API call: the parsed JSON of a 2xx answer, or the domain error it amounts to;
        `dated`, the answer's Date is noted on the server clock."""
        asked = time.time()
        try:
            async with self._session.request(method, self._root + path, json=body,
                                             headers=self._headers,
                                             timeout=self._call_timeout) as response:
                raw = await _answer_body(response)
                status, headers = response.status, response.headers
        except aiohttp.ClientConnectorError as exc:
            self.refusals += 1
            raise Unreachable(f"cannot connect to the API: {exc.os_error}") from exc
        except aiohttp.ConnectionTimeoutError as exc:
            self.refusals += 1
            raise Unreachable("cannot connect to the API: no answer in time") from exc
        except (TimeoutError, aiohttp.ClientError, _TooLarge) as exc:
            kind = UnknownOutcome if create else TransientError
            raise kind(f"{method} {path.split('?')[0]}: {_describe(exc)}") from exc
        self.answers += 1
        if dated:
            self.server_clock.note(http_time(headers.get("Date")), asked=asked, answered=time.time())
        if not 200 <= status < 300:
            raise _status_error(status, raw, headers, secret=self._key, create=create)
        try:
            return json.loads(raw)
        except ValueError as exc:
            kind = UnknownOutcome if create else TransientError
            raise kind(f"{method} {path.split('?')[0]}: the answer is not JSON",
                       status=status) from exc

    @asynccontextmanager
    async def _request(self, method: str, url: str, **options: Any) -> AsyncIterator[aiohttp.ClientResponse]:
        """A request outside the API (CDN, upload form): no auth header, socket errors translated."""
        try:
            async with self._session.request(method, url, **options) as response:
                yield response
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise TransientError(f"{method} {url.split('?')[0]}: {_describe(exc)}") from exc


@asynccontextmanager
async def open_client(*, base_url: str, api_key: str, timeouts: Timeouts = Timeouts(),
                      connections: int = 100, api: str | None = None) -> AsyncIterator[LeonardoClient]:
    """A client with the run's one ClientSession, closed when the run ends."""
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        yield LeonardoClient(session, base_url=base_url, api_key=api_key, timeouts=timeouts,
                             api=api)


def _status_error(status: int, raw: bytes, headers: Any, *, secret: str, create: bool) -> ApiError:
    message = _message(raw, secret)
    folded = message.casefold()
    said = f"{status} {message}".strip()
    if status == 401 or "authorization hook" in folded:
        return AuthError(f"the API key was rejected ({said})", status=status)
    if status in (400, 403) and "moderation" in folded:  # its text may quote the prompt
        return ModerationError(f"refused by content moderation ({said})", status=status)
    # How the API refuses a create it has no credit for is not documented: a 402, or any 4xx
    # (a 429 included) that says so, stops the run rather than being retried as a rate limit.
    if status == 402 or (400 <= status < 500 and any(w in folded for w in _QUOTA_WORDS)):
        return QuotaError(f"the account is out of credit ({said})", status=status)
    if status == 429:
        # A date is read against the answer's own Date, the API's clock, not against this machine's.
        now = http_time(headers.get("Date")) or time.time()
        retry_after = parse_retry_after(headers.get("Retry-After"), now_epoch=now)
        return RateLimited(f"rate limited ({said})", retry_after=retry_after)
    if status >= 500:
        kind = UnknownOutcome if create else TransientError
        return kind(f"server error ({said})", status=status)
    if status in (408, 409, 425):
        return TransientError(f"try again ({said})", status=status)
    return PermanentError(f"refused ({said})", status=status)


def _upload_error(status: int, raw: bytes, *, secret: str) -> ApiError:
    """The presigned form's answer: 403 means it expired (start over), 5xx is transient."""
    if status == 403 or status >= 500:
        return TransientError(f"the start frame upload form answered {status}", status=status)
    return PermanentError(f"the start frame upload was refused ({status} {_message(raw, secret)})".strip(),
                          status=status)


def _message(raw: bytes, secret: str) -> str:
    """The error text of any of the API's error bodies (v1 object, v2 list), or the raw start
    of one that is no JSON, as one line (`one_line`): it goes into reasons, logs and messages.
    So the key (`secret`), which an API or a gateway may quote in refusing it, is never in it."""
    try:
        said, cut = _said(json.loads(raw)), None
    except ValueError:  # its first 200 characters, cut once the key is hidden
        said, cut = raw[:200 + len(secret)].decode("utf-8", "replace"), 200
    return one_line(_hidden(said, secret)[:cut]).strip()


def _hidden(text: str, secret: str) -> str:
    """`text` with the key (`secret`) in it shown as ***."""
    return text.replace(secret, "***") if secret else text


def _said(body: Any) -> str:
    if isinstance(body, list) and body and isinstance(body[0], dict):
        details = _object(_object(body[0].get("extensions")).get("details"))
        errors = details.get("errors")
        nested = [e.get("message", "") for e in (errors if isinstance(errors, list) else [])
                  if isinstance(e, dict)]
        parts = [details.get("message") or body[0].get("message", ""), *nested]
        return "; ".join(dict.fromkeys(str(p) for p in parts if p))  # the first is often one of the rest
    if isinstance(body, dict):
        return str(body.get("error") or body.get("message") or "")
    return ""


def _segment(value: str) -> str:
    """An id the API gave, as one segment of a path: a `/`, `..`, `?` or `#` in it stays in it."""
    return urllib.parse.quote(value, safe="")


class _TooLarge(Exception):
    """An API answer longer than ANSWER_LIMIT."""


async def _answer_body(response: aiohttp.ClientResponse) -> bytes:
    """An API answer's body, read only while it stays under ANSWER_LIMIT, as it comes after
    decompression (a small gzip answer may unpack to gigabytes)."""
    body = bytearray()
    async for chunk in response.content.iter_chunked(1 << 16):
        body += chunk
        if len(body) > ANSWER_LIMIT:
            raise _TooLarge()
    return bytes(body)


def _object(value: Any) -> dict[str, Any]:
    """`value` if an answer gave it as an object, else an empty one."""
    return value if isinstance(value, dict) else {}


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "no answer in time"
    if isinstance(exc, _TooLarge):
        return f"an answer of more than {ANSWER_LIMIT >> 20} MB, which no API answer is"
    return f"{type(exc).__name__}"


def _cost(found: dict[str, Any]) -> tuple[float | None, float | None]:
    """(USD, credits) from a create answer: nested `cost {amount, unit}` or flat `apiCreditCost`."""
    cost = found.get("cost")
    if isinstance(cost, dict):
        amount = _number(cost.get("amount"))
        unit = str(cost.get("unit", "DOLLARS")).upper()
        return (amount, None) if unit.startswith("DOLLAR") or unit == "USD" else (None, amount)
    return None, _number(found.get("apiCreditCost"))


def _number(value: Any) -> float | None:
    """A cost the API named: a finite number above 0, else None (none named)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if 0 < number < math.inf else None


def _credits(value: Any) -> float | None:
    """Credits `/v1/me` tells of: a number (true and false are none), else None (none told)."""
    return float(value) if type(value) in (int, float) else None


def _generation(item: dict[str, Any], secret: str) -> Generation:
    """A generation as an answer shows it; its moderation's text, kept as the job's reason,
    without the key (`secret`)."""
    images = item.get("generated_images") or []
    first = _object(images[0]) if images else {}
    moderations = item.get("prompt_moderations")
    return Generation(
        id=str(item.get("id", "")), status=str(item.get("status", "PENDING")).upper(),
        prompt=str(item.get("prompt") or ""), created_at=_epoch(item.get("createdAt")),
        width=_whole(item.get("imageWidth")), height=_whole(item.get("imageHeight")),
        video_url=_url(first.get("motionMP4URL")), poster_url=_url(first.get("url")),
        moderation=_hidden(json.dumps(moderations), secret) if moderations else None)


def _whole(value: Any) -> int | None:
    return value if type(value) is int else None


def _url(value: Any) -> str | None:
    """A URL the answer gives, if it gives one as text (anything else is none given)."""
    return value if isinstance(value, str) and value else None


def _rest_from(response: aiohttp.ClientResponse, offset: int) -> bool:
    """Whether a 206 answer holds the file from byte `offset` to its end, as its
    `Content-Range: bytes FIRST-LAST/SIZE` and its length say."""
    unit, _, span = response.headers.get("Content-Range", "").partition(" ")
    first, _, rest = span.partition("-")
    last, _, size = rest.partition("/")
    if response.status != 206 or unit != "bytes" or not (first + last + size).isdigit():
        return False
    whole = int(size)
    return (int(first) == offset and int(last) == whole - 1
            and response.content_length in (None, whole - offset))


def _epoch(value: Any) -> float | None:
    """An ISO time of the API as seconds since 1970; one without a zone is UTC, as the API's
    times are, whatever this machine's zone."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()

