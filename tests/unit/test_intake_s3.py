"""`hivid intake` against a real S3 server (SeaweedFS from `tests/s3server.py`).

New, changed, duplicate and bad objects; the server killed mid-intake and the run resumed; a crash
in the middle of the commit; injected 503 SlowDown answers (a loopback proxy); idempotent re-runs
that pin no new data version; an outage that leaves data/ and data.dvc as they were.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from hivid.data import intake as intake_mod
from hivid.data.intake import LEDGER, IntakeConfig, IntakeError, intake
from tests.landing import META, Zone, files_under, sha
from tests.s3server import S3Server


def cfg(**kw: Any) -> IntakeConfig:
    base: dict[str, Any] = {
        "retries": 2,
        "connect_timeout_s": 1.0,
        "read_timeout_s": 5.0,
        "probe_timeout_s": 30.0,
    }
    return IntakeConfig(**{**base, **kw})


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, s3_server: S3Server) -> S3Server:
    """The session server's endpoint and keys in the environment (where boto3 reads them)."""
    s3_server.start()
    for k, v in s3_server.env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return s3_server


@pytest.fixture
def zone(aws_env: S3Server, s3_bucket: str, tmp_path: Path) -> Zone:
    return Zone(aws_env, s3_bucket, tmp_path)


def reasons(result: Any) -> dict[str, str]:
    return {q["path"].rsplit("/landing/", 1)[1]: q["reason"] for q in result.quarantined}


def test_new_changed_duplicate_and_bad_objects(zone: Zone, tmp_path: Path) -> None:
    root, data = tmp_path / "proj", tmp_path / "proj" / "data"
    c = cfg(max_object_bytes=60_000)
    v0 = zone.put_video("v0", 0)
    zone.put_video("v1", 1)
    zone.put_video("nometa", 2, meta=False)
    zone.put("videos/notes.txt", b"not a video")
    zone.put("videos/fake.mp4", os.urandom(3000))
    zone.put("metadata/fake.json", json.dumps(META).encode())
    zone.put("videos/trunc.mp4", zone.video_bytes(3)[:1500])
    zone.put("metadata/trunc.json", json.dumps(META).encode())
    zone.put("videos/big.mp4", b"\0" * 70_000)
    zone.put("metadata/big.json", json.dumps(META).encode())
    zone.put_video("badmeta", 4)
    zone.put("metadata/badmeta.json", b'{"brand": "Acme",')
    zone.put("videos/v0copy.mp4", v0)
    zone.put("metadata/v0copy.json", json.dumps(META).encode())
    zone.put("readme.md", b"# drop zone")
    before = zone.keys()

    r = intake(zone.url, data, c, root)
    assert r.changed
    assert sorted(p for p in files_under(data / "videos")) == ["v0.mp4", "v1.mp4"]
    assert files_under(data / "videos")["v0.mp4"] == sha(v0)
    assert sorted(files_under(data / "metadata")) == ["v0.json", "v1.json"]
    ledger = {row["key"]: row for row in map(json.loads, (data / LEDGER).read_text().splitlines())}
    assert set(ledger) == {"videos/v0.mp4", "videos/v1.mp4", "metadata/v0.json", "metadata/v1.json"}
    assert ledger["videos/v0.mp4"]["sha256"] == sha(v0)
    assert ledger["videos/v0.mp4"]["checksum_sha256"]  # the object's own S3 checksum, verified
    assert ledger["videos/v0.mp4"]["etag"] == hashlib.md5(v0).hexdigest()
    why = reasons(r)
    assert set(why) == {
        "videos/nometa.mp4",
        "videos/notes.txt",
        "videos/fake.mp4",
        "videos/trunc.mp4",
        "videos/big.mp4",
        "videos/badmeta.mp4",
        "metadata/badmeta.json",
        "videos/v0copy.mp4",
        "readme.md",
    }, why
    assert "no metadata" in why["videos/nometa.mp4"]
    assert "wrong type" in why["videos/notes.txt"]
    assert "wrong type: not a video container" in why["videos/fake.mp4"]
    assert "unreadable video" in why["videos/trunc.mp4"]
    assert "too large" in why["videos/big.mp4"]
    assert "bad metadata: metadata is not JSON" in why["metadata/badmeta.json"]
    assert "same content as video 'v0'" in why["videos/v0copy.mp4"]
    for key, reason in why.items():  # one line, naming the object
        assert reason.startswith(f"{zone.url}/{key}: ") and "\n" not in reason
    assert zone.keys() == before  # the landing zone is only read

    # nothing new: no change, nothing downloaded, the bad objects reported again
    r2 = intake(zone.url, data, c, root)
    assert not r2.changed and r2.taken == [] and r2.downloaded_bytes == 0
    assert r2.unchanged == 2 and set(reasons(r2)) == set(why)

    # a changed video: only it is downloaded and replaced
    v1b = zone.put_video("v1", 11)
    snapshot = files_under(data)
    r3 = intake(zone.url, data, c, root)
    assert r3.changed and [t["key"] for t in r3.taken] == ["videos/v1.mp4"]
    assert r3.downloaded_bytes == len(v1b)
    after = files_under(data)
    assert (
        after["videos/v1.mp4"] == sha(v1b) and after["videos/v0.mp4"] == snapshot["videos/v0.mp4"]
    )
    ledger = {row["key"]: row for row in map(json.loads, (data / LEDGER).read_text().splitlines())}
    assert ledger["videos/v1.mp4"]["sha256"] == sha(v1b)

    # the same bytes uploaded again (a duplicate upload): no new version
    zone.put("videos/v1.mp4", v1b)
    assert not intake(zone.url, data, c, root).changed


