"""Declarative onboarding: a YAML mapping file turns a source's own format into canonical records.

See docs/mapping.md for the file format. `MappingAdapter` is the adapter the gateway registers
as `mapping`; `load_mapping` reads and checks a mapping file on its own (e.g. in a test or a
pre-deployment check), raising `MappingFileError` with the file, line and column of a mistake.
"""

from adapters.mapping.adapter import ADAPTER_VERSION, MappingAdapter, MappingConfig
from adapters.mapping.compiler import CompiledMapping, compile_mapping, load_mapping
from adapters.mapping.document import MappingFileError, Problem
from adapters.mapping.spec import MappingFile

__all__ = [
    "ADAPTER_VERSION",
    "CompiledMapping",
    "MappingAdapter",
    "MappingConfig",
    "MappingFile",
    "MappingFileError",
    "Problem",
    "compile_mapping",
    "load_mapping",
]
