"""Ingest's rules word for word: config bounds, the batch verdict at its boundaries, metadata
reasons, the manifest reader, the duplicate-resolution order and the one-line reason helpers."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from hivid.configbase import ConfigError
from hivid.data.ingest import (
    MAX_METADATA_DEPTH,
    IngestConfig,
    IngestSummary,
    ManifestError,
    MetadataError,
    _manifest_rows,
    _one_line,
    _processing_order,
    load_metadata,
    read_manifest,
    shown_path,
)

META: dict[str, Any] = {
    "brand": "Acme",
    "category": "beauty",
    "attributes": {"volume": "500ml"},
    "price": {"amount": 0, "currency": "USD"},
}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("extensions", [], "ingest.extensions must not be empty"),
        ("min_fps", 0.0, "ingest: need 0 < min_fps <= max_fps"),
        ("min_fps", 121.0, "ingest: need 0 < min_fps <= max_fps"),
        ("max_duration_s", 0.0, "ingest.max_duration_s must be > 0"),
        ("max_pixels", 0, "ingest.max_pixels must be > 0"),
        ("probe_timeout_s", -0.5, "ingest.probe_timeout_s must be >= 0 (0: no limit)"),
        ("min_videos", -1, "ingest.min_videos must be >= 0"),
        ("max_metadata_bytes", 0, "ingest.max_metadata_bytes must be > 0"),
        ("max_quarantine_share", -0.25, "ingest.max_quarantine_share must be in [0, 1]"),
        ("max_quarantine_share", 1.25, "ingest.max_quarantine_share must be in [0, 1]"),
    ],
)
def test_config_is_validated(field: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        IngestConfig(**{field: value})  # type: ignore[arg-type]
    assert str(err.value) == message


def test_config_bounds_themselves_are_allowed() -> None:
    cfg = IngestConfig(
        min_fps=0.5,
        max_fps=0.5,
        max_duration_s=0.5,
        max_pixels=1,
        probe_timeout_s=0,
        min_videos=0,
        max_metadata_bytes=1,
        max_quarantine_share=0,
    )
    assert cfg.min_fps == cfg.max_fps == 0.5
    assert IngestConfig(max_quarantine_share=1).max_quarantine_share == 1
    d = IngestConfig()
    assert (d.extensions, d.max_pixels, d.max_metadata_bytes) == (
        [".mp4", ".mov", ".mkv", ".webm"],
        3840 * 2160,
        1 << 20,
    )


def summary(good: int, bad: int) -> IngestSummary:
    rows = [{"video_id": f"v{i}", "variable_frame_rate": i == 1} for i in range(good)]
    return IngestSummary(rows, [{"path": f"videos/b{i}", "reason": "r"} for i in range(bad)])


def test_batch_verdict_boundaries() -> None:
    # exactly min_videos usable and exactly the quarantine share: the batch goes on
    assert summary(2, 2).batch_failures(IngestConfig(min_videos=2, max_quarantine_share=0.5)) == []
    assert summary(1, 3).batch_failures(IngestConfig(min_videos=2, max_quarantine_share=0.5)) == [
        "1 usable video(s) of 4 file(s), fewer than ingest.min_videos 2",
        "3 of 4 files quarantined (75%), more than ingest.max_quarantine_share 50%",
    ]
    assert summary(0, 0).batch_failures(IngestConfig(min_videos=0, max_quarantine_share=0)) == []
    assert summary(0, 0).batch_failures(IngestConfig()) == [
        "0 usable video(s) of 0 file(s), fewer than ingest.min_videos 1"
    ]


def test_summary_to_dict() -> None:
    assert summary(2, 1).to_dict() == {
        "videos": 2,
        "quarantined": 1,
        "video_ids": ["v0", "v1"],
        "quarantine": [{"path": "videos/b0", "reason": "r"}],
        "variable_frame_rate": ["v1"],
    }


def meta_reason(tmp_path: Path, content: bytes | str, max_bytes: int = 1 << 20) -> str:
    p = tmp_path / "m.json"
    p.write_bytes(content.encode() if isinstance(content, str) else content)
    with pytest.raises(MetadataError) as err:
        load_metadata(p, max_bytes)
    text = str(err.value)
    assert text.startswith(f"{p}: ") and "\n" not in text
    return text.removeprefix(f"{p}: ")


def test_metadata_reasons_word_for_word(tmp_path: Path) -> None:
    with pytest.raises(MetadataError) as err:
        load_metadata(tmp_path / "none.json")
    assert str(err.value) == f"{tmp_path / 'none.json'}: metadata file not found"
    with pytest.raises(MetadataError) as err:
        load_metadata(tmp_path)
    assert str(err.value) == f"{tmp_path}: is a directory, not a metadata file"
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    with pytest.raises(MetadataError) as err:
        load_metadata(fifo)
    assert str(err.value) == f"{fifo}: metadata is not a regular file (FIFO, socket or device)"
    ok = json.dumps(META)
    assert load_metadata(_write(tmp_path / "ok.json", ok), len(ok)) == META  # exactly the limit
    assert meta_reason(tmp_path, ok, len(ok) - 1) == (
        f"metadata larger than ingest.max_metadata_bytes ({len(ok) - 1} bytes)"
    )
    assert meta_reason(tmp_path, b'{"brand": "\xff"}') == "metadata is not UTF-8 (byte 11)"
    assert meta_reason(tmp_path, '{"brand": }') == (
        "metadata is not JSON (Expecting value, line 1)"
    )
    assert meta_reason(tmp_path, "[1]") == "metadata must be a JSON object"
    deep = '{"a": ' * 40 + "1" + "}" * 40
    assert meta_reason(tmp_path, deep) == f"metadata nested deeper than {MAX_METADATA_DEPTH} levels"
    assert meta_reason(tmp_path, "[" * 100_000 + "]" * 100_000) == (
        f"metadata nested deeper than {MAX_METADATA_DEPTH} levels"
    )
    big = '{"n": ' + "9" * (sys.get_int_max_str_digits() + 1) + "}"
    assert meta_reason(tmp_path, big) == (
        f"metadata holds an integer with more than {sys.get_int_max_str_digits()} digits"
    )


def _write(p: Path, text: str) -> Path:
    p.write_text(text, encoding="utf-8")
    return p


@pytest.mark.parametrize(
    ("meta", "reason"),
    [
        (
            {**META, "price": {"amount": float("inf")}},
            "'price.amount' is inf (not a finite number)",
        ),
        ({**META, "attributes": {"w": [1, float("nan")]}}, "'attributes.w[1]' is nan (not a "),
        ({**META, "x\ud800": 1}, "'a key of the object' holds a lone UTF-16 surrogate"),
        ({**META, "attributes": {"k\ud800": 1}}, "'a key of attributes' holds a lone UTF-16"),
        ({**META, "brand": "\ud800"}, "'brand' holds a lone UTF-16 surrogate (not encodable"),
        ({**META, "list": [["\ud800"]]}, "'list[0][0]' holds a lone UTF-16 surrogate"),
    ],
)
def test_metadata_values_the_manifest_cannot_hold(
    tmp_path: Path, meta: dict[str, Any], reason: str
) -> None:
    # json.dumps writes a lone surrogate as a \ud800 escape and inf/nan as Infinity/NaN
    assert meta_reason(tmp_path, json.dumps(meta)).startswith(reason)


def test_metadata_fields_are_checked_together(tmp_path: Path) -> None:
    bad = {"brand": 3, "category": " ", "attributes": [], "price": {"amount": True}}
    assert meta_reason(tmp_path, json.dumps(bad)) == (
        "'brand' missing or not a non-empty string; 'category' missing or not a non-empty "
        "string; 'attributes' missing or not an object; 'price.amount' missing or not a "
        "non-negative number"
    )
    for amount in (-0.5, "9", None):
        m = {**META, "price": {"amount": amount}}
        assert meta_reason(tmp_path, json.dumps(m)) == (
            "'price.amount' missing or not a non-negative number"
        )
    assert meta_reason(tmp_path, json.dumps({**META, "price": 9})) == (
        "'price.amount' missing or not a non-negative number"
    )
    assert load_metadata(
        _write(tmp_path / "f.json", json.dumps({**META, "price": {"amount": 2.5}}))
    )


def test_manifest_reader(tmp_path: Path) -> None:
    p = tmp_path / "manifest.jsonl"
    good = {"video_id": "a", "path": "videos/a.mp4"}
    p.write_text(json.dumps(good) + "\n\n  \n" + json.dumps(good) + "\n")
    assert read_manifest(p) == [good, good]
    for line, why in (
        ("[1]", "row is not a JSON object"),
        ('{"video_id": "a", "path": 3}', "path 3 is not a relative path inside the data root"),
        ('{"video_id": "a"}', "path None is not a relative path inside the data root"),
        ('{"video_id": "a", "path": "v/../../x"}', "path 'v/../../x' is not a relative path"),
        ('{"video_id": 7, "path": "/abs"}', "video id 7 is not a string"),
        ("{oops", "not JSON (Expecting property name enclosed in double quotes)"),
    ):
        p.write_text(json.dumps(good) + "\n" + line + "\n")
        with pytest.raises(ManifestError) as err:
            read_manifest(p)
        assert str(err.value).startswith(f"{p}:2: {why}"), str(err.value)
    with pytest.raises(FileNotFoundError) as nf:
        read_manifest(tmp_path / "none.jsonl")
    assert (
        str(nf.value) == f"{tmp_path / 'none.jsonl'}: manifest not found (run `hivid ingest` first)"
    )


def test_manifest_rows_skip_what_is_not_a_row() -> None:
    data = b'{"path": "a"}\nnot json\n[1]\n{"path": "b\xff"}\n'
    assert _manifest_rows(data) == [{"path": "a"}, {"path": "b\ufffd"}]


def test_processing_order_previous_manifest_first_then_mtime_then_name(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    files = {}
    for name, mtime in (("n1", 30), ("n2", 10), ("p1", 50), ("p2", 40), ("t1", 20), ("t2", 20)):
        f = videos / f"{name}.mp4"
        f.write_bytes(b"x")
        os.utime(f, ns=(mtime * 10**9, mtime * 10**9))
        files[name] = f
    previous = [
        {"path": "videos/p2.mp4"},
        "junk",
        {"path": 3},
        {"path": "videos/p1.mp4"},
        {"path": "videos/p2.mp4"},
    ]
    order = _processing_order(list(files.values()), tmp_path, previous)
    assert [p.stem for p in order] == ["p2", "p1", "n2", "t1", "t2", "n1"]


def test_reasons_show_control_characters_escaped() -> None:
    assert shown_path("videos/a\nb\t.mp4") == "videos/a\\nb\\t.mp4"
    assert shown_path("videos/ünï \\'\".mp4") == "videos/ünï \\'\".mp4"  # printable: as is
    assert _one_line("a\nb\n") == "a b " and _one_line("a b") == "a b"


def test_huge_integer_reason_names_the_interpreters_limit(tmp_path: Path) -> None:
    limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(1000)
    try:
        big = '{"n": ' + "9" * 1001 + "}"
        assert meta_reason(tmp_path, big) == "metadata holds an integer with more than 1000 digits"
    finally:
        sys.set_int_max_str_digits(limit)


def nested(levels: int) -> dict[str, Any]:
    """Valid metadata whose deepest object is ``levels`` deep (the top-level object is 1)."""
    inner: dict[str, Any] = {}
    for _ in range(levels - 2):
        inner = {"a": inner}
    return {**META, "attributes": inner}


def test_nesting_limit_is_exact(tmp_path: Path) -> None:
    assert load_metadata(_write(tmp_path / "ok.json", json.dumps(nested(MAX_METADATA_DEPTH))))
    assert meta_reason(tmp_path, json.dumps(nested(MAX_METADATA_DEPTH + 1))) == (
        f"metadata nested deeper than {MAX_METADATA_DEPTH} levels"
    )


def test_long_keys_are_cut_to_80_characters_in_reasons(tmp_path: Path) -> None:
    key = "k" * 100
    assert meta_reason(tmp_path, json.dumps({**META, key: float("nan")})) == (
        f"'{'k' * 80}' is nan (not a finite number)"
    )
    assert meta_reason(tmp_path, json.dumps({**META, key: "\ud800"})) == (
        f"'{'k' * 80}' holds a lone UTF-16 surrogate (not encodable as UTF-8)"
    )


def test_unstatable_metadata_path(tmp_path: Path) -> None:
    p = tmp_path / ("m" * 300 + ".json")  # longer than a file name may be
    with pytest.raises(MetadataError) as err:
        load_metadata(p)
    assert str(err.value) == f"{p}: cannot read metadata (File name too long)"


def test_processing_order_ties_and_vanished_files(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    early = videos / "a_early.mp4"  # modified at the epoch: still after every listed file
    early.write_bytes(b"x")
    os.utime(early, ns=(0, 0))
    listed = videos / "z_listed.mp4"
    listed.write_bytes(b"x")
    gone = videos / "a_gone.mp4"  # listed by the walk, deleted before it is sorted: mtime 0
    later = videos / "b_later.mp4"
    later.write_bytes(b"x")
    os.utime(later, ns=(0, 0))
    order = _processing_order(
        [later, gone, early, listed], tmp_path, [{"path": "videos/z_listed.mp4"}]
    )
    assert [p.name for p in order] == ["z_listed.mp4", "a_early.mp4", "a_gone.mp4", "b_later.mp4"]
