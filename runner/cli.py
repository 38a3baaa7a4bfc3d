"""The `hailuo-batch` command: parse options, call the library, map errors to exit codes."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import click
import yaml

from runner import catalog, render
from runner import report as run_report
from runner.errors import HailuoError, ManifestError, UsageError
from runner.manifest import schema
from runner.plan import Plan, make_plan
from runner.simulator import SimSettings, Simulator, serve
from runner.simulator.settings import FAULTS


class Group(click.Group):
    """Errors of the runner's own tree end the command with their exit code, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ManifestError as exc:
            for issue in exc.issues:
                click.echo(issue.render(), err=True)
            click.echo(f"{len(exc.issues)} problem(s); nothing was sent", err=True)
            ctx.exit(exc.exit_code)
        except HailuoError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hailuo-batch")
def main() -> None:
    """Generate videos in bulk with Leonardo.AI's Hailuo 2.3 models, from a YAML manifest."""


def load_prices(path: str | None) -> dict[str, Any]:
    """A price table file (JSON or YAML): model -> resolution -> duration -> USD."""
    if path is None:
        return {}
    try:
        data = yaml.safe_load(Path(path).read_text("utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(f"--prices {path}: cannot read it: {exc}") from exc
    table = data.get("prices", data) if isinstance(data, dict) else None
    if not isinstance(table, dict):
        raise UsageError(f"--prices {path}: expected a mapping model -> resolution -> duration -> USD")
    return table


prices_option = click.option("--prices", "prices_file", type=click.Path(dir_okay=False),
                             help="Price table (JSON/YAML) overriding the estimates.")


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@prices_option
def validate(files: tuple[str, ...], fmt: str, prices_file: str | None) -> None:
    """Check manifests: every problem in every file, one per line (file:line:col: path: message)."""
    prices = load_prices(prices_file)
    results: list[tuple[str, Plan | None, list]] = []
    for file in files:
        try:
            results.append((file, make_plan(file, prices=prices), []))
        except ManifestError as exc:
            results.append((file, None, exc.issues))
    problems = sum(len(issues) for _, _, issues in results)
    if fmt == "json":
        click.echo(render.issues_json(results))
    else:
        for file, plan, issues in results:
            for issue in issues:
                click.echo(issue.render())
            if plan is not None:
                click.echo(f"{file}: ok, {len(plan.jobs)} jobs, estimated ${plan.estimated_usd:.2f}")
                for warning in plan.warnings:
                    click.echo(f"{file}: warning: {warning}")
        if problems:
            bad = sum(1 for _, _, issues in results if issues)
            click.echo(f"{problems} problem(s) in {bad} of {len(files)} file(s)", err=True)
    sys.exit(2 if problems else 0)


@main.command()
@click.argument("file", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["text", "json", "jsonl"]), default="text")
@click.option("--max-jobs", type=int, help="Refuse plans with more jobs than this.")
@prices_option
def plan(file: str, fmt: str, max_jobs: int | None, prices_file: str | None) -> None:
    """Show every job a manifest makes, with its key, request and estimated cost."""
    planned = make_plan(file, overrides={"max_jobs": max_jobs}, prices=load_prices(prices_file))
    if fmt == "json":
        click.echo(render.plan_json(planned))
    elif fmt == "jsonl":
        for line in render.plan_jsonl(planned):
            click.echo(line)
    else:
        for line in render.plan_text(planned):
            click.echo(line)


@main.command()
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def styles(fmt: str) -> None:
    """List the style catalog by category."""
    cat = catalog.load()
    if fmt == "json":
        click.echo(json.dumps({c: [{"name": s.name, "id": s.id} for s in styles]
                               for c, styles in cat.by_category().items()}, indent=2))
    else:
        for line in render.styles_text(cat):
            click.echo(line)


@main.command("schema")
def schema_command() -> None:
    """Print the manifest's JSON Schema."""
    click.echo(json.dumps(schema(), indent=2))


@main.command("report")
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(run_report.FORMATS), default="html",
              help="html writes OUT/report.html and prints its path; the others print the results.")
def report_command(out: Path, fmt: str) -> None:
    """The results of the run in OUT: the A/B gallery page, or a text, JSON or CSV table."""
    if fmt == "html":
        click.echo(run_report.write_report(out))
    else:
        run_report.render(run_report.load(out), fmt, sys.stdout)


def _setting_pairs(pairs: tuple[str, ...], option: str) -> dict[str, str]:
    """`NAME=VALUE` options as a dict by name, dashes read as underscores."""
    values = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"{option} {pair!r}: expected NAME=VALUE")
        values[name.strip().replace("-", "_")] = value.strip()
    return values


def _announce(simulator: Simulator) -> None:
    settings = simulator.settings
    click.echo(f"Leonardo API simulator on {simulator.origin}")
    click.echo(f"  base URL: {simulator.base_url}")
    click.echo(f"  API key:  {simulator.api_key}")
    click.echo(f"  user id:  {settings.user_id}")
    click.echo(f"  renders {settings.render_seconds:g} s (+/- {settings.render_jitter_seconds:g}), "
               f"{settings.slots} slots, time x{settings.time_scale:g}. Ctrl-C to stop.")
    sys.stdout.flush()


@main.command()
@click.option("--port", metavar="N", default="0", show_default=True,
              help="Port on 127.0.0.1; 0 picks a free one.")
@click.option("--render-seconds", metavar="DURATION",
              help="Simulated render time of a clip, e.g. 90s or 2m [90s].")
@click.option("--render-jitter-seconds", metavar="DURATION",
              help="Each render varies by up to this, either way [30s].")
@click.option("--slots", metavar="N", help="Concurrent renders of the key [10].")
@click.option("--queue-per-slot", metavar="N", help="Queued renders allowed per slot before 429 [20].")
@click.option("--requests-per-minute", metavar="N",
              help="API calls a minute before 429, or none [2000].")
@click.option("--creates-per-minute", metavar="N", help="Creates a minute before 429, or none [100].")
@click.option("--no-retry-after", is_flag=True, help="Leave Retry-After out of 429 answers.")
@click.option("--balance-credits", metavar="N",
              help="Credits on the account, spent by creates [unlimited].")
@click.option("--time-scale", metavar="X", help="Simulated seconds per real second [1].")
@click.option("--seed", metavar="N", help="Seed of the random source behind faults and jitter [random].")
@click.option("--log-path", metavar="FILE", help="Write one JSON line per request to this file.")
@click.option("--fault", "faults", multiple=True, metavar="NAME=RATE",
              help=f"A fault and its rate from 0 to 1; NAME is one of {', '.join(FAULTS)}.")
@click.option("--set", "extra", multiple=True, metavar="SETTING=VALUE",
              help="Any other simulator setting by name (see `runner/simulator/settings.py`).")
def simulate(faults: tuple[str, ...], extra: tuple[str, ...], no_retry_after: bool,
             **options: str | None) -> None:
    """Serve a local Leonardo API (free, offline) until Ctrl-C; print its base URL and key."""
    values: dict[str, str | None] = dict(options)
    values["retry_after"] = "false" if no_retry_after else None
    for name, rate in _setting_pairs(faults, "--fault").items():
        if name not in FAULTS:
            raise UsageError(f"--fault {name}: unknown fault (one of {', '.join(FAULTS)})")
        values[f"fault_{name}"] = rate
    values.update(_setting_pairs(extra, "--set"))
    summary = asyncio.run(serve(SimSettings.from_text(values), announce=_announce))
    click.echo(json.dumps(summary.as_dict(), indent=2))
