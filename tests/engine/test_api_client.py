"""The Leonardo client against the simulator: every answer variant, every error translated once."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import io
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web
from enginekit import down_url

from runner import files
from runner.api import (
    ANSWER_LIMIT,
    LeonardoClient,
    Timeouts,
    _cost,
    _generation,
    _status_error,
    open_client,
)
from runner.errors import (
    AuthError,
    ModerationError,
    PermanentError,
    QuotaError,
    RateLimited,
    TransientError,
    UnknownOutcome,
)
from runner.simulator import SimSettings, Simulator

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
BODY: dict[str, Any] = {"model": "hailuo-2_3", "public": False,
                        "parameters": {"prompt": "A quiet street at night, rain falling",
                                       "mode": "RESOLUTION_768", "duration": 6,
                                       "width": 1376, "height": 768}}


def with_client(scenario: Callable[[LeonardoClient, Simulator], Awaitable[T]], *,
                key: str | None = None, **settings: Any) -> T:
    values = {"render_seconds": 2.0, "render_jitter_seconds": 0.0, "time_scale": 1.0,
              "seed": 1, **settings}

    async def main() -> T:
        async with Simulator(SimSettings(**values)) as sim, open_client(
                base_url=sim.base_url, api_key=key or sim.api_key,
                timeouts=Timeouts(connect=1.0, call=0.3, download=1.0)) as client:
            return await scenario(client, sim)
    return asyncio.run(main())


@contextlib.asynccontextmanager
async def serving(path: str, answer: Callable[[web.Request], Awaitable[web.StreamResponse]]
                  ) -> AsyncIterator[str]:
    """A server on 127.0.0.1 answering GET `path` with `answer`, for answers the simulator never
    gives; its root URL."""
    app = web.Application()
    app.router.add_get(path, answer)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def body(prompt: str = BODY["parameters"]["prompt"]) -> dict[str, Any]:
    return {**BODY, "parameters": {**BODY["parameters"], "prompt": prompt}}


@pytest.mark.parametrize("shape, cost", [("nested", (0.27, None)), ("flat", (None, 180.0))])
def test_create_reads_both_answer_shapes(shape: str, cost: tuple[Any, Any]) -> None:
    async def scenario(client: LeonardoClient, sim: Simulator) -> Any:
        return await client.create(body())
    created = with_client(scenario, create_answer=shape)
    assert (created.cost_usd, created.cost_credits) == cost
    assert len(created.generation_id) == 36


def test_a_create_without_a_cost_is_still_a_create() -> None:
    async def scenario(client: LeonardoClient, sim: Simulator) -> Any:
        return await client.create(body())
    created = with_client(scenario, answer_cost=False)
    assert created.cost_usd is None and created.cost_credits is None


def test_poll_list_me_and_download_a_finished_generation() -> None:
    async def scenario(client: LeonardoClient, sim: Simulator) -> Any:
        created = await client.create(body())
        pending = await client.generation(created.generation_id)
        sim.clock.advance(5)
        done = await client.generation(created.generation_id)
        account = await client.me()
        listed = await client.generations(account.user_id, offset=0, limit=50)
        sink = io.BytesIO()
        size = await client.download(done.video_url or "", sink)
        return pending, done, account, listed, size, sink.getvalue(), client.server_clock
    pending, done, account, listed, size, data, server_clock = with_client(scenario)
    assert (pending.status, pending.video_url, pending.done) == ("PENDING", None, False)
    assert done.status == "COMPLETE" and done.video_url.endswith(".mp4") and done.poster_url
    assert account.slots == 10 and [g.id for g in listed] == [done.id]
    assert -2 < server_clock.low <= 0 <= server_clock.high < 2  # read: the clocks agree
    assert listed[0].prompt == BODY["parameters"]["prompt"] and listed[0].created_at
    assert size == len(data) and data[4:8] == b"ftyp"


@pytest.mark.parametrize("mode", ["null", "404"])
def test_an_unknown_generation_is_permanent(mode: str) -> None:
    async def scenario(client: LeonardoClient, sim: Simulator) -> Any:
        return await client.generation("0c3d2b8e-51f4-4a43-9bd6-9a0f0f0e0a11")
    with pytest.raises(PermanentError, match="not found"):
        with_client(scenario, unknown_generation=mode)


def test_a_start_frame_goes_through_the_presigned_form() -> None:
    async def scenario(client: LeonardoClient, sim: Simulator) -> Any:
        frame = ROOT / "jobs" / "images" / "sunset.png"
        image_id = await client.upload(frame.read_bytes(), frame.name, "png")
        frame = {"start_frame": [{"image": {"id": image_id, "type": "UPLOADED"}}]}
        return await client.create({"model": "hailuo-2_3-fast", "public": False,
                                    "parameters": {**BODY["parameters"], "guidances": frame}})
    assert with_client(scenario).generation_id


def create_error(prompt: str = BODY["parameters"]["prompt"], **settings: Any) -> BaseException:
    async def scenario(client: LeonardoClient, sim: Simulator) -> Any:
        for _ in range(3):
            await client.create(body(prompt))
    with pytest.raises(Exception) as caught:
        with_client(scenario, **settings)
    return caught.value


@pytest.mark.parametrize("settings, kind", [
    ({"key": "0c3d2b8e-51f4-4a43-9bd6-9a0f0f0e0a11"}, AuthError),
    ({"key": "not-a-uuid"}, AuthError),
    ({"prompt": "a moderate-me street", "moderation_status": 400}, ModerationError),
    ({"prompt": "a moderate-me street", "moderation_status": 403}, ModerationError),
    ({"prompt": ""}, PermanentError),
    ({"balance_credits": 10}, QuotaError),
    ({"balance_credits": 10, "out_of_credit_status": 429}, QuotaError),  # not a rate limit
    ({"balance_credits": 10, "out_of_credit_status": 400}, QuotaError),
    ({"fault_500": 1.0}, UnknownOutcome),
    ({"fault_create_500": 1.0}, UnknownOutcome),
    ({"fault_reset": 1.0}, UnknownOutcome),
    ({"fault_not_json": 1.0}, UnknownOutcome),
    ({"fault_slow": 1.0, "slow_seconds": 2.0}, UnknownOutcome),
])
def test_create_errors_become_domain_errors(settings: dict[str, Any], kind: type) -> None:
    settings = dict(settings)
    key = settings.pop("key", None)
    if key:
        async def scenario(client: LeonardoClient, sim: Simulator) -> Any:
            await client.create(body())
        with pytest.raises(kind) as caught:
            with_client(scenario, key=key)
        assert key not in str(caught.value)
        return
    error = create_error(**settings)
    assert type(error) is kind, error


def test_a_validation_error_names_each_broken_rule_once() -> None:
    error = create_error(prompt="")
    assert str(error) == "refused (400 parameters.prompt: prompt must be 1 to 3000 characters, not 0)"


@pytest.mark.parametrize("retry_after", [True, False])
def test_a_429_carries_its_retry_after_when_given(retry_after: bool) -> None:
    error = create_error(creates_per_minute=1, retry_after=retry_after)
    assert isinstance(error, RateLimited)
    assert (error.retry_after is not None) is retry_after
    assert error.retry_after is None or 0 < error.retry_after <= 60


def test_a_429_retry_after_date_is_read_on_the_apis_clock() -> None:
    """A Retry-After given as a date is a wait from the answer's own Date, however far this
    machine's clock is from the API's."""
    headers = {"Retry-After": "Mon, 01 Dec 2031 12:00:30 GMT", "Date": "Mon, 01 Dec 2031 12:00:00 GMT"}
    error = _status_error(429, b"{}", headers, secret="k", create=True)
    assert isinstance(error, RateLimited) and error.retry_after == 30.0


@pytest.mark.parametrize("fault", ["fault_500", "fault_reset", "fault_not_json"])
def test_poll_errors_are_transient(fault: str) -> None:
    async def scenario(client: LeonardoClient, sim: Simulator) -> Any:
        await client.me()
    with pytest.raises(TransientError):
        with_client(scenario, **{fault: 1.0})


def test_a_refused_connection_is_transient_even_for_a_create() -> None:
    async def main() -> None:
        async with open_client(base_url=down_url(), api_key="k") as client:
            await client.create(body())
    with pytest.raises(TransientError) as caught:
        asyncio.run(main())
    assert not isinstance(caught.value, UnknownOutcome)


class Received(bytearray):
    """A download's bytes in memory, restarted as a staged file is."""

    def write(self, chunk: bytes) -> None:
        self.extend(chunk)

    def restart(self) -> None:
        self.clear()


