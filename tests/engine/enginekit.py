"""Helpers of the engine tests: small manifests, a fast simulator, a run, and the audit after it.

Runs go over real sockets to the project's simulator on 127.0.0.1, served from a thread so that
`run_batch` owns its event loop exactly as the command line does. Time is scaled, so renders take
a tenth of a second and nothing sleeps to wait.
"""

from __future__ import annotations

import json
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner
from sharedkit import Quiet, journal_rows_now, serving

from runner import files
from runner.api import Timeouts
from runner.batch import RunConfig, RunReport, run_batch
from runner.cli import main
from runner.control import Clock, EventSink, ignore_events
from runner.plan import UPLOAD_PREFIX, Job, canonical_json
from runner.report import REPORT_FILE
from runner.results import CSV, ERRORS, RESULTS, SUMMARY
from runner.schedule import Backoff
from runner.simulator import ProcessSimulator, SimSettings, ThreadedSimulator
from runner.state import JobRow, Journal

ROOT = Path(__file__).resolve().parents[2]
# Image-to-video: the fast model from the shipped sunset frame (copy jobs/images beside the manifest).
FRAME = {"model": "hailuo-2_3-fast", "resolution": "768p", "duration": 6, "aspect_ratio": "16:9",
         "start_frame": {"path": "images/sunset.png"}}
FRAME_PROMPTS = ["A sunset over the sea, waves rolling in", "The same sunset, a sailboat crossing it"]


def copy_frames(folder: Path) -> None:
    """The example start frames (jobs/images) copied beside a manifest written into `folder`."""
    shutil.copytree(ROOT / "jobs" / "images", folder / "images")


def simulated_process(manifest: Path, out: str | Path, *, cwd: Path | None = None) -> subprocess.Popen[str]:
    """`hailuo-batch run --simulate` in a process of its own; renders of 60 to 120 simulated
    seconds take 1 to 2 real seconds at this scale."""
    return subprocess.Popen(
        [sys.executable, "-m", "runner", "run", str(manifest), "--simulate", "--time-scale", "60",
         "--out", str(out)], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


FAST_BACKOFF = Backoff(base=0.01, cap=0.05, attempts=10)
FAST_TIMEOUTS = Timeouts(connect=2.0, call=1.0, download=5.0)
PROMPTS = ["A cinematic shot of rain falling on a quiet city street at night",
           "A ginger cat asleep on a sunlit rooftop"]


# A simulator whose renders take 0.1 to 0.15 real seconds and which limits nothing, in a thread
# (`sim_settings`) or in a process of its own (`run_in_process(SIM_DEFAULTS)`).
SIM_DEFAULTS: dict[str, Any] = {"render_seconds": 5.0, "render_jitter_seconds": 1.0,
                                "time_scale": 40.0, "creates_per_minute": None,
                                "requests_per_minute": None, "seed": 7}


def sim_settings(**changes: Any) -> SimSettings:
    """The SIM_DEFAULTS simulator, with `changes`."""
    return SimSettings(**{**SIM_DEFAULTS, **changes})


def write_manifest(folder: Path, *, prompts: list[Any] | None = None,
                   repeat: int = 2, styles: dict[str, Any] | None = None,
                   run: dict[str, Any] | None = None, **extra: Any) -> Path:
    """A small valid manifest: prompts x vibes x samples, 16:9 768p 6 s text-to-video."""
    document: dict[str, Any] = {
        "version": 1, "name": "sweep",
        "defaults": {"model": "hailuo-2_3", "resolution": "768p", "duration": 6,
                     "aspect_ratio": "16:9"},
        "prompts": prompts if prompts is not None else PROMPTS,
        "styles": styles if styles is not None else {"vibe": ["Pro Photo", "none"]},
        "repeat": repeat,
        "run": {"concurrency": 4, "submit_per_minute": 60000, "poll_interval": "0.05s",
                "timeout": "30s", **(run or {})},
        "output": {"dir": "out/{name}",
                   "filename": "{prompt}/{vibe}_{n}.mp4"},
        **extra}
    path = folder / f"{document['name']}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def run(manifest: Path, out: Path, sim: ThreadedSimulator | ProcessSimulator, *,
        api_key: str | None = None, sink: EventSink = ignore_events, clock: Clock | None = None,
        **overrides: Any) -> RunReport:
    """The manifest run into `out` against `sim`, fast: its events to `sink`, on `clock`,
    `overrides` as run settings (and `engine`, `timeouts`, `backoff`, `retry_failed`,
    `fetch_missing` as their RunConfig fields)."""
    engine = overrides.pop("engine", {})
    timeouts = overrides.pop("timeouts", FAST_TIMEOUTS)
    backoff = overrides.pop("backoff", FAST_BACKOFF)
    flags = {flag: overrides.pop(flag, False) for flag in ("retry_failed", "fetch_missing")}
    return run_batch(RunConfig(manifest=manifest, out=out, overrides=overrides,
                               base_url=sim.base_url, api_key=api_key or sim.api_key,
                               timeouts=timeouts, backoff=backoff, **flags,
                               engine={"tick": 0.05, "settle": 0.1, **engine}), sink=sink,
                     clock=clock)


