"""Synthetic output folders, in the format the engine writes, for the report's bench and tests.

A sweep of prompts x vibes x lightings x samples, with some jobs failed and some unfinished, and
the simulator's small real clips and posters copied in, so a page made from it plays real video.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.simulator.media import load_clips

PROMPTS = {
    "rain-street": "A cinematic shot of rain falling on a quiet city street at dusk",
    "cat-window": "A cat asleep on a windowsill, soft morning light",
    "harbor": "Fishing boats leaving a harbor before sunrise, gulls overhead",
}
VIBES = ("Pro Photo", "Stock Footage", "Sci-Fi", "Clay", "Vintage", "Moody", "Anime", "Portrait")
LIGHTINGS = ("Golden Hour", "Foggy", "none", "Volumetric", "Neon")


@dataclass(frozen=True, slots=True)
class Sweep:
    """The shape of a synthetic run: how many values each axis takes, and which jobs go wrong;
    `unnamed_every`: downloaded jobs whose create's answer was lost, their cost never named,
    booked at their estimate."""

    name: str = "rainy-city-lighting"
    prompts: int = 2
    vibes: int = 3
    lightings: int = 2
    samples: int = 1
    failed_every: int = 5
    unfinished_every: int = 0
    unnamed_every: int = 0


def make_run(out: Path, sweep: Sweep, *, prompt_texts: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Write `results.jsonl`, `summary.json` and the clips of a synthetic run into `out`."""
    texts = prompt_texts or _prompts(sweep.prompts)
    clips = _copy_assets(out)
    combos = itertools.product(list(texts)[:sweep.prompts], VIBES[:sweep.vibes],
                               LIGHTINGS[:sweep.lightings], range(1, sweep.samples + 1))
    records = [_record(index, combo, texts[combo[0]], clips, sweep)
               for index, combo in enumerate(combos)]
    with (out / "results.jsonl").open("w", encoding="utf-8") as stream:
        for record in records:
            stream.write(json.dumps(record, ensure_ascii=False) + "\n")
    counts: dict[str, int] = {}
    for record in records:
        counts[record["state"]] = counts.get(record["state"], 0) + 1
    summary = {
        "name": sweep.name, "manifest": f"jobs/{sweep.name}.yaml", "out": str(out),
        "jobs": len(records), "counts": counts,
        "spent_usd": round(sum(r["spent_usd"] for r in records), 2),
        "spent_estimated_usd": round(sum(r["spent_estimated_usd"] for r in records), 2),
        "reserved_usd": 0.0,
        "estimated_usd": round(sum(r["estimated_cost_usd"] for r in records), 2),
        "started_at": "2025-05-01T20:00:00Z", "ended_at": "2025-05-01T20:14:05Z",
        "duration_seconds": 845.0, "exit_code": 1 if counts.get("failed") else 0,
        "exit_reason": "some jobs failed" if counts.get("failed") else "all jobs downloaded",
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return records


def _prompts(count: int) -> dict[str, str]:
    """The sample prompts, then numbered ones for sweeps that want more."""
    texts = dict(PROMPTS)
    for number in range(len(texts), count):
        texts[f"scene-{number + 1}"] = f"Scene {number + 1}: a slow dolly shot through a night market"
    return texts


def _copy_assets(out: Path) -> list[tuple[str, str]]:
    """The simulator's clips and posters, copied into `out/media/`; their relative paths."""
    media = out / "media"
    media.mkdir(parents=True, exist_ok=True)
    pairs = []
    for number, clip in enumerate(load_clips()):
        video, poster = f"media/clip-{number}.mp4", f"media/poster-{number}.jpg"
        (out / video).write_bytes(clip.video)
        (out / poster).write_bytes(clip.poster)
        pairs.append((video, poster))
    return pairs


def _record(index: int, combo: tuple[str, str, str, int], text: str,
            clips: list[tuple[str, str]], sweep: Sweep) -> dict[str, Any]:
    prompt, vibe, lighting, sample = combo
    key = hashlib.sha256(f"{sweep.name}/{index}".encode()).hexdigest()
    failed = sweep.failed_every and index % sweep.failed_every == sweep.failed_every - 1
    unfinished = (not failed and sweep.unfinished_every
                  and index % sweep.unfinished_every == sweep.unfinished_every - 1)
    state = "failed" if failed else "submitted" if unfinished else "downloaded"
    clip, poster = clips[index % len(clips)]
    done = state == "downloaded"
    unnamed = done and sweep.unnamed_every and index % sweep.unnamed_every == sweep.unnamed_every - 1
    return {
        "key": key, "short_key": key[:10], "index": index, "state": state, "prompt": text,
        "axes": {"prompt": prompt, "vibe": vibe, "lighting": lighting, "color_theme": "none",
                 "model": "hailuo-2_3", "resolution": "768p", "duration": 6,
                 "aspect_ratio": "16:9", "n": sample},
        "styles": [style for style in (vibe, lighting) if style != "none"],
        "generation_id": None if unfinished else f"gen-{index:05d}",
        "estimated_cost_usd": 0.28, "cost_usd": 0.28 if done and not unnamed else None,
        "spent_usd": 0.28 if done else 0.0, "spent_estimated_usd": 0.28 if unnamed else 0.0,
        "reason": "content moderation: the prompt was rejected" if failed else None,
        "file": clip if done else None, "poster": poster if done else None,
        "sidecar": None, "submitted_at": "2025-05-01T20:00:05Z",
        "completed_at": "2025-05-01T20:01:30Z" if done else None,
        "downloaded_at": "2025-05-01T20:01:31Z" if done else None,
        "render_seconds": 60.0 + index % 40 if done else None, "attempts": 1,
    }
