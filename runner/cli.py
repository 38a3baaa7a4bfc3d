"""The `hailuo-batch` command: parse options, call the library, map errors to exit codes."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

import click
import tqdm
from click.core import ParameterSource
from tqdm.contrib.logging import logging_redirect_tqdm

from runner import batch, catalog, logs, nightly, render, results
from runner import report as run_report
from runner.api import Timeouts
from runner.config import api_key_problem, http_url_problem, parse_duration, shown_url, told_under
from runner.control import EXIT_INTERRUPTED, Event, Interrupts
from runner.errors import AuthError, HailuoError, ManifestError, UsageError, count_problems
from runner.manifest import load_prices, schema
from runner.plan import Plan, make_plan
from runner.simulator import SimSettings, Simulator, serve
from runner.simulator.settings import FAULTS
from runner.state import JOURNAL_NAME


class Group(click.Group):
    """Errors of the runner's own tree end the command with their exit code, never a traceback;
    a Ctrl-C ends it with 130, as it ends a run (click would say "Aborted!" and exit 1)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except ManifestError as exc:
            for issue in exc.issues:
                click.echo(issue.render(), err=True)
            click.echo(f"{render.figure(count_problems(exc.issues))} problem(s); nothing was sent", err=True)
            ctx.exit(exc.exit_code)
        except HailuoError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hailuo-batch")
def main() -> None:
    """Generate videos in bulk with Leonardo.AI's Hailuo 2.3 models, from a YAML manifest."""


OWN_PROCESS = "own process"  # `main`'s obj when the process ends with the command


def command() -> None:
    """`hailuo-batch` and `python -m runner`: the command in a process of its own, which ends
    when the command does (one run in-process, as by click's CliRunner, leaves it going on)."""
    main(obj=OWN_PROCESS)


def _given(value: str | None, option: str) -> Path | None:
    """A path option's value. An empty one (a variable left unset in a crontab, say) is refused,
    not taken for the current folder or for no file at all; inside the command, so that `run`
    logs and announces it as it does any other refusal."""
    if value == "":
        raise UsageError(f"{option} is empty (an unset variable?): give a path, or leave it out")
    return None if value is None else Path(value)


def _prices(value: str | None) -> dict[str, Any]:
    """The price table of --prices, read inside the command so that its problems are told as
    the manifest's are (in JSON with --format json, logged and announced by `run`)."""
    path = _given(value, "--prices")
    return {} if path is None else load_prices(path)


max_jobs_option = click.option("--max-jobs", type=int,
                               help="Refuse plans with more jobs than this [1000].")
prices_option = click.option("--prices", "prices_file", type=click.Path(dir_okay=False),
                             help="Price table (JSON/YAML) overriding the estimates.")


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@max_jobs_option
@prices_option
def validate(files: tuple[str, ...], fmt: str, max_jobs: int | None,
             prices_file: str | None) -> None:
    """Check manifests: every problem in every file, one per line (file:line:col: path: message)."""
    results: list[tuple[str, Plan | None, list]] = []
    try:
        prices = _prices(prices_file)
    except ManifestError as exc:  # the manifests cannot be priced: the table's problems alone
        results.append((prices_file, None, exc.issues))
    else:
        for file in files:
            try:
                planned = make_plan(file, overrides={"max_jobs": max_jobs}, prices=prices)
                results.append((file, planned, []))
            except ManifestError as exc:
                results.append((file, None, exc.issues))
    problems = sum(count_problems(issues) for _, _, issues in results)
    if fmt == "json":
        click.echo(render.issues_json(results))
    else:
        for file, plan, issues in results:
            for issue in issues:
                click.echo(issue.render())
            if plan is not None:
                click.echo(f"{file}: ok, {render.plural(len(plan.jobs), 'job')}, "
                           f"estimated {render.dollars(plan.estimated_usd)}")
                for warning in plan.placed_warnings():
                    click.echo(render.file_warning(file, warning))
        if problems:
            bad = sum(1 for _, _, issues in results if issues)
            click.echo(f"{render.figure(problems)} problem(s) in {render.figure(bad)} of "
                       f"{render.figure(len(results))} file(s)", err=True)
    sys.exit(2 if problems else 0)


@main.command()
@click.argument("file", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["text", "json", "jsonl"]), default="text")
@max_jobs_option
@click.option("--out", type=click.Path(file_okay=False),
              help="Show each job's state in this output folder (default: the manifest's output.dir).")
