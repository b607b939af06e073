"""The `ingest` stage: probe every raw video, hash it, join its metadata, write the manifest.

Layout of a data root (what `hivid demo-data` writes and what a real corpus must follow)::

    data/videos/<video_id>.<ext>        raw media
    data/metadata/<video_id>.json       product metadata (brand, category, attributes, price)
    data/ground_truth/<video_id>.json   optional reference chapters (benchmark videos)

Outputs: ``manifest.jsonl`` (one row per usable video), ``quarantine.jsonl`` (one row per rejected
file with a reason a person can act on) and ``summary.json``. A bad file never stops the batch:
whatever one file or its metadata holds (any bytes, nesting, number size, a directory in its
place) costs that one item a quarantine row, and memory stays bounded (metadata is read only up
to ``ingest.max_metadata_bytes``).

Duplicates (the same content under two names, or two files with one id) keep the **earliest-seen**
copy: the one the previous manifest already listed (so a new copy never displaces a video that was
trained on), then the older file by modification time, then the name. The later copy is
quarantined with a reason naming the one kept. Manifest and quarantine rows are written in path
order whatever the processing order.
"""

from __future__ import annotations

import json
import math
import re
import stat
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hivid.configbase import require
from hivid.data.probe import ProbeError, ProbeResult, ProbeWorker, probe_video, sha256_file
from hivid.io import write_json, write_jsonl

VIDEO_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
"""A video id (the file stem) is a safe single path component: it names output files."""


def shown_path(rel: str) -> str:
    """``rel`` as a reason shows it: control characters (a newline in a file name) escaped, so
    that a reason is always one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in rel)


def _one_line(text: str) -> str:
    return " ".join(text.split("\n")) if "\n" in text else text


def video_id_problem(video_id: object) -> str | None:
    """Why ``video_id`` cannot be used as an id (None when it can): no separators, no ``..``."""
    if not isinstance(video_id, str):
        return f"video id {video_id!r} is not a string"
    if not VIDEO_ID_RE.fullmatch(video_id) or ".." in video_id:
        return (
            f"invalid video id {video_id!r} (1-128 of letters, digits, '_', '-', '.'; "
            "no '..' or path separators)"
        )
    return None


@dataclass
class IngestConfig:
    """Knobs of the ingest stage (params.yaml section ``ingest``)."""

    extensions: list[str] = field(default_factory=lambda: [".mp4", ".mov", ".mkv", ".webm"])
    """File suffixes under ``videos/`` that are treated as videos; anything else is quarantined."""
    min_fps: float = 1.0
    """Videos below this frame rate are rejected."""
    max_fps: float = 120.0
    """Videos above this frame rate are rejected."""
    max_duration_s: float = 3600.0
    """Videos longer than this are rejected (a product video is minutes, not hours)."""
    max_pixels: int = 3840 * 2160
    """Frames with more pixels than this are rejected from the stream header, before decoding
    (protects the 1 fps decoder's memory: one 7680x4320 frame is ~100 MB as RGB)."""
    probe_timeout_s: float = 60.0
    """Per-file limit of the prober, which runs in a child process so that a file hanging or
    crashing FFmpeg is quarantined and the batch goes on; 0 probes in-process without a limit."""
    min_videos: int = 1
    """The stage fails (non-zero exit, after writing its report) when fewer videos are usable."""
    max_quarantine_share: float = 1.0
    """The stage fails when more than this share of the files is quarantined (1.0: never)."""
    require_metadata: bool = True
    """Reject a video whose ``metadata/<id>.json`` is missing or malformed."""
    max_metadata_bytes: int = 1 << 20
    """Metadata files larger than this are rejected without being read whole (product metadata
    is a few hundred bytes; the whole file is copied into every manifest row)."""

    def __post_init__(self) -> None:
        require(bool(self.extensions), "ingest.extensions must not be empty")
        require(0 < self.min_fps <= self.max_fps, "ingest: need 0 < min_fps <= max_fps")
        require(self.max_duration_s > 0, "ingest.max_duration_s must be > 0")
        require(self.max_pixels > 0, "ingest.max_pixels must be > 0")
        require(self.probe_timeout_s >= 0, "ingest.probe_timeout_s must be >= 0 (0: no limit)")
        require(self.min_videos >= 0, "ingest.min_videos must be >= 0")
        require(self.max_metadata_bytes > 0, "ingest.max_metadata_bytes must be > 0")
        require(
            0 <= self.max_quarantine_share <= 1, "ingest.max_quarantine_share must be in [0, 1]"
        )


@dataclass
class IngestSummary:
    manifest: list[dict[str, Any]]
    quarantined: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "videos": len(self.manifest),
            "quarantined": len(self.quarantined),
            "video_ids": [r["video_id"] for r in self.manifest],
            "quarantine": self.quarantined,
            "variable_frame_rate": [
                r["video_id"] for r in self.manifest if r.get("variable_frame_rate")
            ],
        }

    def batch_failures(self, cfg: IngestConfig) -> list[str]:
        """Why the batch must stop (empty stage, too much quarantined); [] when it may go on."""
        total = len(self.manifest) + len(self.quarantined)
        failures = []
        if len(self.manifest) < cfg.min_videos:
            failures.append(
                f"{len(self.manifest)} usable video(s) of {total} file(s), fewer than "
                f"ingest.min_videos {cfg.min_videos}"
            )
        share = len(self.quarantined) / total if total else 0.0
        if share > cfg.max_quarantine_share:
            failures.append(
                f"{len(self.quarantined)} of {total} files quarantined ({share:.0%}), more than "
                f"ingest.max_quarantine_share {cfg.max_quarantine_share:.0%}"
            )
        return failures


