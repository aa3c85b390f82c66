"""The adapter for the Casewright CMS XML case export (see FORMAT.md in this package)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import IO, Annotated, Any, ClassVar, Final, Self
from xml.etree.ElementTree import ParseError

from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import DefusedXMLParser
from pydantic import Field, StringConstraints, model_validator

from adapters.base import Adapter, AdapterConfig, PayloadRejected, RawRecord
from adapters.xml_case_export.format import CONTACT_NAMESPACE, EXPORT_NAMESPACE
from adapters.xml_case_export.reader import CaseReader
from adapters.xml_case_export.splitter import CaseSplitter, SplitRefused
from schemas import CaseRecord

__all__ = ["XmlCaseExportAdapter", "XmlCaseExportConfig"]

_READ_BYTES: Final = 64 * 1024
_DECLARATION_BYTES: Final = 1024  # read at least this much before looking for the declaration
_NCNAME = r"^[A-Za-z_][A-Za-z0-9_.\-]*$"
_WHITESPACE = re.compile(r"\s")
# The encoding named in an XML declaration of an ASCII-compatible document.
_DECLARED_ENCODING = re.compile(
    rb"^(?:\xef\xbb\xbf)?<\?xml\s[^>]*?encoding\s*=\s*[\"']([A-Za-z][A-Za-z0-9._\-]*)[\"']"
)
# The encodings expat reads itself (names as it matches them, case-insensitively).
_EXPAT_ENCODINGS: Final = frozenset(
    {"utf-8", "utf-16", "utf-16le", "utf-16be", "iso-8859-1", "us-ascii"}
)

ElementName = Annotated[str, StringConstraints(pattern=_NCNAME, max_length=100)]
NamespaceUri = Annotated[str, StringConstraints(min_length=1, max_length=500)]


class XmlCaseExportConfig(AdapterConfig):
    """Settings of the XML case export adapter; the defaults read the vendor's version 2 export."""

    namespace: NamespaceUri = Field(
        default=EXPORT_NAMESPACE, description="Namespace of the export's own elements."
    )
    contact_namespace: NamespaceUri = Field(
        default=CONTACT_NAMESPACE, description="Namespace of the address and contact elements."
    )
    root_element: ElementName = Field(default="CaseExport", description="The document element.")
    record_element: ElementName = Field(
        default="Case", description="The child of the root that holds one record."
    )
    max_case_bytes: int = Field(
        default=1_048_576,
        ge=4_096,
        le=64 * 1_048_576,
        description=(
            "Largest case, in bytes of the file, that is read; a larger case becomes a rejected "
            "record, and a single tag, comment or attribute value larger than this ends the "
            "parse."
        ),
    )
    max_depth: int = Field(
        default=32,
        ge=8,
        le=256,
        description="Deepest element nesting allowed, counting the root as 1 (a case needs 7).",
    )

    @model_validator(mode="after")
    def _distinct_namespaces(self) -> Self:
        if self.namespace == self.contact_namespace:
            raise ValueError("namespace and contact_namespace must differ")
        if _WHITESPACE.search(self.namespace) or _WHITESPACE.search(self.contact_namespace):
            raise ValueError("a namespace URI has no whitespace")
        return self


class XmlCaseExportAdapter(Adapter[XmlCaseExportConfig]):
    """Reads the Casewright XML case export: one record per ``<Case>``, parsed as a stream.

    Parsing uses defusedxml with DTDs, entity declarations and external references forbidden, so
    entity bombs and external entities are refused before anything is expanded or fetched; it
    holds at most one case in memory, and refuses nesting deeper than ``max_depth`` and tokens
    longer than ``max_case_bytes``. Each raw record is ``{"xml": "<Case ...>...</Case>"}``, the
    case on its own with its namespaces declared.
    """

    name: ClassVar[str] = "xml_case_export"
    version: ClassVar[str] = "1"
    config_model: ClassVar[type[AdapterConfig]] = XmlCaseExportConfig
    content_types: ClassVar[tuple[str, ...]] = ("application/xml", "text/xml")

    def __init__(self, config: XmlCaseExportConfig | None = None) -> None:
        super().__init__(config if config is not None else XmlCaseExportConfig())
        self._reader = CaseReader(self.config)

    def parse(self, stream: IO[bytes], content_type: str) -> Iterator[RawRecord]:
        splitter = CaseSplitter(self.config)
        parser = DefusedXMLParser(
            target=splitter, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
        splitter.attach(parser.parser)
        chunk = _read_start(stream)
        _check_declared_encoding(chunk)
        bytes_fed = 0
        while True:
            refusal: PayloadRejected | None = None
            try:
                if chunk:
                    parser.feed(chunk)
                    bytes_fed += len(chunk)
                    splitter.check_progress(bytes_fed)
                else:
                    parser.close()
            except ParseError as error:
                refusal = PayloadRejected(f"the XML is not well-formed or is cut short: {error}")
            except DTDForbidden:
                refusal = _forbidden("a DTD (<!DOCTYPE>)", splitter)
            except EntitiesForbidden:
                refusal = _forbidden("an entity declaration", splitter)
            except ExternalReferenceForbidden:
                refusal = _forbidden("an external reference", splitter)
            except SplitRefused as error:
                refusal = PayloadRejected(str(error))
            # Cases completed before a failure are handed over before it is raised.
            while splitter.ready:
                yield splitter.ready.popleft()
            if refusal is not None:
                raise refusal
            if not chunk:
                return
            chunk = stream.read(_READ_BYTES)

    def translate(self, raw: Any) -> CaseRecord:
        return self._reader.read(raw)


def _read_start(stream: IO[bytes]) -> bytes:
    """The first read, made long enough to hold the XML declaration even from a trickling stream."""
    start = stream.read(_READ_BYTES)
    while start and len(start) < _DECLARATION_BYTES:
        more = stream.read(_READ_BYTES)
        if not more:
            break
        start += more
    return start


def _check_declared_encoding(start: bytes) -> None:
    """Refuse an encoding expat cannot read before it is handed to the parser.

    expat reads UTF-8, UTF-16, ISO-8859-1 and US-ASCII itself and asks Python for any other,
    accepting only single-byte codecs; asked for one it cannot have, it raises LookupError or
    ValueError from inside the parse, where they cannot be told from a fault.
    """
    match = _DECLARED_ENCODING.match(start)
    if match is None:
        return
    name = match[1].decode("ascii")
    if name.lower() in _EXPAT_ENCODINGS:
        return
    try:
        # What pyexpat checks: every byte decodes to one character.
        single_byte = len(bytes(range(256)).decode(name, errors="replace")) == 256
    except (LookupError, UnicodeError):
        single_byte = False
    if not single_byte:
        raise PayloadRejected(
            f"the XML declaration names encoding {name!r}, which cannot be read; "
            "send UTF-8 (or UTF-16, or a single-byte encoding such as ISO-8859-1)"
        )


def _forbidden(what: str, splitter: CaseSplitter) -> PayloadRejected:
    line = splitter.expat.CurrentLineNumber
    return PayloadRejected(f"{what} is not allowed in a case export (line {line})")