def test_a_download_cut_short_goes_on_from_where_it_stopped() -> None:
    async def scenario(client: LeonardoClient, sim: Simulator) -> Received:
        created = await client.create(body())
        sim.clock.advance(5)
        done = await client.generation(created.generation_id)
        received = Received()
        with pytest.raises(TransientError, match="the download broke off after"):
            await client.download(done.video_url or "", received)
        half = len(received)
        rest = await client.download(done.video_url or "", received, offset=half)
        assert half and rest and half + rest == len(received)
        return received
    received = with_client(scenario, fault_truncate=1.0)
    assert files.check_mp4(lambda count, at: bytes(received[at:at + count]), len(received)) is None


FILE = b"the whole file"


@pytest.mark.parametrize("status, content_range, body, whole", [
    (200, None, FILE, True),  # the Range header unheeded: the whole file, started over
    (206, "bytes 9-13/14", b" file", True),  # the rest, as asked
    (206, "bytes 0-13/14", FILE, False),  # another range
    (206, "bytes 9-10/14", b" f", False),  # not to the end
    (206, None, b" file", False),
    (416, "bytes */14", b"", False),
], ids=["whole", "rest", "from 0", "short", "no range", "416"])
def test_a_resumed_download_appends_only_the_rest_it_asked_for(
        status: int, content_range: str | None, body: bytes, whole: bool) -> None:
    """The sink holds the first 9 bytes; it ends whole, or emptied to start over."""
    async def answer(request: web.Request) -> web.Response:
        assert request.headers["Range"] == "bytes=9-"
        headers = {"Content-Range": content_range} if content_range else {}
        return web.Response(status=status, body=body, headers=headers)

    async def main() -> Received:
        async with serving("/clip.mp4", answer) as root, open_client(base_url=root, api_key="k") as client:
            sink = Received(b"the whole")
            with contextlib.nullcontext() if whole else pytest.raises(
                    TransientError, match="could not go on from byte 9"):
                await client.download(f"{root}/clip.mp4", sink, offset=9)
            return sink
    assert asyncio.run(main()) == (FILE if whole else b"")


