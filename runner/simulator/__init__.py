"""A local Leonardo API for tests, demos and trying a manifest for free: see `settings` for every
knob and its default, `server` for the ways to start it.

    async with Simulator(SimSettings(time_scale=60)) as sim:
        ...  # sim.base_url, sim.api_key, sim.books, sim.clock.advance(90)
"""

from __future__ import annotations

from runner.simulator.books import GenerationRecord, Summary
from runner.simulator.server import (
    ProcessSimulator,
    Simulator,
    ThreadedSimulator,
    run_in_process,
    run_in_thread,
    serve,
)
from runner.simulator.settings import SimSettings

__all__ = ["GenerationRecord", "ProcessSimulator", "SimSettings", "Simulator", "Summary",
           "ThreadedSimulator", "run_in_process", "run_in_thread", "serve"]
