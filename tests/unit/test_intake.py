"""`hivid intake` end to end on a git + DVC workspace, a local landing folder, the config and the
credentials file (S3 cases against the real SeaweedFS server: test_intake_s3.py)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from hivid.configbase import ConfigError, from_mapping
from hivid.data.intake import LEDGER, IntakeConfig, IntakeError, S3Landing, intake
from hivid.pipeline import data_status, run_intake
from hivid.tracking.lineage import data_md5
from tests.helpers import write_video
from tests.landing import META, Zone, files_under, sha
from tests.s3server import S3Server

REPO = Path(__file__).resolve().parents[2]


def _dvc(ws: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=ws, capture_output=True, text=True
    )


def _hivid(ws: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "hivid"
    pp = os.pathsep.join([str(REPO / "src"), str(REPO), os.environ.get("PYTHONPATH", "")])
    return subprocess.run(
        [str(exe), *args],
        cwd=ws,
        capture_output=True,
        text=True,
        env={**os.environ, **env, "PYTHONPATH": pp},
    )


@pytest.fixture
def private_zone(make_s3_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Zone:
    server: S3Server = make_s3_server(buckets=["landing-zone"])
    for k, v in server.env().items():
        monkeypatch.setenv(k, v)
    return Zone(server, "landing-zone", tmp_path)


@pytest.mark.slow  # a git + DVC workspace, several dvc and CLI subprocesses (~2-4 min on 2 cores)
def test_new_objects_are_pinned_once_and_an_outage_changes_nothing(
    private_zone: Zone, tmp_path: Path
) -> None:
    from hivid.workspace import create_workspace

    zone = private_zone
    knobs = {"source": zone.url, "retries": 2, "connect_timeout_s": 1.0, "read_timeout_s": 5.0}
    ws = create_workspace(REPO, tmp_path / "ws", {"intake": knobs}, videos=2)
    pinned = data_md5(ws)
    body = zone.put_video("landed0", 40)
    zone.put("videos/junk.mp4", b"junk")
    zone.put("metadata/junk.json", json.dumps(META).encode())

    r = run_intake(ws, ws / "params.yaml", log=lambda _: None)
    assert r["changed"] and r["new_videos"] == ["landed0"]
    assert data_md5(ws) == r["data_md5"] != pinned
    assert data_status(ws) == {}  # data/ matches the new data.dvc
    assert _dvc(ws, "status", "-c", "data.dvc", "--json").stdout.strip() in ("{}", "")  # pushed
    assert files_under(ws / "data/videos")["landed0.mp4"] == sha(body)
    report = (ws / "outputs/quarantine/report.md").read_text()
    assert "| intake |" in report and "videos/junk.mp4" in report  # in the quarantine report

    # nothing new: no new data version (data.dvc untouched), nothing downloaded
    dvc_before = (ws / "data.dvc").read_bytes()
    stamp = (ws / "data.dvc").stat().st_mtime_ns
    r2 = run_intake(ws, ws / "params.yaml", log=lambda _: None)
    assert not r2["changed"] and r2["downloaded_bytes"] == 0
    assert (ws / "data.dvc").read_bytes() == dvc_before
    assert (ws / "data.dvc").stat().st_mtime_ns == stamp

    # the CLI: nothing new -> exit 0; the secret key is in no output or file
    env = zone.server.env()
    ok = _hivid(ws, env, "intake")
    assert ok.returncode == 0, ok.stderr
    assert "nothing new" in ok.stdout
    secret = zone.server.secret_key
    assert secret not in ok.stdout + ok.stderr
    for p in [*(ws / "outputs/intake").rglob("*"), ws / "data" / LEDGER, ws / "params.yaml"]:
        if p.is_file():
            assert secret.encode() not in p.read_bytes(), p

    # an outage: a new object is waiting, the server goes down -> one line, nothing changed
    zone.put_video("landed1", 41)
    tree = files_under(ws / "data")
    zone.server.stop()
    t0 = time.monotonic()
    down = _hivid(ws, env, "intake")
    took = time.monotonic() - t0
    assert down.returncode == 1
    lines = [ln for ln in down.stderr.splitlines() if ln.strip()]
    assert lines[-1].startswith("hivid intake: error: ") and "S3 listing failed" in lines[-1]
    # bounded, not a hang: the S3 part is retries x (connect timeout + backoff) ~ 2 s here; the
    # rest is the CLI's start-up and `dvc status` (slow on a loaded 2-core CI box)
    assert took < 90, took
    assert (ws / "data.dvc").read_bytes() == dvc_before and files_under(ws / "data") == tree

    zone.server.start()
    r3 = run_intake(ws, ws / "params.yaml", log=lambda _: None)
    assert r3["changed"] and r3["new_videos"] == ["landed1"]


def test_local_folder_landing_zone(tmp_path: Path) -> None:
    zone, root = tmp_path / "zone", tmp_path / "proj"
    data = root / "data"
    (zone / "metadata").mkdir(parents=True)
    a = write_video(zone / "videos" / "a.mp4", seconds=1.0, fps=5, seed=1).read_bytes()
    (zone / "metadata" / "a.json").write_text(json.dumps(META))
    outside = write_video(tmp_path / "elsewhere.mp4", seconds=1.0, fps=5, seed=2)
    (zone / "videos" / "link.mp4").symlink_to(outside)
    (zone / "metadata" / "link.json").write_text(json.dumps(META))
    c = IntakeConfig(probe_timeout_s=30.0)

    r = intake(str(zone), data, c, root)
    assert r.changed and files_under(data / "videos") == {"a.mp4": sha(a)}
    assert [q["reason"].split(": ", 1)[1] for q in r.quarantined] == [
        "unreadable: a symbolic link (not taken from a landing folder)"
    ]
    assert not intake(str(zone), data, c, root).changed

    time.sleep(0.01)
    b = write_video(zone / "videos" / "a.mp4", seconds=1.0, fps=5, seed=3).read_bytes()
    r = intake(str(zone), data, c, root)
    assert r.changed and files_under(data / "videos") == {"a.mp4": sha(b)}
    assert (zone / "videos" / "link.mp4").is_symlink()  # the landing folder is only read


def test_config_is_validated_and_holds_no_secret() -> None:
    with pytest.raises(ConfigError, match=r"intake\.retries"):
        from_mapping(IntakeConfig, {"retries": 0}, "intake")
    with pytest.raises(ConfigError, match="unknown key"):
        from_mapping(IntakeConfig, {"aws_secret_access_key": "x"}, "intake")
    with pytest.raises(ConfigError, match="retry_mode"):
        from_mapping(IntakeConfig, {"retry_mode": "forever"}, "intake")
    with pytest.raises(IntakeError, match="unsupported source"):
        intake("ftp://host/x", Path("data"), IntakeConfig(), Path("."))


def test_credentials_file_must_be_private(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    secret_file = tmp_path / "s3.env"
    secret_file.write_text(
        f"AWS_ACCESS_KEY_ID={s3_server.access_key}\n"
        f"export AWS_SECRET_ACCESS_KEY='{s3_server.secret_key}'\n"
    )
    cfg = IntakeConfig(
        endpoint_url=s3_server.endpoint, credentials_file=str(secret_file), retries=1
    )
    secret_file.chmod(0o644)
    with pytest.raises(IntakeError, match="readable by others") as err:
        S3Landing(f"s3://{s3_bucket}/x", cfg)
    assert s3_server.secret_key not in str(err.value)
    secret_file.chmod(0o600)
    assert S3Landing(f"s3://{s3_bucket}/x", cfg).list() == []
    no_creds = IntakeConfig(endpoint_url=s3_server.endpoint, retries=1)
    with pytest.raises(IntakeError, match="no S3 credentials"):
        S3Landing(f"s3://{s3_bucket}/x", no_creds).list()


def test_ledger_records_key_etag_and_sha256(tmp_path: Path) -> None:
    zone, root = tmp_path / "zone", tmp_path / "proj"
    (zone / "metadata").mkdir(parents=True)
    v = write_video(zone / "videos" / "k.mp4", seconds=1.0, fps=5, seed=9).read_bytes()
    (zone / "metadata" / "k.json").write_text(json.dumps(META))
    intake(str(zone), root / "data", IntakeConfig(probe_timeout_s=30.0), root)
    rows = [json.loads(x) for x in (root / "data" / LEDGER).read_text().splitlines()]
    video = next(r for r in rows if r["kind"] == "video")
    assert video["key"] == "videos/k.mp4" and video["sha256"] == hashlib.sha256(v).hexdigest()
    assert video["etag"] and video["taken_at"] and video["source"] == str(zone)
