"""The gallery page of a run made against the simulator, in a real headless Chromium, opened
from file:// as a user would, or served as a user may serve its folder."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import shutil
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import yaml
from reportkit import (FRAMES, HOSTILE_PROMPT, SIZE, UNTIL, Driver, open_report, read_records, simulate,
                       texts, write_records)
from sharedkit import Quiet, serving

from bench.chromium import Chromium
from bench.runs import PROMPTS, Sweep, make_run
from runner import report

VIBES = ["Pro Photo", "Sci-Fi", "Clay"]


def test_the_grid_has_one_cell_per_job_and_plays_video(driver: Driver, simulated_run,
                                                        artifacts: Path) -> None:
    out, records, summary = simulated_run

    async def scenario() -> dict[str, Any]:
        page = await open_report(driver, out)
        seen = {
            "keys": await page.evaluate("[...document.querySelectorAll('.cell')].map((c) => c.dataset.key)"),
            "columns": await page.evaluate(texts(".col-head")),
            "sections": await page.evaluate(texts(".section-value")),
            "totals": await page.evaluate("Object.fromEntries([...document.querySelectorAll('.total')]"
                                          ".map((t) => [t.querySelector('dt').textContent,"
                                          " t.querySelector('dd').textContent]))"),
            "video": await page.evaluate(UNTIL % "() => { const v = document.querySelector('.cell video');"
                                         " return v && v.readyState >= 2 && {state: v.readyState,"
                                         " src: v.currentSrc, key: v.closest('.cell').dataset.key}; }"),
            "errors": await page.evaluate("pageErrors"),
        }
        await page.screenshot(artifacts / "report-grid.png")
        await page.screenshot(artifacts / "report-full.png", full_page=True)
        return seen

    seen = driver.run(scenario())
    assert sorted(seen["keys"]) == sorted(record["key"] for record in records)
    assert len(seen["keys"]) == 18
    assert seen["columns"] == VIBES
    assert seen["sections"] == ["rain-street", "fox", "blocked"]
    assert seen["totals"] == {"jobs": "18", "done": "12", "failed for good": "6", "failed for now": "0",
                              "unfinished": "0", "spent": f"${summary['spent_usd']:.2f}",
                              "estimated": f"${summary['estimated_usd']:.2f}", "shown": "18"}
    record = next(r for r in records if r["key"] == seen["video"]["key"])
    assert seen["video"]["state"] >= 2
    assert unquote(seen["video"]["src"]) == unquote((out / record["file"]).as_uri())
    assert seen["errors"] == []
    assert (artifacts / "report-grid.png").stat().st_size > 10_000


def test_switching_axes_and_filters_relays_the_grid(driver: Driver, simulated_run) -> None:
    out, records, _ = simulated_run

    async def scenario() -> list[dict[str, Any]]:
        page = await open_report(driver, out)
        snapshot = (f"({{columns: {texts('.col-head')}, sections: {texts('.section-value')},"
                    " cells: document.querySelectorAll('.cell').length, hash: location.hash})")
        steps = []
        await page.evaluate("(() => { const s = document.getElementById('row-axis');"
                            " s.value = 'lighting'; s.dispatchEvent(new Event('change')); })()")
        steps.append(await page.evaluate(snapshot))
        await page.click("#swap-axes")
        steps.append(await page.evaluate(snapshot))
        await page.click(".filter[data-axis='vibe'] .value[data-value='Pro Photo']")
        steps.append(await page.evaluate(snapshot))
        assert await page.evaluate("pageErrors") == []
        return steps

    by_lighting, swapped, filtered = driver.run(scenario())
    assert by_lighting == {"columns": VIBES, "sections": ["Golden Hour", "none"], "cells": 18,
                           "hash": "#rows=lighting&cols=vibe"}
    assert swapped == {"columns": ["Golden Hour", "none"], "sections": VIBES, "cells": 18,
                       "hash": "#rows=vibe&cols=lighting"}
    assert filtered["sections"] == ["Sci-Fi", "Clay"]
    assert filtered["cells"] == sum(1 for r in records if r["axes"]["vibe"] != "Pro Photo")


def test_failed_cells_show_their_state_and_reason(driver: Driver, simulated_run) -> None:
    out, records, _ = simulated_run
    cells = driver.look(out, (
        "Object.fromEntries([...document.querySelectorAll('.cell:not(.done)')].map((c) => [c.dataset.key,"
        " {badge: c.querySelector('.badge').textContent, reason: c.querySelector('.reason').textContent,"
        " shown: c.querySelector('.reason').getBoundingClientRect().height > 0,"
        " cost: c.querySelector('.figures').firstChild.textContent,"
        " video: c.querySelector('video') !== null}]))"))
    failed = {r["key"]: r for r in records if r["state"] == "failed"}
    assert len(failed) == 6 and {r["axes"]["prompt"] for r in failed.values()} == {"blocked"}
    assert set(cells) == set(failed)
    for key, cell in cells.items():
        assert cell["badge"] == "failed for good"
        assert cell["reason"] == failed[key]["reason"] and "moderat" in cell["reason"]
        assert cell["shown"] and not cell["video"]
        assert cell["cost"] == "$0.00"  # refused at create: nothing billed, no estimate shown


def test_a_failed_cell_tells_why_though_the_file_it_had_is_gone(driver: Driver,
                                                                 tmp_path: Path) -> None:
    manifest = tmp_path / "one.yaml"
    manifest.write_text(yaml.safe_dump({"version": 1, "name": "one", "prompts": ["a lake at dawn"],
                                        "output": {"filename": "{n}.mp4"}}), encoding="utf-8")
    out = tmp_path / "out"
    assert simulate(manifest, out).returncode == 0
    (out / "1.mp4").unlink()
    (out / "1.mp4").mkdir()  # in the way of the video fetched again
    assert simulate(manifest, out, "--fetch-missing").returncode == 3
    (record,) = read_records(out)
    assert record["state"] == "failed" and record["file"] == "1.mp4"
    reason = driver.look(out, "document.querySelector('.cell .reason').textContent")
    assert "Is a directory" in record["reason"] and reason == (
        f"{record['reason']}; failed for now: paid, the next run downloads it (nothing is paid again)")


def test_picks_persist_and_export_as_json(driver: Driver, simulated_run, tmp_path: Path) -> None:
    out, records, _ = simulated_run
    chosen = [records[7]["key"], records[2]["key"]]

    async def scenario() -> tuple[dict[str, Any], list[str]]:
        browser = driver.browser
        await browser.send("Browser.setDownloadBehavior", behavior="allow",
                           downloadPath=str(tmp_path), eventsEnabled=True)
        page = await open_report(driver, out)
        await page.click("#clear-picks")
        for key in chosen:
            await page.click(f".cell[data-key='{key}'] .pick")
        done = browser.expect("", "Browser.downloadProgress", lambda p: p["state"] == "completed")
        await page.click("#export-picks")
        await done
        again = await open_report(driver, out)
        kept = await again.evaluate("[...document.querySelectorAll('.pick[aria-pressed=true]')]"
                                    ".map((b) => b.closest('.cell').dataset.key)")
        return json.loads((tmp_path / "report-sweep-picks.json").read_text()), kept

    exported, kept = driver.run(scenario())
    assert [pick["key"] for pick in exported["picks"]] == [r["key"] for r in records if r["key"] in chosen]
    assert exported["run"]["name"] == "report-sweep"
    assert exported["picks"][0]["file"] == records[2]["file"]
    assert exported["picks"][0]["styles"] == records[2]["styles"]
    assert sorted(kept) == sorted(chosen)


def test_a_hostile_prompt_is_shown_as_text_and_never_runs(driver: Driver, simulated_run) -> None:
    out, _, _ = simulated_run
    seen = driver.look(out, (
        "({pwned: window.pwned ?? null, injected: document.querySelectorAll('img[src=x]').length,"
        f" prompts: {texts('.section-prompt')}}})"))
    assert seen == {"pwned": None, "injected": 0, "prompts": [
        PROMPTS["rain-street"], HOSTILE_PROMPT, "A lighthouse in a storm, moderate-me"]}


def test_a_row_plays_pauses_and_steps_in_step(driver: Driver, simulated_run) -> None:
    out, _, _ = simulated_run
    videos = "[...document.querySelectorAll('.block .row')[0].querySelectorAll('video')]"

    async def scenario() -> dict[str, Any]:
        page = await open_report(driver, out)
        await page.click(".block .row .row-play")
        playing = await page.evaluate(UNTIL % f"() => {{ const v = {videos};"
                                      " return v.length >= 2 && v.every((x) => !x.paused && !x.seeking"
                                      " && x.readyState >= 3) && v.length; }")
        await page.click(".block .row .row-pause")
        paused = await page.evaluate(f"{videos}.map((v) => [v.paused, v.currentTime, v.duration])")
        await page.click(".block .row .row-next")
        stepped = await page.evaluate(UNTIL % f"() => {{ const v = {videos};"
                                      " return v.every((x) => !x.seeking) && v.map((x) => x.currentTime); }")
        return {"playing": playing, "paused": paused, "stepped": stepped,
                "errors": await page.evaluate("pageErrors")}

    seen = driver.run(scenario())
    assert seen["playing"] == 3
    assert seen["errors"] == []
    assert all(paused for paused, _, _ in seen["paused"])
    first, duration = seen["paused"][0][1], seen["paused"][0][2]
    for _, time, _ in seen["paused"][1:]:
        gap = abs(first - time) % duration
        assert min(gap, duration - gap) < 0.25, seen["paused"]
    assert max(seen["stepped"]) - min(seen["stepped"]) < 0.01
    assert abs(seen["stepped"][0] - (first + 1 / 24)) < 0.01


def test_a_row_paused_and_stepped_stays_so_when_built_again_and_one_never_touched_plays(
        driver: Driver, tmp_path: Path) -> None:
    # 10 prompts x 3 vibes x 5 lightings x 2 samples: 100 rows of 3, some 20,000 px; the first two
    # rain-street at golden hour, sample 1 (jobs 0, 10 and 20) and sample 2 (jobs 1, 11 and 21)
    records = make_run(tmp_path, Sweep(prompts=10, vibes=3, lightings=5, samples=2, failed_every=0))
    held, untouched = ([records[number]["key"] for number in numbers]
                       for numbers in ((0, 10, 20), (1, 11, 21)))
    videos = "%s.map((key) => document.querySelector(`.cell[data-key='${key}'] video`))"
    first = "[...document.querySelector('#grid .block .row').querySelectorAll('video')]"
    # the videos shown of the row held and of the row never touched, once each has been made,
    # has its frame and is done seeking, and those of the row never touched play
    shown = UNTIL % (f"() => {{ const held = {videos % json.dumps(held)}.filter(Boolean),"
                     f" other = {videos % json.dumps(untouched)}.filter(Boolean);"
                     " const settled = (v) => v.readyState >= 2 && !v.seeking;"
                     " return held.length && other.length && held.every(settled) && other.every(settled)"
                     " && other.every((v) => !v.paused)"
                     " && {held: held.map((v) => [v.paused, v.currentTime]), other: other.length}; }")
    size = SIZE % 560

    async def scenario() -> dict[str, Any]:
        page = await open_report(driver, tmp_path)
        await page.click("#grid .block .row .row-play")
        await page.evaluate(UNTIL % f"() => {first}.every((v) => !v.paused && v.readyState >= 3)")
        await page.click("#grid .block .row .row-pause")
        await page.click("#grid .block .row .row-next")
        stepped = await page.evaluate(UNTIL % f"() => {{ const v = {first};"
                                      " return v.every((x) => !x.seeking) && v.map((x) => x.currentTime); }")
        # scrolled to the end, the rows at the top let go, then back to them; then laid out anew
        await page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
        await page.evaluate(UNTIL % f"() => {videos % json.dumps(held)}.every((v) => v === null)")
        await page.evaluate("window.scrollTo(0, 0)")
        seen = {"scrolled back": await page.evaluate(shown)}
        await page.click(".filter[data-axis='lighting'] .value[data-value='Foggy']")
        seen["a filter"] = await page.evaluate(shown)
        await page.click("#swap-axes")
        seen["Swap"] = await page.evaluate(shown)
        await page.evaluate(size)
        seen["Size"] = await page.evaluate(shown)
        return {"stepped": stepped, "seen": seen, "errors": await page.evaluate("pageErrors")}

    seen = driver.run(scenario())
    at, *others = seen["stepped"]
    assert at > 0 and all(abs(time - at) < 0.01 for time in others)
    for name, step in seen["seen"].items():
        assert step["held"] and all(paused and abs(time - at) < 0.01 for paused, time in step["held"]), name
    assert len(seen["seen"]["scrolled back"]["held"]) == 3
    assert seen["errors"] == []


class WholeFiles(Quiet, SimpleHTTPRequestHandler):
    """A static server as `python -m http.server` is: every file sent whole, a Range header ignored."""

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        del self.headers["Range"]
        super().do_GET()


@pytest.fixture
def served_without_ranges(simulated_run) -> Iterator[str]:
    """The address of the simulated run's folder, served on 127.0.0.1 without byte ranges."""
    out, _, _ = simulated_run
    with serving(functools.partial(WholeFiles, directory=str(out))) as root:
        yield root


