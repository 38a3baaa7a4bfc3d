"""The style catalog, the model rules and the price estimates, read from the data in `schemas/`.

`check_request` is the one statement of the Hailuo 2.3 rules: the planner runs it on every
request it builds and the simulator runs it on every request it receives.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def read_data(name: str) -> Any:
    """A JSON file from `schemas/`, wherever the package is installed."""
    return json.loads(resources.files("runner.schemas").joinpath(name).read_text("utf-8"))


@dataclass(frozen=True, slots=True)
class Style:
    name: str
    category: str
    id: str


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken model rule: a short rule name, the wire field it concerns, and why."""

    rule: str
    field: str
    message: str


class Catalog:
    """Styles by category, and the model rules, as loaded from `schemas/`."""

    def __init__(self, styles: dict[str, Any], models: dict[str, Any], prices: dict[str, Any]) -> None:
        self.categories: dict[str, str] = styles["categories"]
        self.styles = tuple(Style(s["name"], s["category"], s["id"]) for s in styles["styles"])
        self._by_key = {s.name.casefold(): s for s in self.styles}
        self._by_key.update({s.id.casefold(): s for s in self.styles})
        self.rules = models
        self.models: dict[str, Any] = models["models"]
        self.resolutions: dict[str, Any] = models["resolutions"]
        self.prices: dict[str, Any] = prices["prices"]
        self.usd_per_credit: float = prices["usd_per_credit"]

    def style(self, name_or_id: str) -> Style | None:
        """A style by name (any case) or UUID."""
        return self._by_key.get(str(name_or_id).strip().casefold())

    def suggest(self, name: str, category: str | None = None) -> str | None:
        """The closest style name, for a "did you mean" hint."""
        names = [s.name for s in self.styles if category in (None, s.category)]
        folded = {n.casefold(): n for n in names}
        close = difflib.get_close_matches(str(name).casefold(), list(folded), n=1, cutoff=0.6)
        return folded[close[0]] if close else None

    def by_category(self) -> dict[str, list[Style]]:
        return {cat: [s for s in self.styles if s.category == cat] for cat in self.categories}

    def size(self, resolution: str, aspect_ratio: str) -> tuple[int, int]:
        width, height = self.resolutions[resolution]["sizes"][aspect_ratio]
        return width, height

    def mode(self, resolution: str) -> str:
        return self.resolutions[resolution]["mode"]

    def resolution_of(self, mode: str) -> str | None:
        return next((r for r, spec in self.resolutions.items() if spec["mode"] == mode), None)

    def aspect_ratio_of(self, resolution: str, width: int, height: int) -> str | None:
        sizes = self.resolutions[resolution]["sizes"]
        return next((ar for ar, wh in sizes.items() if wh == [width, height]), None)

    def price(self, model: str, resolution: str, duration: int,
              overrides: dict[str, Any] | None = None) -> float | None:
        """The estimated USD price of one generation; `overrides` has the same shape as the table."""
        for table in (overrides or {}, self.prices):
            value = table.get(model, {}).get(resolution, {}).get(str(duration))
            if value is not None:
                return float(value)
        return None

    def check_request(self, body: Any, *, uploaded: frozenset[str] | None = None) -> list[Violation]:
        """Every Hailuo 2.3 rule that a create request body breaks (empty when it is valid).

        `uploaded`, when given, is the set of init-image ids known to be uploaded: an UPLOADED
        start frame must be one of them.
        """
        return list(_RequestCheck(self, uploaded).run(body))


_TOP_KEYS = frozenset({"model", "public", "parameters"})
_PARAM_KEYS = frozenset({"prompt", "mode", "duration", "width", "height", "style_ids",
                         "prompt_enhance", "guidances", "start_frame", "quantity"})


