"""End-of-run notifications: the run's summary POSTed as JSON to a webhook.

The body carries the summary (its `missing_videos` cut to the first few: `missing_videos_count`
says how many there are) and a one-line `text` (read by Slack, Mattermost, Google Chat and
most chat webhooks; `content` for Discord). A notification that fails is reported to the caller
and never changes the run's outcome.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from typing import Any

from runner.render import (SHOWN, downloaded_part, figure, plan_counts, run_spent, unfinished_line,
                           unplanned_line)


TIMEOUT_SECONDS = 10.0


def headline(summary: dict[str, Any]) -> str:
    """The run in one line, for a chat message or a cron mail subject."""
    if summary.get("refused"):
        return (f"hailuo-batch {summary.get('name')}: ended without a summary, "
                f"exit {summary.get('exit_code')} ({summary.get('exit_reason')})")
    failed = plan_counts(summary).get("failed", 0)
    notes = [note for note in (unplanned_line(summary), unfinished_line(summary)) if note]
    return (f"hailuo-batch {summary.get('name')}: {downloaded_part(summary)}, "
            f"{figure(failed)} failed, {run_spent(summary)}, "
            f"exit {summary.get('exit_code')} ({summary.get('exit_reason')})"
            + "".join(f"; {note}" for note in notes))


def send(url: str, summary: dict[str, Any], *, timeout: float = TIMEOUT_SECONDS) -> str | None:
    """POST the summary; None when the receiver took it, else why it did not. The whole exchange
    gets `timeout` seconds, however slowly the receiver trickles its answer, whose body is never
    read: a run ends on time whatever the receiver does."""
    text = headline(summary)
    body = json.dumps({"text": text, "content": text, "summary": short_summary(summary)}).encode("utf-8")
    outcome: list[str | None] = []
    worker = threading.Thread(target=lambda: outcome.append(_post(url, body, timeout)),
                              name="notification", daemon=True)
    worker.start()
    worker.join(timeout)
    return outcome[0] if outcome else f"the receiver did not answer within {timeout:g} s"


def short_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary as the webhook and the log get it: the first SHOWN of its videos gone from
    the folder, not all of them (a clean-up of a big folder would post megabytes to a chat);
    `missing_videos_count` counts them all, and summary.json and `status --format json` name
    every one."""
    if "missing_videos" not in summary:  # a run refused before it began
        return summary
    return {**summary, "missing_videos": summary["missing_videos"][:SHOWN]}


def _post(url: str, body: bytes, timeout: float) -> str | None:
    try:
        request = urllib.request.Request(url, data=body, method="POST", headers={
            "content-type": "application/json", "user-agent": "hailuo-batch"})
        with urllib.request.urlopen(request, timeout=timeout):
            pass
    except urllib.error.HTTPError as exc:
        return f"the receiver answered {exc.code} {exc.reason}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return f"cannot reach the receiver: {getattr(exc, 'reason', exc)}"
    return None
