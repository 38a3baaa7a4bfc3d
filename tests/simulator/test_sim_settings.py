"""The simulator's settings: documented, defaulting to the contract's figures, checked when built."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

import pytest

from runner.errors import UsageError
from runner.simulator import SimSettings
from runner.simulator import settings as settings_module


def test_every_setting_is_documented_in_the_module_docstring() -> None:
    doc = settings_module.__doc__ or ""
    missing = [f.name for f in dataclasses.fields(SimSettings) if f.name not in doc]
    assert missing == []


def test_the_defaults_are_the_contract_figures() -> None:
    settings = SimSettings()
    assert (settings.slots, settings.queue_per_slot) == (10, 20)
    assert (settings.requests_per_minute, settings.creates_per_minute) == (2000, 100)
    assert settings.upload_expiry_seconds == 120
    assert (settings.create_answer, settings.unknown_generation) == ("nested", "null")
    assert settings.out_of_credit_status == 402 and settings.balance_credits is None
    assert all(settings.fault_rate(name) == 0 for name in settings_module.FAULTS)


def test_each_simulator_gets_a_fresh_key_that_its_repr_hides() -> None:
    first, second = SimSettings(), SimSettings()
    assert first.api_key != second.api_key
    assert uuid.UUID(first.api_key)
    assert first.api_key not in repr(first)


@pytest.mark.parametrize(("changes", "message"), [
    ({"fault_failed": 1.5}, "fault_failed"),
    ({"fault_500": -0.1}, "fault_500"),
    ({"render_seconds": 0}, "render_seconds"),
    ({"render_jitter_seconds": 90}, "render_jitter_seconds"),
    ({"time_scale": 0}, "time_scale"),
    ({"slots": 0}, "slots"),
    ({"creates_per_minute": 0}, "creates_per_minute"),
    ({"queue_per_slot": -1}, "queue_per_slot"),
    ({"balance_credits": -5}, "balance_credits"),
    ({"port": 70000}, "port"),
    ({"moderation_status": 451}, "moderation_status"),
    ({"out_of_credit_status": 500}, "out_of_credit_status"),
    ({"create_answer": "wrapped"}, "create_answer"),
    ({"moderation_stage": "later"}, "moderation_stage"),
    ({"unknown_generation": "empty"}, "unknown_generation"),
])
def test_a_bad_setting_is_a_usage_error_naming_it(changes: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        SimSettings(**changes)


@pytest.mark.parametrize("name", ["render_seconds", "slow_seconds", "late_seconds",
                                  "upload_expiry_seconds", "time_scale"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_time_setting_must_be_a_finite_number(name: str, value: float) -> None:
    with pytest.raises(UsageError) as caught:
        SimSettings(**{name: value})
    assert str(caught.value) == f"{name} must be a finite number more than 0, not {value}"


def test_settings_from_text_convert_by_type() -> None:
    settings = SimSettings.from_text({
        "render_seconds": "2m", "render_jitter_seconds": "0", "slots": "3", "time_scale": "60",
        "retry_after": "off", "requests_per_minute": "none", "fault_failed": "0.25",
        "log_path": "out/requests.jsonl", "moderation_word": "nope", "seed": None})
    assert (settings.render_seconds, settings.render_jitter_seconds) == (120.0, 0.0)
    assert (settings.slots, settings.time_scale, settings.retry_after) == (3, 60.0, False)
    assert settings.requests_per_minute is None and settings.fault_failed == 0.25
    assert settings.log_path == Path("out/requests.jsonl") and settings.seed is None


@pytest.mark.parametrize("zero", ["0", "0s", "0m", "0.0s"])
def test_a_zero_duration_may_be_written_with_its_unit(zero: str) -> None:
    assert SimSettings.from_text({"render_jitter_seconds": zero}).render_jitter_seconds == 0.0


@pytest.mark.parametrize(("values", "message"), [
    ({"slots": "many"}, "slots: 'many' is not a whole number"),
    ({"retry_after": "perhaps"}, "retry_after"),
    ({"render_seconds": "soon"}, "render_seconds"),
    ({"rendr_seconds": "5"}, "unknown simulator setting 'rendr_seconds'"),
])
def test_settings_from_bad_text_are_usage_errors(values: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        SimSettings.from_text(values)