def test_a_row_served_without_byte_ranges_stays_where_it_is_and_the_page_says_why(
        driver: Driver, simulated_run, served_without_ranges: str) -> None:
    out, _, _ = simulated_run
    videos = "[...document.querySelectorAll('.block .row')[0].querySelectorAll('video')]"
    playing = UNTIL % (f"() => {{ const v = {videos}; return v.length >= 2 && v.every((x) => !x.paused"
                       " && x.readyState >= 3 && x.currentTime > 0) && v.length; }")
    note = ("(() => { const n = document.getElementById('step-note');"
            " return n?.getBoundingClientRect().height > 0 && n.textContent; })()")

    async def scenario() -> dict[str, Any]:
        page = await open_report(driver, out, served_at=served_without_ranges)
        await page.click(".block .row .row-play")
        await page.evaluate(playing)
        await page.click(".block .row .row-pause")
        paused = await page.evaluate(f"{videos}.map((v) => v.currentTime)")
        hidden = await page.evaluate(note)
        await page.click(".block .row .row-next")
        # the step taken: the note shown, or the videos moved and their seeks done
        moved = f"v.some((x, i) => x.currentTime !== {json.dumps(paused)}[i])"
        await page.evaluate(UNTIL % (f"() => {{ const v = {videos};"
                                     f" return v.every((x) => !x.seeking) && ({note} || {moved}); }}"))
        stepped = await page.evaluate(f"{videos}.map((v) => v.currentTime)")
        shown = await page.evaluate(note)
        await page.click(".block .row .row-play")
        return {"paused": paused, "hidden": hidden, "stepped": stepped, "note": shown,
                "playing": await page.evaluate(playing), "errors": await page.evaluate("pageErrors")}

    seen = driver.run(scenario())
    assert seen["hidden"] is False  # nothing said before a step is tried
    assert all(time > 0 for time in seen["paused"])
    assert seen["stepped"] == seen["paused"]  # not sent back to 0:00
    assert "byte ranges" in seen["note"] and "playing still works" in seen["note"]
    assert seen["playing"] == 3
    assert seen["errors"] == []


