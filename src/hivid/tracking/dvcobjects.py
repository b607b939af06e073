"""Read DVC objects by md5 where they are kept: the project cache, then each DVC remote.

What `hivid lineage` recomputes data hashes from, so that a clean checkout with no cache verifies
over the remote itself (no `dvc pull`): a local-directory remote is read from disk, an S3 remote
(any S3-compatible endpoint) with boto3, streamed in chunks, with bounded connect/read timeouts
and retries (``NetworkLimits``). A remote that fails once is not asked again in the same audit
(one timeout, not one per object). Remote settings and credentials come from DVC's own config
levels (``.dvc/config``, the git-ignored ``.dvc/config.local``, user/system) or, as with DVC, the
AWS environment / profile; they are never logged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

CHUNK = 1 << 20


@dataclass(frozen=True)
class NetworkLimits:
    """Timeouts and retries for every network call of an audit."""

    connect_timeout_s: float = 5.0
    """Seconds to open a connection to a remote (S3) before the attempt fails."""
    read_timeout_s: float = 15.0
    """Seconds without a byte from the remote before the attempt fails."""
    attempts: int = 3
    """Attempts per request, the first included (botocore ``standard`` retry mode: throttling,
    5xx and connection errors are retried with backoff)."""


@dataclass
class Digest:
    """Hashes of one object, recomputed from its bytes."""

    md5: str
    sha256: str
    size: int
    source: str


@dataclass
class Lookup:
    """Outcome of looking an object up in every source."""

    status: Literal["found", "absent", "unreachable"]
    digest: Digest | None = None
    reasons: list[str] = field(default_factory=list)

    def why(self) -> str:
        return "; ".join(self.reasons) or "no DVC cache or remote configured"


class SourceDown(RuntimeError):
    """A remote could not be reached (network error or timeout after the bounded retries)."""


def object_rel(md5: str) -> str:
    """DVC 3's object layout under a cache or remote: ``files/md5/<2>/<rest>``."""
    return f"files/md5/{md5[:2]}/{md5[2:]}"


class _LocalSource:
    def __init__(self, name: str, base: Path) -> None:
        self.name, self.base = name, base

    def chunks(self, md5: str) -> Iterator[bytes] | None:
        path = self.base / object_rel(md5)
        if not path.is_file():
            return None

        def gen() -> Iterator[bytes]:
            with path.open("rb") as f:
                while block := f.read(CHUNK):
                    yield block

        return gen()


class _S3Source:
    def __init__(self, name: str, url: str, conf: dict[str, Any], limits: NetworkLimits) -> None:
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        self.name, self.bucket, self.prefix = name, bucket, prefix.strip("/")
        self.url, self.conf, self.limits = url, conf, limits
        self._client: Any = None

    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            session = boto3.session.Session(profile_name=self.conf.get("profile"))
            self._client = session.client(
                "s3",
                endpoint_url=self.conf.get("endpointurl"),
                region_name=self.conf.get("region"),
                aws_access_key_id=self.conf.get("access_key_id"),
                aws_secret_access_key=self.conf.get("secret_access_key"),
                aws_session_token=self.conf.get("session_token"),
                verify=self.conf.get("ssl_verify", True),
                config=Config(
                    connect_timeout=self.limits.connect_timeout_s,
                    read_timeout=self.limits.read_timeout_s,
                    retries={"total_max_attempts": self.limits.attempts, "mode": "standard"},
                    # an S3-compatible endpoint (SeaweedFS, MinIO) serves path-style URLs
                    s3={"addressing_style": "path" if self.conf.get("endpointurl") else "auto"},
                ),
            )
        return self._client

    def chunks(self, md5: str) -> Iterator[bytes] | None:
        from botocore.exceptions import BotoCoreError, ClientError

        key = f"{self.prefix}/{object_rel(md5)}" if self.prefix else object_rel(md5)
        try:
            body = self.client().get_object(Bucket=self.bucket, Key=key)["Body"]
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchKey", "404", "NotFound"):
                return None
            raise SourceDown(f"{self.url}: {code or exc}") from None
        except BotoCoreError as exc:
            raise SourceDown(f"{self.url}: {type(exc).__name__}: {exc}") from None

        def gen() -> Iterator[bytes]:
            try:
                yield from body.iter_chunks(CHUNK)
            except BotoCoreError as exc:
                raise SourceDown(f"{self.url}: {type(exc).__name__} while reading") from None
            finally:
                body.close()

        return gen()