@prices_option
def plan(file: str, fmt: str, max_jobs: int | None, out: str | None,
         prices_file: str | None) -> None:
    """Show every job a manifest makes, with its key, request and estimated cost; where the
    output folder already holds a journal, what is new, in flight, done and failed."""
    prices: dict[str, Any] | None = None
    try:
        prices = _prices(prices_file)
        planned, folder = batch.plan_for(batch.RunConfig(
            manifest=Path(file), out=_given(out, "--out"), overrides={"max_jobs": max_jobs},
            prices=prices))
    except ManifestError as exc:
        if fmt == "text":
            raise
        source = str(prices_file) if prices is None else file
        click.echo(render.issues_json([(source, None, exc.issues)], one_line=fmt == "jsonl"))
        sys.exit(exc.exit_code)
    found = None
    if (folder / JOURNAL_NAME).is_file():
        found = batch.diff(planned, folder)
    else:  # a folder that lost its journal is refused, as a run would refuse it
        batch.journal_kept(folder)
    states = found.states() if found else None
    to_create = found.to_create_usd if found else None
    videos = found.files if found else None
    if fmt == "json":
        lines = render.plan_json(planned, states, to_create, found.unplanned if found else None,
                                 videos, found.to_fetch if found else None,
                                 found.unplanned_counts if found else None)
    elif fmt == "jsonl":
        lines = render.plan_jsonl(planned, states, videos)
    else:
        lines = render.plan_text(planned, states, to_create)
    for line in lines:
        click.echo(line)
    if fmt == "text" and found:
        click.echo(_diff_line(found))


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
    if settings.state_path is not None:
        click.echo(f"  account kept in {settings.state_path}")
    credits = simulator.balance
    balance = "unlimited" if credits is None else (
        f"{render.figure(credits)} credits ({render.dollars(credits * catalog.load().usd_per_credit)})")
    click.echo(f"  balance:  {balance}")
    click.echo(f"  renders {settings.render_seconds:g} s (+/- {settings.render_jitter_seconds:g}), "
               f"{render.figure(settings.slots)} slots, time x{settings.time_scale:g}. Ctrl-C to stop.")
    sys.stdout.flush()


@main.command()
@click.option("--port", metavar="N", default="0",
              help="Port on 127.0.0.1; 0 picks a free one [0].")
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
@click.option("--state", "state_path", metavar="FILE",
              help="Keep the account (user id, generations, uploads, balance) in this file across "
                   "restarts; its key, derived from the user id, stays the same.")
@click.option("--fault", "faults", multiple=True, metavar="NAME=RATE",
              help=f"A fault and its rate from 0 to 1; NAME is one of {', '.join(FAULTS)}.")
@click.option("--set", "extra", multiple=True, metavar="SETTING=VALUE",
              help="Any other simulator setting by name (see `runner/simulator/settings.py`).")
def simulate(faults: tuple[str, ...], extra: tuple[str, ...], no_retry_after: bool,
             **options: str | None) -> None:
    """Serve a local Leonardo API (free, offline) until Ctrl-C; print its base URL and key."""
    values: dict[str, str | None] = dict(options)
    values["retry_after"] = "false" if no_retry_after else None
    flags = {param.name: param.opts[0] for param in click.get_current_context().command.params
             if param.name in values}
    flags["retry_after"] = "--no-retry-after"
    for name, rate in _setting_pairs(faults, "--fault").items():
        if name not in FAULTS:
            raise UsageError(f"--fault {name}: unknown fault (one of {', '.join(FAULTS)})")
        values[f"fault_{name}"], flags[f"fault_{name}"] = rate, f"--fault {name}"
    for name, value in _setting_pairs(extra, "--set").items():
        values[name], flags[name] = value, f"--set {name}"
    summary = asyncio.run(serve(_sim_settings(values, flags), announce=_announce))
    click.echo(json.dumps(summary.as_dict(), indent=2))


def _sim_settings(values: dict[str, str | None], flags: dict[str, str]) -> SimSettings:
    """The simulator's settings from the text of its flags; a value's mistake is told under the
    flag that gave it (`--time-scale: ...`, `--fault slow: ...`), as `run` tells its own. One
    that names no setting given (an unknown setting, the default jitter longer than the render
    asked for) is told as it is."""
    try:
        return SimSettings.from_text(values)
    except UsageError as exc:
        setting = next((name for name, text in values.items() if text is not None
                        and str(exc).startswith((f"{name}: ", f"{name} "))), None)
        if setting is None:
            raise
        raise told_under(flags[setting], setting, exc) from None