def test_a_truncated_download_is_transient() -> None:
    async def scenario(client: LeonardoClient, sim: Simulator) -> Any:
        created = await client.create(body())
        sim.clock.advance(5)
        done = await client.generation(created.generation_id)
        await client.download(done.video_url or "", io.BytesIO())
    with pytest.raises(TransientError, match="bytes"):
        with_client(scenario, fault_truncate=1.0)


@pytest.mark.parametrize("status, message, kind", [
    (402, "", QuotaError),
    (429, "not enough API credits to run this job", QuotaError),
    (400, "Your balance is too low", QuotaError),
    (429, "Not enough concurrency slots available, try again later", RateLimited),
    (403, "Insufficient permissions", PermanentError),
    (400, "content moderation filter: a credit card on a table", ModerationError),
])
def test_an_answer_stops_the_run_for_credit_only_when_it_speaks_of_credit(
        status: int, message: str, kind: type) -> None:
    error = _status_error(status, json.dumps({"error": message}).encode(), {}, secret="k",
                          create=True)
    assert type(error) is kind, error


@pytest.mark.parametrize("written", ["2026-11-24T21:50:04.123", "2026-11-24T21:50:04.123Z",
                                     "2026-11-24T16:50:04.123-05:00"])
def test_a_generations_time_without_a_zone_is_utc_in_any_zone_of_this_machine(
        written: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "EST5")  # five hours behind UTC, as POSIX writes it
    time.tzset()
    try:
        made = _generation({"id": "g", "createdAt": written}, "k").created_at
    finally:
        monkeypatch.undo()
        time.tzset()
    assert made == datetime(2026, 11, 24, 21, 50, 4, 123000, tzinfo=UTC).timestamp()


