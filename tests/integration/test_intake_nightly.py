"""End to end: a video dropped into the landing bucket is trained on by the next nightly, with no
one touching git or DVC; the nightly after it finds nothing new and skips every stage."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from hivid.data.demo import DemoConfig, generate_demo_corpus
from hivid.pipeline import STAGES
from hivid.tracking.lineage import data_md5
from tests.landing import Zone
from tests.s3server import S3Server

from .conftest import TINY_PARAMS, make_workspace

pytestmark = pytest.mark.slow


def test_dropped_objects_are_picked_up_by_the_next_nightly(
    prefect_harness: None,
    make_s3_server: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flows.nightly import nightly

    server: S3Server = make_s3_server(buckets=["landing"])
    for k, v in server.env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    zone = Zone(server, "landing", tmp_path)
    knobs = {"source": zone.url, "retries": 2, "connect_timeout_s": 1.0, "read_timeout_s": 10.0}
    ws = make_workspace(tmp_path, {**TINY_PARAMS, "intake": knobs})
    pinned = data_md5(ws)

    # another demo video (real narration, chapters) lands in the bucket; demo_003 is one whose
    # stable split is train beside demo_000/001 (a landing zone brings no ground truth, and the
    # evaluate stage needs a test video that has some)
    corpus = tmp_path / "corpus"
    generate_demo_corpus(corpus, DemoConfig(videos=4))
    new = "demo_003"
    zone.put(f"videos/{new}.mp4", (corpus / "videos" / f"{new}.mp4").read_bytes())
    zone.put(f"metadata/{new}.json", (corpus / "metadata" / f"{new}.json").read_bytes())

    r1 = nightly(repo=str(ws), demo=False)
    assert r1["status"] == "succeeded", r1.get("text")
    assert r1["data_changed"] and r1["intake"]["new_videos"] == [new]
    assert data_md5(ws) == r1["intake"]["data_md5"] != pinned
    assert all(v == "ran" for v in r1["stages"].values()), r1["stages"]
    manifest = [
        json.loads(x) for x in (ws / "outputs/ingest/manifest.jsonl").read_text().splitlines()
    ]
    assert new in {row["video_id"] for row in manifest}
    splits = json.loads((ws / "outputs/dataset/splits.json").read_text())
    assert new in splits["train"], splits  # the model was trained on it
    assert "intake from s3://" in r1["text"]

    dvc_file = (ws / "data.dvc").read_bytes()
    r2 = nightly(repo=str(ws), demo=False)
    assert r2["status"] == "succeeded"
    assert not r2["data_changed"] and r2["intake"]["downloaded_bytes"] == 0
    assert set(r2["stages"]) == set(STAGES)
    assert all(v == "skipped (unchanged)" for v in r2["stages"].values()), r2["stages"]
    assert (ws / "data.dvc").read_bytes() == dvc_file
    assert os.environ["AWS_SECRET_ACCESS_KEY"] not in r1["text"] + r2["text"]
