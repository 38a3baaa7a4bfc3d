"""How long planning and validating take on large manifests, and how much memory planning needs.

Three manifests are written to a temporary folder: one whose plan has 105,000 jobs (five prompts
over two vars of 25 and 20 values, four vibes, two lights, two durations, minus one exclude,
three samples), one of about 1 MB (4,000 prompts of some 250 characters), and one whose matrix
holds nearly the 2,000,000 cells a plan may go through, every one dropped by `on_invalid: skip`
(text-to-video in 9:16). Each is measured in a child process of its own, so the peak resident
memory (ru_maxrss) is that of the work alone plus the interpreter; the child then prints the plan
as `plan --format json` does, to nowhere, and measures again. Targets on a 2-core machine:
planning 100,000 jobs in at most 5 s and 300 MB, and printing them as JSON within those 300 MB
(a job at a time: the whole document of these 105,000 jobs is 104 MB of text); validating a 1 MB
manifest in at most 1 s; going through the 2,000,000 cells in at most 300 MB.
"""

from __future__ import annotations

import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from runner import catalog, render
from runner.plan import MAX_CELLS, make_plan

PLAN_TARGET_SECONDS = 5.0
PLAN_TARGET_MB = 300.0
VALIDATE_TARGET_SECONDS = 1.0
WORDS = ("rain", "street", "neon", "city", "night", "cat", "boat", "river", "forest", "mountain",
         "light", "fog", "golden", "hour", "slow", "camera", "push", "pan", "drone", "aerial", "close",
         "shot", "cinematic")


def write_large_plan(path: Path) -> None:
    """A manifest whose plan has 105,000 jobs."""
    manifest = {
        "version": 1, "name": "bench-plan",
        "vars": {"a": [f"a{i}" for i in range(25)], "b": [f"b{i}" for i in range(20)]},
        "prompts": [{"id": f"p{i}", "text": f"Prompt {i} with {{a}} and {{b}}"} for i in range(5)],
        "styles": {"vibe": ["Clay", "Sketch", "Pro Photo", "Sci-Fi"], "lighting": ["Foggy", "none"]},
        "matrix": {"duration": [6, 10], "exclude": [{"vibe": "Clay", "lighting": "Foggy"}]},
        "repeat": 3, "run": {"max_jobs": 1_000_000}}
    path.write_text(yaml.safe_dump(manifest, sort_keys=False), "utf-8")


def write_one_megabyte(path: Path) -> None:
    """A manifest of about 1 MB: 4,000 prompts of some 250 characters each."""
    rng = random.Random(1)
    prompts = [{"id": f"p{i:05d}", "text": " ".join(rng.choice(WORDS) for _ in range(38))}
               for i in range(4000)]
    manifest = {"version": 1, "name": "bench-validate", "prompts": prompts,
                "styles": {"vibe": ["Clay"]}, "run": {"max_jobs": 10_000}}
    path.write_text(yaml.safe_dump(manifest, sort_keys=False, width=1000), "utf-8")


def write_all_skipped(path: Path) -> None:
    """A manifest of nearly MAX_CELLS cells (prompts x every style of the three axes x two
    durations), all of them in 9:16, which text-to-video is not: on_invalid: skip drops them."""
    styles = {axis: [style.name for style in found]
              for axis, found in catalog.load().by_category().items()}
    per_prompt = 2 * len(styles["vibe"]) * len(styles["lighting"]) * len(styles["color_theme"])
    manifest = {
        "version": 1, "name": "bench-skipped", "on_invalid": "skip",
        "prompts": [f"A street at night, rain and neon, take {n}" for n in range(MAX_CELLS // per_prompt)],
        "styles": styles, "matrix": {"aspect_ratio": ["9:16"], "duration": [6, 10]},
        "run": {"max_jobs": 1_000_000}}
    path.write_text(yaml.safe_dump(manifest, sort_keys=False), "utf-8")


def measure(path: Path) -> dict[str, float]:
    """Plan `path` here (run as the child), then print its plan as JSON to nowhere: seconds,
    jobs and peak resident megabytes of each."""
    started = time.perf_counter()
    plan = make_plan(path)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    with open(os.devnull, "w", encoding="utf-8") as nowhere:
        for line in render.plan_json(plan):
            print(line, file=nowhere)
    return {"seconds": seconds, "jobs": len(plan.jobs), "peak_mb": peak_mb,
            "json_seconds": time.perf_counter() - started,
            "json_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def in_child(path: Path) -> dict[str, float]:
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run([sys.executable, "-m", "bench.bench_plan", str(path)], cwd=root,
                            capture_output=True, text=True, check=True, timeout=300)
    return json.loads(result.stdout)


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        large, megabyte, skipped = (Path(folder) / f"{name}.yaml"
                                    for name in ("large", "megabyte", "skipped"))
        write_large_plan(large)
        write_one_megabyte(megabyte)
        write_all_skipped(skipped)
        plan = in_child(large)
        check = in_child(megabyte)
        dropped = in_child(skipped)
        size = megabyte.stat().st_size
    print(f"plan {plan['jobs']:,.0f} jobs: {plan['seconds']:.2f} s (target <= {PLAN_TARGET_SECONDS:.0f} s, "
          f"{verdict(plan['seconds'] <= PLAN_TARGET_SECONDS)}), peak {plan['peak_mb']:.0f} MB "
          f"(target <= {PLAN_TARGET_MB:.0f} MB, {verdict(plan['peak_mb'] <= PLAN_TARGET_MB)})")
    print(f"print them as JSON (plan --format json): {plan['json_seconds']:.2f} s, peak of "
          f"planning and printing "
          f"{plan['json_peak_mb']:.0f} MB (target <= {PLAN_TARGET_MB:.0f} MB, "
          f"{verdict(plan['json_peak_mb'] <= PLAN_TARGET_MB)})")
    print(f"validate a {size / 1e6:.2f} MB manifest ({check['jobs']:,.0f} jobs): {check['seconds']:.2f} s "
          f"(target <= {VALIDATE_TARGET_SECONDS:.0f} s, "
          f"{verdict(check['seconds'] <= VALIDATE_TARGET_SECONDS)}), "
          f"peak {check['peak_mb']:.0f} MB")
    print(f"plan a matrix of {MAX_CELLS:,} cells at most, every one skipped as invalid: "
          f"{dropped['seconds']:.1f} s, peak {dropped['peak_mb']:.0f} MB "
          f"(target <= {PLAN_TARGET_MB:.0f} MB, {verdict(dropped['peak_mb'] <= PLAN_TARGET_MB)})")


if __name__ == "__main__":
    print(json.dumps(measure(Path(sys.argv[1]))))
