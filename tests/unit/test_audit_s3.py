"""The audit over real S3 (SeaweedFS, `tests/s3server.py`): DVC remote and MLflow artifacts both
in a bucket; an auditor's clean clone with no DVC cache verifies every link from the objects
themselves, each tamper drill in the bucket (raw video object, gate artifact, manifest artifact,
model file) flags exactly its link, and an unreachable S3 gives a bounded, non-zero answer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import mlflow
import pytest
from mlflow.store.artifact.s3_artifact_repo import _cached_get_s3_client
from mlflow.tracking import MlflowClient

from hivid.tracking.audit import trace
from hivid.tracking.dvcobjects import object_rel
from tests.audit_chain import DVC, MODEL, Chain, assert_only, build_chain, flip, run, statuses
from tests.helpers import blackhole, free_port
from tests.s3server import S3Server

EXPERIMENT = "audit-s3"


@pytest.fixture(scope="module")
def s3_chain(
    s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Chain, S3Server, str, Path]]:
    """(chain whose project pushed to S3, server, bucket, an auditor's clean clone)."""
    s3_server.start()
    bucket = s3_server.make_bucket()
    tmp = tmp_path_factory.mktemp("audit-s3")
    env = {
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'proj' / 'mlruns' / 'mlflow.db'}",
        "HIVID_EXPERIMENT": EXPERIMENT,
        "MLFLOW_S3_ENDPOINT_URL": s3_server.endpoint,
        "AWS_ACCESS_KEY_ID": s3_server.access_key,
        "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
        "AWS_DEFAULT_REGION": s3_server.region,
    }
    saved = {k: os.environ.get(k) for k in [*env, "HIVID_PARENT_RUN_ID"]}
    os.environ.update(env)
    os.environ.pop("HIVID_PARENT_RUN_ID", None)
    _forget_s3_credentials()
    try:
        (tmp / "proj" / "mlruns").mkdir(parents=True)
        mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
        MlflowClient().create_experiment(EXPERIMENT, artifact_location=f"s3://{bucket}/mlflow")
        local = {
            "endpointurl": s3_server.endpoint,
            "access_key_id": s3_server.access_key,
            "secret_access_key": s3_server.secret_key,
        }
        chain = build_chain(tmp / "proj", f"s3://{bucket}/dvc", local)
        # the auditor: a fresh clone, no DVC cache, no data/, host settings in its --local config
        clone = tmp / "auditor"
        run(["git", "clone", "-q", str(chain.root), str(clone)], tmp)
        for key, value in local.items():
            run([*DVC, "remote", "modify", "--local", "s3", key, value], clone)
        yield chain, s3_server, bucket, clone
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        _forget_s3_credentials()


def _forget_s3_credentials() -> None:
    """Drop the credentials boto3's default session resolved from the environment (once per
    process) and MLflow's cached S3 clients: a second pytest session in the same process (as
    mutmut runs them) has a new server with new keys, and would sign with the old ones
    (InvalidAccessKeyId)."""
    boto3.DEFAULT_SESSION = None
    _cached_get_s3_client.cache_clear()


@contextmanager
def s3_replaced(server: S3Server, bucket: str, key: str, data: Any) -> Iterator[None]:
    client = server.client()
    old = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    client.put_object(Bucket=bucket, Key=key, Body=data(old) if callable(data) else data)
    try:
        yield
    finally:
        client.put_object(Bucket=bucket, Key=key, Body=old)


def artifact_key(run_id: str, rel: str) -> str:
    uri = MlflowClient().get_run(run_id).info.artifact_uri  # s3://bucket/mlflow/...
    return uri.removeprefix("s3://").split("/", 1)[1] + "/" + rel


def model_key(server: S3Server, bucket: str, version: str, name: str) -> str:
    mv = MlflowClient().get_model_version("hivid-narrator", version)
    base = mlflow.get_logged_model(mv.source.removeprefix("models:/")).artifact_location
    prefix = base.removeprefix("s3://").split("/", 1)[1]
    keys = server.client().list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]
    return next(o["Key"] for o in keys if o["Key"].endswith("/" + name))


def test_clean_checkout_verifies_over_s3(s3_chain: tuple[Chain, S3Server, str, Path]) -> None:
    _, _, _, clone = s3_chain
    assert not (clone / ".dvc" / "cache").exists() and not (clone / "data").exists()
    lineage = trace(clone, MODEL)
    assert set(statuses(lineage).values()) == {"VERIFIED"}, {
        x.name: x.reason for x in lineage.links
    }
    video = next(x for x in lineage.links if x.name == "raw video v0")
    assert video.detail["source"] == "remote s3"
    assert not (clone / ".dvc" / "cache").exists()  # nothing pulled


