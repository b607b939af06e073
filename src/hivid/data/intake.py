"""The `intake` step: take new or changed videos from a landing zone into ``data/``.

A landing zone is an S3 prefix (``s3://bucket/prefix``, boto3; any S3-compatible endpoint) or a
local folder, laid out like a data root::

    <source>/videos/<video_id>.<ext>      raw media (one object per video)
    <source>/metadata/<video_id>.json     its product metadata (required)

One run, in three phases, so that ``data/`` only ever holds complete, verified files:

1. **list** the zone and compare every object with the intake ledger (key, ETag, size, version):
   an object seen before with the same identity is not downloaded again (a no-op intake over
   1,000 unchanged videos is two LIST calls);
2. **stage** each new or changed object: a streamed GET (``If-Match`` its listed ETag, so an object
   rewritten meanwhile is not mixed up) into ``staging_dir``, sha256 + md5 while writing, checked
   against the object's S3 ``ChecksumSHA256`` (when it has a full-object one), its ETag (when it is
   a plain MD5) and its size; then the metadata schema (the ingest check) and a PyAV probe of the
   video (in a child process, with a timeout). A network outage here ends the run with one
   ``IntakeError`` line and ``data/`` untouched; staged files that passed are kept, so the next run
   resumes without downloading them again;
3. **commit**: a journal of the moves is written first, then each staged file is moved into
   ``data/`` with ``os.replace`` (atomic), then ``data/intake/ledger.jsonl``; a crash mid-commit is
   completed by the next run from the journal, so nothing is taken twice or half.

Bad objects (unreadable, no metadata, bad metadata, too large, wrong type, not a video container,
a name that is not a safe id, the same content as a video already taken, ...) are returned as
quarantine rows with their key and reason (``outputs/intake/quarantine.jsonl``), every run while
they are there: never skipped silently, never deleted or moved in the landing zone (intake only
reads it).

The ledger lives inside ``data/`` so it is versioned with the data it describes (``data.dvc``): for
each taken file its key, ETag, version id, size, sha256 and the S3 checksum. Credentials come from
boto3's own chain (environment, ``intake.profile``) or ``intake.credentials_file`` (a git-ignored
0600 ``KEY=VALUE`` file); they are never part of the config, the ledger, the reports or the log.

The landing zones live in ``hivid.data.landing``, the config in ``hivid.data.intake_config``;
this module runs the three phases and re-exports both.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hivid.data.ingest import MetadataError, load_metadata, video_id_problem
from hivid.data.intake_config import IntakeConfig, IntakeError, parse_s3_url
from hivid.data.landing import (
    FULL_CHECKSUMS,
    MD5_ETAG,
    Fetched,
    Landing,
    LocalLanding,
    ObjectGone,
    ObjectInfo,
    ObjectUnreadable,
    S3Landing,
    _chunks,
    _env_endpoint,
    _error_code,
    _has_full_checksum,
    _Hasher,
    _integrity_problems,
    _status,
    _write_stream,
    open_landing,
    read_credentials_file,
    s3_client,
)
from hivid.io import read_jsonl, write_bytes_atomic, write_json, write_jsonl
from hivid.tracking.hashing import sha256_file

LEDGER = Path("intake") / "ledger.jsonl"
"""The intake ledger, relative to the data root (versioned with the data)."""
JOURNAL = "commit.json"
"""Pending moves of an interrupted commit, in the state directory."""
PIN_PENDING = "pin_pending"
"""Marker in the state directory: intake changed data/ and the new version is not yet pinned
(``dvc add`` + ``dvc push``); the caller removes it once pinned."""

# Leading bytes of the containers ingest accepts (ISO BMFF: mp4/mov; EBML: mkv/webm).
_BMFF_BOXES = {b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"}
_EBML = b"\x1a\x45\xdf\xa3"


# ------------------------------------------------------------------------------- the run
@dataclass
class IntakeResult:
    """What one intake did; ``changed`` is True when ``data/`` has a new version."""

    source: str
    changed: bool = False
    taken: list[dict[str, Any]] = field(default_factory=list)
    """Ledger rows of the files moved into data/ by this run (new or changed)."""
    unchanged: int = 0
    """Objects identical to what was taken before (not downloaded, or same sha256)."""
    quarantined: list[dict[str, Any]] = field(default_factory=list)
    downloaded_bytes: int = 0
    resumed: int = 0
    """Staged files of an interrupted run reused instead of downloaded again."""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "new_videos": sorted(r["video_id"] for r in self.taken if r["kind"] == "video"),
        }


def write_json_nosync(path: Path, obj: Any) -> None:
    """A small JSON file, replaced atomically but not fsynced (a staging sidecar)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, sort_keys=True))
    os.replace(tmp, path)


