"""The mapping adapter: a YAML mapping file (docs/mapping.md) onboards a source without Python."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, ClassVar

from adapters.base import Adapter, AdapterConfig, RawRecord
from adapters.mapping.compiler import CompiledMapping, load_mapping
from adapters.mapping.readers import parse_payload
from schemas import CaseRecord

__all__ = ["ADAPTER_VERSION", "MappingAdapter", "MappingConfig"]

#: The version of the mapping engine itself; an instance's `version` adds the mapping file's.
ADAPTER_VERSION = "1"


class MappingConfig(AdapterConfig):
    """`file`: the mapping YAML; a relative path is taken from the gateway's working directory."""

    file: Path


class MappingAdapter(Adapter[MappingConfig]):
    """Parses and translates a source's records as its mapping file declares.

    The mapping file is read and checked when the adapter is made: any mistake raises
    MappingFileError (a ValueError) naming the file, line and column, and the gateway refuses
    to start. Each instance shadows the class's `version` and `content_types` with the
    mapping's: `version` is `<engine>+<mapping name>-<mapping version>` (e.g. `1+merlin-3`), so
    every stored or quarantined record says which mapping produced or rejected it.
    """

    name: ClassVar[str] = "mapping"
    #: The engine version; instances report `<engine>+<name>-<version>` of their mapping.
    version: ClassVar[str] = ADAPTER_VERSION
    config_model: ClassVar[type[AdapterConfig]] = MappingConfig
    #: Empty until a mapping file says what the source uploads.
    content_types: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: MappingConfig) -> None:
        super().__init__(config)
        self.mapping: CompiledMapping = load_mapping(config.file)
        # The contract declares these as class attributes; the instance's own values win on
        # attribute lookup, and the class keeps defaults for the registry's checks.
        vars(self)["version"] = f"{ADAPTER_VERSION}+{self.mapping.name}-{self.mapping.version}"
        vars(self)["content_types"] = self.mapping.content_types

    def parse(self, stream: IO[bytes], content_type: str) -> Iterator[RawRecord]:
        return parse_payload(self.mapping, stream)

    def translate(self, raw: Any) -> CaseRecord:
        return self.mapping.translator.translate(raw)
