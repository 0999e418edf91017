"""What every benchmark shares: the machine's description and writing its JSON."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any


def machine() -> dict[str, Any]:
    """The machine a result was measured on."""
    return {"cpu_count": os.cpu_count(), "platform": platform.platform()}


def write_result(result: dict[str, Any], path: str | Path, table: str | None = None) -> Path:
    """Write ``result`` as indented JSON to ``path`` (folders made) and say where.

    ``table``: its Markdown table, printed and written beside it (``.md``).
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    if table is not None:
        print(table)
    out.write_text(json.dumps(result, indent=2) + "\n")
    if table is not None:
        out.with_suffix(".md").write_text(table)
    print(f"written {out}")
    return out
