"""Discovers adapters through the `crc_gateway.adapters` entry-point group and validates them.

A broken adapter stops start-up with an error naming it; it is never skipped silently.
"""

from __future__ import annotations

import inspect
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from adapters.base import Adapter, AdapterConfig

ENTRY_POINT_GROUP = "crc_gateway.adapters"


class AdapterLoadError(RuntimeError):
    """An adapter could not be loaded or does not honour the contract."""


def _validate(entry_point_name: str, candidate: Any) -> type[Adapter[Any]]:
    where = f"adapter entry point {entry_point_name!r}"
    if not (inspect.isclass(candidate) and issubclass(candidate, Adapter)):
        raise AdapterLoadError(f"{where} is not a subclass of adapters.base.Adapter")
    if inspect.isabstract(candidate):
        raise AdapterLoadError(f"{where} leaves abstract methods unimplemented")
    for attribute in ("name", "version"):
        value = getattr(candidate, attribute, None)
        if not isinstance(value, str) or not value:
            raise AdapterLoadError(f"{where} has no {attribute}")
    if candidate.name != entry_point_name:
        raise AdapterLoadError(f"{where} declares name {candidate.name!r}")
    if not (
        inspect.isclass(candidate.config_model)
        and issubclass(candidate.config_model, AdapterConfig)
    ):
        raise AdapterLoadError(f"{where} config_model is not an AdapterConfig")
    return candidate


def load_entry_point(entry_point: EntryPoint) -> type[Adapter[Any]]:
    try:
        candidate = entry_point.load()
    except Exception as error:
        raise AdapterLoadError(
            f"adapter entry point {entry_point.name!r} failed to import: "
            f"{type(error).__name__}: {error}"
        ) from error
    return _validate(entry_point.name, candidate)


def discover() -> dict[str, type[Adapter[Any]]]:
    """Every installed adapter class by name; raises AdapterLoadError on the first broken one."""
    return {ep.name: load_entry_point(ep) for ep in entry_points(group=ENTRY_POINT_GROUP)}
