"""The ``ioplan`` command: a thin layer over the library.

A package of one module per command group (:mod:`ioplan.cli.plan`,
:mod:`~ioplan.cli.assess`, :mod:`~ioplan.cli.monitoring`, :mod:`~ioplan.cli.sirt`,
:mod:`~ioplan.cli.registry`, :mod:`~ioplan.cli.case`, :mod:`~ioplan.cli.physics`,
:mod:`~ioplan.cli.validation`); each parses its options, calls the library and
prints. User errors (:class:`~ioplan.errors.IoplanError`) print one line,
``error: <message>``, on standard error and exit with code 2. Set
``IOPLAN_DEBUG=1`` to see tracebacks of unexpected errors.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
from typing import Annotated

import typer

from ioplan import __version__

try:  # typer >= 0.22 carries its own copy of click
    from typer._click import exceptions as _click_errors
except ImportError:  # pragma: no cover - older typer on click
    from click import exceptions as _click_errors
from ioplan.cli._common import app, console, err_console
from ioplan.errors import IoplanError

__all__ = ["app", "main"]

# The command groups register themselves on ``app`` when imported; this order is the help's.
_GROUPS = (
    "plan",
    "assess",
    "monitoring",
    "sirt",
    "registry",
    "case",
    "lesion",
    "physics",
    "validation",
    "biopsy",
    "drainage",
    "protocol",
    "batch",
    "arteries",
    "serve",
)
for _name in _GROUPS:
    importlib.import_module(f"ioplan.cli.{_name}")


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"ioplan {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version_callback, is_eager=True, help="Print version."),
    ] = False,
) -> None:
    """Interventional oncology planning."""


def _one_line(text: str) -> str:
    """Messages from the library or the framework on one line (never a box)."""
    return " ".join(str(text).split())


def _usage_error(exc: _click_errors.UsageError) -> str:
    """``error: ...`` for a usage error, naming the command and pointing to its help."""
    ctx = exc.ctx
    where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    return f"error: {_one_line(exc.format_message())}{where}"


@functools.cache
def _command():
    """The click command of the typer app, built once per process.

    Building it takes 0.1 s; in a process that runs many commands (the test suite) that
    added up to a minute.
    """
    return typer.main.get_command(app)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ioplan`` console script; returns the exit code.

    0: done; 2: a user error (one line ``error: ...`` on standard error: bad option,
    bad input file, an output that exists); 1: an ioplan bug (``internal error: ...``);
    130: interrupted. ``ioplan plan`` and ``ioplan demo`` document their own codes for a
    plan that misses its goal.
    """
    command = _command()
    try:
        # not standalone: usage errors come here instead of a framework box
        code = command.main(args=argv, prog_name="ioplan", standalone_mode=False)
    except _click_errors.UsageError as exc:
        if not exc.format_message():  # a group called without a command: its help was printed
            return 0
        err_console.print(_usage_error(exc), markup=False, highlight=False, soft_wrap=True)
        return 2
    except typer.Abort:
        err_console.print("interrupted", markup=False)
        return 130
    except _click_errors.ClickException as exc:  # e.g. a file option that cannot be opened
        err_console.print(
            f"error: {_one_line(exc.format_message())}", markup=False, highlight=False,
            soft_wrap=True,
        )  # fmt: skip
        return 2
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except IoplanError as exc:
        err_console.print(f"error: {_one_line(exc)}", markup=False, highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err_console.print("interrupted", markup=False)
        return 130
    except Exception as exc:  # an ioplan bug, not a user error
        if os.environ.get("IOPLAN_DEBUG"):
            raise
        err_console.print(
            f"internal error: {type(exc).__name__}: {_one_line(exc)} "
            "(set IOPLAN_DEBUG=1 for the traceback)",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        return 1
    if code == 130:  # typer turns Ctrl-C into exit code 130 itself
        err_console.print("interrupted", markup=False)
    return code if isinstance(code, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
