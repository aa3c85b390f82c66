"""The Casewright CMS XML case export: a CRC's bespoke export, read as a stream (see FORMAT.md)."""

from adapters.xml_case_export.adapter import XmlCaseExportAdapter, XmlCaseExportConfig
from adapters.xml_case_export.writer import write_records

__all__ = ["XmlCaseExportAdapter", "XmlCaseExportConfig", "write_records"]
