"""Cuts a streamed case export into one raw record per ``<Case>``, without building a tree.

`CaseSplitter` is an ElementTree parser target: defusedxml's parser (DTDs, entity declarations
and external references forbidden) calls it for each start tag, end tag and run of text. Each
child of the root in the export namespace is a record slot. A ``<Case>`` slot is serialised back
to text as its events arrive; every other element is discarded as it is read, so memory holds one
case at most, whatever the size of the file.

The serialisation is namespace-normalised, so the same case sent with different prefixes gives
the same raw record: the export namespace is the default, the contact namespace is ``ct`` and any
other namespace ``ns1``, ``ns2``... in order of appearance, all declared on the ``<Case>`` element
so that it parses on its own. Text, attribute values and their order are kept; comments and
processing instructions are dropped.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from adapters.base import FieldError, RawRecord
from adapters.xml_case_export.format import (
    CONTACT_PREFIX,
    XML_NAMESPACE,
    escape_attribute,
    escape_text,
    qualified,
    split_qualified,
)
from adapters.xml_case_export.values import external_id

if TYPE_CHECKING:
    from adapters.xml_case_export.adapter import XmlCaseExportConfig

__all__ = ["MAX_DISTINCT_NAMES", "CaseSplitter", "CaseText", "SplitRefused"]

#: Element and attribute names a document may use before it is refused. The format has under a
#: hundred; expat and ElementTree keep every distinct name for the whole parse, so a document of
#: endless made-up names would otherwise grow memory without bound.
MAX_DISTINCT_NAMES: Final = 10_000
_START_TAG_CHARS: Final = 2_000


class SplitRefused(Exception):
    """The document breaks a guard (nesting, size, names); parsing ends with PayloadRejected."""


class CaseText:
    """One case serialised from parser events, namespace-normalised (see the module docstring)."""

    def __init__(
        self,
        namespace: str,
        contact_namespace: str,
        tag: str,
        attrib: dict[str, str],
        rendered: dict[str, tuple[str, str | None, str | None]],
    ) -> None:
        self._namespace = namespace
        self._contact_namespace = contact_namespace
        self._prefixes = {contact_namespace: CONTACT_PREFIX}
        self._used: dict[str, None] = {}  # namespaces that need a declaration, in order
        self._rendered = rendered  # shared by the cases of one parse: tag -> how it is written
        self._name = split_qualified(tag)[1]
        self._attrib = attrib
        self._parts: list[str] = [""]  # [0] becomes the start tag, once every prefix is known
        self._defaults = [namespace]
        self._open: list[str] = []
        self._last_start = -1  # index in _parts of a start tag with nothing after it yet

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        rendered = self._rendered.get(tag) or self._render(tag)
        name, default, declares = rendered
        if declares is not None:
            self._used[declares] = None
        parent_default = self._defaults[-1]
        declaration = ""
        if default is None:
            default = parent_default
        elif default != parent_default:
            declaration = f' xmlns="{escape_attribute(default)}"'
        self._defaults.append(default)
        self._open.append(name)
        attributes = self._attributes(attrib) if attrib else ""
        self._parts.append(f"<{name}{declaration}{attributes}>")
        self._last_start = len(self._parts) - 1

    def data(self, text: str) -> None:
        self._parts.append(escape_text(text))

    def end(self) -> None:
        name = self._open.pop()
        self._defaults.pop()
        parts = self._parts
        if self._last_start == len(parts) - 1:
            parts[-1] = parts[-1][:-1] + "/>"
        else:
            parts.append(f"</{name}>")
        self._last_start = -1

    def start_tag(self) -> str:
        """The case's start tag with its namespace declarations (so far), without the `>`."""
        attributes = self._attributes(self._attrib)
        declarations = "".join(
            f' xmlns:{self._prefixes[namespace]}="{escape_attribute(namespace)}"'
            for namespace in self._used
        )
        default = escape_attribute(self._namespace)
        return f'<{self._name} xmlns="{default}"{declarations}{attributes}'

    def finish(self) -> str:
        """The whole case as text."""
        start_tag = self.start_tag()
        if len(self._parts) == 1:
            return f"{start_tag}/>"
        self._parts[0] = f"{start_tag}>"
        self._parts.append(f"</{self._name}>")
        return "".join(self._parts)

    def _render(self, tag: str) -> tuple[str, str | None, str | None]:
        """(name as written, default namespace it needs or None, namespace it declares)."""
        namespace, local = split_qualified(tag)
        if namespace == self._namespace or not namespace:
            rendered: tuple[str, str | None, str | None] = (local, namespace, None)
        elif namespace == self._contact_namespace:
            rendered = (f"{CONTACT_PREFIX}:{local}", None, namespace)
        else:
            # Other namespaces get prefixes numbered per case, so they are not shared.
            return f"{self._prefix(namespace)}:{local}", None, None
        self._rendered[tag] = rendered
        return rendered

    def _attributes(self, attrib: dict[str, str]) -> str:
        written = []
        for key, value in attrib.items():
            namespace, local = split_qualified(key)
            if not namespace:
                name = local
            elif namespace == XML_NAMESPACE:
                name = f"xml:{local}"
            else:
                name = f"{self._prefix(namespace)}:{local}"
            written.append(f' {name}="{escape_attribute(value)}"')
        return "".join(written)

    def _prefix(self, namespace: str) -> str:
        prefix = self._prefixes.get(namespace)
        if prefix is None:
            prefix = self._prefixes[namespace] = f"ns{len(self._prefixes)}"
        self._used[namespace] = None
        return prefix