def test_server_killed_mid_intake_then_resumed(
    make_s3_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server: S3Server = make_s3_server(buckets=["zone"])
    for k, v in server.env().items():
        monkeypatch.setenv(k, v)
    z = Zone(server, "zone", tmp_path)
    bodies = {f"v{i}": z.put_video(f"v{i}", i) for i in range(5)}
    root, data = tmp_path / "proj", tmp_path / "proj" / "data"

    def kill_at_third(item: str, done: int, total: int) -> None:
        if done >= 2 and server.running:  # two objects staged, the rest still to come
            server.kill()

    t0 = time.monotonic()
    with pytest.raises(IntakeError) as err:
        intake(z.url, data, cfg(), root, progress=kill_at_third)
    took = time.monotonic() - t0
    msg = str(err.value)
    assert "\n" not in msg and "failed after 2 attempt(s)" in msg and "left as they were" in msg
    assert took < 30, took
    assert not data.exists() or files_under(data) == {}  # nothing half-taken

    server.start()
    r = intake(z.url, data, cfg(), root)
    assert r.changed and r.resumed >= 2  # what was staged before the kill is not fetched again
    # Every object in the zone (videos and their metadata) would be fetched by a fresh run; the
    # resumed ones (which may be metadata or videos, whatever the threads staged first) are not.
    landing_bytes = sum(map(len, bodies.values())) + 5 * len(json.dumps(META).encode())
    assert r.downloaded_bytes < landing_bytes
    assert files_under(data / "videos") == {f"{v}.mp4": sha(b) for v, b in bodies.items()}
    rows = (data / LEDGER).read_text().splitlines()
    assert len(rows) == len({json.loads(x)["key"] for x in rows}) == 10
    assert not intake(z.url, data, cfg(), root).changed


def test_crash_during_commit_is_completed_by_the_next_run(
    zone: Zone, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bodies = {f"c{i}": zone.put_video(f"c{i}", 20 + i) for i in range(3)}
    root, data = tmp_path / "proj", tmp_path / "proj" / "data"
    real_move = intake_mod._move
    calls = {"n": 0}

    def crashing_move(src: Path, dst: Path) -> None:
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt("power cut")
        real_move(src, dst)

    monkeypatch.setattr(intake_mod, "_move", crashing_move)
    with pytest.raises(KeyboardInterrupt):
        intake(zone.url, data, cfg(), root)
    assert len(files_under(data)) == 3  # three complete files, no partial one, no ledger yet
    assert not (data / LEDGER).exists()
    assert intake_mod.pin_pending(root / "outputs/intake")
    monkeypatch.setattr(intake_mod, "_move", real_move)

    r = intake(zone.url, data, cfg(), root)
    assert r.changed and r.downloaded_bytes == 0  # finished from the journal, nothing fetched
    assert files_under(data / "videos") == {f"{v}.mp4": sha(b) for v, b in bodies.items()}
    assert len((data / LEDGER).read_text().splitlines()) == 6
    assert not intake(zone.url, data, cfg(), root).changed


class SlowDownProxy:
    """A loopback HTTP proxy in front of S3 that answers ``503 SlowDown`` to the first
    ``fail_first`` requests, then forwards each request unchanged (same Host header, so the
    client's SigV4 signature still verifies)."""

    BODY = (
        b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
        b"<Message>Please reduce your request rate.</Message></Error>"
    )

    def __init__(self, upstream_port: int, fail_first: int, corrupt: str = "") -> None:
        self.fail_first = fail_first
        self.corrupt = corrupt  # flip a byte in GET bodies of keys containing this
        self.corrupted = 0
        self.seen = 0
        self.throttled = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                proxy.seen += 1
                if proxy.seen <= proxy.fail_first:
                    proxy.throttled += 1
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(proxy.BODY)))
                    self.end_headers()
                    self.wfile.write(proxy.BODY)
                    return
                conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=30)
                headers = {k: v for k, v in self.headers.items()}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                payload = resp.read()
                if (
                    proxy.corrupt
                    and self.command == "GET"
                    and proxy.corrupt in self.path
                    and payload
                ):
                    payload = payload[:-1] + bytes([payload[-1] ^ 0xFF])
                    proxy.corrupted += 1
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)
                conn.close()

            do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = _any

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> SlowDownProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def proxy_zone(zone: Zone, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    def make(fail_first: int, corrupt: str = "") -> SlowDownProxy:
        proxy = SlowDownProxy(zone.server.s3_port, fail_first, corrupt).__enter__()
        proxies.append(proxy)
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{proxy.port}")
        return proxy

    proxies: list[SlowDownProxy] = []
    yield make
    for p in proxies:
        p.__exit__()


def test_throttling_is_retried_with_backoff(zone: Zone, proxy_zone: Any, tmp_path: Path) -> None:
    body = zone.put_video("t0", 30)
    proxy = proxy_zone(fail_first=3)  # LIST answered 503 twice, then the GET once
    root, data = tmp_path / "proj", tmp_path / "proj" / "data"
    r = intake(zone.url, data, cfg(retries=5, retry_mode="standard"), root)
    assert proxy.throttled == 3 and r.changed
    assert files_under(data / "videos") == {"t0.mp4": sha(body)}


def test_persistent_throttling_ends_with_one_line_and_data_untouched(
    zone: Zone, proxy_zone: Any, tmp_path: Path
) -> None:
    zone.put_video("t1", 31)
    proxy = proxy_zone(fail_first=10**6)
    root, data = tmp_path / "proj", tmp_path / "proj" / "data"
    t0 = time.monotonic()
    with pytest.raises(IntakeError) as err:
        intake(zone.url, data, cfg(retries=3, retry_mode="standard"), root)
    assert time.monotonic() - t0 < 30
    assert proxy.throttled == 3  # bounded: exactly `retries` attempts
    assert "SlowDown" in str(err.value) and "\n" not in str(err.value)
    assert not data.exists()


def test_bytes_damaged_in_transit_are_caught_and_quarantined(
    zone: Zone, proxy_zone: Any, tmp_path: Path
) -> None:
    zone.put_video("ok0", 32)
    zone.put_video("hurt", 33)
    proxy = proxy_zone(fail_first=0, corrupt="/videos/hurt.mp4")
    root, data = tmp_path / "proj", tmp_path / "proj" / "data"
    r = intake(zone.url, data, cfg(retries=2), root)
    assert proxy.corrupted == 2  # every attempt damaged
    assert sorted(files_under(data / "videos")) == ["ok0.mp4"]
    why = [q["reason"] for q in r.quarantined]
    assert len(why) == 1 and "videos/hurt.mp4: unreadable: integrity check failed" in why[0], why
