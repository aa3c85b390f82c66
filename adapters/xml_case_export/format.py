"""Constants of the Casewright case export format and the XML escaping shared by reader and writer.

See FORMAT.md in this package for the element tree.
"""

from __future__ import annotations

import re
from typing import Final
from xml.sax.saxutils import escape

__all__ = [
    "CONTACT_NAMESPACE",
    "CONTACT_PREFIX",
    "EXPORT_NAMESPACE",
    "XML_NAMESPACE",
    "escape_attribute",
    "escape_text",
    "qualified",
    "split_qualified",
]

#: Default namespace of the export: every element except addresses and contact details.
EXPORT_NAMESPACE: Final = "https://ns.casewright.example/case-export/2"
#: Namespace of the address and contact elements (shared with the vendor's other exports).
CONTACT_NAMESPACE: Final = "https://ns.casewright.example/contact/1"
#: The prefix the writer and the parser's serialisation give CONTACT_NAMESPACE.
CONTACT_PREFIX: Final = "ct"
#: Bound to the prefix `xml` by definition; never declared.
XML_NAMESPACE: Final = "http://www.w3.org/XML/1998/namespace"

# Characters XML 1.0 cannot carry at all (C0 controls bar tab/LF/CR, surrogates, U+FFFE/U+FFFF).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_TEXT_SPECIAL = re.compile("[&<>\r\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_ATTRIBUTE_SPECIAL = re.compile('[&<>"\t\n\r\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]')
# A parser turns a literal CR into LF in text, and tab/LF/CR into spaces in attribute values:
# written as character references they survive.
_TEXT_ENTITIES: Final = {"\r": "&#13;"}
_ATTRIBUTE_ENTITIES: Final = {'"': "&quot;", "\t": "&#9;", "\n": "&#10;", "\r": "&#13;"}


def escape_text(value: str) -> str:
    """Escape character data; characters XML cannot carry become U+FFFD."""
    if _TEXT_SPECIAL.search(value) is None:
        return value
    return escape(_NOT_XML.sub("\ufffd", value), _TEXT_ENTITIES)


def escape_attribute(value: str) -> str:
    """Escape an attribute value for double quotes; characters XML cannot carry become U+FFFD."""
    if _ATTRIBUTE_SPECIAL.search(value) is None:
        return value
    return escape(_NOT_XML.sub("\ufffd", value), _ATTRIBUTE_ENTITIES)


def qualified(namespace: str, local: str) -> str:
    """The ElementTree spelling of a namespaced name: ``{uri}local``."""
    return f"{{{namespace}}}{local}"


def split_qualified(name: str) -> tuple[str, str]:
    """``{uri}local`` as ``(uri, local)``; a name in no namespace as ``("", local)``."""
    if name[:1] == "{":
        namespace, _, local = name[1:].partition("}")
        return namespace, local
    return "", name
