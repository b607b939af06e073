"""Shared fixtures: tiny real media files written with PyAV (no binary fixtures in git)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import write_video
from tests.s3server import S3Server

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture
def make_video():
    return write_video


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One real SeaweedFS S3 server for the test session (`tests/s3server.py`): `.endpoint`,
    `.access_key`, `.secret_key`, `.env()`, `.client()`, `.make_bucket()`, `.stop()/.start()`.
    A test that stops it must start it again (or use `make_s3_server` for a private one)."""
    server = S3Server(tmp_path_factory.mktemp("s3-session"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    """A fresh, empty bucket on the session S3 server (restarted first if a test left it down)."""
    s3_server.start()
    return s3_server.make_bucket()


@pytest.fixture
def make_s3_server(tmp_path: Path) -> Iterator[Callable[..., S3Server]]:
    """A factory for private S3 servers (tests that kill and restart theirs); all stopped after."""
    servers: list[S3Server] = []

    def make(**kwargs: object) -> S3Server:
        server = S3Server(tmp_path / f"s3-{len(servers)}", **kwargs)  # type: ignore[arg-type]
        servers.append(server)
        return server.start()

    try:
        yield make
    finally:
        for server in servers:
            server.stop()
