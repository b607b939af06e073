from __future__ import annotations

import json
from pathlib import Path

import pytest

from hivid.data.ingest import IngestConfig, MetadataError, ingest, load_metadata
from hivid.data.probe import ProbeError, probe_video
from tests.helpers import write_video

META = {
    "brand": "Acme",
    "category": "beauty",
    "attributes": {"volume": "500ml"},
    "price": {"amount": 59.0, "currency": "USD"},
}


def _corpus(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    for vid, seed in (("good_a", 1), ("good_b", 2)):
        write_video(root / "videos" / f"{vid}.mp4", seed=seed)
        (root / "metadata").mkdir(parents=True, exist_ok=True)
        (root / "metadata" / f"{vid}.json").write_text(json.dumps(META))
    return root


def test_probe_reads_real_video(tmp_path: Path) -> None:
    p = write_video(tmp_path / "v.mp4", seconds=2.0, fps=10)
    info = probe_video(p)
    assert info.has_audio and info.width == 64 and info.height == 48
    assert info.fps == pytest.approx(10.0)
    assert 1.8 <= info.duration <= 2.3


def test_probe_without_audio(tmp_path: Path) -> None:
    info = probe_video(write_video(tmp_path / "v.mp4", audio=False))
    assert not info.has_audio and info.audio_sample_rate is None


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"", "empty file"), (b"\x00garbage" * 100, "not a readable media container")],
)
def test_probe_rejects_bad_bytes(tmp_path: Path, content: bytes, reason: str) -> None:
    p = tmp_path / "bad.mp4"
    p.write_bytes(content)
    with pytest.raises(ProbeError, match=reason) as exc:
        probe_video(p)
    assert str(p) in str(exc.value) and "\n" not in str(exc.value)


def test_probe_rejects_truncated(tmp_path: Path) -> None:
    good = write_video(tmp_path / "v.mp4")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(good.read_bytes()[:300])
    with pytest.raises(ProbeError):
        probe_video(cut)


def test_ingest_quarantines_bad_files_and_keeps_good_ones(tmp_path: Path) -> None:
    root = _corpus(tmp_path)
    (root / "videos" / "zero.mp4").write_bytes(b"")
    (root / "videos" / "notes.txt").write_text("hello")
    dup = root / "videos" / "zz_copy_of_a.mp4"
    dup.write_bytes((root / "videos" / "good_a.mp4").read_bytes())
    (root / "metadata" / "zz_copy_of_a.json").write_text(json.dumps(META))
    write_video(root / "videos" / "nometa.mp4", seed=9)
    summary = ingest(root, IngestConfig())
    assert [r["video_id"] for r in summary.manifest] == ["good_a", "good_b"]
    reasons = {q["path"]: q["reason"] for q in summary.quarantined}
    assert set(reasons) == {
        "videos/zero.mp4",
        "videos/notes.txt",
        "videos/zz_copy_of_a.mp4",
        "videos/nometa.mp4",
    }
    assert "empty file" in reasons["videos/zero.mp4"]
    assert "same content as good_a" in reasons["videos/zz_copy_of_a.mp4"]
    assert "metadata file not found" in reasons["videos/nometa.mp4"]
    row = summary.manifest[0]
    assert len(row["sha256"]) == 64 and row["metadata"]["brand"] == "Acme"


def test_metadata_errors_are_one_line(tmp_path: Path) -> None:
    p = tmp_path / "m.json"
    p.write_bytes(b"\xff\xfe not utf8")
    with pytest.raises(MetadataError, match="not UTF-8"):
        load_metadata(p)
    p.write_text("{not json")
    with pytest.raises(MetadataError, match="not JSON"):
        load_metadata(p)
    p.write_text(json.dumps({"brand": "A", "category": "c", "attributes": {}, "price": {}}))
    with pytest.raises(MetadataError, match=r"price\.amount"):
        load_metadata(p)
    p.write_text(json.dumps({**META, "price": {"amount": float("nan")}}))
    with pytest.raises(MetadataError, match=r"price\.amount"):
        load_metadata(p)