class Progress:
    """The run's events drawn as a tqdm bar on a terminal, unless quiet, and written as progress
    records of the run's log at a steady interval when the log goes to a file (--log-file),
    whatever the screen shows, or to an output that is not a terminal (cron mail), unless quiet."""

    def __init__(self, *, quiet: bool, to_file: bool = False, every: float = 10.0,
                 screen: TextIO | None = None) -> None:
        self.every = every
        self.to_file = to_file
        self.screen = screen or sys.stderr  # where the bar is drawn
        terminal = self.screen.isatty()
        self.drawn = terminal and not quiet
        self.logged = to_file or not (terminal or quiet)
        self.bar: tqdm.tqdm | None = None
        self.last_line: float | None = None

    def __call__(self, event: Event) -> None:
        snap = event.snapshot
        if self.logged:
            due = self.last_line is None or snap.elapsed - self.last_line >= self.every
            if event.kind == "stop" or (event.kind == "tick" and due):
                self.last_line = snap.elapsed
                logging.getLogger(logs.LOGGER).info("progress: %s", snap.describe(),
                                                    extra={"progress": dataclasses.asdict(snap)})
        if not self.drawn:
            return
        if self.bar is None:
            self.bar = tqdm.tqdm(total=snap.total, initial=snap.finished, unit="job",
                                 dynamic_ncols=True, file=self.screen)
        # The figures first, so that the frame the count's update draws shows them too.
        self.bar.total = snap.total
        self.bar.set_postfix_str(f"in flight {render.figure(snap.in_flight)}, "
                                 f"failed {render.figure(snap.failed)}, "
                                 f"{snap.spent} this run", refresh=False)
        self.bar.update(snap.finished - self.bar.n)
        if event.kind == "stop":  # its last frame, above the lines that tell the run's end
            self.bar.close()

    @contextmanager
    def drawing(self) -> Iterator[None]:
        """While the run lasts, its log lines on the terminal are written above the bar, never
        into it (a log going to a file stays there alone); the bar is closed when the run stops,
        else (the run broken off) at the end."""
        try:
            if self.drawn and not self.to_file:
                with logging_redirect_tqdm(loggers=[logging.getLogger(logs.LOGGER)]):
                    yield
            else:
                yield
        finally:
            if self.bar is not None:
                self.bar.close()


def _api_key(key_file: Path | None) -> str | None:
    """The key from --api-key-file, else LEONARDO_API_KEY; never echoed anywhere, and refused
    before anything is sent when it is not shaped as a key (see api_key_problem)."""
    if key_file is None:
        key, source = os.environ.get("LEONARDO_API_KEY", "").strip(), "LEONARDO_API_KEY"
        if not key and source in os.environ:
            raise AuthError(f"{source} is set but empty: put the API key in it, or pass "
                            "--api-key-file")
    else:
        source = f"--api-key-file {key_file}"
        try:
            key = key_file.read_text("utf-8").strip()
            shared = key_file.stat().st_mode & 0o077
        except OSError as exc:
            raise AuthError(f"{source}: cannot read it: {exc.strerror}") from exc
        except UnicodeDecodeError:
            raise AuthError(f"{source}: not an API key: the file is not text") from None
        if not key:
            raise AuthError(f"{source}: the file is empty; put the API key in it")
        if shared:
            logging.getLogger(logs.ACT).warning(
                "%s: users other than its owner may read it: `chmod 600` it", source)
    problem = api_key_problem(key)
    if problem is not None:
        raise AuthError(f"{source}: not an API key: {problem}")
    return key or None


def _http_url(url: str, what: str) -> str:
    """`url` when it is an http or https URL with a host (and a port, if any, that is one)."""
    problem = http_url_problem(url)
    if problem is not None:
        raise UsageError(f"{what} {shown_url(url)!r}: {problem}")
    return url


@main.command()
@click.argument("manifest", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(),
              help="Output folder (default: the manifest's output.dir).")
@click.option("--concurrency", type=int, help="Generations in flight at once [10].")
@click.option("--submit-per-minute", type=float, help="Create requests a minute [100].")
@click.option("--poll-interval", help="Base poll interval [5s].")
@click.option("--timeout", help="Per job, how long its render is waited for from its submit "
              "(a later run taking it up again gives it anew) [15m].")
