"""What lives beside the API: the CDN serving each finished generation's clip and poster, and the
presigned form a start frame is uploaded through. Neither takes the API key, as on the live side.

The clips are small real H.264 files shipped in `runner/assets/`, so a browser can play a gallery
made from a simulated run.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from aiohttp import BodyPartReader, web

from runner.simulator.answers import s3_refusal
from runner.simulator.backend import Backend
from runner.simulator.books import CALL_FAULTS, CALL_GENERATION
from runner.simulator.render import COMPLETE

ASSETS = Path(__file__).resolve().parent.parent / "assets"
# What the `not_video` fault serves in place of a video: a page a proxy or a cache might answer.
NOT_VIDEO = "<html><body><h1>502 Bad Gateway</h1></body></html>\n"


@dataclass(frozen=True, slots=True)
class Clip:
    """One shipped clip and its poster, held in memory (they are a few kilobytes each)."""

    video: bytes
    poster: bytes


@functools.cache
def load_clips() -> tuple[Clip, ...]:
    """The shipped clips `clip-N.mp4`, each with its poster `poster-N.jpg` (read once)."""
    videos = sorted(ASSETS.glob("clip-*.mp4"))
    if not videos:
        raise FileNotFoundError(f"no simulator clips in {ASSETS}: the package is incomplete")
    return tuple(Clip(video.read_bytes(), (ASSETS / f"poster-{video.stem.removeprefix('clip-')}.jpg")
                      .read_bytes()) for video in videos)


class Media:
    """The CDN and the upload form."""

    def __init__(self, backend: Backend, clips: tuple[Clip, ...]) -> None:
        self.backend = backend
        self.clips = clips

    async def cdn(self, request: web.Request) -> web.StreamResponse:
        """A finished generation's `<model>-0.mp4` or `<model>-0.jpg`, with Range support."""
        info = request.match_info
        generation = None
        if info["user_id"] == self.backend.settings.user_id:
            generation = self.backend.held(info["id"])
        stem = f"{generation.request['model']}-0" if generation is not None else ""
        if generation is None or generation.status != COMPLETE or info["name"] not in (
                f"{stem}.mp4", f"{stem}.jpg"):
            raise s3_refusal(404, "NoSuchKey", "The specified key does not exist.")
        request[CALL_GENERATION] = generation.id
        clip = self.clips[generation.clip]
        if info["name"].endswith(".jpg"):
            return _ranged(request, clip.poster, "image/jpeg")
        if self.backend.hit("not_video"):
            request[CALL_FAULTS].append("not_video")
            return web.Response(text=NOT_VIDEO, content_type="text/html")
        if "Range" not in request.headers and self.backend.hit("truncate"):
            request[CALL_FAULTS].append("truncate")
            return await _cut_short(request, clip.video)
        return _ranged(request, clip.video, "video/mp4")

    async def upload(self, request: web.Request) -> web.Response:
        """The presigned form: every field handed out, then `file`; 204 when taken."""
        if request.content_type != "multipart/form-data":
            raise s3_refusal(400, "InvalidArgument", "a form upload must be multipart/form-data")
        fields: dict[str, str] = {}
        size: int | None = None
        try:
            reader = await request.multipart()
            async for part in reader:
                if not isinstance(part, BodyPartReader) or part.name is None:
                    continue
                if part.name == "file":
                    size = len(await part.read())
                    break
                fields[part.name] = await part.text()
        except ValueError as exc:
            raise s3_refusal(400, "MalformedPOSTRequest", f"the form is not valid: {exc}") from None
        self.backend.upload(fields, size, authorized="Authorization" in request.headers)
        return web.Response(status=204)


def _ranged(request: web.Request, data: bytes, content_type: str) -> web.Response:
    """The whole file, or the one byte range asked for (206), or 416 when it is out of bounds."""
    headers = {"Accept-Ranges": "bytes"}
    try:
        span = request.http_range
    except ValueError:
        span = slice(len(data), None)
    if span.start is None and span.stop is None:
        return web.Response(body=data, content_type=content_type, headers=headers)
    start, stop, _ = span.indices(len(data))
    if start >= stop:
        headers["Content-Range"] = f"bytes */{len(data)}"
        return web.Response(status=416, headers=headers)
    headers["Content-Range"] = f"bytes {start}-{stop - 1}/{len(data)}"
    return web.Response(body=data[start:stop], status=206, content_type=content_type, headers=headers)


async def _cut_short(request: web.Request, data: bytes) -> web.StreamResponse:
    """Announce the whole clip, send half of it, then close: a download cut short."""
    response = web.StreamResponse(headers={"Content-Type": "video/mp4", "Accept-Ranges": "bytes"})
    response.content_length = len(data)
    response.force_close()
    await response.prepare(request)
    await response.write(data[: len(data) // 2])
    if request.transport is not None:
        request.transport.close()
    return response
