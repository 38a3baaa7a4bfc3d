"""Starting the simulator: in a thread for synchronous code, on a chosen port, and from the CLI."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from simkit import TEXT_TO_VIDEO, run, wire

from runner.errors import UsageError
from runner.simulator import SimSettings, run_in_thread


def _call(url: str, key: str, body: Any = None, *, timeout: float = 10) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={
        "authorization": f"Bearer {key}", "content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.load(response)


@contextmanager
def _taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_run_in_thread_serves_synchronous_code_and_stops() -> None:
    with run_in_thread(SimSettings(render_jitter_seconds=0)) as sim:
        created = _call(sim.base_url + "/v2/generations", sim.api_key, TEXT_TO_VIDEO)
        generation_id = created["generate"]["generationId"]
        sim.advance(91)
        polled = _call(f"{sim.base_url}/v1/generations/{generation_id}", sim.api_key)
        assert polled["generations_by_pk"]["status"] == "COMPLETE"
        books = sim.books
        assert books.creates_accepted == 1 and books.generations[0].status == "COMPLETE"
        assert sim.call(lambda inner: inner.port) == sim.port
    assert not any(t.name == "leonardo-simulator" for t in threading.enumerate())
    with pytest.raises(urllib.error.URLError):
        _call(sim.base_url + "/v1/me", sim.api_key)


def test_a_stop_ends_the_answers_whose_client_gave_up() -> None:
    with run_in_thread(SimSettings(fault_slow=1.0, slow_seconds=3600.0)) as sim:
        with pytest.raises(TimeoutError):
            _call(sim.base_url + "/v1/me", sim.api_key, timeout=0.1)
        answering = sim.call(lambda _: asyncio.all_tasks() - {asyncio.current_task()})
        assert answering and sim.books.faults == {"slow": 1}  # its answer is on its way, for an hour
    assert [task for task in answering if not task.done()] == []  # none left pending to be destroyed


def test_a_start_failure_in_the_thread_reaches_the_caller() -> None:
    with _taken_port() as port, pytest.raises(UsageError, match=f"port {port}"), \
            run_in_thread(SimSettings(port=port)):
        pass


def test_the_simulator_listens_on_the_port_it_is_given() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        free = sock.getsockname()[1]

    async def scenario(c: Any) -> str:
        return c.sim.base_url
    assert run(scenario, SimSettings(port=free)) == f"http://127.0.0.1:{free}/api/rest"


def _start_cli(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], dict[str, str]]:
    process = subprocess.Popen([sys.executable, "-m", "runner", "simulate", *args], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    announced: dict[str, str] = {}
    assert process.stdout is not None
    line = ""
    while "Ctrl-C to stop" not in line:
        line = process.stdout.readline()
        assert line, process.stderr.read() if process.stderr else "the simulator stopped"
        name, sep, value = line.strip().partition(": ")
        if sep:
            announced[name.strip()] = value.strip()
    return process, announced


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_the_simulate_command_prints_url_and_key_and_stops_cleanly(tmp_path: Path, stop: int) -> None:
    log = tmp_path / "requests.jsonl"
    process, announced = _start_cli(tmp_path, "--time-scale", "60", "--log-path", str(log),
                                    "--fault", "failed=1", "--set", "create-answer=flat")
    try:
        assert announced["base URL"].startswith("http://127.0.0.1:")
        assert announced["balance"] == "unlimited"
        me = _call(announced["base URL"] + "/v1/me", announced["API key"])
        assert me["user_details"][0]["user"]["id"] == announced["user id"]
        created = _call(announced["base URL"] + "/v2/generations", announced["API key"], TEXT_TO_VIDEO)
        assert set(created) == {"generationId", "apiCreditCost"}
    finally:
        process.send_signal(stop)
        out, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    assert "Traceback" not in err
    summary = json.loads(out[out.index("{"):])
    assert summary["requests"] == {"create": {"200": 1}, "me": {"200": 1}}
    assert announced["API key"] not in log.read_text("utf-8")


def test_a_balance_given_with_a_kept_account_replaces_its_balance_and_the_start_shows_it(
        tmp_path: Path) -> None:
    """1,000 credits, a create of 180 spends them down to 820; started again with 2,000 the
    account has 2,000 (not the 820 it kept), 1,820 after a create; started again with none,
    the 1,820 it kept."""
    shown, left = [], []
    for given in (["--balance-credits", "1000"], ["--balance-credits", "2000"], []):
        process, announced = _start_cli(tmp_path, "--state", "state.jsonl", *given)
        try:
            shown.append(announced.get("balance"))
            key, root = announced["API key"], announced["base URL"]
            _call(root + "/v2/generations", key, TEXT_TO_VIDEO)
            left.append(_call(root + "/v1/me", key)["user_details"][0]["apiPaidTokens"])
        finally:
            process.send_signal(signal.SIGINT)
            process.communicate(timeout=20)
    assert left == [820, 1820, 1640]
    assert shown == ["1,000 credits ($1.50)", "2,000 credits ($3.00)", "1,820 credits ($2.73)"]


def test_a_client_that_gives_up_on_a_slow_answer_is_booked_as_499_with_no_traceback(
        tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    process, announced = _start_cli(tmp_path, "--time-scale", "60", "--fault", "slow=1",
                                    "--set", "slow_seconds=60", "--log-path", str(log))  # 1 s
    url, key = announced["base URL"] + "/v2/generations", announced["API key"]
    try:
        with pytest.raises(TimeoutError):
            _call(url, key, TEXT_TO_VIDEO, timeout=0.1)
        # Its answer waits as long and started later, so it comes after the first one's end.
        created = _call(url, key, wire(prompt="A lighthouse in a storm, waves breaking"))
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    assert process.returncode == 0 and err == ""
    summary = json.loads(out[out.index("{"):])
    assert (summary["creates_accepted"], summary["faults"]) == (1, {"slow": 2})
    assert summary["requests"] == {"create": {"200": 1, "499": 1}}
    logged = [json.loads(line) for line in log.read_text("utf-8").splitlines()]
    assert [(call["status"], call["generation"]) for call in logged] == [
        (499, None), (200, created["generate"]["generationId"])]


@pytest.mark.parametrize(("args", "message"), [
    (["--slots", "none"], "--slots: 'none' is not a whole number"),
    (["--fault", "lightning=1"], "--fault lightning: unknown fault"),
    (["--fault", "failed"], "expected NAME=VALUE"),
    (["--set", "colour=blue"], "unknown simulator setting 'colour'"),
    (["--time-scale", "0"], "--time-scale: must be a finite number more than 0, not 0.0"),
    (["--time-scale", "nan"], "--time-scale: must be a finite number more than 0, not nan"),
    (["--port", "http"], "--port: 'http' is not a whole number"),
    (["--queue-per-slot", "-1"], "--queue-per-slot: must not be negative, not -1"),
    (["--balance-credits", "-5"], "--balance-credits: must not be negative, not -5"),
    (["--fault", "slow=2"], "--fault slow: must be a rate from 0 to 1, not 2.0"),
    (["--set", "moderation-status=451"], "--set moderation_status: must be 400 or 403, not 451"),
    (["--render-seconds", "20"],  # settings together are told by their names
     "error: render_jitter_seconds must be at least 0 and less than render_seconds"),
])
def test_bad_simulate_options_exit_2_without_a_traceback(tmp_path: Path, args: list[str],
                                                         message: str) -> None:
    done = subprocess.run([sys.executable, "-m", "runner", "simulate", *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr


def test_a_taken_port_exits_2_naming_it(tmp_path: Path) -> None:
    with _taken_port() as port:
        done = subprocess.run([sys.executable, "-m", "runner", "simulate", "--port", str(port)],
                              cwd=tmp_path, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2
    assert f"port {port}: cannot listen" in done.stderr and "Traceback" not in done.stderr
