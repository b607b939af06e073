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


HEARTBEAT_S = 30.0
"""Without a terminal (a log), progress prints a line per item and at least this often."""


@contextlib.contextmanager
def progress(label: str) -> Iterator[Callable[[str, int, int], None]]:
    """A rich progress bar driven by (item, done, total) callbacks; without a terminal (the
    nightly log, through `dvc repro`) plain lines instead: one per item and a heartbeat every
    ``HEARTBEAT_S`` seconds, so no stage is silent for minutes."""
    if not sys.stderr.isatty():
        with _log_progress(label) as update:
            yield update
        return
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


@contextlib.contextmanager
def _log_progress(label: str) -> Iterator[Callable[[str, int, int], None]]:
    import threading
    import time

    t0 = time.monotonic()
    state = {"item": "", "done": 0, "total": 0}
    lock = threading.Lock()
    stop = threading.Event()

    def line(prefix: str = "") -> None:
        with lock:
            item, done, total = state["item"], state["done"], state["total"]
        elapsed = round(time.monotonic() - t0)
        of = f"{done}/{total}" if total else f"{done}"
        print(f"{label}: {prefix}{of} {item} (elapsed {elapsed}s)", file=sys.stderr, flush=True)

    def beat() -> None:
        while not stop.wait(HEARTBEAT_S):
            line("still working, ")

    thread = threading.Thread(target=beat, name=f"{label}-progress", daemon=True)
    thread.start()

    def update(item: str, done: int, total: int) -> None:
        with lock:
            changed = (item, done) != (state["item"], state["done"])
            state.update(item=item, done=done, total=total)
        if changed:
            line()

    try:
        yield update
    finally:
        stop.set()
        thread.join(timeout=1)


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