class DvcObjects:
    """The DVC objects of project ``root``: its cache first, then the default remote, then any
    other remote. ``digest`` streams an object once and returns its md5 and sha256."""

    def __init__(self, root: Path, limits: NetworkLimits | None = None) -> None:
        self.root, self.limits = root, limits or NetworkLimits()
        self.down: dict[str, str] = {}
        self._memo: dict[str, Lookup] = {}
        self.sources = self._sources()

    def _sources(self) -> list[Any]:
        from dvc.config import Config

        conf = Config(dvc_dir=str(self.root / ".dvc"))
        cache_dir = conf.get("cache", {}).get("dir") or str(self.root / ".dvc" / "cache")
        sources: list[Any] = [_LocalSource("cache", Path(cache_dir))]
        remotes = dict(conf.get("remote", {}))
        default = conf.get("core", {}).get("remote")
        order = ([default] if default in remotes else []) + sorted(set(remotes) - {default})
        for name in order:
            rc = dict(remotes[name])
            url = str(rc.get("url", ""))
            if url.startswith("s3://"):
                sources.append(_S3Source(f"remote {name}", url, rc, self.limits))
            elif "://" not in url:
                sources.append(_LocalSource(f"remote {name}", Path(url)))
            else:
                self.down[f"remote {name}"] = (
                    f"{url.split('://')[0]} remotes are not read by the audit"
                )
        return sources

    @property
    def has_remote(self) -> bool:
        return len(self.sources) > 1

    def lookup(self, md5: str) -> Lookup:
        """Find object ``md5`` and hash it (memoised per audit)."""
        if md5 not in self._memo:
            self._memo[md5] = self._lookup(md5)
        return self._memo[md5]

    def _lookup(self, md5: str) -> Lookup:
        reasons: list[str] = []
        unreachable = False
        for src in self.sources:
            if src.name in self.down:
                unreachable = True
                reasons.append(f"{src.name} unreachable ({self.down[src.name]})")
                continue
            try:
                chunks = src.chunks(md5)
                if chunks is None:
                    reasons.append(f"not in {src.name}")
                    continue
                h_md5, h_sha, size = hashlib.md5(usedforsecurity=False), hashlib.sha256(), 0
                for block in chunks:
                    h_md5.update(block)
                    h_sha.update(block)
                    size += len(block)
            except SourceDown as exc:
                self.down[src.name] = str(exc)
                unreachable = True
                reasons.append(f"{src.name} unreachable ({exc})")
                continue
            return Lookup("found", Digest(h_md5.hexdigest(), h_sha.hexdigest(), size, src.name))
        for name, why in self.down.items():
            if not any(name in r for r in reasons):
                unreachable = True
                reasons.append(f"{name}: {why}")
        return Lookup("unreachable" if unreachable else "absent", None, reasons)

    def read(self, md5: str, max_bytes: int = 256 << 20) -> tuple[Lookup, bytes | None]:
        """A small object's bytes (a ``.dir`` listing), from the first source that has it."""
        for src in self.sources:
            if src.name in self.down:
                continue
            try:
                chunks = src.chunks(md5)
                if chunks is None:
                    continue
                data = bytearray()
                for block in chunks:
                    data += block
                    if len(data) > max_bytes:
                        break
            except SourceDown as exc:
                self.down[src.name] = str(exc)
                continue
            raw = bytes(data)
            digest = Digest(
                hashlib.md5(raw, usedforsecurity=False).hexdigest(),
                hashlib.sha256(raw).hexdigest(),
                len(raw),
                src.name,
            )
            return Lookup("found", digest), raw
        return self._lookup_failure(md5), None

    def _lookup_failure(self, md5: str) -> Lookup:
        reasons = [f"{n} unreachable ({w})" for n, w in self.down.items()]
        return Lookup("unreachable" if self.down else "absent", None, reasons or ["not found"])