def test_an_error_text_of_the_api_is_kept_to_one_line() -> None:
    """It goes into the job's reason, the log and `status`: a newline or an escape in it would
    make lines of its own there."""
    raw = json.dumps({"error": "bad\n2026-11-24 22:00:00 INFO run ended: exit 0\r\x1b[31m"}).encode()
    error = _status_error(400, raw, {}, secret="k", create=True)
    assert str(error) == "refused (400 bad 2026-11-24 22:00:00 INFO run ended: exit 0  [31m)"


def test_an_id_from_the_api_is_one_segment_of_the_path_it_is_polled_at() -> None:
    """A generation id holding `../` (a broken or hostile answer) is polled as that id, not at
    the path it would climb to (`/v1/me` here)."""
    async def scenario(client: LeonardoClient, sim: Simulator) -> Any:
        with pytest.raises(PermanentError, match="was not found"):
            await client.generation("../../v1/me")
        return dict(sim.books.requests)
    requests = with_client(scenario)
    assert requests.get("poll") == {200: 1} and "me" not in requests


def test_a_creates_answer_tells_the_apis_clock_even_when_it_refuses() -> None:
    """A create's answer, a 500 included, bounds the API's clock at the moment of the sending:
    the clock a lost create is looked for by."""
    async def scenario(client: LeonardoClient, sim: Simulator) -> Any:
        with pytest.raises(UnknownOutcome):
            await client.create(body())
        return client.server_clock
    server_clock = with_client(scenario, fault_create_500=1.0, clock_ahead=-600.0)
    assert -602 < server_clock.low <= server_clock.ahead <= server_clock.high < -598


@pytest.mark.parametrize("sent", ["with its length", "chunked", "gzip"])
def test_an_answer_larger_than_any_api_answer_is_garbled_and_not_read_whole(sent: str) -> None:
    """Counted as it unpacks, not as it comes: gzip brings 32 MB as 32 kB."""
    whole = b'"' + b"x" * (2 * ANSWER_LIMIT if sent == "gzip" else ANSWER_LIMIT) + b'"'
    packed = gzip.compress(whole) if sent == "gzip" else whole

    async def answer(request: web.Request) -> web.StreamResponse:
        if sent == "gzip":
            return web.Response(body=packed, headers={"Content-Encoding": "gzip",
                                                      "Content-Type": "application/json"})
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        if sent == "chunked":
            response.enable_chunked_encoding()
        else:
            response.content_length = len(whole)
        await response.prepare(request)
        await response.write(whole)
        return response

    async def main() -> str:
        async with serving("/v1/me", answer) as root, open_client(base_url=root, api_key="k") as client:
            with pytest.raises(TransientError) as refused:
                await client.me()
            return str(refused.value)
    assert sent != "gzip" or len(packed) < 64 << 10
    assert asyncio.run(main()) == "GET /v1/me: an answer of more than 16 MB, which no API answer is"


def test_values_of_the_wrong_kind_in_an_answer_are_taken_for_none_given() -> None:
    """A cost of Infinity would make the results no JSON; a URL that is a list, a size that is
    text, would reach the journal: each is read as not given."""
    assert _cost({"cost": {"amount": "Infinity", "unit": "DOLLARS"}}) == (None, None)
    assert _cost({"apiCreditCost": float("inf")}) == (None, None)
    found = _generation({"id": "g", "status": "COMPLETE", "imageWidth": "1376", "imageHeight": 768,
                         "generated_images": [{"motionMP4URL": 5, "url": ["a"]}]}, "k")
    assert (found.width, found.height, found.video_url, found.poster_url) == (None, 768, None, None)


@pytest.mark.parametrize("raw", [b'[{"message": "bad", "extensions": "x"}]',
                                 b'[{"message": "bad", "extensions": {"details": [1]}}]',
                                 b'[{"message": "bad", "extensions": {"details": {"errors": 5}}}]'])
def test_an_error_answer_of_an_odd_shape_is_told_by_its_message(raw: bytes) -> None:
    assert str(_status_error(400, raw, {}, secret="k", create=True)) == "refused (400 bad)"


def test_a_moderations_text_quoting_the_key_keeps_it_out_of_the_reason() -> None:
    found = _generation({"id": "g", "status": "FAILED", "prompt_moderations": [
        {"moderationClassification": ["a cat, the key s3cr3t-k3y"]}]}, "s3cr3t-k3y")
    assert found.moderation == '[{"moderationClassification": ["a cat, the key ***"]}]'