@dataclass
class _Slot:
    """A child of the root being read: a case (captured), or an element in the wrong place."""

    tag: str
    line: int
    start_index: int
    external_id: str | None
    case: CaseText | None
    start_tag: str = ""
    unexpected: bool = False


class CaseSplitter:
    """Parser target queueing a RawRecord per case in `ready`; call `attach` before feeding."""

    def __init__(self, config: XmlCaseExportConfig) -> None:
        self._namespace = config.namespace
        self._contact_namespace = config.contact_namespace
        self._root = qualified(config.namespace, config.root_element)
        self._root_name = config.root_element
        self._record = qualified(config.namespace, config.record_element)
        self._record_name = config.record_element
        self._max_depth = config.max_depth
        self._max_bytes = config.max_case_bytes
        self.expat: Any = None
        self.ready: deque[RawRecord] = deque()
        self._depth = 0
        self._cases = 0
        self._names: set[str] = set()
        self._rendered: dict[str, tuple[str, str | None, str | None]] = {}
        self._slot: _Slot | None = None

    def attach(self, expat: Any) -> None:
        """Take the expat parser that calls this target: for positions, and to route text."""
        self.expat = expat
        expat.CharacterDataHandler = self._ignore

    # The parser target interface (text is routed straight to the open case: see _capture).

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        self._depth += 1
        if self._depth > self._max_depth:
            raise SplitRefused(
                f"elements nest more than {self._max_depth} levels deep "
                f"(line {self.expat.CurrentLineNumber})"
            )
        names = self._names
        if tag not in names or (attrib and not names.issuperset(attrib)):
            self._remember_names(tag, attrib)
        slot = self._slot
        if slot is not None:
            if slot.case is not None:
                slot.case.start(tag, attrib)
        elif self._depth == 2:
            self._open_slot(tag, attrib)
        elif self._depth == 1 and tag != self._root:
            namespace, local = split_qualified(tag)
            raise SplitRefused(
                f"the root element should be {self._root_name} in namespace {self._namespace}; "
                f"this document's is {local} in {namespace or 'no namespace'}"
            )

    def end(self, tag: str) -> None:
        slot = self._slot
        if slot is not None:
            if self._depth == 2:
                self._close_slot(slot)
            elif slot.case is not None:
                slot.case.end()
        self._depth -= 1

    def close(self) -> None:
        return None

    def _ignore(self, text: str) -> None:
        return None

    # Called by the adapter after each read.

    def check_progress(self, bytes_fed: int) -> None:
        """Refuse a token too long to hold; stop capturing an open case once it is too large.

        Checked per read rather than per event, so a case is held to at most max_case_bytes
        plus one read before it is dropped.
        """
        index = self.expat.CurrentByteIndex
        if bytes_fed - index > self._max_bytes:
            # expat holds a token (tag, comment, attribute value) whole until it ends, and
            # rescans it on every read: refuse rather than buffer it.
            raise SplitRefused(
                f"an XML token longer than {self._max_bytes} bytes (max_case_bytes) starts at "
                f"line {self.expat.CurrentLineNumber}"
            )
        slot = self._slot
        if slot is not None and index - slot.start_index > self._max_bytes:
            self._drop(slot)

    # Internals.

    def _remember_names(self, tag: str, attrib: dict[str, str]) -> None:
        self._names.add(tag)
        self._names.update(attrib)
        if len(self._names) > MAX_DISTINCT_NAMES:
            raise SplitRefused(
                f"the document uses more than {MAX_DISTINCT_NAMES} distinct element and "
                f"attribute names (line {self.expat.CurrentLineNumber})"
            )

    def _open_slot(self, tag: str, attrib: dict[str, str]) -> None:
        namespace, _ = split_qualified(tag)
        if tag != self._record and namespace not in ("", self._namespace):
            return  # another vendor's extension element: skipped, as XML extensions are
        slot = _Slot(
            tag=tag,
            line=self.expat.CurrentLineNumber,
            start_index=self.expat.CurrentByteIndex,
            external_id=external_id(attrib.get("id")),
            case=None,
        )
        if tag == self._record:
            self._cases += 1
            slot.case = CaseText(
                self._namespace, self._contact_namespace, tag, attrib, self._rendered
            )
            self.expat.CharacterDataHandler = slot.case.data
        else:
            slot.unexpected = True
        self._slot = slot

    def _drop(self, slot: _Slot) -> None:
        """Stop capturing an oversized case, keeping its start tag for the operator."""
        if slot.case is not None:
            slot.start_tag = slot.case.start_tag()[:_START_TAG_CHARS] + ">"
            slot.case = None
            self.expat.CharacterDataHandler = self._ignore

    def _close_slot(self, slot: _Slot) -> None:
        self._slot = None
        self.expat.CharacterDataHandler = self._ignore
        size = self.expat.CurrentByteIndex - slot.start_index
        if slot.unexpected:
            namespace, local = split_qualified(slot.tag)
            self.ready.append(
                RawRecord(
                    data={"element": local, "line": slot.line},
                    external_id=slot.external_id,
                    position=f"line {slot.line}",
                    errors=(
                        FieldError(
                            path=local,
                            message=f"expected a {self._record_name} element in namespace "
                            f"{self._namespace} here, found {local} in "
                            f"{namespace or 'no namespace'}",
                            type="unexpected_element",
                        ),
                    ),
                )
            )
            return
        if size > self._max_bytes:
            self._drop(slot)
        position = f"case {self._cases} (line {slot.line})"
        if slot.case is None:
            self.ready.append(
                RawRecord(
                    data={"start_tag": slot.start_tag, "bytes": size},
                    external_id=slot.external_id,
                    position=position,
                    errors=(
                        FieldError(
                            path="",
                            message=f"the case is larger than {self._max_bytes} bytes "
                            f"(max_case_bytes) and was not read",
                            type="record_too_large",
                        ),
                    ),
                )
            )
            return
        self.ready.append(
            RawRecord(
                data={"xml": slot.case.finish()}, external_id=slot.external_id, position=position
            )
        )
