"""The test S3 server itself: real SeaweedFS on loopback, every port set, clean stop and restart."""

from __future__ import annotations

import socket

import pytest

from tests.s3server import S3Server


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_round_trip_and_restart_on_same_dir_and_ports(make_s3_server) -> None:
    server: S3Server = make_s3_server(buckets=["landing"])
    client = server.client()
    client.put_object(Bucket="landing", Key="videos/a.mp4", Body=b"abc" * 100)
    ports = dict(server.ports)
    assert all(_listening(p) for p in ports.values())
    endpoint = server.endpoint

    server.kill()  # a crash, not a clean stop
    assert not any(_listening(p) for p in ports.values())
    from botocore.exceptions import EndpointConnectionError

    with pytest.raises(EndpointConnectionError):
        server.client(max_attempts=1, timeout_s=2).list_buckets()

    server.start()
    assert server.endpoint == endpoint and server.ports == ports
    body = server.client().get_object(Bucket="landing", Key="videos/a.mp4")["Body"].read()
    assert body == b"abc" * 100

    server.stop()
    server.start()
    assert server.client().head_object(Bucket="landing", Key="videos/a.mp4")["ContentLength"] == 300


def test_wrong_keys_are_refused(s3_server: S3Server, s3_bucket: str) -> None:
    import boto3
    from botocore.exceptions import ClientError

    bad = boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint,
        aws_access_key_id=s3_server.access_key,
        aws_secret_access_key="not-the-key",
        region_name=s3_server.region,
    )
    with pytest.raises(ClientError):
        bad.list_objects_v2(Bucket=s3_bucket)


def test_binds_loopback_only(s3_server: S3Server) -> None:
    import psutil

    proc = psutil.Process(s3_server.proc.pid)  # type: ignore[union-attr]
    addrs = {c.laddr.ip for c in proc.net_connections(kind="inet") if c.status == "LISTEN"}
    assert addrs == {"127.0.0.1"}, addrs
