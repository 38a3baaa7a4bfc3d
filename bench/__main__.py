"""Run every benchmark (`python -m bench`), or the ones named (`python -m bench plan simulator`)."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import bench


def main(names: list[str]) -> None:
    found = sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_"))
    chosen = [m for m in found if not names or m.removeprefix("bench_") in names]
    for name in chosen:
        print(f"== {name.removeprefix('bench_')}", flush=True)
        importlib.import_module(f"bench.{name}").main()


if __name__ == "__main__":
    main(sys.argv[1:])