def _sniff_problem(path: Path) -> str | None:
    """Why the staged file is not a video container ingest can open (None when it may be)."""
    with path.open("rb") as fh:
        head = fh.read(12)
    if len(head) >= 8 and head[4:8] in _BMFF_BOXES:
        return None
    if head.startswith(_EBML):
        return None
    return f"not a video container (starts with {head[:8].hex() or 'nothing'})"


def _move(src: Path, dst: Path) -> None:
    """Atomic move into data/ (copy + rename in the target folder across filesystems)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(src, dst)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        tmp = dst.parent / f".{dst.name}.intake.tmp"
        shutil.copyfile(src, tmp)
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, dst)
        src.unlink()


def _read_ledger(data_dir: Path) -> dict[str, dict[str, Any]]:
    path = data_dir / LEDGER
    if not path.exists():
        return {}
    try:
        return {r["key"]: r for r in read_jsonl(path)}
    except (ValueError, KeyError, TypeError) as exc:
        raise IntakeError(f"{path}: intake ledger is damaged ({exc})") from None


class Intake:
    """One intake run from ``landing`` into ``data_dir`` (see the module docstring)."""

    def __init__(
        self,
        landing: Landing,
        data_dir: Path,
        cfg: IntakeConfig,
        root: Path,
        log: Callable[[str], None] = print,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> None:
        self.landing = landing
        self.data_dir = data_dir
        self.cfg = cfg
        self.staging = root / cfg.staging_dir
        self.state = root / cfg.state_dir
        self.log = log
        self.progress = progress
        self.result = IntakeResult(source=landing.url)
        self._lock = threading.Lock()

    # ---- state ----
    def _memo_path(self) -> Path:
        return self.state / "seen.json"

    def _read_memo(self) -> dict[str, dict[str, Any]]:
        try:
            memo = json.loads(self._memo_path().read_text())
            return memo if isinstance(memo, dict) else {}
        except (OSError, ValueError):
            return {}

    def _staged_path(self, obj: ObjectInfo) -> Path:
        tag = hashlib.sha1(  # a file name, not security
            f"{self.landing.url}|{obj.key}|{obj.etag}|{obj.size}|{obj.version_id}".encode()
        ).hexdigest()[:24]
        return self.staging / f"{tag}{Path(obj.key).suffix.lower()}"

    def reject(self, key: str, reason: str, video_id: str | None = None) -> None:
        where = self.landing.where(key)
        self.result.quarantined.append(
            {"path": where, "video_id": video_id, "stage": "intake", "reason": f"{where}: {reason}"}
        )

    # ---- phase 2 helper: one verified download (or a staged one from an interrupted run) ----
    def _stage(self, obj: ObjectInfo) -> Fetched:
        dest = self._staged_path(obj)
        done = dest.with_name(dest.name + ".ok")
        if dest.exists() and done.exists():
            try:
                rec = json.loads(done.read_text())
                if rec["size"] == dest.stat().st_size == obj.size and (
                    sha256_file(dest) == rec["sha256"]  # staged bytes survived the crash
                ):
                    with self._lock:
                        self.result.resumed += 1
                    return Fetched(dest, rec["sha256"], rec["size"], rec.get("checksum_sha256"))
            except (OSError, ValueError, KeyError):
                pass
        part = dest.with_name(dest.name + ".part")
        try:
            fetched = self.landing.fetch(obj, part)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        os.replace(part, dest)
        write_json_nosync(
            done,
            {
                "sha256": fetched.sha256,
                "size": fetched.size,
                "checksum_sha256": fetched.checksum_sha256,
                "key": obj.key,
            },
        )
        with self._lock:
            self.result.downloaded_bytes += fetched.size
        return Fetched(dest, fetched.sha256, fetched.size, fetched.checksum_sha256)

    def _stage_all(self, objs: list[ObjectInfo]) -> dict[str, Fetched | Exception]:
        """Stage ``objs`` with ``cfg.workers`` threads: key -> Fetched, or the ObjectGone /
        ObjectUnreadable that quarantines it; an outage (IntakeError) stops all and is raised."""
        from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

        out: dict[str, Fetched | Exception] = {}

        def one(obj: ObjectInfo) -> None:
            try:
                out[obj.key] = self._stage(obj)
            except (ObjectGone, ObjectUnreadable) as exc:
                out[obj.key] = exc
            if self.progress:
                self.progress(obj.key, len(out), len(objs))

        if self.cfg.workers <= 1 or len(objs) <= 1:
            for obj in objs:
                one(obj)
            return out
        pool = ThreadPoolExecutor(self.cfg.workers, thread_name_prefix="intake")
        try:
            futures = [pool.submit(one, obj) for obj in objs]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            for f in done:
                if f.exception() is not None:
                    raise f.exception()  # type: ignore[misc]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return out

    # ---- the run ----
    def run(self) -> IntakeResult:
        t0 = time.perf_counter()
        self.finish_interrupted_commit()
        ledger = _read_ledger(self.data_dir)
        memo = self._read_memo()
        objects = self.landing.list()
        videos: dict[str, ObjectInfo] = {}
        metas: dict[str, ObjectInfo] = {}
        listed: set[str] = set()  # every video id in the zone, quarantined ones included
        for obj in objects:
            top, _, name = obj.key.partition("/")
            if top == "videos" and name and "/" not in name:
                vid = Path(name).stem
                listed.add(vid)
                if Path(name).suffix.lower() not in self.cfg.extensions:
                    self.reject(
                        obj.key,
                        f"wrong type: suffix '{Path(name).suffix}' is not one "
                        f"of {self.cfg.extensions}",
                        vid,
                    )
                elif problem := video_id_problem(vid):
                    self.reject(obj.key, problem)
                elif vid in videos:
                    self.reject(
                        obj.key, f"duplicate video id {vid!r} (also {videos[vid].key})", vid
                    )
                elif obj.size == 0:
                    self.reject(obj.key, "empty object (0 bytes)", vid)
                elif obj.size > self.cfg.max_object_bytes:
                    self.reject(
                        obj.key,
                        f"too large: {obj.size} bytes > intake.max_object_bytes "
                        f"{self.cfg.max_object_bytes}",
                        vid,
                    )
                else:
                    videos[vid] = obj
            elif top == "metadata" and name.endswith(".json") and "/" not in name:
                vid = name.removesuffix(".json")
                if obj.size > self.cfg.max_metadata_bytes:
                    self.reject(
                        obj.key,
                        f"too large: {obj.size} bytes > "
                        f"intake.max_metadata_bytes {self.cfg.max_metadata_bytes}",
                        vid,
                    )
                else:
                    metas[vid] = obj
            else:
                self.reject(obj.key, "not a videos/<id>.<ext> or metadata/<id>.json object")

        def seen(obj: ObjectInfo) -> bool:
            row = memo.get(obj.key) or ledger.get(obj.key)
            if row is None:
                return False
            return (row["etag"], row["size"], row.get("version_id")) == obj.identity()

        existing = (
            {
                p.stem: p
                for p in (self.data_dir / "videos").glob("*")
                if p.is_file() and not p.name.startswith(".")
            }
            if (self.data_dir / "videos").is_dir()
            else {}
        )
        # metadata without a video in the zone: fine if that video was taken before
        for vid, m in sorted(metas.items()):
            if vid not in listed and vid not in existing:
                self.reject(
                    m.key,
                    f"metadata without a video (no videos/{vid}.* in the zone or in data/)",
                    vid,
                )
        work = sorted(
            vid
            for vid in videos
            if not (seen(videos[vid]) and (vid not in metas or seen(metas[vid])))
        )
        self.result.unchanged = len(videos) - len(work)
        # checks that need no download
        ready = []
        for vid in work:
            video, meta = videos[vid], metas.get(vid)
            if meta is None and not (self.data_dir / "metadata" / f"{vid}.json").exists():
                self.reject(video.key, f"no metadata: metadata/{vid}.json is missing", vid)
                continue
            other = existing.get(vid)
            if other is not None and other.name != Path(video.key).name:
                self.reject(
                    video.key,
                    f"video id {vid!r} is already taken as videos/{other.name} "
                    "(a second format of the same id)",
                    vid,
                )
                continue
            ready.append(vid)
        # phase 2a: download what is new, `workers` at a time (an outage raises IntakeError)
        wanted = [
            o
            for vid in ready
            for o in (metas.get(vid), videos[vid])
            if o is not None and not seen(o)
        ]
        staged = self._stage_all(wanted)
        # phase 2b: check each video with its metadata
        plans = []
        known_hash: dict[str, str] | None = None
        probe_worker = None
        if self.cfg.probe and ready:
            from hivid.data.probe import ProbeWorker

            probe_worker = ProbeWorker(self.cfg.probe_timeout_s)
        try:
            for vid in ready:
                video = videos[vid]
                plan = self._plan_one(vid, video, metas.get(vid), staged, ledger, probe_worker)
                if plan is None:
                    continue
                if plan.get("video") and known_hash is None:
                    known_hash = self._known_hashes(ledger, existing)
                if plan.get("video") and known_hash is not None:
                    digest = plan["video"]["sha256"]
                    first = known_hash.get(digest)
                    if first is not None and first != vid:
                        self.reject(
                            video.key,
                            f"duplicate: same content as video {first!r} (sha256 {digest[:12]})",
                            vid,
                        )
                        continue
                    known_hash[digest] = vid
                plans.append(plan)
        finally:
            if probe_worker is not None:
                probe_worker.close()
        moves = [m for p in plans for m in p["moves"]]
        memo_rows = {r["key"]: r for p in plans for r in p["memo"]}
        if moves:
            self.commit(moves, ledger)
        self._write_memo(memo, memo_rows)
        self._clean_staging({self._staged_path(o).name for o in objects})
        if self.progress:
            self.progress("done", len(wanted), len(wanted))
        self.result.seconds = round(time.perf_counter() - t0, 3)
        return self.result

    def _known_hashes(
        self, ledger: dict[str, dict[str, Any]], existing: dict[str, Path]
    ) -> dict[str, str]:
        """sha256 -> video id of every video in data/ (ledger rows, else hashed once)."""
        by_path = {r["path"]: r for r in ledger.values() if r.get("kind") == "video"}
        out = {}
        for vid, path in existing.items():
            row = by_path.get(f"videos/{path.name}")
            out[row["sha256"] if row else sha256_file(path)] = vid
        return out

    def _plan_one(
        self,
        vid: str,
        video: ObjectInfo,
        meta: ObjectInfo | None,
        fetched: dict[str, Fetched | Exception],
        ledger: dict[str, dict[str, Any]],
        probe_worker: Any,
    ) -> dict[str, Any] | None:
        """Check one staged video + metadata; the moves it needs (None: quarantined)."""
        plan: dict[str, Any] = {"moves": [], "memo": []}
        staged: dict[str, tuple[ObjectInfo, Fetched]] = {}
        for kind, obj in (("metadata", meta), ("video", video)):
            got = fetched.get(obj.key) if obj is not None else None
            if obj is None or got is None:
                continue  # unchanged since it was taken
            if isinstance(got, ObjectGone):
                self.reject(obj.key, str(got), vid)
                return None
            if isinstance(got, Exception):
                self.reject(obj.key, f"unreadable: {got}", vid)
                return None
            staged[kind] = (obj, got)
        if "metadata" in staged:
            obj, f = staged["metadata"]
            try:
                m = load_metadata(f.path)
            except MetadataError as exc:
                reason = str(exc).removeprefix(f"{f.path}: ")
                self.reject(obj.key, f"bad metadata: {reason}", vid)
                if "video" in staged or not (self.data_dir / "metadata" / f"{vid}.json").exists():
                    self.reject(
                        video.key, f"no usable metadata (metadata/{vid}.json: {reason})", vid
                    )
                return None
            named = m.get("video_id", vid)
            if named != vid:
                self.reject(obj.key, f"bad metadata: names video_id {named!r}, not {vid!r}", vid)
                return None
        if "video" in staged:
            obj, f = staged["video"]
            problem = _sniff_problem(f.path)
            if problem is None and probe_worker is not None:
                from hivid.data.probe import ProbeError

                try:
                    probe_worker.probe(f.path)
                except ProbeError as exc:
                    problem = f"unreadable video: {exc.reason}"
            if problem:
                self.reject(
                    obj.key, f"wrong type: {problem}" if "container" in problem else problem, vid
                )
                return None
        for kind, (obj, f) in staged.items():
            rel = f"videos/{Path(obj.key).name}" if kind == "video" else f"metadata/{vid}.json"
            row = {
                "key": obj.key,
                "source": self.landing.url,
                "kind": kind,
                "video_id": vid,
                "path": rel,
                "etag": obj.etag,
                "version_id": obj.version_id,
                "size": obj.size,
                "sha256": f.sha256,
                "checksum_sha256": f.checksum_sha256,
            }
            current = self.data_dir / rel
            if current.exists() and sha256_file(current) == f.sha256:
                # same bytes as data/ already holds (a re-upload, or a commit cut short)
                plan["memo"].append(row)
                old = ledger.get(obj.key)
                if old is None or old["sha256"] != f.sha256:
                    plan["moves"].append({"src": None, "dst": rel, "row": row})
                else:
                    self.result.unchanged += 1
                f.path.unlink(missing_ok=True)
                continue
            plan[kind] = row
            plan["moves"].append({"src": str(f.path), "dst": rel, "row": row})
            plan["memo"].append(row)
        return plan

    # ---- phase 3: commit (journal first; replayed by the next run after a crash) ----
    def commit(self, moves: list[dict[str, Any]], ledger: dict[str, dict[str, Any]]) -> None:
        now = datetime.now(UTC).isoformat(timespec="seconds")
        for m in moves:
            m["row"] = {**m["row"], "taken_at": now}
        mark_pin_pending(self.state)
        os.sync()  # every staged file durable before the journal names it
        write_json(self.state / JOURNAL, {"moves": moves})
        self._apply(moves, ledger)

    def finish_interrupted_commit(self) -> None:
        journal = self.state / JOURNAL
        if not journal.exists():
            return
        moves = json.loads(journal.read_text())["moves"]
        self.log(f"intake: completing the commit of an interrupted run ({len(moves)} file(s))")
        self._apply(moves, _read_ledger(self.data_dir))

    def _apply(self, moves: list[dict[str, Any]], ledger: dict[str, dict[str, Any]]) -> None:
        for m in moves:
            dst = self.data_dir / m["dst"]
            src = Path(m["src"]) if m["src"] else None
            if src is not None and src.exists():
                _move(src, dst)
                src.with_name(src.name + ".ok").unlink(missing_ok=True)
            elif not dst.exists() or sha256_file(dst) != m["row"]["sha256"]:
                raise IntakeError(
                    f"{dst}: interrupted intake cannot be completed (staged file {src} is gone); "
                    f"remove {self.state / JOURNAL} and run again"
                )
            ledger[m["row"]["key"]] = m["row"]
            if src is not None or m["row"]["key"] not in {t["key"] for t in self.result.taken}:
                self.result.taken.append(m["row"])
        write_jsonl(self.data_dir / LEDGER, [ledger[k] for k in sorted(ledger)])
        self.result.changed = True
        (self.state / JOURNAL).unlink(missing_ok=True)

    def _write_memo(self, memo: dict[str, dict[str, Any]], rows: dict[str, dict[str, Any]]) -> None:
        if not rows:
            return
        memo.update(
            {
                k: {f: r[f] for f in ("etag", "size", "version_id", "sha256")}
                for k, r in rows.items()
            }
        )
        write_json(self._memo_path(), memo)

    def _clean_staging(self, keep: set[str]) -> None:
        """Drop staged files of objects no longer listed and broken partial downloads (staged
        files of listed objects stay: a quarantined one is re-checked without a download)."""
        if not self.staging.is_dir() or (self.state / JOURNAL).exists():
            return
        for p in self.staging.iterdir():
            base = p.name.removesuffix(".ok")
            if p.name.endswith(".part") or base not in keep:
                p.unlink(missing_ok=True)


def mark_pin_pending(state_dir: Path) -> None:
    write_bytes_atomic(state_dir / PIN_PENDING, b"data/ changed by intake, not yet pinned\n")


def pin_pending(state_dir: Path) -> bool:
    """True while intake's changes to data/ are not pinned yet (or a commit was cut short)."""
    return (state_dir / PIN_PENDING).exists() or (state_dir / JOURNAL).exists()