class IngestFailed(Exception):
    """The ingest batch as a whole failed (its reports are written before this is raised)."""


class MetadataError(Exception):
    """Product metadata is missing or malformed (message names the file and the problem)."""


MAX_METADATA_DEPTH = 32
"""Deepest nesting of objects/lists accepted in metadata (real product metadata is 2-3 deep)."""


def _metadata_value_problem(meta: Any) -> str | None:
    """First value the manifest cannot hold (too deep, non-finite, unencodable text), iteratively
    (a recursive walk would itself hit the recursion limit)."""
    stack: list[tuple[Any, int, str]] = [(meta, 1, "")]
    while stack:
        value, depth, where = stack.pop()
        if isinstance(value, dict | list):
            if depth > MAX_METADATA_DEPTH:
                return f"metadata nested deeper than {MAX_METADATA_DEPTH} levels"
            items = list(value.items()) if isinstance(value, dict) else list(enumerate(value))
            for k, v in items:
                key = (
                    f"{where}.{k}"
                    if where and isinstance(k, str)
                    else (f"{where}[{k}]" if isinstance(k, int) else str(k))
                )
                if isinstance(k, str):
                    stack.append((k, depth, f"a key of {where or 'the object'}"))
                stack.append((v, depth + 1, key))
        elif isinstance(value, float) and not math.isfinite(value):
            return f"{where[:80]!r} is {value} (not a finite number)"
        elif isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return f"{where[:80]!r} holds a lone UTF-16 surrogate (not encodable as UTF-8)"
    return None


