"""Shared pieces of the ``ioplan`` commands: the application, consoles, progress, options."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from ioplan.errors import InputError

app = typer.Typer(
    name="ioplan",
    help="Interventional oncology planning: phantom cases, imaging, planning, simulation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def _warn(message: str) -> None:
    """One warning line on stderr (never on stdout, which may carry JSON)."""
    err_console.print(f"warning: {message}", markup=False, highlight=False, soft_wrap=True)


_PHANTOM_STEPS = 11  # generate_phantom reports 10 steps; saving is the 11th


@contextmanager
def _progress(total: int, enabled: bool = True):
    """A rich progress bar on a terminal; ``advance(name)`` moves it one step.

    Not drawn when standard error is not a terminal (a pipe, a log file, a test runner):
    there a transient bar cannot be erased and left a blank line before an error message.
    """
    if not enabled or not err_console.is_terminal:
        yield lambda _name: None
        return
    with Progress(
        TextColumn("[bold]{task.description:<22}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as prog:
        task = prog.add_task("starting", total=total)
        state = {"first": True}

        def advance(name: str) -> None:
            if state["first"]:
                state["first"] = False
            else:
                prog.advance(task)
            prog.update(task, description=name)

        yield advance
        prog.update(task, completed=total)


def _parse_point(text: str, what: str) -> tuple[float, float, float]:
    parts = [p for p in text.replace(";", ",").split(",") if p.strip()]
    try:
        vals = tuple(float(p) for p in parts)
    except ValueError:
        raise InputError(f"{what} must be three numbers 'x,y,z' in mm, got {text!r}") from None
    if len(vals) != 3:
        raise InputError(f"{what} must be three numbers 'x,y,z' in mm, got {text!r}")
    return vals  # type: ignore[return-value]


def _given(ctx: typer.Context, *names: str) -> list[str]:
    """The options among ``names`` (parameter names) given on the command line, as flags."""
    out = []
    for name in names:
        # by name: typer may carry its own copy of click's ParameterSource enum
        if getattr(ctx.get_parameter_source(name), "name", "") == "COMMANDLINE":
            param = next(p for p in ctx.command.params if p.name == name)
            out.append(max(param.opts, key=len))
    return out


def _refuse_unused(ctx: typer.Context, names: tuple[str, ...], why: str) -> None:
    """Refuse options that would be silently ignored: ``why`` says when (e.g. 'with --live')."""
    unused = _given(ctx, *names)
    if unused:
        one = len(unused) == 1
        raise InputError(f"{', '.join(unused)} {'is' if one else 'are'} not used {why}: "
                         f"leave {'it' if one else 'them'} out")  # fmt: skip


_SEED = Annotated[int, typer.Option(help="Seed of every random choice (same seed, same case).")]
_OVERWRITE = Annotated[
    bool,
    typer.Option(
        "--overwrite",
        help="Replace this command's earlier output at the output path instead of refusing.",
    ),
]
_QUIET = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]


_MODALITY = Annotated[str, typer.Option(help="mwa (microwave), rfa (radiofrequency) or cryo.")]
