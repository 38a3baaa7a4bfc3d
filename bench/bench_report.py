"""How fast the report page of a 1,000-job run, and of a 100,000-job one, becomes usable in
headless Chromium.

"Usable" is: the page loaded, the grid laid out, and a real click on the swap-axes switch handled
and painted. Measured from the navigation request, on a fresh tab each time; the median of a few
tries is printed (the 1,000-job page's beside the 2 s target), with how many videos the lazy
loader fetched up front and how many cells the page built (only the rows near the window are).
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from bench.chromium import Chromium, Page
from bench.runs import Sweep, make_run
from runner.report import write_report

TARGET_SECONDS = 2.0
TRIES = 5
SWEEP = Sweep(name="bench-1000", prompts=5, vibes=8, lightings=5, samples=5,
              failed_every=13, unfinished_every=17)
# A sweep at scale, tried once: its page is some 72 MiB.
LARGE = Sweep(name="bench-100000", prompts=250, vibes=8, lightings=5, samples=10,
              failed_every=13, unfinished_every=17)
# Two frames after the layout counter moves: the relaid grid has been painted.
AFTER_LAYOUT = """new Promise((resolve) => {
  const wait = () => window.hailuoReport.layouts > %d
    ? requestAnimationFrame(() => requestAnimationFrame(() => resolve(true)))
    : requestAnimationFrame(wait);
  wait();
})"""


async def _usable(page: Page, url: str) -> tuple[float, float, int, int]:
    """Seconds from navigation to usable, the page's own ready time, the videos given a src and
    the cells built."""
    started = time.perf_counter()
    await page.goto(url)
    layouts = await page.evaluate("window.hailuoReport.layouts")
    await page.click("#swap-axes")
    await page.evaluate(AFTER_LAYOUT % layouts)
    elapsed = time.perf_counter() - started
    ready_ms = await page.evaluate("window.hailuoReport.readyAt")
    loaded = await page.evaluate("document.querySelectorAll('video[src]').length")
    cells = await page.evaluate("document.querySelectorAll('#grid .cell').length")
    return elapsed, ready_ms / 1000, loaded, cells


async def _measure(url: str, tries: int) -> list[tuple[float, float, int, int]]:
    async with Chromium() as browser:
        results = []
        for _ in range(tries):
            page = await browser.new_page()
            results.append(await _usable(page, url))
            await page.send("Page.close")
        return results


def _bench(sweep: Sweep, tries: int, target: float | None) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-report-") as folder:
        out = Path(folder)
        records = make_run(out, sweep)
        started = time.perf_counter()
        page = write_report(out)
        written = time.perf_counter() - started
        size = page.stat().st_size
        results = asyncio.run(_measure(page.as_uri(), tries))
    usable = statistics.median(result[0] for result in results)
    ready = statistics.median(result[1] for result in results)
    verdict = "" if target is None else (
        f"; target {target * 1000:.0f} ms: {'within' if usable <= target else 'OVER'}")
    print(f"report.html for {len(records):,} jobs: written in {written * 1000:.0f} ms, "
          f"{size / 1024:.0f} KiB")
    print(f"grid laid out (page's own clock): {ready * 1000:.0f} ms median of {tries}")
    print(f"usable (navigation -> grid -> axis switch handled): {usable * 1000:.0f} ms median "
          f"of {tries}, worst {max(r[0] for r in results) * 1000:.0f} ms{verdict}")
    print(f"videos fetched up front (lazy loading): {results[-1][2]} of {len(records):,}; "
          f"cells built: {results[-1][3]:,}")


def main() -> None:
    _bench(SWEEP, TRIES, TARGET_SECONDS)
    _bench(LARGE, 1, None)
