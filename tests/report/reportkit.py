"""What the report tests share: the browser driver bridge, page helpers and a hostile prompt."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from bench.chromium import Chromium, Page
from runner.report import write_report

T = TypeVar("T")
HOSTILE_PROMPT = ('<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'
                  ' a fox & a hound </script>')
# A promise that resolves, on a later animation frame if need be, with the first truthy value.
UNTIL = ("new Promise((resolve) => { const tick = () => { const v = (%s)();"
         " v ? resolve(v) : requestAnimationFrame(tick); }; tick(); })")
# Two animation frames: what a scroll or a click set going (its events, the observers' turns) done.
FRAMES = "new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))"
# The Size slider set to a width of `%s` px, as a reader drags it.
SIZE = ("(() => { const s = document.getElementById('cell-size'); s.value = '%s';"
        " s.dispatchEvent(new Event('input')); })()")


def write_records(folder: Path, records: list[dict[str, Any]]) -> None:
    """`records` as the folder's results.jsonl, one JSON line each."""
    (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def read_records(folder: Path) -> list[dict[str, Any]]:
    """The records of the folder's results.jsonl."""
    return [json.loads(line) for line in (folder / "results.jsonl").read_text(encoding="utf-8").splitlines()]


def simulate(manifest: Path, out: Path, *more: str) -> subprocess.CompletedProcess[str]:
    """`hailuo-batch run MANIFEST --simulate --out OUT` with `more` flags, as users run it."""
    return subprocess.run([sys.executable, "-m", "runner", "run", str(manifest), "--simulate",
                           "--out", str(out), "--time-scale", "600", "--quiet", *more],
                          capture_output=True, text=True, timeout=90, check=False)


class Driver:
    """Runs coroutines on the module's event loop, where its browser lives."""

    def __init__(self, loop: asyncio.AbstractEventLoop, browser: Chromium) -> None:
        self.loop = loop
        self.browser = browser

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(asyncio.wait_for(coroutine, 30))

    def look(self, out: Path, script: str) -> Any:
        """Open the folder's report and return the value of one script on it."""
        async def scenario() -> Any:
            page = await open_report(self, out)
            return await page.evaluate(script)
        return self.run(scenario())


# Installed before the page's own script: every uncaught error lands in `window.pageErrors`.
CATCH_ERRORS = """window.pageErrors = [];
addEventListener("error", (e) => pageErrors.push(String(e.message || e.target.src || e.type)), true);
addEventListener("unhandledrejection", (e) => pageErrors.push(String(e.reason)));"""


async def open_report(driver: Driver, out: Path, view: str = "", *, served_at: str | None = None) -> Page:
    """Write the folder's report and open it in a new tab that records errors, from file:// or,
    given `served_at`, from the address a server serves the folder at; `view` is the address's
    hash, such as `#rows=vibe`."""
    page = await driver.browser.new_page()
    await page.send("Page.addScriptToEvaluateOnNewDocument", source=CATCH_ERRORS)
    report = write_report(out)
    await page.goto((f"{served_at}/{report.name}" if served_at else report.as_uri()) + view)
    assert await page.evaluate("document.documentElement.dataset.ready") == "true"
    return page


def texts(selector: str) -> str:
    """A script giving the text of every element matching `selector`."""
    return f"[...document.querySelectorAll({json.dumps(selector)})].map((e) => e.textContent)"