def test_a_large_run_loads_videos_lazily(driver: Driver, tmp_path: Path) -> None:
    make_run(tmp_path, Sweep(prompts=3, vibes=8, lightings=5, failed_every=0))
    seen = driver.look(tmp_path, UNTIL % "() => document.querySelector('video') && {"
                                 "cells: document.querySelectorAll('.cell').length,"
                                 " videos: document.querySelectorAll('video').length}")
    assert seen["cells"] == 120
    assert 0 < seen["videos"] < 60


def test_a_run_without_jobs_shows_its_totals_and_says_so(driver: Driver, tmp_path: Path) -> None:
    (tmp_path / "results.jsonl").write_text("", encoding="utf-8")
    seen = driver.look(tmp_path, "({errors: window.pageErrors,"
                                 " cells: document.querySelectorAll('.cell').length,"
                                 " empty: document.getElementById('empty').hidden ? null :"
                                 " document.getElementById('empty').textContent,"
                                 f" totals: {texts('#totals dd')}}})")
    assert seen == {"errors": [], "cells": 0, "empty": "This run has no jobs.",
                    "totals": ["0", "0", "0", "0", "0", "$0.00", "$0.00", "0"]}


def test_the_header_and_each_section_say_how_much_of_the_money_spent_is_estimated(
        driver: Driver, tmp_path: Path) -> None:
    # 12 jobs, 10 downloaded at $0.28, 3 of them booked at their estimate (answers lost), none of
    # them lit at golden hour
    make_run(tmp_path, Sweep(unnamed_every=4))

    async def scenario() -> list[list[str]]:
        page = await open_report(driver, tmp_path)
        seen = [await page.evaluate(texts(".total.spent dd")),
                await page.evaluate(texts(".section-head .muted"))]
        await page.evaluate("(() => { const s = document.getElementById('row-axis');"
                            " s.value = 'lighting'; s.dispatchEvent(new Event('change')); })()")
        return [*seen, await page.evaluate(texts(".section-head .muted"))]

    header, by_prompt, by_lighting = driver.run(scenario())
    assert header == ["$2.80 ($0.84 of it estimated)"]
    assert by_prompt == ["6 jobs · 5 done · $1.40 ($0.28 of it estimated)",
                         "6 jobs · 5 done · $1.40 ($0.56 of it estimated)"]
    assert by_lighting == ["6 jobs · 5 done · $1.40", "6 jobs · 5 done · $1.40 ($0.84 of it estimated)"]


def cards_by_key(driver: Driver, folder: Path, records: list[dict[str, Any]], fields: str) -> Any:
    """The page of `records` (written as the folder's results.jsonl): each card by its job's
    key, as the object `fields` (JavaScript, over the card `c`) makes of it."""
    write_records(folder, records)
    return driver.look(folder, "Object.fromEntries([...document.querySelectorAll('.cell')]"
                               f".map((c) => [c.dataset.key, {fields}]))")


def test_a_job_not_sent_shows_nothing_spent_apart_from_one_paid_at_its_estimate(
        driver: Driver, tmp_path: Path) -> None:
    records = make_run(tmp_path, Sweep(unnamed_every=4))  # job 3's create answer was lost
    records[1].update(state="pending", generation_id=None, cost_usd=None, spent_usd=0.0,
                      file=None, poster=None, completed_at=None, downloaded_at=None,
                      render_seconds=None)  # the run stopped (its budget) before sending it
    cards = cards_by_key(driver, tmp_path, records, (
        "{figure: c.querySelector('.figures').firstChild.className,"
        " cost: c.querySelector('.figures').firstChild.textContent,"
        " reason: c.querySelector('.reason')?.textContent ?? null}"))
    assert cards[records[3]["key"]] == {"figure": "estimate", "cost": "est. $0.28", "reason": None}
    assert cards[records[1]["key"]] == {"figure": "cost", "cost": "$0.00",
                                        "reason": "not sent yet (estimated $0.28 to make)"}


def test_a_card_failed_for_now_is_told_from_one_failed_for_good(driver: Driver,
                                                                 tmp_path: Path) -> None:
    # jobs 4 and 9 refused by moderation, 3, 7 and 11 still rendering
    records = make_run(tmp_path, Sweep(unfinished_every=4))
    records[4].update(reason="timed out after 1 s (generation gen-00004)", failed_for_now=True,
                      spent_usd=0.28)
    cards = cards_by_key(driver, tmp_path, records, (
        "{badge: c.querySelector('.badge')?.textContent, color: getComputedStyle("
        "c.querySelector('.badge') || c).color, border: getComputedStyle(c).borderTopColor,"
        " reason: c.querySelector('.reason')?.textContent}"))
    for_now, for_good = cards[records[4]["key"]], cards[records[9]["key"]]
    unfinished = cards[records[3]["key"]]
    assert (for_now["badge"], for_good["badge"]) == ("failed for now", "failed for good")
    assert for_now["color"] != for_good["color"]
    # its card amber as its badge, as a job still to be done, not red as one failed for good
    assert for_now["border"] == unfinished["border"] != for_good["border"]
    assert for_now["reason"] == ("timed out after 1 s (generation gen-00004); failed for now: paid,"
                                 " the next run downloads it (nothing is paid again)")
    assert for_good["reason"] == records[9]["reason"]