@click.option("--budget-usd", type=float,
              help="Stop submitting before spent + reserved passes this [no cap].")
@max_jobs_option
@click.option("--base-url", envvar="LEONARDO_BASE_URL", default=batch.DEFAULT_BASE_URL,
              help=f"API root (also LEONARDO_BASE_URL) [{batch.DEFAULT_BASE_URL}].")
@click.option("--api-key-file", type=click.Path(path_type=Path, readable=False),
              help="File holding the API key (default: LEONARDO_API_KEY).")
@click.option("--simulate", is_flag=True,
              help="Run against an in-process simulator, no key needed (into output.dir + "
                   "'-simulated'); not with --base-url or --api-key-file.")
@click.option("--time-scale", type=float,
              help="With --simulate: simulated seconds per real second [60].")
@click.option("--request-timeout", default="30s",
              help="How long one API call may take; a create past it is looked for before "
                   "it is sent again [30s].")
@click.option("--retry-failed", is_flag=True,
              help="Give every failed job another go (those failed by outages are retried anyway).")
@click.option("--fetch-missing", is_flag=True,
              help="Download again the videos of done jobs that have gone from the output folder "
                   "(nothing is paid again).")
@click.option("--dry-run", is_flag=True, help="Plan and compare with the folder; send nothing.")
@click.option("--quiet", is_flag=True, help="No progress, and of the log only warnings and errors on "
              "standard error (a --log-file still gets all of it).")
@click.option("--max-runtime", metavar="DURATION",
              help="At this age (e.g. 2h) stop submitting, let jobs in flight finish, exit 3.")
@click.option("--grace", metavar="DURATION",
              help="With a max runtime (--max-runtime or run.max_runtime): how long jobs in "
                   "flight get to finish after it [5m].")
@click.option("--run-id", metavar="ID", help="Fills {run_id} in output.dir; the same id resumes "
              "the same folder.")
@click.option("--notify-url", metavar="URL", help="POST the summary here when the run ends "
              "(also `notify:` in the manifest).")
@click.option("--log-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Append the run's log to this file instead of standard error.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
              help="json: one object per line [text].")
@prices_option
def run(manifest: Path, out: str | None, base_url: str, api_key_file: Path | None,
        simulate: bool, time_scale: float | None, request_timeout: str, retry_failed: bool,
        fetch_missing: bool, dry_run: bool, quiet: bool, run_id: str | None, notify_url: str | None,
        log_file: Path | None, log_format: str, prices_file: str | None,
        **overrides: Any) -> None:
    """Generate every job of MANIFEST: submit, poll, download; resumes where it stopped.

    A flag wins over the manifest's `run:` block, which wins over the default in brackets."""
    if not dry_run:
        logs.configure(log_file=log_file, fmt=log_format,
                       level=logging.WARNING if quiet and log_file is None else logging.INFO)
    hook = None
    try:
        hook = notify_url and _http_url(notify_url, "--notify-url")
        call = parse_duration(request_timeout, name="--request-timeout")
        config = batch.RunConfig(
            manifest=manifest, out=_given(out, "--out"), overrides=overrides,
            prices=_prices(prices_file),
            base_url=base_url if simulate else _http_url(base_url, "--base-url (or LEONARDO_BASE_URL)"),
            api_key=None if simulate or dry_run else _api_key(api_key_file),
            simulate=_simulated(simulate, time_scale, typed=_typed("base_url", "api_key_file")),
            retry_failed=retry_failed, fetch_missing=fetch_missing,
            run_id=nightly.check_run_id(run_id), notify_url=hook,
            timeouts=Timeouts(call=call, download=max(300.0, call)))
        if dry_run:
            planned, folder = batch.plan_for(config)
            state = batch.diff(planned, folder, retry_failed=retry_failed)
            click.echo(f"{planned.name}: {render.plural(len(planned.jobs), 'job')}, estimated "
                       f"{render.dollars(planned.estimated_usd)}, "
                       f"{render.dollars(state.to_create_usd)} of it to create")
            click.echo(_diff_line(state) + "; nothing was sent (dry run)")
            for warning in planned.warnings_for(state.to_create_usd):
                click.echo(f"warning: {warning}")
            return
        progress = Progress(quiet=quiet, to_file=log_file is not None, every=60.0)
        # The signals stay the run's until the process exits: one that comes once the run's end
        # is recorded changes neither the lines told of it nor the exit code it recorded.
        own = click.get_current_context().obj == OWN_PROCESS
        with Interrupts(ends_process=own) as interrupts:
            with progress.drawing():
                done = batch.run_batch(config, sink=progress, interrupts=interrupts)
            sys.exit(_told(done))
    except HailuoError as exc:
        if not dry_run and not exc.announced:
            nightly.refused(manifest, exc, hook, logged=log_file is not None)
        raise
    except KeyboardInterrupt:
        click.echo("interrupted; run the same command again to resume", err=True)
        sys.exit(EXIT_INTERRUPTED)


