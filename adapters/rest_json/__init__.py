"""The `rest_json` adapter: a commercial case system's JSON API (camelCase items, its own code
lists, cursor pagination). FORMAT.md documents the API shape and the code mappings."""

from adapters.rest_json.adapter import PAGES_JSONL, RestJsonAdapter, RestJsonConfig
from adapters.rest_json.writer import write_records

__all__ = ["PAGES_JSONL", "RestJsonAdapter", "RestJsonConfig", "write_records"]
