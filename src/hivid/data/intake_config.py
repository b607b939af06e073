"""Config and the run-level error of the `intake` step (``params.yaml`` section ``intake``).

Imports nothing heavy (``hivid config check`` loads it); ``hivid.data.intake`` re-exports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from hivid.configbase import require


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


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ``("bucket", "some/prefix/")`` (prefix '' or ending '/')."""
    rest = url.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    prefix = prefix.strip("/")
    return bucket, (prefix + "/" if prefix else "")
