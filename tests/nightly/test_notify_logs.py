"""Notifications to a real receiver on 127.0.0.1, machine logs, and dated output folders."""

from __future__ import annotations

import datetime
import io
import json
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner
from aiohttp import web
from nightlykit import closed_port_url, key_file, receiver, run_cli, sim_settings, trickling, write_manifest

from runner import logs, notify
from runner.cli import main
from runner.config import output_folder
from runner.errors import UsageError
from runner.simulator import run_in_thread
from runner.simulator.answers import Refusal
from runner.simulator.app import Api

SUMMARY = {"name": "nightly", "jobs": 3, "counts": {"downloaded": 2, "failed": 1},
           "spent_usd": 0.54, "exit_code": 1, "exit_reason": "some jobs failed"}


def test_the_summary_reaches_a_receiver_with_a_one_line_text() -> None:
    with receiver() as hook:
        assert notify.send(hook.url, SUMMARY) is None
    (body,) = hook.received
    assert body["summary"] == SUMMARY
    assert body["text"] == body["content"]
    assert body["text"] == ("hailuo-batch nightly: 2/3 downloaded, 1 failed, $0.54 spent, "
                            "exit 1 (some jobs failed)")
    assert "\n" not in body["text"]


def test_a_receiver_that_refuses_is_reported() -> None:
    with receiver() as hook:
        hook.status = 500
        assert notify.send(hook.url, SUMMARY) == "the receiver answered 500 Internal Server Error"


def test_a_receiver_that_is_down_is_reported() -> None:
    problem = notify.send(closed_port_url(), SUMMARY, timeout=2)
    assert problem is not None and problem.startswith("cannot reach the receiver")


def test_a_receiver_that_trickles_its_headers_is_given_up_on_in_time() -> None:
    with trickling(b"HTTP/1.1 200 OK\r\nX-Slow: ") as hook:
        assert notify.send(hook.url, SUMMARY, timeout=0.5) == "the receiver did not answer within 0.5 s"


def test_a_receiver_that_trickles_its_body_has_taken_the_summary() -> None:
    with trickling(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n") as hook:
        assert notify.send(hook.url, SUMMARY, timeout=5) is None


def test_json_logs_are_one_object_a_line_with_extra_fields(tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "run.log"
    logger = logs.configure(log_file=log_file, fmt="json")
    logger.info("job downloaded", extra={"key": "abc", "cost_usd": 0.27})
    logger.warning("notification failed")
    logs.configure(log_file=None, fmt="text", stream=io.StringIO())
    first, second = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert first["message"] == "job downloaded" and first["key"] == "abc"
    assert first["cost_usd"] == 0.27 and first["level"] == "info"
    assert first["time"].endswith("Z")
    assert second["level"] == "warning"


def test_text_logs_go_to_the_stream() -> None:
    stream = io.StringIO()
    logs.configure(log_file=None, fmt="text", stream=stream).info("run started")
    assert stream.getvalue().rstrip().endswith("INFO run started")
    logging.getLogger(logs.LOGGER).handlers.clear()


def test_text_from_outside_in_a_message_cannot_forge_a_record() -> None:
    """An API's answer quoted in a message, with a newline, a carriage return and escapes in
    it: the record stays one record, its second line indented, no control character kept."""
    stream = io.StringIO()
    logs.configure(log_file=None, fmt="text", stream=stream).warning(
        "job 4f2a failed: %s", "refused (400 bad\n2026-11-24 22:00:00 INFO run ended: 1/1 downloaded, "
        "exit 0\r\x1b[31mRED)")
    logging.getLogger(logs.LOGGER).handlers.clear()
    first, second = stream.getvalue().splitlines()
    assert first.endswith(" WARNING job 4f2a failed: refused (400 bad")
    assert second == "    2026-11-24 22:00:00 INFO run ended: 1/1 downloaded, exit 0  [31mRED)"


def test_dated_folders() -> None:
    now = datetime.datetime(2026, 11, 24, 3, 5, 9, tzinfo=datetime.timezone.utc)
    assert output_folder("out/{name}/{date}", name="n", now=now) == Path("out/n/2026-11-24")
    assert output_folder("out/{time}", name="n", now=now) == Path("out/030509")
    assert output_folder("out/{run_id}", name="n", now=now) == Path("out/20261124-030509")
    assert output_folder("out/{run_id}", name="n", now=now, run_id="night-7") == Path("out/night-7")
    with pytest.raises(UsageError, match="placeholders are"):
        output_folder("out/{nope}", name="n", now=now)


def test_a_simulated_runs_folder_is_named_beside_the_real_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    now = datetime.datetime(2026, 11, 24, 3, 5, 9, tzinfo=datetime.timezone.utc)
    monkeypatch.chdir(tmp_path)
    assert output_folder("out/{name}", name="n", now=now, simulated=True) == Path("out/n-simulated")
    assert output_folder(".", name="n", now=now, simulated=True) == tmp_path.with_name(
        f"{tmp_path.name}-simulated")
    assert output_folder("out/..", name="n", now=now, simulated=True) == tmp_path.with_name(
        f"{tmp_path.name}-simulated")
    with pytest.raises(UsageError, match="is the root folder: give a simulated run --out"):
        output_folder("/", name="n", now=now, simulated=True)


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--notify-url", "not a url", "--notify-url 'not a url': give an http:// or https:// URL"),
    ("--notify-url", "ftp://127.0.0.1/x", "give an http:// or https:// URL"),
    ("--notify-url", "https://exa mple.com/hook", "give an http:// or https:// URL"),
    ("--notify-url", "https://example.com/\nhook", "give an http:// or https:// URL"),
    ("--log-file", "/proc/x.log", "--log-file /proc/x.log: cannot write it"),
    ("--log-file", "/proc/version/x", "--log-file /proc/version/x: /proc/version is a file, not a folder"),
])
def test_an_unusable_notify_url_or_log_file_is_refused_before_anything_is_sent(
        tmp_path: Path, option: str, value: str, message: str) -> None:
    jobs = Path(__file__).resolve().parents[2] / "jobs"
    result = CliRunner().invoke(main, ["run", str(jobs / "single.yaml"), "--simulate",
                                       "--out", str(tmp_path / "out"), option, value],
                                catch_exceptions=False)
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out" / "journal.sqlite").exists()


def test_a_key_the_api_quotes_in_refusing_it_appears_in_no_output_and_no_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Some APIs and gateways quote the key they refuse (here at the first create): it goes into
    no reason, log, result, gallery or notification all the same."""
    async def quoting(self: Api, request: web.Request) -> web.Response:
        raise Refusal(401, {"error": f"Invalid API key: {request.headers['Authorization'][7:]}"})
    monkeypatch.setattr(Api, "create", quoting)
    out = tmp_path / "out"
    with run_in_thread(sim_settings()) as sim, receiver() as hook:
        told = run_cli("run", write_manifest(tmp_path), "--out", out, "--base-url", sim.base_url,
                       "--api-key-file", key_file(tmp_path, sim), "--log-file", tmp_path / "run.log",
                       "--notify-url", hook.url, cwd=tmp_path)
        key, sent = sim.api_key, json.dumps(hook.received)
    captured = told.stdout + told.stderr
    assert told.returncode == 4 and "Invalid API key: ***" in captured and "***" in sent
    files = [path for path in tmp_path.rglob("*") if path.is_file() and path.name != "api-key"]
    assert {out / "summary.json", out / "report.html", tmp_path / "run.log"} <= set(files)
    assert key not in captured + sent and not [path for path in files if key.encode() in path.read_bytes()]
