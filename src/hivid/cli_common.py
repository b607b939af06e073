"""Helpers shared by the `hivid` command groups: progress bars, one-line errors, options."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

PATH = click.Path(path_type=Path)

params_option = click.option(
    "--params", type=PATH, default=Path("params.yaml"), show_default=True, help="Params file."
)


def project_root() -> Path:
    from hivid.tracking.lineage import find_project_root

    return find_project_root()


def console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


@contextlib.contextmanager
def progress(label: str) -> Iterator[Callable[[str, int, int], None]]:
    """A rich progress bar driven by (item, done, total) callbacks."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    with Progress(
        TextColumn(f"[bold]{label}[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=console(),
        transient=False,
    ) as bar:
        task = bar.add_task("", total=None)

        def update(item: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, description=item)

        yield update


def fail(cmd: str, exc: BaseException) -> None:
    """Print `hivid <cmd>: error: <first line>` and exit 1."""
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    click.echo(f"hivid {cmd}: error: {msg}", err=True)
    sys.exit(1)


def guard(cmd: str, fn: Callable[[], Any]) -> Any:
    """Run ``fn``; any exception becomes a one-line error (HIVID_DEBUG=1 shows the traceback)."""
    try:
        return fn()
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        if os.environ.get("HIVID_DEBUG"):
            raise
        fail(cmd, exc)


def echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=1, sort_keys=True, default=str))
