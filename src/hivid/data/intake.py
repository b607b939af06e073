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
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from hivid.configbase import require
from hivid.data.ingest import MetadataError, load_metadata, video_id_problem
from hivid.io import read_jsonl, write_bytes_atomic, write_json, write_jsonl
from hivid.tracking.hashing import sha256_file

LEDGER = Path("intake") / "ledger.jsonl"
"""The intake ledger, relative to the data root (versioned with the data)."""
JOURNAL = "commit.json"
"""Pending moves of an interrupted commit, in the state directory."""
PIN_PENDING = "pin_pending"
"""Marker in the state directory: intake changed data/ and the new version is not yet pinned
(``dvc add`` + ``dvc push``); the caller removes it once pinned."""
MD5_ETAG = re.compile(r'^"?([0-9a-f]{32})"?$')

# Leading bytes of the containers ingest accepts (ISO BMFF: mp4/mov; EBML: mkv/webm).
_BMFF_BOXES = {b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"}
_EBML = b"\x1a\x45\xdf\xa3"


@dataclass
class IntakeConfig:
    """Knobs of the intake step (params.yaml section ``intake``). No credentials here, ever."""

    source: str = ""
    """Landing zone: ``s3://bucket/prefix`` or a local folder; empty: the nightly runs no intake."""
    endpoint_url: str = ""
    """S3 endpoint of an S3-compatible store (SeaweedFS, MinIO); empty: ``AWS_ENDPOINT_URL`` from
    the environment, else AWS itself."""
    region: str = ""
    """S3 region; empty: the environment / profile's (``us-east-1`` when none says)."""
    profile: str = ""
    """A named AWS profile (``~/.aws/credentials``); empty: boto3's default chain."""
    credentials_file: str = ""
    """A git-ignored ``KEY=VALUE`` file with ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``
    (e.g. the local stack's secret file); refused unless only its owner can read it (0600)."""
    extensions: list[str] = field(default_factory=lambda: [".mp4", ".mov", ".mkv", ".webm"])
    """Suffixes accepted under ``videos/``; any other object there is quarantined (wrong type)."""
    max_object_bytes: int = 2 * 1024**3
    """Videos larger than this are quarantined from their listed size, never downloaded."""
    max_metadata_bytes: int = 1024**2
    """Metadata objects larger than this are quarantined (a product record is ~300 bytes)."""
    retries: int = 5
    """Attempts per S3 request (botocore ``total_max_attempts``: throttling, 5xx, connection errors
    retried with backoff); also the attempts per object download when a body read breaks."""
    retry_mode: Literal["standard", "adaptive"] = "adaptive"
    """botocore retry mode; ``adaptive`` also rate-limits the client after throttling."""
    connect_timeout_s: float = 5.0
    """Seconds to open a connection to the endpoint."""
    read_timeout_s: float = 30.0
    """Seconds without a byte on an open connection before the request is retried."""
    staging_dir: str = "outputs/intake/staging"
    """Downloads land here first (same filesystem as ``data/``, so the final move is atomic)."""
    state_dir: str = "outputs/intake"
    """Reports (``quarantine.jsonl``, ``summary.json``), the seen-object memo and the journal."""
    probe: bool = True
    """Probe each staged video with PyAV (the ingest prober) and quarantine what it cannot read."""
    probe_timeout_s: float = 60.0
    """Per-video limit of that probe (a child process, killed on timeout)."""
    chunk_bytes: int = 8 * 1024**2
    """Read size of the streamed download."""
    workers: int = 4
    """Objects downloaded at the same time (threads sharing one boto3 client)."""

    def __post_init__(self) -> None:
        require(bool(self.extensions), "intake.extensions must not be empty")
        require(
            all(e.startswith(".") for e in self.extensions),
            "intake.extensions: each suffix starts with '.'",
        )
        require(self.max_object_bytes > 0, "intake.max_object_bytes must be > 0")
        require(self.max_metadata_bytes > 0, "intake.max_metadata_bytes must be > 0")
        require(1 <= self.retries <= 20, "intake.retries must be in 1..20")
        require(self.connect_timeout_s > 0, "intake.connect_timeout_s must be > 0")
        require(self.read_timeout_s > 0, "intake.read_timeout_s must be > 0")
        require(self.probe_timeout_s > 0, "intake.probe_timeout_s must be > 0")
        require(self.chunk_bytes >= 64 * 1024, "intake.chunk_bytes must be >= 65536")
        require(1 <= self.workers <= 64, "intake.workers must be in 1..64")
        if self.source.startswith("s3://"):
            require(bool(parse_s3_url(self.source)[0]), "intake.source: s3:// URL without bucket")


class IntakeError(RuntimeError):
    """The intake as a whole failed (outage, no access, bad source); one line, ``data/`` as it
    was before the run."""


@dataclass(frozen=True)
class ObjectInfo:
    """One object of the landing zone as listed (``key`` relative to the source prefix)."""

    key: str
    size: int
    etag: str
    version_id: str | None = None

    def identity(self) -> tuple[str, int, str | None]:
        return (self.etag, self.size, self.version_id)


@dataclass
class Fetched:
    """A verified download in the staging directory."""

    path: Path
    sha256: str
    size: int
    checksum_sha256: str | None


class ObjectGone(Exception):
    """The object vanished or changed between the listing and the download."""


class ObjectUnreadable(Exception):
    """The object cannot be read (access denied, integrity check failed after retries, ...)."""


class Landing(Protocol):
    """A landing zone: list objects, download one into a local file (verified)."""

    url: str

    def list(self) -> list[ObjectInfo]: ...

    def fetch(self, obj: ObjectInfo, dest: Path) -> Fetched: ...

    def where(self, key: str) -> str: ...


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ``("bucket", "some/prefix/")`` (prefix '' or ending '/')."""
    rest = url.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    prefix = prefix.strip("/")
    return bucket, (prefix + "/" if prefix else "")


class _Hasher:
    """sha256 always (the content hash ingest and lineage use); md5 only when asked (the ETag
    check of an object S3 holds no full-object checksum for)."""

    def __init__(self, md5: bool = False) -> None:
        self.sha = hashlib.sha256()
        self.md5 = hashlib.md5(usedforsecurity=False) if md5 else None
        self.size = 0

    def update(self, block: bytes) -> None:
        self.sha.update(block)
        if self.md5 is not None:
            self.md5.update(block)
        self.size += len(block)


def _write_stream(chunks: Iterator[bytes], dest: Path, md5: bool = False) -> _Hasher:
    """Write ``chunks`` to ``dest``, hashing on the way. Not fsynced one by one: a resumed run
    re-hashes a staged file before trusting it, and the commit syncs everything once before its
    journal is written."""
    h = _Hasher(md5)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with dest.open("wb") as fh:
        for block in chunks:
            h.update(block)
            fh.write(block)
    return h


FULL_CHECKSUMS = ("ChecksumSHA256", "ChecksumCRC32", "ChecksumCRC32C", "ChecksumCRC64NVME")
"""Response fields botocore verifies the body against (``ChecksumMode: ENABLED``) when the
object has a full-object (not multipart-composite) checksum."""


def _has_full_checksum(resp: dict[str, Any]) -> bool:
    return any(resp.get(k) and "-" not in str(resp[k]) for k in FULL_CHECKSUMS)


# ------------------------------------------------------------------------------- local folder
class LocalLanding:
    """A landing zone in a local (or mounted) folder; identity = size + mtime."""

    def __init__(self, root: Path, cfg: IntakeConfig) -> None:
        self.root = root
        self.url = str(root)
        self.cfg = cfg
        if not root.is_dir():
            raise IntakeError(f"{root}: landing folder not found")

    def where(self, key: str) -> str:
        return str(self.root / key)

    def list(self) -> list[ObjectInfo]:
        out = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames.sort()
            for name in sorted(filenames):
                path = Path(dirpath) / name
                st = path.lstat()
                key = path.relative_to(self.root).as_posix()
                out.append(ObjectInfo(key, st.st_size, f"{st.st_size}-{st.st_mtime_ns}"))
        return out

    def fetch(self, obj: ObjectInfo, dest: Path) -> Fetched:
        src = self.root / obj.key
        try:
            st = src.lstat()
            if stat.S_ISLNK(st.st_mode):
                raise ObjectUnreadable("a symbolic link (not taken from a landing folder)")
            if not stat.S_ISREG(st.st_mode):
                raise ObjectUnreadable("not a regular file")
            if f"{st.st_size}-{st.st_mtime_ns}" != obj.etag:
                raise ObjectGone("changed during intake (taken on the next run)")

            def chunks() -> Iterator[bytes]:
                with src.open("rb") as fh:
                    while block := fh.read(self.cfg.chunk_bytes):
                        yield block

            h = _write_stream(chunks(), dest)
        except FileNotFoundError:
            raise ObjectGone("vanished during intake (deleted after listing)") from None
        except PermissionError as exc:
            raise ObjectUnreadable(f"cannot read the file ({exc.strerror})") from None
        if h.size != obj.size:
            raise ObjectGone(f"changed during intake ({h.size} bytes read, {obj.size} listed)")
        return Fetched(dest, h.sha.hexdigest(), h.size, None)


# ----------------------------------------------------------------------------------- S3
def read_credentials_file(path: Path) -> dict[str, str]:
    """``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` (/ ``AWS_SESSION_TOKEN``) from a
    ``KEY=VALUE`` file only its owner can read; the values never appear in an error."""
    try:
        st = path.stat()
    except OSError as exc:
        raise IntakeError(f"{path}: credentials file unreadable ({exc.strerror})") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise IntakeError(
            f"{path}: credentials file is readable by others "
            f"(mode {stat.S_IMODE(st.st_mode):04o}); chmod 600 it"
        )
    found: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        k, _, v = line.removeprefix("export ").partition("=")
        found[k.strip()] = v.strip().strip("'\"")
    if not found.get("AWS_ACCESS_KEY_ID") or not found.get("AWS_SECRET_ACCESS_KEY"):
        raise IntakeError(f"{path}: needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY lines")
    return found


def s3_client(cfg: IntakeConfig) -> Any:
    """A boto3 S3 client with bounded retries (``cfg.retries``, ``cfg.retry_mode``) and timeouts."""
    import boto3
    from botocore.config import Config

    session_kw: dict[str, Any] = {}
    if cfg.profile:
        session_kw["profile_name"] = cfg.profile
    if cfg.credentials_file:
        creds = read_credentials_file(Path(cfg.credentials_file).expanduser())
        session_kw["aws_access_key_id"] = creds["AWS_ACCESS_KEY_ID"]
        session_kw["aws_secret_access_key"] = creds["AWS_SECRET_ACCESS_KEY"]
        if creds.get("AWS_SESSION_TOKEN"):
            session_kw["aws_session_token"] = creds["AWS_SESSION_TOKEN"]
    session = boto3.session.Session(**session_kw)
    config = Config(
        retries={"total_max_attempts": cfg.retries, "mode": cfg.retry_mode},
        connect_timeout=cfg.connect_timeout_s,
        read_timeout=cfg.read_timeout_s,
        s3={"addressing_style": "path"} if cfg.endpoint_url or _env_endpoint() else None,
    )
    return session.client(
        "s3",
        endpoint_url=cfg.endpoint_url or None,
        region_name=cfg.region or session.region_name or "us-east-1",
        config=config,
    )


def _env_endpoint() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")


def _error_code(exc: Any) -> str:
    err = getattr(exc, "response", {}).get("Error", {})
    return str(
        err.get("Code")
        or getattr(exc, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
    )


def _status(exc: Any) -> int:
    return int(getattr(exc, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


class S3Landing:
    """A landing zone under ``s3://bucket/prefix``."""

    def __init__(self, url: str, cfg: IntakeConfig, client: Any | None = None) -> None:
        self.url = url.rstrip("/")
        self.bucket, self.prefix = parse_s3_url(url)
        self.cfg = cfg
        self.client = client or s3_client(cfg)

    def where(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"

    def _outage(self, exc: BaseException, doing: str) -> IntakeError:
        endpoint = getattr(getattr(self.client, "meta", None), "endpoint_url", "?")
        detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        return IntakeError(
            f"{self.url}: S3 {doing} failed after {self.cfg.retries} attempt(s) at {endpoint} "
            f"({type(exc).__name__}: {detail}); data/ and data.dvc left as they were"
        )

    def list(self) -> list[ObjectInfo]:
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        out = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix
            )
            for page in pages:
                for o in page.get("Contents", []):
                    key = o["Key"][len(self.prefix) :]
                    if key.endswith("/") and o["Size"] == 0:
                        continue  # a "folder" marker, not an object with content
                    out.append(ObjectInfo(key, int(o["Size"]), str(o["ETag"]).strip('"')))
        except NoCredentialsError:
            raise IntakeError(
                f"{self.url}: no S3 credentials (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                "intake.profile or intake.credentials_file)"
            ) from None
        except ClientError as exc:
            code = _error_code(exc)
            if code in (
                "NoSuchBucket",
                "AccessDenied",
                "InvalidAccessKeyId",
                "SignatureDoesNotMatch",
            ):
                raise IntakeError(f"{self.url}: cannot list the landing zone ({code})") from None
            raise self._outage(exc, "listing") from None
        except BotoCoreError as exc:
            raise self._outage(exc, "listing") from None
        return out

    def fetch(self, obj: ObjectInfo, dest: Path) -> Fetched:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            FlexibleChecksumError,
        )

        key = self.prefix + obj.key
        args: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "IfMatch": f'"{obj.etag}"',
            "ChecksumMode": "ENABLED",
        }
        if obj.version_id:
            args["VersionId"] = obj.version_id
        last: BaseException | None = None
        for attempt in range(self.cfg.retries):
            if attempt:
                time.sleep(min(10.0, 0.5 * 2 ** (attempt - 1)))
            try:
                resp = self.client.get_object(**args)
                # md5 only where no S3 checksum covers the body and the ETag is a plain MD5
                need_md5 = not _has_full_checksum(resp) and bool(
                    MD5_ETAG.match(str(resp.get("ETag", "")))
                )
                h = _write_stream(_chunks(resp["Body"], self.cfg.chunk_bytes), dest, need_md5)
            except FlexibleChecksumError as exc:  # the body does not match the stored checksum
                last = exc
                continue
            except ClientError as exc:
                code, status = _error_code(exc), _status(exc)
                if code in ("NoSuchKey", "NoSuchVersion") or status == 404:
                    raise ObjectGone("vanished during intake (deleted after listing)") from None
                if code == "PreconditionFailed" or status == 412:
                    raise ObjectGone("rewritten during intake (taken on the next run)") from None
                if code in ("AccessDenied", "InvalidObjectState") or status == 403:
                    raise ObjectUnreadable(f"cannot read the object ({code})") from None
                raise self._outage(exc, f"download of {key}") from None
            except BotoCoreError as exc:  # connection lost, read timeout, body cut short
                last = exc
                continue
            problems = _integrity_problems(obj, resp, h)
            if not problems:
                return Fetched(dest, h.sha.hexdigest(), h.size, resp.get("ChecksumSHA256"))
            last = ObjectUnreadable("integrity check failed: " + "; ".join(problems))
        if isinstance(last, ObjectUnreadable | FlexibleChecksumError):
            raise ObjectUnreadable(
                f"integrity check failed on {self.cfg.retries} download(s): {last}"
            ) from None
        assert last is not None
        raise self._outage(last, f"download of {key}")


def _chunks(body: Any, size: int) -> Iterator[bytes]:
    while block := body.read(size):
        yield block


def _integrity_problems(obj: ObjectInfo, resp: dict[str, Any], h: _Hasher) -> list[str]:
    """What does not match between the bytes received and what S3 says the object is."""
    problems = []
    if h.size != obj.size or h.size != int(resp.get("ContentLength", h.size)):
        problems.append(f"{h.size} bytes received, {obj.size} listed")
    checksum = resp.get("ChecksumSHA256")
    if checksum and "-" not in checksum:  # a composite (multipart) checksum is not the file's
        mine = base64.b64encode(h.sha.digest()).decode()
        if mine != checksum:
            problems.append(f"sha256 {mine} differs from the object's ChecksumSHA256 {checksum}")
    m = MD5_ETAG.match(str(resp.get("ETag", obj.etag)))
    if m and h.md5 is not None and m.group(1) != h.md5.hexdigest():
        # single-part, unencrypted: the ETag is the MD5
        problems.append(f"md5 {h.md5.hexdigest()} differs from the ETag {m.group(1)}")
    return problems


def open_landing(source: str, cfg: IntakeConfig) -> Landing:
    if source.startswith("s3://"):
        return S3Landing(source, cfg)
    if "://" in source:
        raise IntakeError(f"{source}: unsupported source (s3://bucket/prefix or a local folder)")
    return LocalLanding(Path(source).expanduser(), cfg)


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
