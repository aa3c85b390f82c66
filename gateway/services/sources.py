"""Configured sources: which adapter reads each, validated once at start-up."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from adapters.base import Adapter
from adapters.canonical import JSON, NDJSON, CanonicalAdapter
from adapters.registry import AdapterLoadError
from gateway.errors import UnsupportedMediaType, validation_problems
from gateway.services.clients import SOURCE_NAME
from gateway.settings import PollSettings, Settings, SourceSettings

CANONICAL_TYPES = (JSON, NDJSON)


@dataclass(frozen=True)
class ConfiguredSource:
    name: str
    adapter: Adapter[Any]
    poll: PollSettings | None
    strict: bool = False


def load_source_settings(settings: Settings) -> dict[str, SourceSettings]:
    """Sources from GATEWAY_SOURCES, then the sources file (which wins on a clash)."""
    sources = dict(settings.sources)
    if settings.sources_file is not None:
        sources.update(_read_sources_file(settings.sources_file))
    for name in sources:
        if not SOURCE_NAME.fullmatch(name):
            raise AdapterLoadError(f"source name {name!r} is not 1-63 lower-case letters/digits/-")
    return sources


def _read_sources_file(path: Path) -> dict[str, SourceSettings]:
    where = f"sources file {path} (GATEWAY_SOURCES_FILE)"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AdapterLoadError(f"{where} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise AdapterLoadError(f"{where} cannot be read: {reason}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        at = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or "not valid YAML"
        raise AdapterLoadError(f"sources file {path}{at}: {problem}") from None
    if document is None:
        raise AdapterLoadError(f"{where} is empty: it needs a `sources:` mapping")
    entries = document.get("sources", {}) if isinstance(document, dict) else None
    if not isinstance(entries, dict):
        raise AdapterLoadError(f"{where}: expected a mapping under `sources:`")
    sources: dict[str, SourceSettings] = {}
    for name, entry in entries.items():
        try:
            sources[str(name)] = SourceSettings.model_validate(entry)
        except ValidationError as error:
            problems = validation_problems(error, prefix=("sources", str(name)))
            raise AdapterLoadError(f"sources file {path}: {problems}") from None
    return sources


class SourceRegistry:
    """Every configured source's adapter instance, plus the canonical adapter for the rest."""

    def __init__(
        self, adapter_classes: Mapping[str, type[Adapter[Any]]], settings: Settings
    ) -> None:
        self.adapter_classes = dict(adapter_classes)
        self.canonical: Adapter[Any] = CanonicalAdapter(CanonicalAdapter.config_model())
        self.sources: dict[str, ConfiguredSource] = {}
        for name, source in load_source_settings(settings).items():
            self.sources[name] = ConfiguredSource(
                name=name,
                adapter=self._instantiate(name, source),
                poll=source.poll,
                strict=source.strict,
            )

    def _instantiate(self, source: str, settings: SourceSettings) -> Adapter[Any]:
        adapter_class = self.adapter_classes.get(settings.adapter)
        if adapter_class is None:
            raise AdapterLoadError(
                f"source {source!r} names adapter {settings.adapter!r}, which is not installed"
            )
        invalid = f"source {source!r}: adapter {settings.adapter!r} config is invalid"
        try:
            adapter = adapter_class(adapter_class.config_model.model_validate(settings.config))
        except ValidationError as error:
            # Without the values given: a source's config may hold a secret.
            raise AdapterLoadError(f"{invalid}: {validation_problems(error)}") from None
        except (ValueError, OSError) as error:
            raise AdapterLoadError(f"{invalid}: {error}") from error
        if settings.poll is not None and not adapter.polled:
            raise AdapterLoadError(
                f"source {source!r} is set to be polled, but adapter {settings.adapter!r} "
                "cannot fetch"
            )
        return adapter

    def adapter_for(self, source: str, content_type: str) -> Adapter[Any]:
        """The adapter that reads this content type for this source; 415 if none does."""
        configured = self.sources.get(source)
        if configured is not None and content_type in configured.adapter.content_types:
            return configured.adapter
        if content_type in CANONICAL_TYPES:
            return self.canonical
        accepted = sorted(
            {*CANONICAL_TYPES, *(configured.adapter.content_types if configured else ())}
        )
        raise UnsupportedMediaType(
            f"source {source} accepts {', '.join(accepted)}; got {content_type or 'none'}"
        )

    def adapter_named(self, source: str, adapter_name: str) -> Adapter[Any] | None:
        """The adapter instance to replay a record through: the source's own if it has that name."""
        configured = self.sources.get(source)
        if configured is not None and configured.adapter.name == adapter_name:
            return configured.adapter
        if adapter_name == self.canonical.name:
            return self.canonical
        adapter_class = self.adapter_classes.get(adapter_name)
        if adapter_class is None:
            return None
        try:
            return adapter_class(adapter_class.config_model())
        except (ValidationError, ValueError, TypeError, OSError):
            # This adapter needs settings the source no longer gives it.
            return None

    def strict(self, source: str) -> bool:
        """Whether a record with an invalid identity field is quarantined rather than kept."""
        configured = self.sources.get(source)
        return configured is not None and configured.strict

    def polled(self) -> list[ConfiguredSource]:
        return [source for source in self.sources.values() if source.poll is not None]
