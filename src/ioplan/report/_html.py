"""The pieces every ioplan HTML report shares: one page skeleton, tables, lists, figures.

Reports are plain, self-contained HTML files beside their figures (PNG), readable in any
browser and archivable with the case. Every value shown is escaped; nothing is loaded from
the network. The footer says which ioplan wrote the page and that it is a research tool.
"""

from __future__ import annotations

import html
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "bullet_list",
    "escape",
    "figure",
    "key_value_table",
    "page",
    "table",
    "write_page",
]

_STYLE = """<style>
body{font-family:sans-serif;max-width:1200px;margin:1.5em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:1.6em}
table{border-collapse:collapse;font-size:13px;margin:.6em 0}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top}
th{background:#f3f3f3}img{max-width:100%}figure{margin:1em 0}
figcaption{font-size:12px;color:#555}.good{color:#070;font-weight:bold}
.bad{color:#b00;font-weight:bold}.sw{display:inline-block;width:1em;height:1em;
margin-right:.4em;vertical-align:middle;border:1px solid #888}
footer{margin-top:2em;font-size:12px;color:#666;border-top:1px solid #ddd;padding-top:.5em}
</style>"""

_DISCLAIMER = "Research software: not for clinical use."


def escape(value: Any) -> str:
    """``value`` as HTML text (``str`` of it, with ``& < > " '`` escaped)."""
    return html.escape(str(value))


def table(
    head: Sequence[str], rows: Iterable[Sequence[Any]], *, html_columns: Sequence[int] = ()
) -> str:
    """An HTML table; every cell is escaped except the columns in ``html_columns``.

    Examples
    --------
    >>> table(["a", "b"], [[1, "<x>"]])
    '<table><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>&lt;x&gt;</td></tr></table>'
    """
    raw = set(html_columns)
    header = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{v if i in raw else escape(v)}</td>" for i, v in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{header}</tr>{body}</table>" if head else f"<table>{body}</table>"


def key_value_table(pairs: Iterable[tuple[str, Any]]) -> str:
    """A two-column table of ``(name, value)`` pairs, escaped."""
    return table([], [(k, v) for k, v in pairs])


def bullet_list(items: Iterable[Any], *, empty: str = "none") -> str:
    """An escaped ``<ul>``; ``empty`` is shown as the only item when there is none."""
    li = "".join(f"<li>{escape(x)}</li>" for x in items)
    return f"<ul>{li or f'<li>{escape(empty)}</li>'}</ul>"


def figure(src: str, alt: str, *, caption: str | None = None, width: str | None = None) -> str:
    """An ``<img>`` (relative ``src``) with its alternative text and an optional caption."""
    w = f' width="{escape(width)}"' if width else ""
    cap = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{escape(src)}" alt="{escape(alt)}"{w}>{cap}</figure>'


def page(title: str, body: str, *, footer: str = "") -> str:
    """A whole HTML document: the shared style, ``title`` as heading, ``body`` as given.

    ``body`` is HTML (build it with the functions of this module, which escape values);
    ``footer`` is text (escaped) added before the version and the disclaimer.
    """
    from ioplan import __version__

    foot = " ".join(x for x in (escape(footer), f"ioplan {escape(__version__)}.", _DISCLAIMER) if x)
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title>\n{_STYLE}</head>\n<body>\n<h1>{escape(title)}</h1>\n"
        f"{body}\n<footer>{foot}</footer>\n</body></html>\n"
    )


def write_page(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (a temporary file renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
