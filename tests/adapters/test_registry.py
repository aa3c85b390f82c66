"""Adapter discovery: installed adapters load; a broken one stops start-up, loudly."""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import EntryPoint
from typing import Any, ClassVar

import pytest

from adapters import registry
from adapters.base import Adapter, AdapterConfig
from adapters.canonical import CanonicalAdapter
from gateway.main import create_app
from gateway.settings import Settings
from schemas import CaseRecord


class NotAnAdapter:
    name = "not-an-adapter"


class Unfinished(Adapter[AdapterConfig]):
    name: ClassVar[str] = "unfinished"
    version: ClassVar[str] = "1"


class Misnamed(CanonicalAdapter):
    name: ClassVar[str] = "something-else"


class NoVersion(Adapter[AdapterConfig]):
    name: ClassVar[str] = "no-version"

    def parse(self, payload: bytes, content_type: str) -> Iterator[Any]:
        yield from ()

    def translate(self, raw: Any) -> CaseRecord:
        raise NotImplementedError


def fake_entry_point(name: str, target: str) -> EntryPoint:
    return EntryPoint(name=name, value=target, group=registry.ENTRY_POINT_GROUP)


def test_the_built_in_canonical_adapter_is_discovered() -> None:
    assert registry.discover()["canonical"] is CanonicalAdapter


@pytest.mark.parametrize(
    ("name", "target", "message"),
    [
        ("missing", "adapters.does_not_exist:Adapter", "failed to import"),
        ("not-an-adapter", f"{__name__}:NotAnAdapter", "not a subclass"),
        ("unfinished", f"{__name__}:Unfinished", "abstract"),
        ("canonical", f"{__name__}:Misnamed", "declares name"),
        ("no-version", f"{__name__}:NoVersion", "has no version"),
    ],
)
def test_a_broken_adapter_is_refused_with_its_name(name: str, target: str, message: str) -> None:
    with pytest.raises(registry.AdapterLoadError, match=message) as raised:
        registry.load_entry_point(fake_entry_point(name, target))

    assert repr(name) in str(raised.value)


def test_the_app_refuses_to_start_with_a_broken_adapter(
    monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    broken = fake_entry_point("broken", "adapters.does_not_exist:Adapter")
    monkeypatch.setattr(registry, "entry_points", lambda group: [broken])

    with pytest.raises(registry.AdapterLoadError, match="broken"):
        create_app(settings)
