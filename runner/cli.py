"""The `hailuo-batch` command: parse options, call the library, map errors to exit codes."""

from __future__ import annotations

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
