"""``ioplan serve``: the web workspace (cases, plans, the viewer) on a local port."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from ioplan.cli._common import app, console


@app.command()
def serve(
    cases: Annotated[
        Path, typer.Option(help="Folder of case folders (or one case folder) to serve.")
    ] = Path("."),
    host: Annotated[
        str,
        typer.Option(help="Address to listen on; anything but loopback needs --token."),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port, 1-65535.")] = 8000,
    token: Annotated[
        str | None,
        typer.Option(
            help="Require this token (at least 16 characters; or set IOPLAN_TOKEN): "
            "Authorization: Bearer TOKEN, or ?token=TOKEN in the page's address.",
            show_default=False,
        ),
    ] = None,
    max_upload_mb: Annotated[
        float, typer.Option(help="Largest request body (case import), 1-4096 MB.")
    ] = 512.0,
    registry: Annotated[
        str | None,
        typer.Option(
            "--registry",
            help="Registry the dashboard (/registry) reads: a SQLite file or postgresql://... "
            "(default: $IOPLAN_REGISTRY_DB, else ioplan-registry.sqlite here). Read only.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve the cases in a browser: their images, plans and simulations (Ctrl-C stops)."""
    from ioplan.errors import InputError
    from ioplan.web import check_bind, check_port_free
    from ioplan.web import serve as run

    token = token or os.environ.get("IOPLAN_TOKEN") or None
    check_bind(host, port, token)
    check_port_free(host, port)
    if not 1 <= max_upload_mb <= 4096:
        raise InputError(f"--max-upload-mb must be 1-4096, got {max_upload_mb:g}")
    if not cases.is_dir():
        raise InputError(f"--cases {cases}: no such folder")
    if registry is not None:
        from ioplan.registry import open_db

        # a malformed URL, a file that is no registry or one that does not exist: one line,
        # exit 2, before serving (the dashboard would fail on every visit); nothing created
        open_db(registry, create=False).dispose()
    where = f"http://{'[' + host + ']' if ':' in host else host}:{port}/"
    if token:
        where += "?token=TOKEN"
    console.print(f"serving {cases} at {where} (Ctrl-C stops)", markup=False, highlight=False)
    run(cases, host=host, port=port, token=token, max_upload_mb=max_upload_mb,
        registry_db=registry)  # fmt: skip