def test_the_totals_and_the_state_filter_tell_jobs_failed_for_now_from_those_failed_for_good(
        driver: Driver, tmp_path: Path) -> None:
    # jobs 4 and 9 refused by moderation, 3, 7 and 11 still rendering; then job 4 timed out
    # instead (paid, the next run downloads it) and job 1 given up on after failed creates (the
    # next run sends it again): 6 done, 1 failed for good, 2 failed for now, 3 unfinished
    records = make_run(tmp_path, Sweep(unfinished_every=4))
    records[4].update(reason="timed out after 1 s (generation gen-00004)", failed_for_now=True,
                      spent_usd=0.28)
    records[1].update(state="failed", failed_for_now=True, generation_id=None, cost_usd=None,
                      spent_usd=0.0, file=None, poster=None, completed_at=None, downloaded_at=None,
                      render_seconds=None, reason="given up on after failed creates")
    write_records(tmp_path, records)
    numbers = {record["key"]: number for number, record in enumerate(records)}
    seen = ("({cells: [...document.querySelectorAll('#grid .cell')].map((c) => c.dataset.key),"
            " hash: location.hash, errors: pageErrors})")
    state = ".filter[data-axis='state'] .value[data-value='%s']"

    page = driver.run(open_report(driver, tmp_path))
    shown = driver.run(page.evaluate("[...document.querySelectorAll('.total')].map((t) =>"
                                     " [t.querySelector('dt').textContent, t.querySelector('dd').textContent,"
                                     " t.title])"))
    totals = {name: (figure, title) for name, figure, title in shown}
    assert [name for name, _, _ in shown][:5] == [
        "jobs", "done", "failed for good", "failed for now", "unfinished"]
    assert {name: figure for name, (figure, _) in totals.items() if name != "spent"} == {
        "jobs": "12", "done": "6", "failed for good": "1", "failed for now": "2",
        "unfinished": "3", "estimated": "$3.36", "shown": "12"}
    assert "--retry-failed" in totals["failed for good"][1] and "by itself" in totals["failed for now"][1]
    # the page's data counts every failed job in `failed`, as report --format json does
    assert (driver.run(page.evaluate("JSON.parse(document.getElementById('report-data').textContent)"
                                     ".totals.failed"))) == 3
    filters = driver.run(page.evaluate(texts(".filter[data-axis='state'] .value")))
    assert filters == ["done", "failed for good", "failed for now", "unfinished"]

    async def scenario() -> dict[str, Any]:
        await page.click(state % "failed")
        without_failed = await page.evaluate(seen)
        await page.click(state % "failed")
        await page.click(state % "failed for now")
        return {"without failed": without_failed, "without failed for now": await page.evaluate(seen)}

    steps = driver.run(scenario())
    hidden = {name: sorted(number for key, number in numbers.items() if key not in step["cells"])
              for name, step in steps.items()}
    assert hidden == {"without failed": [9], "without failed for now": [1, 4]}
    assert steps["without failed"]["hash"] == "#rows=prompt&cols=vibe&hide.state=failed"
    assert steps["without failed for now"]["hash"] == "#rows=prompt&cols=vibe&hide.state=failed+for+now"
    assert steps["without failed"]["errors"] == steps["without failed for now"]["errors"] == []
    # a link written before the button was labelled "failed for good" still hides those jobs
    linked = driver.run(open_report(driver, tmp_path, "#rows=prompt&cols=vibe&hide.state=failed"))
    cells = driver.run(linked.evaluate(seen))["cells"]
    assert sorted(number for key, number in numbers.items() if key not in cells) == [9]


