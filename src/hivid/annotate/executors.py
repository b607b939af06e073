"""Where the videos of a batch run: in-process (``run_entry``), or fanned out (``fan_out``) over a
spawn-context process pool, a Dask cluster or Ray (``annotate.parallel``). Each worker process
loads its models once (``Models``), and only when a sub-step needs them."""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from hivid.annotate.config import AnnotateConfig, ParallelConfig
from hivid.annotate.resources import Models
from hivid.annotate.steps import annotate_video
from hivid.io import read_json

Outcome = tuple[str, dict[str, Any]]
"""("ok", record) or ("quarantine", row)."""

_WORKER: dict[str, Any] = {}


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] if text else type(exc).__name__


def read_previous(out_dir: Path, vid: str) -> dict[str, Any] | None:
    """The video's record from the last run (None when missing or unreadable)."""
    path = out_dir / f"{vid}.json"
    if not path.is_file():
        return None
    try:
        old = read_json(path)
    except (OSError, ValueError):
        return None
    return old if isinstance(old, dict) else None


def quarantine_row(entry: dict[str, Any], reason: str) -> dict[str, Any]:
    return {
        "video_id": str(entry.get("video_id", Path(str(entry.get("path", ""))).stem)),
        "path": str(entry.get("path", "")),
        "stage": "annotate",
        "reason": reason,
    }


def run_entry(
    entry: dict[str, Any],
    data_root: Path,
    out_dir: Path,
    cfg: AnnotateConfig,
    models: Models,
    identities: dict[str, Any],
) -> Outcome:
    """Annotate one manifest row in this process; never raises for a bad video."""
    path = data_root / str(entry.get("path", ""))
    vid = str(entry.get("video_id", path.stem))
    try:
        record = annotate_video(
            path,
            vid,
            str(entry["sha256"]),
            float(entry["duration"]),
            dict(entry.get("metadata") or {}),
            cfg,
            models,
            previous=read_previous(out_dir, vid),
            identities=identities,
        )
        return "ok", record
    except Exception as exc:
        reason = one_line(exc)
        if str(path) not in reason:
            reason = f"{path}: {type(exc).__name__}: {reason}"
        # Name the file relative to the data root, as ingest's quarantine rows do.
        reason = reason.replace(str(data_root).rstrip("/") + "/", "")
        return "quarantine", quarantine_row(entry, reason)


def _init_worker(cfg: AnnotateConfig, identities: dict[str, Any]) -> None:
    # Each worker gets an even share of the cores instead of oversubscribing them.
    threads = max(1, (os.cpu_count() or 1) // max(1, cfg.parallel_cfg.workers))
    os.environ["HIVID_THREADS"] = str(threads)
    _WORKER["cfg"] = cfg
    _WORKER["ids"] = identities
    _WORKER["models"] = Models(cfg)


def _worker_task(entry: dict[str, Any], data_root: str, out_dir: str) -> Outcome:
    return run_entry(
        entry, Path(data_root), Path(out_dir), _WORKER["cfg"], _WORKER["models"], _WORKER["ids"]
    )


def _dask_task(
    entry: dict[str, Any], data_root: str, out_dir: str, cfg: AnnotateConfig, ids: dict[str, Any]
) -> Outcome:
    if "models" not in _WORKER:
        _init_worker(cfg, ids)
    return run_entry(entry, Path(data_root), Path(out_dir), cfg, _WORKER["models"], ids)


def _results(
    finished: Iterable[tuple[dict[str, Any], Callable[[], Outcome]]],
) -> Iterator[tuple[dict[str, Any], Outcome | BaseException]]:
    """(entry, its outcome, or the exception getting it raised) for each finished task."""
    for entry, get in finished:
        try:
            yield entry, get()
        except Exception as exc:
            yield entry, exc


def fan_out(
    todo: list[dict[str, Any]],
    data_root: Path,
    out_dir: Path,
    cfg: AnnotateConfig,
    ids: dict[str, Any],
) -> Iterator[tuple[dict[str, Any], Outcome | BaseException]]:
    """(entry, result or the worker's exception) as videos finish, over ``cfg.parallel_cfg``."""
    par: ParallelConfig = cfg.parallel_cfg
    n = min(par.workers, len(todo))
    if par.backend == "dask":
        yield from _dask(todo, data_root, out_dir, cfg, ids, par, n)
    elif par.backend == "ray":
        yield from _ray(todo, data_root, out_dir, cfg, ids, n)
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            n, mp_context=ctx, initializer=_init_worker, initargs=(cfg, ids)
        ) as ex:
            futures = {ex.submit(_worker_task, e, str(data_root), str(out_dir)): e for e in todo}
            # a worker that died (e.g. killed for memory) yields its exception
            yield from _results((futures[f], f.result) for f in as_completed(futures))


def _dask(
    todo: list[dict[str, Any]],
    data_root: Path,
    out_dir: Path,
    cfg: AnnotateConfig,
    ids: dict[str, Any],
    par: ParallelConfig,
    n: int,
) -> Iterator[tuple[dict[str, Any], Outcome | BaseException]]:
    try:
        from dask.distributed import Client, LocalCluster
        from dask.distributed import as_completed as dask_completed
    except ImportError:
        raise RuntimeError(
            "annotate.parallel is 'dask' but dask.distributed is not installed"
        ) from None
    with contextlib.ExitStack() as stack:
        if par.dask_address:
            client = stack.enter_context(Client(par.dask_address))
        else:
            cluster = stack.enter_context(
                LocalCluster(
                    n_workers=n,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=None,
                )
            )
            client = stack.enter_context(Client(cluster))
        futs = {
            client.submit(_dask_task, e, str(data_root), str(out_dir), cfg, ids, pure=False): e
            for e in todo
        }
        yield from _results((futs[f], f.result) for f in dask_completed(futs))


def _ray(
    todo: list[dict[str, Any]],
    data_root: Path,
    out_dir: Path,
    cfg: AnnotateConfig,
    ids: dict[str, Any],
    n: int,
) -> Iterator[tuple[dict[str, Any], Outcome | BaseException]]:
    try:
        import ray
    except ImportError:
        raise RuntimeError("annotate.parallel is 'ray' but ray is not installed") from None
    ray.init(num_cpus=n, include_dashboard=False, ignore_reinit_error=True)
    remote = ray.remote(_dask_task)
    refs = {remote.remote(e, str(data_root), str(out_dir), cfg, ids): e for e in todo}

    def finished() -> Iterator[tuple[dict[str, Any], Callable[[], Outcome]]]:
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield refs[done[0]], functools.partial(ray.get, done[0])

    yield from _results(finished())
