"""The balance check before the first create: a plan the account cannot pay for is refused with
exit 3 and the shortfall, before anything is sent; a budget caps what the check asks for."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from nightlykit import key_file, run_cli, sim_settings, started, summary, trickling, write_manifest

from runner.api import Account, Timeouts, open_client
from runner.control import Outcome
from runner import catalog
from runner.nightly import Needed, check_balance, read_account
from runner.simulator import ThreadedSimulator, run_in_thread


def test_the_credit_rate_matches_the_observed_price_of_a_clip() -> None:
    assert round(180 * catalog.load().usd_per_credit, 4) == 0.27


@pytest.mark.parametrize("paid, plan, held", [(540, 0, "540 credits"),
                                               (240, 300, "540 credits: 240 paid, 300 of the API plan")])
def test_a_balance_too_low_is_refused_with_exit_3_before_anything_is_sent(
        tmp_path: Path, paid: int, plan: int, held: str) -> None:
    manifest = write_manifest(tmp_path)  # 8 jobs x $0.27 = $2.16
    with run_in_thread(sim_settings(balance_credits=paid, subscription_credits=plan)) as sim:  # $0.81 in all
        done = run_cli("run", manifest, "--out", "out", "--base-url", sim.base_url,
                       "--api-key-file", key_file(tmp_path, sim), cwd=tmp_path)
        books = sim.books
    assert done.returncode == 3, done.stderr
    assert books.creates_accepted == 0
    assert set(books.requests) == {"me"}, books.requests
    reason = summary(tmp_path / "out")["exit_reason"]
    assert (f"the jobs still to create are estimated at $2.16, the account has $0.81 ({held}), "
            "$1.35 (900 credits) short; add credit, or set a budget of at most $0.81 (--budget-usd)"
            ) in reason
    assert reason in done.stdout and "ERROR no job is created: the balance is too low" in done.stderr


def test_a_balance_below_one_jobs_cost_says_it_covers_no_job_rather_than_offer_a_budget(
        tmp_path: Path) -> None:
    with run_in_thread(sim_settings(balance_credits=20)) as sim:  # $0.03, a job $0.27
        done = run_cli("run", write_manifest(tmp_path), "--out", "out", "--base-url", sim.base_url,
                       "--api-key-file", key_file(tmp_path, sim), cwd=tmp_path)
        assert sim.books.creates_accepted == 0
    assert done.returncode == 3, done.stderr
    assert summary(tmp_path / "out")["exit_reason"].endswith(
        "the account has $0.03 (20 credits), $2.13 (1,420 credits) short; it covers no job (the "
        "cheapest is estimated at $0.27): add credit, then run again (no job was created)")


def test_a_balance_too_low_to_create_still_lets_paid_videos_be_fetched(tmp_path: Path) -> None:
    with run_in_thread(sim_settings(balance_credits=720, render_seconds=400.0)) as sim:  # $1.08
        key = key_file(tmp_path, sim)
        first = run_cli("run", write_manifest(tmp_path, repeat=1, run={"timeout": "0.3s"}), "--out",
                        "out", "--base-url", sim.base_url, "--api-key-file", key, cwd=tmp_path)
        sim.advance(500)  # the 4 paid renders end after that run gave up on them
        second = run_cli("run", write_manifest(tmp_path), "--out", "out", "--base-url",
                         sim.base_url, "--api-key-file", key, cwd=tmp_path)  # 4 more, no credit
        created = sim.books.creates_accepted
    assert first.returncode == 3 and created == 4
    assert second.returncode == 3, second.stderr
    assert summary(tmp_path / "out")["counts"] == {"downloaded": 4, "pending": 4}
    assert "ERROR no job is created: the balance is too low" in second.stderr


def test_a_balance_that_covers_the_plan_lets_the_run_through(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path)
    with run_in_thread(sim_settings(balance_credits=1440)) as sim:  # exactly $2.16
        done = run_cli("run", manifest, "--out", "out", "--base-url", sim.base_url,
                       "--api-key-file", key_file(tmp_path, sim), cwd=tmp_path)
        assert sim.books.credits_spent == 1440
    assert done.returncode == 0, done.stderr
    assert "balance $2.16 (1,440 credits) covers the estimated $2.16" in done.stderr


def test_the_check_asks_for_no_more_than_the_budget(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, run={"budget_usd": 0.6})
    with run_in_thread(sim_settings(balance_credits=540)) as sim:
        done = run_cli("run", manifest, "--out", "out", "--base-url", sim.base_url,
                       "--api-key-file", key_file(tmp_path, sim), cwd=tmp_path)
        assert sim.books.creates_accepted == 2  # 2 x $0.27 fit in $0.60
    assert done.returncode == 3, done.stderr
    assert "budget of $0.6 is reached" in summary(tmp_path / "out")["exit_reason"]


def test_an_unlimited_balance_skips_the_check_and_says_so(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, repeat=1)
    with run_in_thread(sim_settings()) as sim:
        done = run_cli("run", manifest, "--out", "out", "--base-url", sim.base_url,
                       "--api-key-file", key_file(tmp_path, sim), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "balance check skipped: the account shows an unlimited balance" in done.stderr


def check(sim: ThreadedSimulator, *, api_key: str | None = None) -> Outcome | None:
    """The account read, then `check_balance` for $100 of jobs, over a client of the simulator."""
    async def call() -> Account | Outcome | None:
        async with open_client(base_url=sim.base_url, api_key=api_key or sim.api_key,
                               timeouts=Timeouts(connect=2.0, call=2.0)) as client:
            return await read_account(client, pause=lambda attempt: asyncio.sleep(0))
    account = asyncio.run(call())
    return check_balance(account, Needed(100.0, 0.27)) if isinstance(account, Account) else account


def test_the_credits_of_the_api_plan_pay_with_the_paid_ones() -> None:
    with run_in_thread(sim_settings(balance_credits=6_667, subscription_credits=60_000)) as sim:
        assert check(sim) is None  # $100.00 in all


@pytest.mark.parametrize("paid, plan", [(None, 540.0), (540.0, None)])
def test_a_pool_of_credits_the_account_leaves_out_counts_for_nothing(
        paid: float | None, plan: float | None) -> None:
    outcome = check_balance(Account("user", 10, paid, plan), Needed(100.0, 0.27))
    assert outcome is not None and "the account has $0.81 (540 credits), $99.19" in outcome.reason


def test_an_account_that_cannot_be_read_stops_the_run_resumably_before_anything_is_sent() -> None:
    with run_in_thread(sim_settings(fault_500=1.0)) as sim:
        outcome = check(sim)
        assert sim.books.requests["me"] == {500: 3}  # asked three times
    assert outcome is not None and outcome.exit_code == 3
    assert outcome.reason.startswith("the account of the key could not be read (/v1/me: server error")
    assert outcome.reason.endswith("nothing was sent; run again")


def test_a_garbled_balance_answer_is_asked_again_before_the_check_is_skipped() -> None:
    # With this seed the first /v1/me answers HTML and the second answers the balance.
    with run_in_thread(sim_settings(fault_not_json=0.5, balance_credits=540, seed=1)) as sim:
        outcome = check(sim)
        assert sim.books.faults["not_json"] == 1
    assert outcome is not None and outcome.exit_code == 3
    assert outcome.reason.startswith("the balance is too low")


def test_an_account_with_no_user_id_is_one_that_cannot_be_read() -> None:
    with run_in_thread(sim_settings(user_id="")) as sim:
        outcome = check(sim)
    assert outcome is not None and outcome.exit_code == 3
    assert "(/v1/me: the /v1/me answer names no user)" in outcome.reason


def test_a_rejected_key_ends_the_run_at_the_check_with_exit_4() -> None:
    with run_in_thread(sim_settings()) as sim:
        outcome = check(sim, api_key="0c3d2b8e-51f4-4a43-9bd6-9a0f0f0e0a11")
        assert sim.books.creates_accepted == 0
    assert outcome is not None and outcome.exit_code == 4


def test_a_signal_stops_a_run_still_waiting_for_its_balance(tmp_path: Path) -> None:
    """An API that answers a byte at a time, with a request timeout of ten minutes: SIGTERM ends
    the run at once all the same, resumable, its end in the journal; the folder's results stay
    those of the run before, since this one did nothing."""
    manifest = write_manifest(tmp_path, repeat=1)
    with run_in_thread(sim_settings()) as sim:
        assert run_cli("run", manifest, "--out", "out", "--base-url", sim.base_url,
                       "--api-key-file", key_file(tmp_path, sim), cwd=tmp_path).returncode == 0
    kept = [(tmp_path / "out" / name).read_bytes() for name in ("summary.json", "report.html")]
    (tmp_path / "key").write_text("0c3d2b8e-51f4-4a43-9bd6-9a0f0f0e0a11", encoding="utf-8")
    (tmp_path / "key").chmod(0o600)
    with (trickling(b"HTTP/1.1 200 OK\r\nX-Slow: ") as api,
          started("run", manifest, "--out", "out", "--base-url", api.url.removesuffix("/hooks/hailuo"),
                  "--api-key-file", "key", "--request-timeout", "10m", cwd=tmp_path) as child):
        assert api.asked.wait(30)  # the balance check's /v1/me is under way
        child.send_signal(signal.SIGTERM)
        code = child.wait(20)
    shown = run_cli("status", "out", cwd=tmp_path).stdout
    assert code == 130 and "exit 130 (interrupted by SIGTERM)" in shown
    assert [(tmp_path / "out" / name).read_bytes() for name in ("summary.json", "report.html")] == kept