def clear_pin_pending(state_dir: Path) -> None:
    (state_dir / PIN_PENDING).unlink(missing_ok=True)


def write_reports(result: IntakeResult, state_dir: Path) -> None:
    """``quarantine.jsonl`` (merged into the quarantine report) and ``summary.json``."""
    write_jsonl(state_dir / "quarantine.jsonl", result.quarantined)
    write_json(state_dir / "summary.json", result.to_dict())


def intake(
    source: str,
    data_dir: Path,
    cfg: IntakeConfig,
    root: Path,
    log: Callable[[str], None] = print,
    progress: Callable[[str, int, int], None] | None = None,
    landing: Landing | None = None,
) -> IntakeResult:
    """Take new or changed objects of ``source`` into ``data_dir``; write the reports.

    Raises ``IntakeError`` (one line) when the zone cannot be listed or read (outage); ``data/``
    is then as it was."""
    if not source:
        raise IntakeError("no intake source (give SOURCE or set intake.source in params.yaml)")
    landing = landing or open_landing(source, cfg)
    run = Intake(landing, data_dir, cfg, root, log, progress)
    try:
        result = run.run()
    finally:
        with contextlib.suppress(OSError):
            write_reports(run.result, root / cfg.state_dir)
    return result


__all__ = [  # the entry module: the run here, its config and landing zones re-exported
    "FULL_CHECKSUMS",
    "JOURNAL",
    "LEDGER",
    "MD5_ETAG",
    "PIN_PENDING",
    "Fetched",
    "Intake",
    "IntakeConfig",
    "IntakeError",
    "IntakeResult",
    "Landing",
    "LocalLanding",
    "ObjectGone",
    "ObjectInfo",
    "ObjectUnreadable",
    "S3Landing",
    "_Hasher",
    "_chunks",
    "_env_endpoint",
    "_error_code",
    "_has_full_checksum",
    "_integrity_problems",
    "_status",
    "_write_stream",
    "clear_pin_pending",
    "intake",
    "mark_pin_pending",
    "open_landing",
    "parse_s3_url",
    "pin_pending",
    "read_credentials_file",
    "s3_client",
    "write_json_nosync",
    "write_reports",
]
