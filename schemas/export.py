"""Write (or check) the committed JSON Schema of the canonical case record.

``python -m schemas.export`` writes ``schemas/json/case-record.v1.json``;
``python -m schemas.export --check`` exits 1 when that file differs from the models.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from schemas.record import export_json_schema

__all__ = ["JSON_SCHEMA_PATH", "main", "render_json_schema"]

JSON_SCHEMA_PATH: Final = Path(__file__).resolve().parent / "json" / "case-record.v1.json"


def render_json_schema() -> str:
    """Render the schema exactly as committed: sorted keys, 2-space indent, trailing newline."""
    return json.dumps(export_json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Write the schema file, or with ``--check`` report whether it is stale; return exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m schemas.export", description="Export the canonical case JSON Schema."
    )
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the committed file is stale"
    )
    args = parser.parse_args(argv)
    rendered = render_json_schema()
    if args.check:
        try:
            committed = JSON_SCHEMA_PATH.read_text(encoding="utf-8")
        except FileNotFoundError:
            committed = None
        if committed != rendered:
            sys.stderr.write(
                f"{JSON_SCHEMA_PATH} is stale: run `python -m schemas.export` and commit it\n"
            )
            return 1
        sys.stdout.write(f"{JSON_SCHEMA_PATH} is up to date\n")
        return 0
    JSON_SCHEMA_PATH.parent.mkdir(parents=True, exist_ok=True)
    JSON_SCHEMA_PATH.write_text(rendered, encoding="utf-8")
    sys.stdout.write(f"wrote {JSON_SCHEMA_PATH}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
