"""Reproductions of issue 16 (ingest): each bad input costs one item a quarantine row, never the
batch; duplicates keep the earliest-seen copy."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hivid.data.ingest import IngestConfig, ingest, write_ingest_outputs

META = {
    "brand": "Acme",
    "category": "beauty",
    "attributes": {"volume": "500ml"},
    "price": {"amount": 59.0, "currency": "USD"},
}


def _corpus(root: Path, clips: list[Path], ids: list[str]) -> None:
    (root / "videos").mkdir(parents=True, exist_ok=True)
    (root / "metadata").mkdir(parents=True, exist_ok=True)
    for clip, vid in zip(clips, ids, strict=False):
        shutil.copy(clip, root / "videos" / f"{vid}.mp4")
        (root / "metadata" / f"{vid}.json").write_text(json.dumps(META))


def _rows(summary: object) -> dict[str, dict]:
    return {q["path"]: q for q in summary.quarantined}  # type: ignore[attr-defined]


BAD_METADATA = {
    "deep": b"[" * 200_000 + b"]" * 200_000,  # RecursionError in json.loads
    "deep_obj": ('{"a":' * 500 + "1" + "}" * 500).encode(),  # parses, too deep for the manifest
    "huge_int": json.dumps({**META, "price": {"amount": 0}}).replace("0}", "9" * 5000 + "}", 1),
    "nan": json.dumps({**META, "attributes": {"x": float("nan")}}),
    "surrogate": json.dumps(META).replace('"Acme"', '"\\ud800"'),
}


@pytest.mark.parametrize("kind", sorted(BAD_METADATA))
def test_bad_metadata_costs_one_item(tmp_path: Path, clips: list[Path], kind: str) -> None:
    root = tmp_path / "data"
    _corpus(root, clips, ["good", "bad"])
    content = BAD_METADATA[kind]
    p = root / "metadata" / "bad.json"
    p.write_bytes(content if isinstance(content, bytes) else content.encode())
    summary = ingest(root, IngestConfig(probe_timeout_s=0))
    assert [r["video_id"] for r in summary.manifest] == ["good"]
    (row,) = summary.quarantined
    assert row["video_id"] == "bad" and row["path"] == "videos/bad.mp4"
    assert row["reason"].startswith("videos/bad.mp4: metadata/bad.json: "), row
    assert "\n" not in row["reason"] and len(row["reason"]) < 300, row
    write_ingest_outputs(summary, tmp_path / "out")  # the manifest is writable, valid JSON
    json.loads((tmp_path / "out" / "manifest.jsonl").read_text())


def test_oversized_metadata_is_rejected_without_reading_it(
    tmp_path: Path, clips: list[Path]
) -> None:
    root = tmp_path / "data"
    _corpus(root, clips, ["good", "big"])
    with (root / "metadata" / "big.json").open("wb") as f:
        f.truncate(50 * 1024 * 1024)  # 50 MB (sparse: costs no disk)
    small = IngestConfig(probe_timeout_s=0, max_metadata_bytes=4096)
    (root / "metadata" / "good.json").write_text(json.dumps({**META, "note": "x" * 5000}))
    summary = ingest(root, small)
    rows = _rows(summary)
    assert "max_metadata_bytes" in rows["videos/big.mp4"]["reason"]
    assert "max_metadata_bytes (4096 bytes)" in rows["videos/good.mp4"]["reason"]
    summary = ingest(root, IngestConfig(probe_timeout_s=0))  # default 1 MiB: good passes again
    assert [r["video_id"] for r in summary.manifest] == ["good"]


def test_directories_in_place_of_files_get_rows_with_ids(tmp_path: Path, clips: list[Path]) -> None:
    root = tmp_path / "data"
    _corpus(root, clips, ["good", "nometa"])
    (root / "videos" / "x.mp4").mkdir()
    (root / "metadata" / "nometa.json").unlink()
    (root / "metadata" / "nometa.json").mkdir()
    (root / "videos" / "subdir").mkdir()  # a plain folder is a container, not an item
    summary = ingest(root, IngestConfig(probe_timeout_s=0))
    rows = _rows(summary)
    assert set(rows) == {"videos/x.mp4", "videos/nometa.mp4"}, rows
    assert rows["videos/x.mp4"]["video_id"] == "x"
    assert "is a directory, not a video file" in rows["videos/x.mp4"]["reason"]
    assert rows["videos/nometa.mp4"]["video_id"] == "nometa"
    assert "metadata/nometa.json: is a directory" in rows["videos/nometa.mp4"]["reason"]


def test_duplicate_keeps_the_copy_the_previous_manifest_listed(
    tmp_path: Path, clips: list[Path]
) -> None:
    root = tmp_path / "data"
    _corpus(root, clips, ["b_original"])
    first = ingest(root, IngestConfig(probe_timeout_s=0))
    # a new copy whose name sorts first, and newer than nothing: only the manifest says who won
    shutil.copy(root / "videos" / "b_original.mp4", root / "videos" / "a_copy.mp4")
    shutil.copy(root / "metadata" / "b_original.json", root / "metadata" / "a_copy.json")
    os.utime(root / "videos" / "a_copy.mp4", (1, 1))  # even "older" by mtime
    again = ingest(root, IngestConfig(probe_timeout_s=0), previous=first.manifest)
    assert [r["video_id"] for r in again.manifest] == ["b_original"]
    (row,) = again.quarantined
    assert row["path"] == "videos/a_copy.mp4" and "same content as b_original" in row["reason"]
    # without a previous manifest the older file (mtime), then the name, wins
    fresh = ingest(root, IngestConfig(probe_timeout_s=0))
    assert [r["video_id"] for r in fresh.manifest] == ["a_copy"]


def test_duplicate_id_keeps_the_older_file(tmp_path: Path, clips: list[Path]) -> None:
    root = tmp_path / "data"
    _corpus(root, clips, ["v"])
    shutil.copy(clips[1], root / "videos" / "v.mov")
    os.utime(root / "videos" / "v.mp4", (2_000_000_000, 2_000_000_000))  # the .mov is older
    os.utime(root / "videos" / "v.mov", (1_000_000_000, 1_000_000_000))
    summary = ingest(root, IngestConfig(probe_timeout_s=0))
    assert [r["path"] for r in summary.manifest] == ["videos/v.mov"]
    (row,) = summary.quarantined
    assert row["path"] == "videos/v.mp4" and "kept the earlier videos/v.mov" in row["reason"]


def test_cli_ingest_reads_the_previous_manifest_from_the_dvc_cache(
    tmp_path: Path, clips: list[Path]
) -> None:
    """Under `dvc repro` the old outputs/ingest is gone when the stage starts: the previous
    manifest comes from the DVC cache object dvc.lock names."""
    from hivid.data.ingest import previous_manifest

    ws = tmp_path / "ws"
    root = ws / "data"
    _corpus(root, clips, ["b_original"])
    (ws / "dvc.yaml").write_text("stages: {}\n")
    row = json.dumps({"video_id": "b_original", "path": "videos/b_original.mp4"})
    cache = ws / ".dvc" / "cache" / "files" / "md5"
    (cache / "aa").mkdir(parents=True)
    (cache / "aa" / "11").write_text(row + "\n")
    (cache / "bb").mkdir()
    (cache / "bb" / "22.dir").write_text(json.dumps([{"md5": "aa11", "relpath": "manifest.jsonl"}]))
    lock = {"stages": {"ingest": {"outs": [{"path": "outputs/ingest", "md5": "bb22.dir"}]}}}
    (ws / "dvc.lock").write_text(yaml.safe_dump(lock))
    assert previous_manifest(ws, ws / "outputs" / "ingest") == [json.loads(row)]

    shutil.copy(root / "videos" / "b_original.mp4", root / "videos" / "a_copy.mp4")
    shutil.copy(root / "metadata" / "b_original.json", root / "metadata" / "a_copy.json")
    os.utime(root / "videos" / "a_copy.mp4", (1, 1))
    (ws / "params.yaml").write_text("ingest:\n  probe_timeout_s: 0\n")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "hivid"), "ingest"],
        cwd=ws,
        capture_output=True,
        text=True,
        env={**env, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert proc.returncode == 0, proc.stderr
    manifest = (ws / "outputs" / "ingest" / "manifest.jsonl").read_text()
    assert [json.loads(x)["video_id"] for x in manifest.splitlines()] == ["b_original"]
    assert "a_copy.mp4: same content as b_original" in proc.stdout