def test_a_missing_browser_is_an_error_never_a_skip(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Chromium(executable=str(tmp_path / "chromium")):
            pass

    with pytest.raises(FileNotFoundError, match="make browser"):
        asyncio.run(scenario())


def test_a_section_shows_its_prompt_text_only_when_its_cells_share_it(driver: Driver,
                                                                      tmp_path: Path) -> None:
    def record(index: int, prompt: str, time: str, text: str) -> dict[str, Any]:
        return {"key": f"{index:064x}", "short_key": f"{index:010x}", "index": index,
                "state": "pending", "prompt": text, "axes": {"prompt": prompt, "time": time, "n": 1},
                "styles": [], "estimated_cost_usd": 0.27, "spent_usd": 0.0}
    records = [record(0, "street", "dusk", "Rain on a street at dusk"),
               record(1, "street", "midnight", "Rain on a street at midnight"),
               record(2, "cat", "dusk", "A cat asleep"), record(3, "cat", "midnight", "A cat asleep")]
    write_records(tmp_path, records)
    seen = driver.look(tmp_path, "(() => { for (const [id, axis] of [['row-axis', 'prompt'],"
                                 " ['col-axis', 'time']]) { const s = document.getElementById(id);"
                                 " s.value = axis; s.dispatchEvent(new Event('change')); }"
                                 " return Object.fromEntries([...document.querySelectorAll('.block')]"
                                 ".map((b) => [b.dataset.value, b.querySelector('.section-prompt')"
                                 "?.textContent ?? null])); })()")
    assert seen == {"street": None, "cat": "A cat asleep"}


def test_jobs_the_manifest_no_longer_has_are_listed_apart_from_the_comparison(
        driver: Driver, tmp_path: Path, artifacts: Path) -> None:
    def manifest(text: str, sets: dict[str, list[str]]) -> Path:
        path = tmp_path / "ab.yaml"
        path.write_text(yaml.safe_dump({
            "version": 1, "name": "ab", "prompts": [{"id": "street", "text": PROMPTS["rain-street"]},
                                                    {"id": "lighthouse", "text": text}],
            "styles": {"sets": sets}}, sort_keys=False), encoding="utf-8")
        return path

    out = tmp_path / "out"
    sets = {"warm": ["Warm"], "cool": ["Cool"]}
    first = manifest("A lighthouse in a storm, moderate-me", {**sets, "noir": ["Dark"]})
    assert simulate(first, out).returncode == 1
    # the refused prompt's text fixed under its id, and the set noir dropped
    assert simulate(manifest("A lighthouse in a storm", sets), out).returncode == 0
    records = read_records(out)
    earlier = {r["key"]: r for r in records if not r["planned"]}
    assert sorted(r["state"] for r in earlier.values()) == ["downloaded", "failed", "failed", "failed"]

    async def scenario() -> dict[str, Any]:
        page = await open_report(driver, out)
        grid = await page.evaluate("[...document.querySelectorAll('#grid .cell')].map((c) => c.dataset.key)")
        closed = await page.evaluate("({count: document.getElementById('earlier-count').textContent,"
                                     " open: document.getElementById('earlier').open,"
                                     " seen: document.getElementById('earlier-count')"
                                     ".getBoundingClientRect().height > 0})")
        await page.click("#earlier-count")
        await page.screenshot(artifacts / "report-earlier.png", full_page=True)
        return {"grid": grid, "closed": closed, "columns": await page.evaluate(texts(".col-head")),
                "filters": await page.evaluate(texts(".filter .value")),
                "totals": await page.evaluate(
                    "Object.fromEntries([...document.querySelectorAll('.total')]"
                    ".map((t) => [t.querySelector('dt').textContent, t.querySelector('dd').textContent]))"),
                "earlier": await page.evaluate(
                    "[...document.querySelectorAll('.earlier-job')].map((j) => ({key:"
                    " j.querySelector('.cell').dataset.key, prompt: j.querySelector('.prompt').textContent,"
                    " chips: [...j.querySelectorAll('.chip')].map((c) => c.textContent),"
                    " video: j.querySelector('.media[data-src]') !== null,"
                    " shown: j.getBoundingClientRect().height > 0}))"),
                "errors": await page.evaluate("pageErrors")}

    seen = driver.run(scenario())
    assert sorted(seen["grid"]) == sorted(r["key"] for r in records if r["planned"])
    assert seen["columns"] == ["warm", "cool"] and "noir" not in seen["filters"]
    assert seen["totals"]["jobs"] == "4" and seen["totals"]["failed for good"] == "0"
    assert seen["totals"]["no longer planned"] == "4"
    assert seen["closed"] == {"count": "4 jobs no longer planned: 1 done, 3 failed for good",
                              "open": False, "seen": True}
    assert {job["key"] for job in seen["earlier"]} == set(earlier)
    for job in seen["earlier"]:
        record = earlier[job["key"]]
        assert job["shown"] and job["prompt"] == record["prompt"]
        assert f"style set{record['axes']['style_set']}" in job["chips"]
        assert job["video"] == (record["state"] == "downloaded")  # the paid video still plays here
    assert seen["errors"] == []


def test_jobs_made_from_a_start_frame_since_changed_are_told_from_those_of_its_content_now(
        driver: Driver, tmp_path: Path) -> None:
    image = (Path(__file__).resolve().parents[2] / "jobs" / "images" / "sunset.png").read_bytes()
    frame = tmp_path / "frame.png"
    manifest = tmp_path / "still.yaml"
    manifest.write_text(yaml.safe_dump({"version": 1, "name": "still", "repeat": 2, "prompts": [
        {"id": "sunset", "text": "The sun sinks slowly", "start_frame": {"path": "frame.png"}},
        {"id": "lake", "text": "A lake at dawn"}]}, sort_keys=False), encoding="utf-8")
    out = tmp_path / "out"
    seen = ("({count: document.getElementById('earlier-count').textContent,"
            " why: document.querySelector('#earlier .muted').textContent,"
            " earlier: Object.fromEntries([...document.querySelectorAll('.earlier-job')].map((j) =>"
            " [j.querySelector('.cell').dataset.key,"
            " j.querySelector('.frame-changed')?.textContent ?? null])),"
            " grid: [...document.querySelectorAll('#grid .cell')].map((c) => c.dataset.key),"
            " marked: document.querySelectorAll('#grid .frame-changed').length, errors: pageErrors})")

    def run_with(content: bytes) -> dict[bool, list[str]]:
        """A run with the frame's file holding `content`: the keys of the sunset jobs, planned
        (True) and not, those planned made from `content` as results.jsonl says."""
        frame.write_bytes(content)
        assert simulate(manifest, out).returncode == 0
        records = read_records(out)
        sunset: dict[bool, list[str]] = {True: [], False: []}
        for record in records:
            if record["axes"]["prompt"] == "lake":
                assert record["start_frame_sha256"] is None  # text-to-video
                continue
            sunset[record["planned"]].append(record["key"])
            if record["planned"]:
                assert record["start_frame_sha256"] == hashlib.sha256(content).hexdigest()
        return sunset

    async def scenario() -> dict[str, Any]:
        page = await open_report(driver, out)
        await page.click("#earlier-count")
        await page.evaluate(UNTIL % "() => document.querySelector('.earlier-job')")
        return await page.evaluate(seen)

    def note(was: bytes, now: bytes) -> str:
        """What a job made from `was` says, the file holding `now`."""
        hexes = [hashlib.sha256(content).hexdigest()[:8] for content in (was, now)]
        return f"made from start frame frame.png as it was earlier (SHA-256 {hexes[0]}, now {hexes[1]}): " \
            "the file changed since"

    resaved_image = image + b"re-saved"
    first = run_with(image)
    assert len(first[True]) == 2 and first[False] == []
    # the image re-saved: its jobs are new ones, and those made from it before are kept
    resaved = run_with(resaved_image)
    assert resaved[False] == first[True] and set(resaved[True]).isdisjoint(first[True])
    copied = tmp_path / "copied"  # the folder's results without its journal tell them too
    copied.mkdir()
    shutil.copy(out / "results.jsonl", copied)
    contents = (hashlib.sha256(image).hexdigest(), hashlib.sha256(resaved_image).hexdigest())
    assert report.page_data(report.load(copied))["frame_changed"] == dict.fromkeys(first[True], contents)
    page = driver.run(scenario())
    assert page["count"] == ("2 jobs no longer planned: 2 done;"
                             " 2 of them made from a start frame that changed since")
    assert page["why"].startswith("Planned once but no longer (the manifest edited since, or a start"
                                  " frame's file changed since)")
    assert page["earlier"] == dict.fromkeys(first[True], note(image, resaved_image))
    assert set(resaved[True]) <= set(page["grid"]) and page["marked"] == 0
    # the old image put back: its jobs are the plan's again, and those of the re-saved one earlier
    assert run_with(image) == {True: first[True], False: resaved[True]}
    page = driver.run(scenario())
    assert page["earlier"] == dict.fromkeys(resaved[True], note(resaved_image, image))
    assert set(first[True]) <= set(page["grid"]) and page["marked"] == 0
    # changed a second time: the jobs of each earlier content name the one they were made from
    again = image + b"again"
    assert sorted(run_with(again)[False]) == sorted(first[True] + resaved[True])
    page = driver.run(scenario())
    assert page["earlier"] == {**dict.fromkeys(first[True], note(image, again)),
                               **dict.fromkeys(resaved[True], note(resaved_image, again))}
    assert page["errors"] == []


def test_jobs_no_longer_in_the_manifest_come_a_page_at_a_time_and_let_their_videos_go(
        driver: Driver, tmp_path: Path) -> None:
    # 8 prompts x 8 vibes x 5 lightings, the texts of all prompts but rain-street edited since:
    # 280 jobs with a video kept from earlier versions of the manifest
    records = make_run(tmp_path, Sweep(prompts=8, vibes=8, lightings=5, failed_every=0))
    for record in records:
        record["planned"] = record["axes"]["prompt"] == "rain-street"
    write_records(tmp_path, records)
    earlier = [r["key"] for r in records if not r["planned"]]
    seen = ("({keys: [...document.querySelectorAll('#earlier .cell')].map((c) => c.dataset.key),"
            " same: document.querySelector('.earlier-job') === window.firstEarlier,"
            f" more: {texts('#earlier-more:not([hidden])')},"
            " first: Boolean(document.querySelector('.earlier-job')?.querySelector('video[src]')),"
            " videos: document.querySelectorAll('#earlier video').length, errors: pageErrors})")
    first_plays = UNTIL % "() => document.querySelector('.earlier-job').querySelector('video[src]')"

    page = driver.run(open_report(driver, tmp_path))
    driver.run(page.click(".filter[data-axis='vibe'] .value[data-value='Clay']"))
    closed = driver.run(page.evaluate(seen))  # nothing of the section built while it is closed
    assert closed == {"keys": [], "same": False, "more": [], "first": False, "videos": 0, "errors": []}

    async def scenario() -> list[dict[str, Any]]:
        await page.click("#earlier-count")
        await page.evaluate((UNTIL % "() => document.querySelector('.earlier-job')")
                            + ".then((job) => { window.firstEarlier = job; })")
        await page.click(".filter[data-axis='vibe'] .value[data-value='Clay']")
        steps = [await page.evaluate(seen)]
        await page.click("#earlier-more")
        await page.click("#earlier-more")
        await page.evaluate("document.querySelector('.earlier-job').scrollIntoView()")
        await page.evaluate(first_plays)
        steps.append(await page.evaluate(seen))
        await page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
        await page.evaluate(UNTIL % "() => document.querySelector('.earlier-job:last-child video[src]')")
        steps.append(await page.evaluate(seen))
        await page.evaluate("document.querySelector('.earlier-job').scrollIntoView()")
        await page.evaluate(first_plays)
        steps.append(await page.evaluate(seen))
        return steps

    opened, whole, at_the_end, back = driver.run(scenario())
    # a page built on opening, and kept as it is when the grid is laid out again
    assert opened["keys"] == earlier[:100] and opened["same"]
    assert opened["more"] == ["Show 100 more (180 not shown)"]
    assert whole["keys"] == earlier and whole["more"] == [] and whole["first"]
    assert not at_the_end["first"] and 0 < at_the_end["videos"] < 60  # those far away let go
    assert back["first"] and back["errors"] == []  # a video made again on coming back


def test_the_size_slider_sets_the_cells_width_and_a_vertical_clip_stays_within_the_window(
        driver: Driver, tmp_path: Path) -> None:
    # one prompt under two vibes, both 9:16: a sweep far narrower than the window
    records = make_run(tmp_path, Sweep(prompts=1, vibes=2, lightings=1, failed_every=0))
    for record in records:
        record["axes"]["aspect_ratio"] = "9:16"
    write_records(tmp_path, records)
    boxes = ("(() => { const s = document.getElementById('cell-size'); s.value = '%s';"
             " s.dispatchEvent(new Event('input'));"
             " return {window: innerHeight, cells: [...document.querySelectorAll('.cell')].map((c) => {"
             " const m = c.querySelector('.media').getBoundingClientRect();"
             " return [c.getBoundingClientRect().width, m.width, m.height]; })}; })()")

    async def scenario() -> dict[int, dict[str, Any]]:
        page = await open_report(driver, tmp_path)
        return {size: await page.evaluate(boxes % size) for size in (160, 280, 560)}

    seen = driver.run(scenario())
    for size in (160, 280):
        assert [cell[:2] for cell in seen[size]["cells"]] == [[size, size - 2]] * 2  # 1 px borders
    for cell, media, height in seen[560]["cells"]:
        assert cell == 560 and media <= 558
        assert height < seen[560]["window"] - 100  # the whole clip on screen, with its column's head
        assert abs(media / height - 9 / 16) < 0.01


def test_the_filters_are_kept_in_the_address_with_the_rows_and_columns(driver: Driver,
                                                                        simulated_run) -> None:
    out, records, _ = simulated_run
    snapshot = ("({hash: location.hash, rows: document.getElementById('row-axis').value,"
                " cells: document.querySelectorAll('#grid .cell').length, errors: pageErrors,"
                " hidden: [...document.querySelectorAll('.filter .value[aria-pressed=false]')]"
                ".map((b) => [b.closest('.filter').dataset.axis, b.dataset.value])})")
    # an address naming what this run does not have: an unknown axis, an unknown value, a filter
    # of an axis of one value (no button would undo it), a filter without a value
    odd_view = "#rows=nope&hide.vibe=Nope&hide.vibe=Clay&hide.model=hailuo-2_3&hide.bogus=1&hide.state"

    async def scenario() -> list[dict[str, Any]]:
        page = await open_report(driver, out)
        await page.evaluate("(() => { const s = document.getElementById('row-axis');"
                            " s.value = 'lighting'; s.dispatchEvent(new Event('change')); })()")
        await page.click(".filter[data-axis='vibe'] .value[data-value='Sci-Fi']")
        await page.click(".filter[data-axis='state'] .value[data-value='failed']")
        chosen = await page.evaluate(snapshot)
        again = await open_report(driver, out, chosen["hash"])  # a reload, a shared link
        odd = await open_report(driver, out, odd_view)
        return [chosen, await again.evaluate(snapshot), await odd.evaluate(snapshot)]

    chosen, again, odd = driver.run(scenario())
    assert chosen["hash"] == "#rows=lighting&cols=vibe&hide.state=failed&hide.vibe=Sci-Fi"
    assert chosen["cells"] == sum(1 for r in records
                                  if r["state"] != "failed" and r["axes"]["vibe"] != "Sci-Fi")
    assert again == chosen
    assert odd == {"hash": "#rows=prompt&cols=vibe&hide.vibe=Clay", "rows": "prompt",  # what it shows
                   "cells": sum(1 for r in records if r["axes"]["vibe"] != "Clay"),
                   "errors": [], "hidden": [["vibe", "Clay"]]}


def test_a_link_to_another_view_opened_in_the_same_tab_shows_that_view(driver: Driver,
                                                                       simulated_run) -> None:
    out, records, _ = simulated_run
    snapshot = (f"({{hash: location.hash, rows: document.getElementById('row-axis').value,"
                f" cols: document.getElementById('col-axis').value, sections: {texts('.section-value')},"
                " cells: document.querySelectorAll('#grid .cell').length, errors: pageErrors,"
                " hidden: [...document.querySelectorAll('.filter .value[aria-pressed=false]')]"
                ".map((b) => [b.closest('.filter').dataset.axis, b.dataset.value])})")
    # a link pasted in the address bar, or clicked in a chat opened in this tab: only the hash
    # changes, and the page's own listeners have run when this one does
    follow = ("new Promise((done) => { addEventListener('hashchange', () => requestAnimationFrame(done),"
              " {once: true}); location.hash = '#cols=prompt&hide.state=failed&rows=nope'; })")

    async def scenario() -> list[dict[str, Any]]:
        page = await open_report(driver, out, "#rows=lighting&hide.vibe=Clay&hide.bogus=1")
        opened = await page.evaluate(snapshot)
        await page.evaluate(follow)
        return [opened, await page.evaluate(snapshot)]

    opened, followed = driver.run(scenario())
    assert opened == {"hash": "#rows=lighting&cols=vibe&hide.vibe=Clay", "rows": "lighting", "cols": "vibe",
                      "sections": ["Golden Hour", "none"], "hidden": [["vibe", "Clay"]], "errors": [],
                      "cells": sum(1 for r in records if r["axes"]["vibe"] != "Clay")}
    assert followed == {"hash": "#rows=vibe&cols=prompt&hide.state=failed", "rows": "vibe", "cols": "prompt",
                        "sections": VIBES, "hidden": [["state", "failed"]], "errors": [],
                        "cells": sum(1 for r in records if r["state"] != "failed")}


def test_on_a_narrow_window_the_grid_scrolls_sideways_in_its_own_box_with_its_labels_in_view(
        driver: Driver, simulated_run, artifacts: Path) -> None:
    out, _, _ = simulated_run
    # where the first row's label, a column's head and its cell are, and what is seen at the label
    where = ("(() => { const grid = document.getElementById('grid'), row = grid.querySelector('.block .row');"
             " const label = row.querySelector('.label').getBoundingClientRect();"
             " const left = (e) => Math.round(e.getBoundingClientRect().left);"
             " return {page: [document.documentElement.scrollWidth, innerWidth],"
             " grid: [grid.scrollLeft, grid.scrollWidth > grid.clientWidth],"
             " toolbar: document.querySelector('.toolbar').getBoundingClientRect().left,"
             " label: label.left, covered: document.elementFromPoint(label.left + 5,"
             " label.top + label.height / 2).closest('.label') !== null,"
             " heads: [...document.querySelectorAll('.col-head')].map(left),"
             " slots: [...row.querySelectorAll('.slot')].map(left)}; })()")

    async def scenario() -> list[dict[str, Any]]:
        page = await open_report(driver, out)
        await page.send("Emulation.setDeviceMetricsOverride", width=390, height=844,
                        deviceScaleFactor=1, mobile=False)
        # the first row halfway down the window, under the header's totals, wrapped on three lines
        await page.evaluate("window.scrollBy(0, document.querySelector('#grid .block .row')"
                            ".getBoundingClientRect().top - innerHeight / 2)")
        before = await page.evaluate(where)
        # scrolled to its right end, then two frames: the scroll's event has been handled
        await page.evaluate("new Promise((done) => { const grid = document.getElementById('grid');"
                            " grid.scrollLeft = grid.scrollWidth;"
                            " requestAnimationFrame(() => requestAnimationFrame(done)); })")
        after = await page.evaluate(where)
        await page.screenshot(artifacts / "report-narrow.png")
        return [before, after]

    before, after = driver.run(scenario())
    for seen in (before, after):
        assert seen["page"] == [390, 390]  # the page itself never scrolls sideways
        assert seen["toolbar"] == 0 and seen["label"] == 20 and seen["covered"]
        assert seen["heads"] == seen["slots"]  # each column's head above its cells
    assert before["grid"] == [0, True]
    assert after["grid"][0] > 0 and after["slots"][0] < before["slots"][0]


def test_prompts_as_the_only_axis_show_their_text_under_their_column_heads(driver: Driver,
                                                                           tmp_path: Path) -> None:
    long_text = "A slow pan over a night market, " * 12
    make_run(tmp_path, Sweep(prompts=2, vibes=1, lightings=1, failed_every=0),
             prompt_texts={"rain-street": PROMPTS["rain-street"], "market": long_text})
    seen = ("({columns: [...document.querySelectorAll('.col-head')].map((h) => {"
            " const p = h.querySelector('.col-prompt');"
            " return p && [p.textContent, p.title, p.scrollHeight > p.clientHeight]; }),"
            f" counts: {texts('.section-head .muted')}, errors: pageErrors}})")

    async def scenario() -> list[dict[str, Any]]:
        page = await open_report(driver, tmp_path)
        everything = await page.evaluate(seen)
        await page.click(".filter[data-axis='prompt'] .value[data-value='market']")
        return [everything, await page.evaluate(seen)]

    everything, one = driver.run(scenario())
    assert everything == {"columns": [[PROMPTS["rain-street"], PROMPTS["rain-street"], False],
                                      [long_text, long_text, True]],  # cut short, whole on hover
                          "counts": ["2 jobs · 2 done · $0.56"], "errors": []}
    assert one == {"columns": [[PROMPTS["rain-street"], PROMPTS["rain-street"], False]],
                   "counts": ["1 job · 1 done · $0.28"], "errors": []}


def test_a_grid_of_thousands_of_jobs_builds_only_the_rows_near_the_window(driver: Driver,
                                                                         tmp_path: Path) -> None:
    # 25 prompts x 8 vibes x 5 lightings x 5 samples: 5,000 jobs, 625 rows of 8 cells
    records = make_run(tmp_path, Sweep(prompts=25, vibes=8, lightings=5, samples=5, failed_every=0))
    by_key = {record["key"]: record for record in records}
    seen = ("({cells: [...document.querySelectorAll('#grid .cell')].map((c) => c.dataset.key),"
            " videos: document.querySelectorAll('video').length,"
            f" shown: {texts('.total.shown dd')}, columns: {texts('.col-head')}, errors: pageErrors}})")
    at_the_end = UNTIL % "() => document.querySelector('#grid .block:last-child .cell')"

    async def scenario() -> list[dict[str, Any]]:
        page = await open_report(driver, tmp_path)
        steps = [await page.evaluate(seen)]
        await page.click(".filter[data-axis='vibe'] .value[data-value='Clay']")
        steps.append(await page.evaluate(seen))
        await page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
        await page.evaluate(at_the_end)
        steps.append(await page.evaluate(seen))
        await page.click("#swap-axes")  # 25 prompts as columns, wider than the window
        await page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
        await page.evaluate(at_the_end)
        # then to the right, again each frame until a row's last cell is built there: rows built
        # meanwhile change the grid's width
        await page.evaluate(UNTIL % ("() => { const grid = document.getElementById('grid');"
                                     " grid.scrollLeft = grid.scrollWidth; return"
                                     " document.querySelector('#grid .row .slot:last-child .cell'); }"))
        await page.evaluate(FRAMES)  # the rows the Swap built at the top let go, far from the window
        steps.append(await page.evaluate(seen))
        return steps

    first, filtered, scrolled, sideways = driver.run(scenario())
    for step in (first, filtered, scrolled, sideways):
        assert 0 < len(step["cells"]) < 400 and step["videos"] < 100 and step["errors"] == []
    assert first["shown"] == ["5000"] and filtered["shown"] == ["4375"]
    assert {by_key[key]["axes"]["prompt"] for key in first["cells"]} == {"rain-street"}
    assert "Clay" not in filtered["columns"] and len(filtered["columns"]) == 7
    assert {by_key[key]["axes"]["vibe"] for key in filtered["cells"]} <= set(filtered["columns"])
    scrolled_prompts = {by_key[key]["axes"]["prompt"] for key in scrolled["cells"]}
    assert "scene-25" in scrolled_prompts and "rain-street" not in scrolled_prompts  # let go
    sideways_prompts = {by_key[key]["axes"]["prompt"] for key in sideways["cells"]}
    assert "scene-25" in sideways_prompts and "rain-street" not in sideways_prompts


def test_a_prompt_per_video_is_filtered_by_text_and_builds_only_the_sections_near_the_window(
        driver: Driver, tmp_path: Path) -> None:
    # 2,000 prompts, one video each: a section of one row per prompt, no button per prompt
    records = make_run(tmp_path, Sweep(prompts=2000, vibes=1, lightings=1, failed_every=0))
    seen = (f"({{sections: {texts('#grid .section-value')}, shown: {texts('.total.shown dd')},"
            " buttons: document.querySelectorAll('.filter .value').length,"
            " find: [...document.querySelectorAll('.filter .find')]"
            ".map((i) => [i.closest('.filter').dataset.axis, i.value]),"
            " hash: location.hash, errors: pageErrors})")
    at_the_end = UNTIL % "() => document.querySelector('#grid .block[data-value=\"scene-2000\"] .cell')"

    async def scenario() -> list[dict[str, Any]]:
        page = await open_report(driver, tmp_path)
        steps = [await page.evaluate(seen)]
        await page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
        await page.evaluate(at_the_end)
        steps.append(await page.evaluate(seen))
        await page.evaluate("(() => { const box = document.querySelector('.filter .find');"
                            " box.value = 'SCENE-12'; box.dispatchEvent(new Event('input')); })()")
        steps.append(await page.evaluate(seen))
        again = await open_report(driver, tmp_path, steps[-1]["hash"])  # a reload, a shared link
        steps.append(await again.evaluate(seen))
        return steps

    first, scrolled, found, again = driver.run(scenario())
    for step in (first, scrolled, found, again):
        assert 0 < len(step["sections"]) < 100 and step["buttons"] == 1 and step["errors"] == []
    assert first["sections"][0] == "rain-street" and first["shown"] == ["2000"]
    assert first["find"] == [["prompt", ""]] and first["hash"] == "#rows=prompt&cols=vibe"
    assert "scene-2000" in scrolled["sections"] and "rain-street" not in scrolled["sections"]  # let go
    holding = [r["axes"]["prompt"] for r in records if "scene-12" in r["axes"]["prompt"]]
    assert len(holding) == 111  # scene-12, scene-120 to 129, scene-1200 to 1299
    assert found["shown"] == again["shown"] == ["111"] and set(found["sections"]) <= set(holding)
    assert found["find"] == again["find"] == [["prompt", "SCENE-12"]]
    assert found["hash"] == again["hash"] == "#rows=prompt&cols=vibe&find.prompt=SCENE-12"


def test_the_reader_keeps_their_place_across_filters_swaps_picks_and_the_size_slider(
        driver: Driver, tmp_path: Path) -> None:
    # 5,000 jobs, 625 rows: the reader far down the grid, where rows look alike
    make_run(tmp_path, Sweep(prompts=25, vibes=8, lightings=5, samples=5, failed_every=0))
    # the first row under the column heads: its first cell and how far down the window it starts
    where = ("(() => { const under = document.getElementById('grid-head').getBoundingClientRect().bottom;"
             " const row = [...document.querySelectorAll('#grid .row')]"
             ".find((r) => r.getBoundingClientRect().bottom > under);"
             " return [row.querySelector('.cell').dataset.key, Math.round(row.getBoundingClientRect().top),"
             " pageErrors]; })()")
    vibe = ".filter[data-axis='vibe'] .value[data-value='Sci-Fi']"
    steps = {"a filter off and on, then Size": [vibe, vibe, SIZE % 340],
             "Swap twice, then Size": ["#swap-axes", "#swap-axes", SIZE % 200],
             "Picks only on and off": ["#only-picks", "#only-picks"],
             "Clear picks, then Size": ["#clear-picks", SIZE % 560]}

    async def scenario() -> dict[str, Any]:
        page = await open_report(driver, tmp_path)
        await page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight * 0.4)")
        await page.evaluate(FRAMES)
        seen = {"before": await page.evaluate(where)}
        for name, actions in steps.items():
            for action in actions:  # clicked where they are, the page not scrolled to them
                await page.evaluate(action if action.startswith("(")
                                    else f"document.querySelector({json.dumps(action)}).click()")
                await page.evaluate(FRAMES)
            seen[name] = await page.evaluate(where)
        return seen

    seen = driver.run(scenario())
    before = seen.pop("before")
    assert before[2] == []
    for name, place in seen.items():
        assert place[0] == before[0] and abs(place[1] - before[1]) <= 1 and place[2] == [], name