class _RequestCheck:
    def __init__(self, catalog: Catalog, uploaded: frozenset[str] | None) -> None:
        self.catalog = catalog
        self.rules = catalog.rules
        self.uploaded = uploaded

    def run(self, body: Any):
        if not isinstance(body, dict):
            yield Violation("body", "$", "the request body must be a JSON object")
            return
        for key in sorted(set(body) - _TOP_KEYS):
            yield Violation("unknown-key", key, f"unknown key {key!r}")
        model = body.get("model")
        if model not in self.catalog.models:
            yield Violation("model", "model", f"model must be one of {', '.join(self.catalog.models)}")
        if "public" in body and not isinstance(body["public"], bool):
            yield Violation("public", "public", "public must be a boolean")
        params = body.get("parameters")
        if not isinstance(params, dict):
            yield Violation("parameters", "parameters", "parameters must be an object")
            return
        for key in sorted(set(params) - _PARAM_KEYS):
            yield Violation("unknown-key", f"parameters.{key}", f"unknown key {key!r}")
        yield from self._prompt(params)
        yield from self._size(params)
        yield from self._frame(model, params)
        yield from self._extras(model, params)

    def _prompt(self, params: dict[str, Any]):
        prompt, limits = params.get("prompt"), self.rules["prompt_length"]
        if not isinstance(prompt, str):
            yield Violation("prompt", "parameters.prompt", "prompt must be a string")
        elif not limits["min"] <= len(prompt) <= limits["max"]:
            yield Violation("prompt-length", "parameters.prompt",
                            f"prompt must be {limits['min']} to {limits['max']} characters, "
                            f"not {len(prompt)}")

    def _size(self, params: dict[str, Any]):
        mode, duration = params.get("mode"), params.get("duration")
        resolution = self.catalog.resolution_of(mode) if isinstance(mode, str) else None
        if resolution is None:
            modes = ", ".join(spec["mode"] for spec in self.catalog.resolutions.values())
            yield Violation("mode", "parameters.mode", f"mode must be one of {modes}")
            return
        allowed = self.catalog.resolutions[resolution]["durations"]
        if isinstance(duration, bool) or duration not in allowed:
            spoken = " or ".join(str(d) for d in allowed)
            yield Violation("duration", "parameters.duration",
                            f"{resolution} allows {spoken} s only, not {duration!r}")
        width, height = params.get("width"), params.get("height")
        aspect = self.catalog.aspect_ratio_of(resolution, width, height)
        if aspect is None:
            yield Violation("size", "parameters.width",
                            f"{width}x{height} is not a {resolution} size ({mode})")
        elif aspect == self.rules["start_frame_aspect_ratio"] and not _has_frame(params):
            yield Violation("auto-size", "parameters.width",
                            "0x0 (aspect ratio auto) takes the start frame's size: it needs a start frame")
        elif not _has_frame(params) and aspect not in self.rules["text_to_video_aspect_ratios"]:
            allowed_ar = ", ".join(self.rules["text_to_video_aspect_ratios"])
            yield Violation("text-to-video-aspect", "parameters.width",
                            f"text-to-video is {allowed_ar} only, not {aspect}: add a start frame "
                            "or use 16:9")

    def _frame(self, model: Any, params: dict[str, Any]):
        frames = []
        guidances = params.get("guidances")
        if guidances is not None:
            listed = guidances.get("start_frame") if isinstance(guidances, dict) else None
            if not isinstance(listed, list) or len(listed) != 1 or not isinstance(listed[0], dict):
                yield Violation("start-frame", "parameters.guidances",
                                "guidances.start_frame must be a list of one {image: {id, type}}")
            else:
                frames.append(("parameters.guidances.start_frame[0].image", listed[0].get("image")))
        if "start_frame" in params:
            frames.append(("parameters.start_frame", params["start_frame"]))
        for field, image in frames:
            yield from self._image(field, image)
        spec = self.catalog.models.get(model, {})
        if spec.get("start_frame") == "required" and guidances is None:
            legacy = " (the legacy parameters.start_frame is refused for it: use run."\
                "start_frame_field: guidances)" if "start_frame" in params else ""
            yield Violation("start-frame-required", "parameters.guidances",
                            f"{model} needs a start frame (guidances.start_frame){legacy}")

    def _image(self, field: str, image: Any):
        if not isinstance(image, dict) or set(image) != {"id", "type"}:
            yield Violation("start-frame", field, "a start frame is {id, type}")
            return
        if image["type"] not in self.rules["image_types"]:
            yield Violation("start-frame", f"{field}.type",
                            f"type must be one of {', '.join(self.rules['image_types'])}")
        if not isinstance(image["id"], str) or not UUID_RE.match(image["id"]):
            yield Violation("start-frame", f"{field}.id", "the image id must be a UUID")
        elif self.uploaded is not None and image["type"] == "UPLOADED" \
                and image["id"] not in self.uploaded:
            yield Violation("start-frame-upload", f"{field}.id",
                            f"init image {image['id']} was never uploaded")

    def _extras(self, model: Any, params: dict[str, Any]):
        if "prompt_enhance" in params:
            if params["prompt_enhance"] not in self.rules["prompt_enhance_values"]:
                yield Violation("prompt-enhance", "parameters.prompt_enhance",
                                "prompt_enhance must be ON or OFF")
            elif not self.catalog.models.get(model, {}).get("prompt_enhance", False):
                yield Violation("prompt-enhance-model", "parameters.prompt_enhance",
                                f"prompt_enhance is not supported by {model}")
        style_ids = params.get("style_ids", [])
        if not isinstance(style_ids, list):
            yield Violation("style-ids", "parameters.style_ids", "style_ids must be a list")
        else:
            for i, sid in enumerate(style_ids):
                if not isinstance(sid, str) or self.catalog.style(sid) is None or not UUID_RE.match(sid):
                    yield Violation("style-ids", f"parameters.style_ids[{i}]",
                                    f"unknown style id {sid!r}")
        quantity = params.get("quantity", 1)
        if isinstance(quantity, bool) or not isinstance(quantity, int) \
                or not 1 <= quantity <= self.rules["max_quantity"]:
            yield Violation("quantity", "parameters.quantity",
                            f"quantity must be 1 to {self.rules['max_quantity']}")


def _has_frame(params: dict[str, Any]) -> bool:
    return params.get("guidances") is not None or params.get("start_frame") is not None


@cache
def load() -> Catalog:
    """The catalog from the shipped data files, read once per process."""
    return Catalog(read_data("styles.json"), read_data("models.json"), read_data("prices.json"))
