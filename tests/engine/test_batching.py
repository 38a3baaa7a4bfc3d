"""Group commit: what is handed in during one turn of the loop is handled by one call, each
caller gets its own result (or the batch's error), and nothing is lost between batches."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from enginekit import job, step

from runner import files
from runner.batching import Batcher
from runner.errors import StateError, TransientError
from runner.state import Journal


def test_items_handed_in_together_share_one_call_and_get_their_own_results() -> None:
    calls: list[list[int]] = []

    def handle(items: list[int]) -> list[int]:
        calls.append(items)
        return [item * 10 for item in items]

    async def main() -> list[int]:
        batcher: Batcher[int, int] = Batcher(handle)
        first = await asyncio.gather(*(batcher.submit(n) for n in range(5)))
        return [*first, await batcher.submit(7)]

    assert asyncio.run(main()) == [0, 10, 20, 30, 40, 70]
    assert calls == [[0, 1, 2, 3, 4], [7]]


def test_a_worker_thread_handles_one_batch_at_a_time_and_the_next_collects_meanwhile() -> None:
    threads: set[str] = set()
    calls: list[list[int]] = []
    entered, release = threading.Event(), threading.Event()

    def handle(items: list[int]) -> list[int]:
        threads.add(threading.current_thread().name)
        calls.append(items)
        entered.set()
        release.wait(timeout=10)
        return items

    async def main() -> list[int]:
        batcher: Batcher[int, int] = Batcher(handle, in_thread=True)
        first = asyncio.ensure_future(batcher.submit(1))
        await asyncio.to_thread(entered.wait, 10)  # the first batch is held in the worker thread
        later = [asyncio.ensure_future(batcher.submit(n)) for n in (2, 3)]
        release.set()
        return [await first, *await asyncio.gather(*later)]

    assert asyncio.run(main()) == [1, 2, 3]
    assert calls == [[1], [2, 3]] and threading.current_thread().name not in threads


def test_an_error_of_the_batch_is_raised_where_each_item_waits() -> None:
    def handle(items: list[int]) -> list[int]:
        raise StateError("another run is using this folder")

    async def main() -> list[BaseException | int]:
        batcher: Batcher[int, int] = Batcher(handle)
        return await asyncio.gather(batcher.submit(1), batcher.submit(2), return_exceptions=True)

    assert [type(outcome) for outcome in asyncio.run(main())] == [StateError, StateError]


def test_a_batch_of_moves_is_written_whole_or_not_at_all(tmp_path: Path) -> None:
    with Journal.open(tmp_path) as journal:
        run = journal.begin_run(name="n", manifest="m.yaml", settings={}, at=1.0)
        journal.sync_plan([job(1), job(2)])
        stale = journal.job(job(2).key)
        # the row moved under `stale`
        step(journal, job(2).key, "submitting", reserved_usd=0.27, run_id=run, at=2.0)
        moves = [journal.job(job(1).key).submitting(reserved_usd=0.27, run_id=run, at=3.0),
                 stale.submitting(reserved_usd=0.27, run_id=run, at=3.0)]
        with pytest.raises(StateError, match="another run"):
            journal.apply(moves)
        assert journal.job(job(1).key).state == "pending"
        rows = journal.apply([journal.job(job(1).key).submitting(reserved_usd=0.27, run_id=run, at=4.0)])
        assert rows == [journal.job(job(1).key)] and rows[0].create_sent_at == 4.0


def test_downloads_that_were_not_put_in_place_leave_no_partial_file(tmp_path: Path) -> None:
    folder = files.Folder(tmp_path)
    with folder.staging("k1") as staging:
        video = staging.part("a/clip.mp4")
        video.open().write(b"not a video")
        with pytest.raises(TransientError, match="not an MP4"):
            video.verify(files.check_mp4)
        kept = staging.part("a/clip.jpg")
        kept.open().write(b"\xff\xd8 a poster \xff\xd9")
        kept.verify(files.check_jpeg)
        staging.commit([kept], "a/clip.json", "{}\n")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["clip.jpg", "clip.json"]