def load_metadata(path: Path, max_bytes: int = IngestConfig.max_metadata_bytes) -> dict[str, Any]:
    """Read and check a product metadata JSON; raise MetadataError with a one-line reason.

    Never raises anything else on any file content: at most ``max_bytes + 1`` bytes are read,
    and nesting, huge integers, NaN/Infinity and lone surrogates are reasons, not crashes."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise MetadataError(f"{path}: metadata file not found") from None
    except OSError as exc:
        raise MetadataError(f"{path}: cannot read metadata ({exc.strerror or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise MetadataError(f"{path}: is a directory, not a metadata file")
    if not stat.S_ISREG(st.st_mode):
        raise MetadataError(f"{path}: metadata is not a regular file (FIFO, socket or device)")
    too_big = f"{path}: metadata larger than ingest.max_metadata_bytes ({max_bytes} bytes)"
    if st.st_size > max_bytes:
        raise MetadataError(too_big)
    try:
        with path.open("rb") as f:
            raw = f.read(max_bytes + 1)  # bounded even when the file grows after stat()
    except OSError as exc:
        raise MetadataError(f"{path}: cannot read metadata ({exc.strerror or exc})") from None
    if len(raw) > max_bytes:
        raise MetadataError(too_big)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MetadataError(f"{path}: metadata is not UTF-8 (byte {exc.start})") from None
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MetadataError(
            f"{path}: metadata is not JSON ({exc.msg}, line {exc.lineno})"
        ) from None
    except RecursionError:
        raise MetadataError(
            f"{path}: metadata nested deeper than {MAX_METADATA_DEPTH} levels"
        ) from None
    except ValueError as exc:  # an integer over sys.get_int_max_str_digits()
        msg = str(exc)
        if "digits" in msg:
            msg = f"metadata holds an integer with more than {_int_digits()} digits"
        raise MetadataError(f"{path}: {msg.splitlines()[0][:200]}") from None
    if not isinstance(meta, dict):
        raise MetadataError(f"{path}: metadata must be a JSON object")
    problem = _metadata_value_problem(meta)
    if problem:
        raise MetadataError(f"{path}: {problem}")
    problems = []
    for key in ("brand", "category"):
        if not isinstance(meta.get(key), str) or not meta.get(key, "").strip():
            problems.append(f"'{key}' missing or not a non-empty string")
    if not isinstance(meta.get("attributes"), dict):
        problems.append("'attributes' missing or not an object")
    price = meta.get("price")
    amount = price.get("amount") if isinstance(price, dict) else None
    if (
        not isinstance(amount, int | float)
        or isinstance(amount, bool)
        or not math.isfinite(amount)
        or amount < 0
    ):
        problems.append("'price.amount' missing or not a non-negative number")
    if problems:
        raise MetadataError(f"{path}: " + "; ".join(problems))
    return meta


def _int_digits() -> int:
    import sys

    return sys.get_int_max_str_digits() or 4300


def _processing_order(
    files: list[Path], data_root: Path, previous: Iterable[Mapping[str, Any]]
) -> list[Path]:
    """Earliest-seen first: files the previous manifest listed (in its order), then the rest by
    modification time, then name; duplicates keep the first file of this order."""
    rank: dict[str, int] = {}
    for i, row in enumerate(previous):
        rel = row.get("path") if isinstance(row, Mapping) else None
        if isinstance(rel, str):
            rank.setdefault(rel, i)

    def key(p: Path) -> tuple[int, int, str]:
        rel = str(p.relative_to(data_root))
        if rel in rank:
            return (0, rank[rel], rel)
        try:
            mtime = p.lstat().st_mtime_ns
        except OSError:
            mtime = 0
        return (1, mtime, rel)

    return sorted(files, key=key)


def previous_manifest(root: Path, out_dir: Path) -> list[dict[str, Any]]:
    """Rows of the manifest the last ingest wrote ([] when none can be found or read).

    ``out_dir/manifest.jsonl`` when it is still there; under ``dvc repro`` DVC removes the old
    output before the stage runs, so then the copy dvc.lock points at in the project's DVC cache.
    Only the ``path`` of each row is used (duplicate resolution)."""
    current = out_dir / "manifest.jsonl"
    try:
        if current.is_file():
            return _manifest_rows(current.read_bytes())
        from hivid.tracking.lineage import out_md5

        full = (out_dir if out_dir.is_absolute() else Path.cwd() / out_dir).resolve()
        if not full.is_relative_to(root.resolve()):
            return []
        md5 = out_md5(root, full.relative_to(root.resolve()).as_posix())
        if not md5 or not md5.endswith(".dir"):
            return []
        cache = root / ".dvc" / "cache" / "files" / "md5"
        listing = json.loads((cache / md5[:2] / md5[2:]).read_text())
        entry = next(e for e in listing if e.get("relpath") == "manifest.jsonl")
        obj = cache / entry["md5"][:2] / entry["md5"][2:]
        return _manifest_rows(obj.read_bytes())
    except (OSError, ValueError, KeyError, StopIteration, TypeError, AttributeError):
        return []


def _manifest_rows(data: bytes) -> list[dict[str, Any]]:
    rows = []
    for line in data.decode("utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def ingest(
    data_root: Path,
    cfg: IngestConfig,
    progress: Callable[[str, int, int], None] | None = None,
    previous: Iterable[Mapping[str, Any]] = (),
) -> IngestSummary:
    """Probe every file under ``data_root/videos``; return manifest rows and quarantine rows.

    ``previous``: rows of the last manifest (``previous_manifest``); a duplicate keeps the copy
    they list (see the module docstring)."""
    videos_dir = data_root / "videos"
    if not videos_dir.is_dir():
        raise FileNotFoundError(f"{videos_dir}: no videos/ directory in the data root")
    exts = {e.lower() for e in cfg.extensions}
    files = _processing_order(
        [
            p
            for p in videos_dir.rglob("*")
            # not only regular files: a FIFO, a device or a broken link is reported, never
            # opened; a directory only when it is named like a video (`x.mp4/`)
            if not p.name.startswith(".") and (not p.is_dir() or p.suffix.lower() in exts)
        ],
        data_root,
        previous,
    )
    root_real = videos_dir.resolve()
    manifest: list[dict[str, Any]] = []
    quarantined: list[dict[str, Any]] = []
    seen_hash: dict[str, str] = {}
    seen_id: set[str] = set()

    worker = ProbeWorker(cfg.probe_timeout_s, cfg.max_pixels) if cfg.probe_timeout_s else None

    def probe(path: Path) -> ProbeResult:
        if worker is not None:
            return worker.probe(path)
        return probe_video(path, cfg.max_pixels)

    def reject(path: Path, reason: str, video_id: str | None = None) -> None:
        rel = str(path.relative_to(data_root))
        quarantined.append(
            {
                "path": rel,
                "video_id": video_id,
                "stage": "ingest",
                "reason": f"{shown_path(rel)}: {_one_line(reason)}",
            }
        )

    try:
        for i, path in enumerate(files):
            if progress:
                progress(path.name, i, len(files))
            vid = path.stem if video_id_problem(path.stem) is None else None
            try:
                _one(path, probe, reject, data_root, root_real, cfg, manifest, seen_hash, seen_id)
            except OSError as exc:  # unreadable (permissions, I/O error, vanished mid-batch)
                reject(path, f"cannot read the file ({exc.strerror or type(exc).__name__})", vid)
            except Exception as exc:  # a bug must cost this one file, never the batch
                first = (str(exc).splitlines() or [""])[0][:200]
                reject(
                    path, f"unexpected error while ingesting ({type(exc).__name__}: {first})", vid
                )
    finally:
        if worker is not None:
            worker.close()
    if progress:
        progress("done", len(files), len(files))
    manifest.sort(key=lambda r: str(r["path"]))
    quarantined.sort(key=lambda r: str(r["path"]))
    return IngestSummary(manifest=manifest, quarantined=quarantined)


def _one(
    path: Path,
    probe: Callable[[Path], ProbeResult],
    reject: Callable[..., None],
    data_root: Path,
    root_real: Path,
    cfg: IngestConfig,
    manifest: list[dict[str, Any]],
    seen_hash: dict[str, str],
    seen_id: set[str],
) -> None:
    """Check, probe and hash one file; append its manifest row or reject it."""
    video_id = path.stem
    if path.suffix.lower() not in cfg.extensions:
        reject(path, f"unsupported extension '{path.suffix}'")
        return
    problem = video_id_problem(video_id)
    if problem:
        reject(path, problem)
        return
    if not path.resolve().is_relative_to(root_real):
        reject(path, "resolves outside the videos/ directory (symlink escaping the data root)")
        return
    if path.is_dir():
        reject(path, "is a directory, not a video file", video_id)
        return
    if not path.is_file():
        reject(path, "not a regular file (broken link, FIFO or device)", video_id)
        return
    if video_id in seen_id:
        kept = next(r["path"] for r in manifest if r["video_id"] == video_id)
        reject(path, f"duplicate video id {video_id!r} (kept the earlier {kept})", video_id)
        return
    try:
        info = probe(path)
    except ProbeError as exc:
        reject(path, exc.reason, video_id)
        return
    checks = [
        (cfg.min_fps <= info.fps <= cfg.max_fps, f"frame rate {info.fps} outside range"),
        (info.duration <= cfg.max_duration_s, f"duration {info.duration}s too long"),
        (
            info.width * info.height <= cfg.max_pixels,
            f"frame {info.width}x{info.height} too large",
        ),
    ]
    failed = [msg for ok, msg in checks if not ok]
    if failed:
        reject(path, "; ".join(failed), video_id)
        return
    digest = sha256_file(path)
    if digest in seen_hash:
        reject(path, f"same content as {seen_hash[digest]} (sha256 {digest[:12]})", video_id)
        return
    meta_path = data_root / "metadata" / f"{video_id}.json"
    try:
        metadata = load_metadata(meta_path, cfg.max_metadata_bytes)
    except MetadataError as exc:
        if cfg.require_metadata:
            msg = str(exc).removeprefix(f"{meta_path}: ")
            reject(path, f"{meta_path.relative_to(data_root)}: {msg}", video_id)
            return
        metadata = {}
    named = metadata.get("video_id", video_id)
    if named != video_id:
        reject(
            path,
            f"metadata/{video_id}.json names video_id {named!r}, not {video_id!r} "
            "(metadata of another video, or an id trying to escape)",
            video_id,
        )
        return
    gt_path = data_root / "ground_truth" / f"{video_id}.json"
    seen_hash[digest] = video_id
    seen_id.add(video_id)
    manifest.append(
        {
            "video_id": video_id,
            "path": str(path.relative_to(data_root)),
            "sha256": digest,
            "size_bytes": path.stat().st_size,
            **info.to_dict(),
            "metadata": metadata,
            "ground_truth": str(gt_path.relative_to(data_root)) if gt_path.exists() else None,
        }
    )


def write_ingest_outputs(summary: IngestSummary, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    write_jsonl(out_dir / "manifest.jsonl", summary.manifest)
    write_jsonl(out_dir / "quarantine.jsonl", summary.quarantined)
    write_json(out_dir / "summary.json", summary.to_dict())


class ManifestError(ValueError):
    """The manifest itself is corrupt or tampered with (one line: file, row, reason)."""


def read_manifest(path: Path) -> list[dict[str, Any]]:
    """Rows of ``manifest.jsonl``; raise ``ManifestError`` on a row that is not safe to use.

    Ingest never writes an unsafe id or path, so one here means the file was edited or corrupted:
    later stages build output paths from ids, so ``../../x`` must stop the stage, not be skipped.
    """
    if not path.exists():
        raise FileNotFoundError(f"{path}: manifest not found (run `hivid ingest` first)")
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{path}:{n}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise ManifestError(f"{path}:{n}: row is not a JSON object")
        problem = video_id_problem(row.get("video_id"))
        rel = row.get("path")
        if problem is None and (
            not isinstance(rel, str) or Path(rel).is_absolute() or ".." in Path(rel).parts
        ):
            problem = f"path {rel!r} is not a relative path inside the data root"
        if problem:
            raise ManifestError(f"{path}:{n}: {problem}")
        rows.append(row)
    return rows
