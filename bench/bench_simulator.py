"""How many polls a second the simulator answers, so it never is what limits the engine's benchmarks.

A plain aiohttp client over loopback creates generations one after another, then polls a mix of
rendering and finished ones, from a simulator running in a thread of its own (its own event loop),
with limits lifted and its account kept in a state file, as `run --simulate` keeps it (each create
appends a line before it is answered). Target: at least 2,000 polls a second on a 2-core machine.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import aiohttp

from runner.simulator import SimSettings, run_in_thread

GENERATIONS = 200
WORKERS = 32
POLLS = 12_000
BODY = {"model": "hailuo-2_3", "public": False,
        "parameters": {"prompt": "rain on a quiet street at night, take {n}", "mode": "RESOLUTION_768",
                       "duration": 6, "width": 1376, "height": 768}}


async def _create(session: aiohttp.ClientSession, base_url: str, count: int) -> list[str]:
    ids = []
    for n in range(count):
        prompt = BODY["parameters"]["prompt"].format(n=n)
        body = {**BODY, "parameters": {**BODY["parameters"], "prompt": prompt}}
        async with session.post(f"{base_url}/v2/generations", json=body) as response:
            response.raise_for_status()
            ids.append((await response.json())["generate"]["generationId"])
    return ids


async def _poll(session: aiohttp.ClientSession, base_url: str, ids: list[str]) -> float:
    """Seconds taken by POLLS polls spread over WORKERS concurrent pollers."""
    remaining = POLLS

    async def worker(offset: int) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            url = f"{base_url}/v1/generations/{ids[(remaining + offset) % len(ids)]}"
            async with session.get(url) as response:
                response.raise_for_status()
                await response.read()

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for offset in range(WORKERS):
            group.create_task(worker(offset))
    return time.perf_counter() - started


async def _run(base_url: str, api_key: str) -> tuple[float, float, int]:
    """Seconds taken by the creates, one at a time, and by the polls; the generations made."""
    connector = aiohttp.TCPConnector(limit=WORKERS)
    headers = {"authorization": f"Bearer {api_key}", "accept": "application/json"}
    async with aiohttp.ClientSession(headers=headers, connector=connector) as session:
        started = time.perf_counter()
        ids = await _create(session, base_url, GENERATIONS)
        creating = time.perf_counter() - started
        return creating, await _poll(session, base_url, ids), len(ids)


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        settings = SimSettings(requests_per_minute=None, creates_per_minute=None,
                               slots=GENERATIONS // 2, render_seconds=30, render_jitter_seconds=10,
                               time_scale=30, seed=7, state_path=Path(folder) / "state.jsonl")
        with run_in_thread(settings) as sim:
            creating, seconds, created = asyncio.run(_run(sim.base_url, sim.api_key))
            held = sim.books.generations
    done = sum(g.status == "COMPLETE" for g in held)
    print(f"creates: {created} one at a time, each kept in the state file, {creating:.2f} s "
          f"({creating / created * 1000:.2f} ms a create)")
    print(f"polls: {POLLS} over {created} generations ({done} complete at the end), "
          f"{WORKERS} concurrent, {seconds:.2f} s")
    print(f"poll throughput: {POLLS / seconds:,.0f} polls/s (target >= 2,000)")


if __name__ == "__main__":
    main()