def test_tamper_raw_video_object_in_the_bucket(s3_chain: tuple[Chain, S3Server, str, Path]) -> None:
    chain, server, bucket, clone = s3_chain
    key = f"dvc/{object_rel(chain.md5['data/videos/v1.mp4'])}"
    with s3_replaced(server, bucket, key, flip):
        assert_only(trace(clone, MODEL), "raw video v1")


def test_tamper_gate_artifact_in_the_bucket(s3_chain: tuple[Chain, S3Server, str, Path]) -> None:
    chain, server, bucket, clone = s3_chain
    key = artifact_key(chain.runs["validate"], "quality/gate.json")
    with s3_replaced(server, bucket, key, b'{"result_id": "res-1", "success": true}'):
        assert_only(trace(clone, MODEL), "quality gate")


def test_tamper_manifest_artifact_in_the_bucket(
    s3_chain: tuple[Chain, S3Server, str, Path],
) -> None:
    chain, server, bucket, clone = s3_chain
    key = artifact_key(chain.runs["ingest"], "ingest/manifest.jsonl")
    with s3_replaced(server, bucket, key, lambda old: old.replace(b'"v0"', b'"vX"')):
        assert_only(trace(clone, MODEL), "ingest manifest")


def test_tamper_model_file_in_the_bucket(s3_chain: tuple[Chain, S3Server, str, Path]) -> None:
    _, server, bucket, clone = s3_chain
    key = model_key(server, bucket, "2", "MLmodel")
    with s3_replaced(server, bucket, key, lambda old: old + b"\n# edited\n"):
        assert_only(trace(clone, MODEL), "model files")


def hivid(cwd: Path, *args: str, env: dict[str, str] | None = None) -> tuple[Any, float]:
    exe = Path(sys.executable).parent / "hivid"
    t0 = time.perf_counter()
    proc = subprocess.run(
        [str(exe), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    return proc, time.perf_counter() - t0


def test_hung_dvc_remote_is_bounded_and_exits_3(
    s3_chain: tuple[Chain, S3Server, str, Path], tmp_path: Path
) -> None:
    """The DVC remote's endpoint hangs: one bounded timeout (not one per object), the data links
    UNVERIFIED with the reason, exit 3; the MLflow links still verified."""
    chain = s3_chain[0]
    auditor = tmp_path / "auditor"
    run(["git", "clone", "-q", str(chain.root), str(auditor)], tmp_path)
    with blackhole() as port:
        run(
            [*DVC, "remote", "modify", "--local", "s3", "endpointurl", f"http://127.0.0.1:{port}"],
            auditor,
        )
        for key in ("access_key_id", "secret_access_key"):
            value = os.environ[
                "AWS_ACCESS_KEY_ID" if key == "access_key_id" else "AWS_SECRET_ACCESS_KEY"
            ]
            run([*DVC, "remote", "modify", "--local", "s3", key, value], auditor)
        proc, seconds = hivid(
            auditor, "lineage", MODEL, "--json", "--timeout", "2", "--retries", "1"
        )
    assert proc.returncode == 3, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    got = {x["name"]: x["status"] for x in report["links"]}
    assert got["data.dvc md5"] == "UNVERIFIED" and got["raw video v0"] == "UNVERIFIED"
    assert got["model version"] == "VERIFIED" and got["git commit"] == "VERIFIED"
    assert (
        "unreachable" in next(x for x in report["links"] if x["name"] == "data.dvc md5")["reason"]
    )
    assert seconds < 45, seconds  # 2 attempts x 2 s read timeout, once, plus start-up
    assert "not verified" in proc.stderr.strip().splitlines()[-1]
    print(f"hung DVC remote: exit 3 after {seconds:.1f} s")


def test_down_artifact_store_is_one_line_and_exits_3(
    s3_chain: tuple[Chain, S3Server, str, Path],
) -> None:
    """MLflow's artifact store (S3) refuses connections: one line on stderr, exit 3, bounded."""
    _, _, _, clone = s3_chain
    env = {"MLFLOW_S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}
    proc, seconds = hivid(clone, "lineage", MODEL, "--timeout", "2", "--retries", "1", env=env)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    lines = [x for x in proc.stderr.strip().splitlines() if x.strip() and "Downloading" not in x]
    assert (
        len(lines) == 1
        and lines[0].startswith("hivid lineage: error:")
        and "unreachable" in lines[0]
    ), lines
    assert seconds < 45, seconds
    print(f"down artifact store: exit 3 after {seconds:.1f} s")