def test_a_grid_taller_than_the_browser_lays_out_is_squeezed_to_fit_and_its_end_is_reached(
        driver: Driver, tmp_path: Path) -> None:
    # 2,000 rows of one cell, 730,000 px at Size 560, the page given room for 100,000 of them as a
    # page of 100,000 such rows has room for Chromium's 33,554,432
    records = make_run(tmp_path, Sweep(prompts=25, vibes=1, lightings=5, samples=16, failed_every=0))
    seen = ("({height: document.documentElement.scrollHeight, errors: pageErrors,"
            " rowHeight: parseFloat(getComputedStyle(document.getElementById('board'))"
            ".getPropertyValue('--row-height')), rows: [...document.querySelectorAll('#grid .row')]"
            ".map((r) => r.offsetHeight)})")
    at_the_end = UNTIL % ("() => { window.scrollTo(0, document.documentElement.scrollHeight);"
                          f" return document.querySelector('.cell[data-key=\"{records[-1]['key']}\"]'); }}")

    async def scenario() -> list[dict[str, Any]]:
        page = await open_report(driver, tmp_path, "#rows=prompt&cols=vibe")
        await page.evaluate("window.hailuoReport.room = 100000")
        await page.evaluate(SIZE % 560)
        steps = [await page.evaluate(seen)]
        await page.evaluate(at_the_end)
        steps.append(await page.evaluate(seen))
        return steps

    for step in driver.run(scenario()):
        # the rows built near the window, at their own height, on top of the room
        assert 100_000 <= step["height"] < 150_000 and step["errors"] == []
        assert all(abs(height - step["rowHeight"]) < 1 for height in step["rows"])
