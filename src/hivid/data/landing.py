"""Landing zones of the `intake` step: list objects, download one verified into a local file.

``S3Landing`` (boto3, any S3-compatible endpoint: a streamed GET with ``If-Match`` its listed ETag,
sha256 + md5 while writing, checked against the object's full-object S3 checksum, its plain-MD5
ETag and its size) and ``LocalLanding`` (a local or mounted folder; identity = size + mtime).
Credentials come from boto3's own chain or ``intake.credentials_file``; they never reach a log.
``hivid.data.intake`` runs the intake over them and re-exports these names.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from hivid.data.intake_config import IntakeConfig, IntakeError, parse_s3_url

MD5_ETAG = re.compile(r'^"?([0-9a-f]{32})"?$')


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
