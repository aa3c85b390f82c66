"""The nDelius flat-file export adapter: `DeliusFlatAdapter`, its config, and the writer."""

from adapters.delius_flat.adapter import DeliusFlatAdapter, DeliusFlatConfig
from adapters.delius_flat.writer import write_records

__all__ = ["DeliusFlatAdapter", "DeliusFlatConfig", "write_records"]