def _told(done: batch.RunReport) -> int:
    """Print how the run ended, where its files are and the folders earlier starts left
    unfinished; the run's exit code."""
    summary = done.summary
    click.echo(f"{done.outcome.reason}: {render.downloaded_part(summary)}, {render.run_spent(summary)}")
    for note in (render.unplanned_line(summary), render.retry_failed_line(summary)):
        if note:
            click.echo(note)
    if (done.out_dir / results.SUMMARY).exists():  # a first run refused before it began wrote none
        click.echo(f"videos and results in {done.out_dir} (results.jsonl, report.html)")
    for unfinished in summary["unfinished_folders"]:  # a cron mail, unlike the log, is read
        click.echo(nightly.left_unfinished(unfinished))
    return done.outcome.exit_code


def _typed(*names: str) -> list[str]:
    """The flags of the options `names` given on the command line, not taken from the
    environment nor by default."""
    ctx = click.get_current_context()
    return ["--" + name.replace("_", "-") for name in names
            if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE]


def _simulated(simulate: bool, time_scale: float | None, *, typed: list[str]) -> SimSettings | None:
    """The in-process simulator's settings for --simulate; --time-scale means nothing without it,
    and an API root or a key file typed beside it (`typed`) is refused rather than left unused:
    its user likely meant a simulator of their own. The environment's LEONARDO_BASE_URL and
    LEONARDO_API_KEY are no such sign."""
    if not simulate:
        if time_scale is not None:
            raise UsageError("--time-scale goes with --simulate")
        return None
    if typed:
        raise UsageError(f"{' and '.join(typed)} with --simulate: --simulate serves its own API "
                         "and needs no key; drop one or the other (to run against a simulator "
                         "started with `hailuo-batch simulate`, drop --simulate)")
    try:
        return SimSettings(time_scale=60.0 if time_scale is None else time_scale)
    except UsageError as exc:
        raise told_under("--time-scale", "time_scale", exc) from None


def _diff_line(state: batch.PlanDiff) -> str:
    """The plan against the folder in one line: its jobs by what is left to do, then the jobs
    the manifest no longer has as the run's last lines count them (kept in the results), those
    of them a run still fetches, the start frames whose change makes jobs new, and the videos
    gone from the folder."""
    kept = render.unplanned_line({"unplanned_counts": state.unplanned_counts})
    fetched = (f" ({render.figure(len(state.unplanned))} of them still to fetch, nothing more is paid)"
               if state.unplanned else "")
    dropped = f"; {kept}{fetched}" if kept else ""
    frames = render.changed_frames_line(state.changed_frames)
    changed = f"; {frames}" if frames else ""
    gone = f"; {render.plural(len(state.missing), 'video')} gone from the folder" if state.missing else ""
    paid = (f" ({render.figure(len(state.to_fetch))} of them paid, to fetch with nothing more to pay)"
            if state.to_fetch else "")
    new, in_flight, done, failed = (render.figure(len(jobs)) for jobs in
                                    (state.new, state.in_flight, state.done, state.failed))
    return (f"in {state.out_dir}: {new} new, {in_flight} in flight, {done} done, "
            f"{failed} failed{paid}{dropped}{changed}{gone}")


@main.command()
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def status(out: Path, fmt: str) -> None:
    """What the output folder OUT holds: jobs by state, money spent and reserved, failures."""
    if out.is_file():
        raise UsageError(f"{out} is a file: status takes a run's output folder (the one holding "
                         f"its videos and {JOURNAL_NAME}); for a manifest, `hailuo-batch plan "
                         "FILE --out DIR` shows its jobs against a folder")
    for line in results.status(out, as_json=fmt == "json"):
        click.echo(line)
