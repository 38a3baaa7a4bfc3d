"""The installed command finds its schema and data from any folder, not only the checkout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).parent / "hailuo-batch"


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_the_console_script_prints_the_schema_from_another_folder(tmp_path: Path) -> None:
    result = run([str(SCRIPT), "schema"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == json.loads((ROOT / "schemas" / "manifest.schema.json").read_text())


def test_the_console_script_lists_the_styles_from_another_folder(tmp_path: Path) -> None:
    result = run([str(SCRIPT), "styles"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Vibe (vibe):" in result.stdout and "Golden Hour" in result.stdout
    assert len([line for line in result.stdout.splitlines() if line.startswith("  ")]) == 36


def test_the_console_script_validates_an_absolute_path(tmp_path: Path) -> None:
    for name, jobs in (("single.yaml", "1 job"), ("image-to-video.yaml", "4 jobs")):
        manifest = ROOT / "jobs" / name
        result = run([str(SCRIPT), "validate", str(manifest)], tmp_path)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"{manifest}: ok, {jobs}, estimated $")


def test_the_console_script_refuses_a_bad_manifest_without_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("version: 1\nname: bad\nprompts: [a cat]\nstyles: {vibe: [Clai]}\n")
    result = run([str(SCRIPT), "validate", "bad.yaml"], tmp_path)
    assert result.returncode == 2
    assert result.stdout == ("bad.yaml:4:17: $.styles.vibe[0]: unknown style 'Clai' "
                             "(hint: did you mean 'Clay'?)\n")
    assert "Traceback" not in result.stderr


def test_python_dash_m_runner(tmp_path: Path) -> None:
    result = run([sys.executable, "-m", "runner", "--help"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout
    for command in ("validate", "plan", "styles", "schema"):
        assert command in result.stdout


def test_ctrl_c_while_the_command_loads_ends_it_with_130_and_no_traceback(tmp_path: Path) -> None:
    """The SIGINT lands as the command's modules load (as click is first imported)."""
    load = ("import os, runpy, signal, sys\n"
            "class Interrupt:\n"
            "    def find_spec(self, name, path, target=None):\n"
            "        if name == 'click':\n"
            "            os.kill(os.getpid(), signal.SIGINT)\n"
            "sys.meta_path.insert(0, Interrupt())\n"
            "sys.argv = ['hailuo-batch', 'styles']\n"
            "runpy.run_module('runner', run_name='__main__')\n")
    result = run([sys.executable, "-c", load], tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (130, "", "")


@pytest.mark.parametrize("command", [["validate", "jobs/single.yaml"], ["plan", "jobs/single.yaml"]])
def test_ctrl_c_while_a_manifest_is_checked_ends_the_command_with_130(command: list[str]) -> None:
    """The SIGINT lands as the manifest is read: exit 130, as for a run, not click's 1."""
    check = ("import os, signal, sys\n"
             "from runner import cli, plan\n"
             "load = plan.load_document\n"
             "def interrupted(*args, **kwargs):\n"
             "    os.kill(os.getpid(), signal.SIGINT)\n"
             "    return load(*args, **kwargs)\n"
             "plan.load_document = interrupted\n"
             f"sys.argv = ['hailuo-batch', *{command!r}]\n"
             "cli.command()\n")
    result = run([sys.executable, "-c", check], ROOT)
    assert (result.returncode, result.stdout, result.stderr) == (130, "", "interrupted\n")
