"""A small headless Chromium driver over the DevTools protocol, for the report's bench and tests.

Debian's `chromium` is driven through its DevTools websocket with aiohttp's client, so nothing
downloads a browser of its own. A missing browser is an error (`FileNotFoundError`), never a skip:
the page is the product, and a check that silently did not run would hide a broken gallery.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
import shutil
import tempfile
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import aiohttp

CHROMIUM = "/usr/bin/chromium"
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--allow-file-access-from-files", "--autoplay-policy=no-user-gesture-required",
    "--mute-audio", "--hide-scrollbars", "--remote-debugging-port=0",
)
START_TIMEOUT = 30.0  # seconds for the browser to announce its DevTools address
VIEWPORT = (1440, 900)
LISTENING = re.compile(r"DevTools listening on (ws://\S+)")


Match = Callable[[dict[str, Any]], bool]


def _any(params: dict[str, Any]) -> bool:
    return True


class BrowserError(RuntimeError):
    """The browser answered a command with an error, or a page script threw."""


class Chromium:
    """One headless Chromium process with a fresh profile; use as `async with Chromium() as b`."""

    def __init__(self, *, executable: str = CHROMIUM) -> None:
        self._executable = executable
        self._stderr_tail: deque[str] = deque(maxlen=20)
        self._ids = itertools.count(1)
        self._replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._waiters: dict[tuple[str, str], list[tuple[Match, asyncio.Future[dict[str, Any]]]]] = {}

    async def __aenter__(self) -> Self:
        if shutil.which(self._executable) is None:
            raise FileNotFoundError(f"{self._executable} not found: run `make browser` to install it")
        self._profile = Path(tempfile.mkdtemp(prefix="hailuo-chromium-"))
        self._proc = await asyncio.create_subprocess_exec(
            self._executable, *FLAGS, f"--user-data-dir={self._profile}", "about:blank",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE)
        try:
            address: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            self._stderr_task = asyncio.create_task(self._read_stderr(address))
            async with asyncio.timeout(START_TIMEOUT):
                url = await address
            self._http = aiohttp.ClientSession()
            self._ws = await self._http.ws_connect(url, max_msg_size=0)
            self._reader = asyncio.create_task(self._read_messages())
        except BaseException:
            await self._shutdown()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._shutdown()

    async def new_page(self) -> Page:
        """A new tab of the VIEWPORT size, attached and ready for commands."""
        target = await self.send("Target.createTarget", url="about:blank")
        attached = await self.send("Target.attachToTarget", targetId=target["targetId"], flatten=True)
        page = Page(self, attached["sessionId"])
        await page.send("Page.enable")
        await page.send("Runtime.enable")
        width, height = VIEWPORT
        await page.send("Emulation.setDeviceMetricsOverride", width=width, height=height,
                        deviceScaleFactor=1, mobile=False)
        return page

    async def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """Send one command and wait for its reply."""
        ident = next(self._ids)
        reply = asyncio.get_running_loop().create_future()
        self._replies[ident] = reply
        message: dict[str, Any] = {"id": ident, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        await self._ws.send_str(json.dumps(message))
        return await reply

    def expect(self, session: str, event: str,
               match: Match | None = None) -> asyncio.Future[dict[str, Any]]:
        """A future for the next `event` (whose parameters satisfy `match`) of a tab, or of the
        browser when `session` is empty; take it before the command that causes the event."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.setdefault((session, event), []).append((match or _any, waiter))
        return waiter

    async def _read_stderr(self, address: asyncio.Future[str]) -> None:
        """Find the DevTools address, then keep draining stderr so the browser never blocks on it."""
        assert self._proc.stderr is not None
        async for raw in self._proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            self._stderr_tail.append(line)
            found = LISTENING.search(line)
            if found and not address.done():
                address.set_result(found.group(1))
        if not address.done():
            tail = "\n".join(self._stderr_tail)
            address.set_exception(BrowserError(f"chromium exited before listening:\n{tail}"))

    async def _read_messages(self) -> None:
        """Route replies to their commands and events to whoever waits for them."""
        async for message in self._ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(message.data)
            if "id" in data:
                reply = self._replies.pop(data["id"])
                if "error" in data:
                    reply.set_exception(BrowserError(json.dumps(data["error"])))
                else:
                    reply.set_result(data.get("result", {}))
            else:
                self._dispatch(data.get("sessionId", ""), data.get("method", ""),
                               data.get("params", {}))
        for reply in self._replies.values():
            if not reply.done():
                reply.set_exception(BrowserError("the browser closed its DevTools connection"))

    def _dispatch(self, session: str, event: str, params: dict[str, Any]) -> None:
        """Settle the waiters of this event whose match accepts it; drop abandoned ones."""
        waiting = self._waiters.get((session, event), [])
        settled = [entry for entry in waiting if entry[1].done() or entry[0](params)]
        for match, waiter in settled:
            waiting.remove((match, waiter))
            if not waiter.done():
                waiter.set_result(params)

    async def _shutdown(self) -> None:
        """Close the connection, end the process, remove the profile."""
        ws = getattr(self, "_ws", None)
        if ws is not None:
            await ws.close()
            await self._reader
        http = getattr(self, "_http", None)
        if http is not None:
            await http.close()
        if self._proc.returncode is None:
            self._proc.terminate()
        await self._proc.wait()
        await self._stderr_task
        shutil.rmtree(self._profile, ignore_errors=True)


class Page:
    """One tab: navigate, evaluate scripts, click, take screenshots."""

    def __init__(self, browser: Chromium, session: str) -> None:
        self._browser = browser
        self._session = session

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        return await self._browser.send(method, self._session, **params)

    async def goto(self, url: str) -> None:
        """Navigate and wait for the load event."""
        loaded = self._browser.expect(self._session, "Page.loadEventFired")
        result = await self.send("Page.navigate", url=url)
        if result.get("errorText"):
            raise BrowserError(f"navigation to {url} failed: {result['errorText']}")
        await loaded

    async def evaluate(self, expression: str) -> Any:
        """The value of a script (a promise is awaited); a script error raises `BrowserError`."""
        result = await self.send("Runtime.evaluate", expression=expression, awaitPromise=True,
                                 returnByValue=True, userGesture=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"script failed: {text}")
        return result["result"].get("value")

    async def click(self, selector: str) -> None:
        """A real mouse click at the centre of the first element matching `selector`.

        The element is scrolled into view and measured only once two frames in a row leave it
        where it was: rows laid out lazily as they scroll in can move it after the scroll.
        """
        box = await self.evaluate(
            f"(async () => {{ const e = document.querySelector({json.dumps(selector)});"
            " e.scrollIntoView({block: 'center'});"
            " const frame = () => new Promise((done) => requestAnimationFrame(() => done()));"
            " let last = null;"
            " for (;;) { await frame(); const r = e.getBoundingClientRect();"
            "   const now = [r.x + r.width / 2, r.y + r.height / 2];"
            "   if (last && now[0] === last[0] && now[1] === last[1]) return now; last = now; }"
            " })()")
        for kind in ("mousePressed", "mouseReleased"):
            await self.send("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1],
                            button="left", clickCount=1)

    async def screenshot(self, path: Path, *, full_page: bool = False) -> Path:
        """Save a PNG of the viewport (or the whole page) to `path`."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
        shot = await self.send("Page.captureScreenshot", **params)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path
