"""The adapters by kind, and the check of each feed's options at start-up."""

from __future__ import annotations

import importlib
import math
from types import ModuleType

from apscheduler.triggers.cron import CronTrigger

from infoshare.settings import ConfigError, FeedSpec, Settings

# Options every kind takes (feeds/http.py limits).
COMMON_OPTIONS: dict[str, type | tuple] = {
    "timeout_seconds": (int, float), "max_bytes": int, "retries": int, "user_agent": str,
}


def adapter(kind: str) -> ModuleType:
    """The module for a kind: it has OPTIONS (name -> type) and collect(context)."""
    return importlib.import_module(f"feeds.{kind}_feed")


def validate(settings: Settings) -> None:
    for index, spec in enumerate(settings.feeds):
        _validate(index, spec)


def _validate(index: int, spec: FeedSpec) -> None:
    allowed = {**COMMON_OPTIONS, **adapter(spec.kind).OPTIONS}
    for key, value in spec.options.items():
        if key not in allowed:
            raise ConfigError(f"feeds[{index}].{key}", f"unknown option for {spec.kind} feeds; "
                              f"known: {', '.join(sorted(allowed))}")
        kind = allowed[key]
        if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
            raise ConfigError(f"feeds[{index}].{key}", f"has the wrong type ({value!r})")
        if isinstance(value, int | float) and not isinstance(value, bool) and not (
                math.isfinite(value) and 0 <= value <= 10**12):
            raise ConfigError(f"feeds[{index}].{key}", f"must be a finite number between 0 "
                              f"and 10**12, got {value!r}")
    check = getattr(adapter(spec.kind), "check_options", None)
    problem = check(spec) if check else None
    if problem:
        raise ConfigError(f"feeds[{index}]", problem)
    if spec.cron:
        try:
            CronTrigger.from_crontab(spec.cron)
        except ValueError as exc:
            raise ConfigError(f"feeds[{index}].interval", f"bad cron expression: {exc}") from None
