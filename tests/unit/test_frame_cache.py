"""build_dataset's frame cache: a warm build decodes nothing and writes byte-identical files; a
corrupt entry is decoded again; entries the build did not use are pruned."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

import hivid.dataset.build as build
from hivid.data import decode
from hivid.data.probe import sha256_file
from hivid.dataset.build import DatasetConfig, build_dataset
from hivid.dataset.frame_cache import cache_key, sampler_fingerprint
from tests.helpers import write_video

CFG = DatasetConfig(val_fraction=0.0, test_fraction=0.0, frame_size=16, max_frames=8)


def _corpus(root: Path, n: int) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """``n`` short videos under ``root/data`` (written once) with their manifest rows."""
    manifest, annotations = [], {}
    for i in range(n):
        vid = f"v{i}"
        path = root / f"data/videos/{vid}.mp4"
        if not path.exists():
            write_video(path, seconds=2.0, audio=False, seed=i)
        manifest.append(
            {
                "video_id": vid,
                "path": f"videos/{vid}.mp4",
                "duration": 2.0,
                "sha256": sha256_file(path),
            }
        )
        annotations[vid] = {
            "asr": {"segments": [{"start": 0.0, "end": 1.0, "text": "a serum"}]},
            "tcot": [],
            "chapters": [{"start": 0.0, "end": 2.0, "title": "Serum", "summary": "The serum."}],
        }
    return manifest, annotations


def _files(d: Path) -> dict[str, bytes]:
    return {
        p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()
    }


def _build(root: Path, out: str, cache: Path | None, cfg: DatasetConfig = CFG, n: int = 2) -> Any:
    manifest, ann = _corpus(root, n)
    return build_dataset(manifest, ann, sorted(ann), root / "data", root / out, cfg, None, cache)


def test_warm_build_decodes_nothing_and_writes_identical_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "frame_cache"
    plain = _build(tmp_path, "plain", None)
    assert "frame_cache" not in plain
    cold = _build(tmp_path, "cold", cache)
    assert cold["frame_cache"] == {
        "hits": 0,
        "misses": 2,
        "corrupt": 0,
        "write_errors": 0,
        "pruned": 0,
    }

    def no_decode(path: Path, cfg: DatasetConfig) -> Any:
        raise AssertionError(f"{path} decoded on a warm build")

    monkeypatch.setattr(build, "_sample_frames", no_decode)
    warm = _build(tmp_path, "warm", cache)
    assert warm["frame_cache"]["hits"] == 2 and warm["frame_cache"]["misses"] == 0
    files = _files(tmp_path / "plain")
    assert files == _files(tmp_path / "cold") == _files(tmp_path / "warm")
    assert "frame_cache" not in json.loads(files["summary.json"])
    assert {k: v for k, v in warm.items() if k != "frame_cache"} == plain


def test_rows_carry_the_manifest_content_hash(tmp_path: Path) -> None:
    _build(tmp_path, "ds", None)
    rows = [json.loads(x) for x in (tmp_path / "ds/train.jsonl").read_text().splitlines()]
    assert {r["video_id"]: r["sha256"] for r in rows} == {
        v: sha256_file(tmp_path / f"data/videos/{v}.mp4") for v in ("v0", "v1")
    }


def test_corrupt_entries_are_decoded_again(tmp_path: Path) -> None:
    cache = tmp_path / "frame_cache"
    _build(tmp_path, "cold", cache)
    npys = sorted(cache.glob("*.npy"))
    metas = sorted(cache.glob("*.json"))
    assert len(npys) == len(metas) == 2
    npys[0].write_bytes(npys[0].read_bytes()[:100])  # truncated
    metas[1].write_text("{not json")  # garbled metadata
    again = _build(tmp_path, "again", cache)
    assert again["frame_cache"]["corrupt"] == 2 and again["frame_cache"]["misses"] == 2
    assert _files(tmp_path / "again") == _files(tmp_path / "cold")
    healed = _build(tmp_path, "healed", cache)  # the bad entries were rewritten
    assert healed["frame_cache"]["hits"] == 2


def test_a_flipped_byte_fails_the_checksum(tmp_path: Path) -> None:
    cache = tmp_path / "frame_cache"
    _build(tmp_path, "cold", cache)
    npy = sorted(cache.glob("*.npy"))[0]
    data = bytearray(npy.read_bytes())
    data[-1] ^= 0xFF  # same length, valid npy, different pixels
    npy.write_bytes(bytes(data))
    again = _build(tmp_path, "again", cache)
    assert again["frame_cache"]["corrupt"] == 1
    assert _files(tmp_path / "again") == _files(tmp_path / "cold")


def test_unused_entries_are_pruned_and_settings_are_part_of_the_key(tmp_path: Path) -> None:
    cache = tmp_path / "frame_cache"
    _build(tmp_path, "two", cache, n=2)
    (cache / "README.txt").write_text("not an entry: left alone")
    one = _build(tmp_path, "one", cache, n=1)
    assert one["frame_cache"]["pruned"] == 1 and one["frame_cache"]["hits"] == 1
    assert len(list(cache.glob("*.npy"))) == 1 and (cache / "README.txt").exists()

    bigger = dataclasses.replace(CFG, frame_size=24)
    other = _build(tmp_path, "bigger", cache, cfg=bigger, n=1)
    assert other["frame_cache"]["misses"] == 1 and other["frame_cache"]["pruned"] == 1
    sha, fp = sha256_file(tmp_path / "data/videos/v0.mp4"), build._sampler()
    assert (cache / f"{cache_key(sha, 1.0, 24, 8, fp)}.npy").exists()
    assert cache_key(sha, 1.0, 24, 8, fp) != cache_key(sha, 1.0, 16, 8, fp)
    assert cache_key(sha, 1.0, 16, 8, fp) != cache_key("0" * 64, 1.0, 16, 8, fp)
    assert cache_key(sha, 1.0, 16, 8, fp) != cache_key(sha, 2.0, 16, 8, fp)
    assert cache_key(sha, 1.0, 16, 8, fp) != cache_key(sha, 1.0, 16, 9, fp)


def test_edited_sampling_code_misses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The key fingerprints the sampler's source: an edit nobody versioned still misses."""
    cache = tmp_path / "frame_cache"
    _build(tmp_path, "cold", cache, n=1)
    real = build._sampler()
    assert real == sampler_fingerprint(build._sample_frames, build._npy_bytes, decode)

    def edited(path: Path, cfg: DatasetConfig) -> Any:  # stands for an edited _sample_frames
        return build._sample_frames(path, cfg)

    assert sampler_fingerprint(edited, build._npy_bytes, decode) != real
    monkeypatch.setattr(
        build, "_sampler", lambda: sampler_fingerprint(edited, build._npy_bytes, decode)
    )
    s = _build(tmp_path, "edited", cache, n=1)
    assert s["frame_cache"]["misses"] == 1 and s["frame_cache"]["pruned"] == 1


def test_a_changed_video_misses(tmp_path: Path) -> None:
    cache = tmp_path / "frame_cache"
    _build(tmp_path, "cold", cache, n=1)
    write_video(tmp_path / "data/videos/v0.mp4", seconds=2.0, audio=False, seed=7)
    s = _build(tmp_path, "changed", cache, n=1)
    assert s["frame_cache"]["misses"] == 1 and s["frame_cache"]["pruned"] == 1
    assert _files(tmp_path / "changed") != _files(tmp_path / "cold")


def test_a_row_without_content_hash_is_decoded_and_not_cached(tmp_path: Path) -> None:
    manifest, ann = _corpus(tmp_path, 1)
    del manifest[0]["sha256"]
    cache = tmp_path / "frame_cache"
    for out in ("a", "b"):
        s = build_dataset(
            manifest, ann, ["v0"], tmp_path / "data", tmp_path / out, CFG, None, cache
        )
        assert s["frame_cache"]["misses"] == 1 and s["frame_cache"]["hits"] == 0
    assert not list(cache.glob("*.npy"))
    row = json.loads((tmp_path / "b/train.jsonl").read_text().splitlines()[0])
    assert row["sha256"] is None
