"""Test helpers for landing zones: a bucket prefix to drop real tiny videos into, file hashes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from tests.helpers import write_video
from tests.s3server import S3Server, iter_keys

META = {
    "brand": "Acme",
    "category": "beauty",
    "attributes": {"volume": "30ml"},
    "price": {"amount": 19.5, "currency": "USD"},
}


class Zone:
    """A landing zone under s3://bucket/prefix with helpers to drop objects into it."""

    def __init__(self, server: S3Server, bucket: str, tmp: Path, prefix: str = "landing") -> None:
        self.server, self.bucket, self.prefix, self.tmp = server, bucket, prefix, tmp
        self.client = server.client()
        self.url = f"s3://{bucket}/{prefix}"

    def put(self, key: str, body: bytes) -> None:
        self.client.put_object(
            Bucket=self.bucket, Key=f"{self.prefix}/{key}", Body=body, ChecksumAlgorithm="SHA256"
        )

    def video_bytes(self, seed: int) -> bytes:
        path = write_video(self.tmp / f"src-{seed}.mp4", seconds=1.0, fps=5, seed=seed)
        return path.read_bytes()

    def put_video(self, vid: str, seed: int, meta: dict[str, Any] | None = None) -> bytes:
        body = self.video_bytes(seed)
        self.put(f"videos/{vid}.mp4", body)
        if meta is not False:
            self.put(f"metadata/{vid}.json", json.dumps(meta or META).encode())
        return body

    def keys(self) -> list[str]:
        return sorted(iter_keys(self.client, self.bucket, self.prefix))


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def files_under(d: Path) -> dict[str, str]:
    return {
        p.relative_to(d).as_posix(): sha(p.read_bytes())
        for p in sorted(d.rglob("*"))
        if p.is_file()
    }