def invoke(*args: str, key: str | None = None) -> tuple[int, str, str]:
    """`hailuo-batch ARGS` through click, with `key` (or none) as LEONARDO_API_KEY: the exit code,
    standard output and standard error. An exception the command does not turn into an exit
    code is raised here, so a traceback fails the test."""
    result = CliRunner().invoke(main, list(args), env={"LEONARDO_API_KEY": key},
                                catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def invoke_simulated(manifest: Path, out: Path, *more: str) -> tuple[int, str, str]:
    """`run --simulate` of `manifest` into `out` through click, with `more` flags (`invoke`);
    renders of 60 to 120 simulated seconds last 0.1 to 0.2 s."""
    return invoke("run", str(manifest), "--simulate", "--time-scale", "600", "--quiet", "--out", str(out),
                  *more)


def invoke_run(manifest: Path, out: Path, sim: ThreadedSimulator, *more: str) -> tuple[int, str, str]:
    """`hailuo-batch run MANIFEST --out OUT` against `sim`, quiet, with `more` flags, through
    `invoke`."""
    return invoke("run", str(manifest), "--out", str(out), "--base-url", sim.base_url, "--quiet",
                  *more, key=sim.api_key)


@contextmanager
def refusing_api(user_id: str, status: int, error: str) -> Iterator[tuple[str, list[str]]]:
    """An API root on 127.0.0.1 answering /v1/me with the account `user_id` and every other call
    `status` with `{"error": error}`; and the calls asked."""
    asked: list[str] = []

    class Refuse(Quiet, BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            asked.append(f"{self.command} {self.path}")
            me = self.path.endswith("/v1/me")
            body = json.dumps({"user_details": [{"user": {"id": user_id}}]} if me
                              else {"error": error}).encode()
            self.send_response(200 if me else status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_GET

    with serving(Refuse) as root:
        yield f"{root}/api/rest", asked


def down_url() -> str:
    """An API root on 127.0.0.1 where nothing listens: an API that is down."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}/api/rest"


def videos(out: Path) -> dict[Path, bytes]:
    """Every video under `out`, with its bytes."""
    return {path: path.read_bytes() for path in out.rglob("*.mp4")}


def journal_rows(out: Path) -> list[dict[str, Any]]:
    """The jobs table, each row's `request` with uploaded start frames' real ids put in."""
    conn = sqlite3.connect(out / "journal.sqlite")
    conn.row_factory = sqlite3.Row
    try:
        uploads = dict(conn.execute("SELECT sha256, image_id FROM uploads").fetchall())
        rows = [dict(row) for row in conn.execute("SELECT * FROM jobs")]
    finally:
        conn.close()
    for row in rows:
        for sha, image_id in uploads.items():
            row["request"] = row["request"].replace(UPLOAD_PREFIX + sha, image_id)
    return rows


def audit(out: Path, sim: ThreadedSimulator) -> dict[str, Any]:
    """Check what every fault test must hold, and return the figures for more checks.

    Every job is downloaded (its file whole) or failed with a reason; every generation the
    simulator billed belongs to exactly one job, so nothing was created twice; creates of
    identical bodies are no more than the jobs that share that body.
    """
    rows = journal_rows(out)
    books = sim.books
    for row in rows:
        assert row["state"] in ("downloaded", "failed"), row
        if row["state"] == "failed":
            assert row["reason"], row
        else:
            assert files.check_file(out / row["file"], files.check_mp4) is None
            side = json.loads((out / row["sidecar"]).read_text("utf-8"))
            assert side["generation_id"] == row["generation_id"] and side["key"] == row["key"]
            sent = json.loads(row["request"])["parameters"]["prompt"]
            assert side["request"]["parameters"]["prompt"] == sent
            assert side["downloaded_at"].endswith("Z") and side["submitted_at"] <= side["downloaded_at"]
    claimed = [row["generation_id"] for row in rows if row["generation_id"]]
    billed = [g.id for g in books.generations]
    assert len(claimed) == len(set(claimed))
    assert sorted(claimed) == sorted(billed), "a billed generation belongs to no job"
    per_body = Counter(canonical_json(g.request) for g in books.generations)
    jobs_per_body = Counter(canonical_json(json.loads(row["request"])) for row in rows)
    for body, count in per_body.items():
        assert count <= jobs_per_body[body]
    assert books.creates_accepted == len(billed)
    return {"rows": rows, "books": books,
            "states": Counter(row["state"] for row in rows)}


def results_files(out: Path) -> dict[str, bytes]:
    """The folder's results files and gallery, those it holds, by name with their bytes."""
    paths = (out / name for name in (RESULTS, ERRORS, CSV, SUMMARY, REPORT_FILE))
    return {path.name: path.read_bytes() for path in paths if path.exists()}


def results_lines(out: Path, name: str = "results.jsonl") -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / name).read_text("utf-8").splitlines() if line]


def job(index: int, *, cost: float = 0.27, prompt: str = "a street at night") -> Job:
    request = {"model": "hailuo-2_3", "public": False,
               "parameters": {"prompt": prompt, "mode": "RESOLUTION_768", "duration": 6,
                              "width": 1376, "height": 768}}
    return Job(key=f"{index:064x}", index=index, axes={"prompt": "p", "n": 1}, styles=("Warm",),
               request=request, estimated_cost=cost, filename=f"p/{index}.mp4")


def step(journal: Journal, key: str, move: str, **values: Any) -> JobRow:
    """One transition of the job `key` (a `JobRow` move by name), written as the engine writes it."""
    return journal.apply([getattr(journal.job(key), move)(**values)])[0]


def transitions(out: Path) -> int:
    found = journal_rows_now(out, "SELECT COUNT(*) FROM transitions")
    return found[0][0] if found else 0


def runs(out: Path) -> list[tuple[float | None, int | None]]:
    """Each run's end (None while it has none) and exit code, as the journal has them now."""
    return journal_rows_now(out, "SELECT ended_at, exit_code FROM runs ORDER BY id")


def ended(out: Path) -> int | None:
    """The exit code of the folder's last run once its end is recorded; None before."""
    found = runs(out)
    return found[-1][1] if found and found[-1][0] is not None else None


def killed_retry_run(out: Path, manifest: Path) -> None:
    """What a run with --retry-failed leaves when it is killed after taking the failed jobs up
    again and before sending any: its start recorded, the jobs pending with their reasons. (A
    real kill cannot be pinned between those two steps: the run logs nothing in between.)"""
    with Journal.open(out) as journal:
        killed = journal.begin_run(name="sweep", manifest=str(manifest), settings={},
                                   at=time.time())
        journal.retry_failed(run_id=killed, at=time.time())


WAIT_LIMIT = 60.0  # seconds a test waits for a process to reach a point before it fails


def wait_until(process: subprocess.Popen[str], ready: Callable[[], bool]) -> bool:
    """True once `ready()` is; False if the process ended first. A process that never gets
    there in WAIT_LIMIT seconds (held on a pipe it filled too early, say) fails the test."""
    deadline = time.monotonic() + WAIT_LIMIT
    while not ready():
        try:
            process.wait(timeout=0.005)
            return False
        except subprocess.TimeoutExpired:
            if time.monotonic() > deadline:
                raise AssertionError(f"the process did not get there in {WAIT_LIMIT:g} s") from None
    return True


def wait_for_transitions(process: subprocess.Popen[str], out: Path, count: int) -> bool:
    """True once the journal holds `count` transitions; False if the process ended first."""
    return wait_until(process, lambda: transitions(out) >= count)
