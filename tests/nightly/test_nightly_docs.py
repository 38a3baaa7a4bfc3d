"""The crontab line and the systemd units of README.md's "Nightly batches", run as documented
against the simulator.

The documented command runs unchanged but for these substitutions: the install folder
`/srv/hailuo` becomes a temporary folder (holding `jobs/nightly.yaml`, sped up for the
simulator), its `.venv/bin/hailuo-batch` the one of this environment, `/etc/hailuo/api-key` a file
holding the simulator's key, and the webhook a receiver on 127.0.0.1; `LEONARDO_BASE_URL` (the
documented environment variable of `--base-url`) points the run at the simulator.
"""

from __future__ import annotations

import configparser
import datetime
import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml
from nightlykit import ROOT, child_env, json_log, receiver, sim_settings, summary

from runner.simulator import ThreadedSimulator, run_in_thread

HOME, KEY, HOOK = "/srv/hailuo", "/etc/hailuo/api-key", "https://chat.example.com/hooks/hailuo"


def section() -> str:
    text = (ROOT / "README.md").read_text("utf-8")
    start = text.index("\n## Nightly batches\n")
    return text[start:text.index("\n## ", start + 1)]


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", section(), re.S | re.M)


def unit(name: str) -> configparser.ConfigParser:
    (text,) = [b for b in blocks("ini") if b.startswith(f"# /etc/systemd/system/{name}\n")]
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys keep their case
    parser.read_string(text)
    return parser


def install(tmp_path: Path, sim: ThreadedSimulator, hook_url: str) -> dict[str, str]:
    """The install folder with the shipped nightly manifest, and what to put in its place."""
    manifest = yaml.safe_load((ROOT / "jobs" / "nightly.yaml").read_text("utf-8"))
    manifest["run"].update(submit_per_minute=60000, poll_interval="0.05s")
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "nightly.yaml").write_text(yaml.safe_dump(manifest), encoding="utf-8")
    (tmp_path / "api-key").write_text(sim.api_key, encoding="utf-8")
    (tmp_path / "api-key").chmod(0o600)
    return {f"{HOME}/.venv/bin/hailuo-batch": str(Path(sys.executable).parent / "hailuo-batch"),
            HOME: str(tmp_path), KEY: str(tmp_path / "api-key"), HOOK: hook_url}


def substituted(command: str, swaps: dict[str, str]) -> str:
    for old, new in swaps.items():  # longest first: the venv's path before its folder's
        command = command.replace(old, new)
    return command


def check_night(tmp_path: Path, done: subprocess.CompletedProcess[str], received: list) -> None:
    """A whole night: exit 0, the dated folder, the JSON log and the notification."""
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and len(done.stdout.splitlines()) == 2
    (night,) = (tmp_path / "out" / "nightly-shorts").iterdir()
    today = datetime.datetime.now(datetime.UTC).date()
    assert night.name in (str(today), str(today - datetime.timedelta(days=1)))
    assert summary(night)["counts"] == {"downloaded": 12}
    entries = json_log(tmp_path / "logs" / "nightly.jsonl")
    assert entries[0]["message"].startswith("run started: nightly-shorts, 12 jobs")
    assert [e["message"] for e in entries[-2:]] == [
        "run ended: hailuo-batch nightly-shorts: 12/12 downloaded, 0 failed, $3.24 spent, "
        "exit 0 (every job downloaded)", "notification sent"]
    (body,) = received
    assert body["summary"]["exit_code"] == 0
    assert body["summary"]["out"] == f"out/nightly-shorts/{night.name}"


def test_the_crontab_line_runs_a_night(tmp_path: Path) -> None:
    (crontab,) = blocks("crontab")
    (line,) = [row for row in crontab.splitlines() if row and not row.startswith("#")]
    minute, hour, day, month, weekday, command = line.split(maxsplit=5)
    assert (minute, hour, day, month, weekday) == ("0", "2", "*", "*", "*")
    assert "hailuo-batch run jobs/nightly.yaml" in command
    with run_in_thread(sim_settings()) as sim, receiver() as hook:
        swaps = install(tmp_path, sim, hook.url)
        done = subprocess.run(["/bin/sh", "-c", substituted(command, swaps)], cwd="/",
                              env=child_env(LEONARDO_BASE_URL=sim.base_url), capture_output=True,
                              text=True, timeout=60, check=False)
    check_night(tmp_path, done, hook.received)


def test_the_systemd_timer_starts_the_service_and_the_service_runs_a_night(tmp_path: Path) -> None:
    timer, service = unit("hailuo-nightly.timer"), unit("hailuo-nightly.service")
    assert timer["Timer"]["OnCalendar"] == "*-*-* 02:00:00"
    assert timer["Install"]["WantedBy"] == "timers.target"
    assert service["Service"]["Type"] == "oneshot"
    command = service["Service"]["ExecStart"]
    assert "hailuo-batch run jobs/nightly.yaml" in command
    with run_in_thread(sim_settings()) as sim, receiver() as hook:
        swaps = install(tmp_path, sim, hook.url)
        done = subprocess.run(shlex.split(substituted(command, swaps)),
                              cwd=substituted(service["Service"]["WorkingDirectory"], swaps),
                              env=child_env(LEONARDO_BASE_URL=sim.base_url), capture_output=True,
                              text=True, timeout=60, check=False)
    check_night(tmp_path, done, hook.received)
