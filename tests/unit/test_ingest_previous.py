"""Where ingest finds the manifest it wrote last time (duplicate resolution keeps that copy).

``previous_manifest`` reads ``out_dir/manifest.jsonl`` when it is there, else (under ``dvc repro``
DVC removes the old output first) the copy in the project's DVC cache that dvc.lock points at;
anything it cannot read gives ``[]``, never an error. Pure file work: no video is probed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from hivid.data.ingest import previous_manifest

ROW = {"video_id": "b_original", "path": "videos/b_original.mp4"}


def _project(
    ws: Path,
    listing: object = None,
    manifest: bytes | None = None,
    lock_md5: str | None = "bb22.dir",
) -> Path:
    """A project at ``ws`` whose dvc.lock records outputs/ingest with ``lock_md5``, the directory
    listing ``bb/22.dir`` (default: manifest.jsonl -> aa/11) and the object ``aa/11``."""
    cache = ws / ".dvc" / "cache" / "files" / "md5"
    (cache / "aa").mkdir(parents=True)
    (cache / "bb").mkdir()
    data = (json.dumps(ROW) + "\n").encode() if manifest is None else manifest
    (cache / "aa" / "11").write_bytes(data)
    if listing is None:
        listing = [
            {"md5": "cc33", "relpath": "quarantine.jsonl"},
            {"md5": "aa11", "relpath": "manifest.jsonl"},
        ]
    (cache / "bb" / "22.dir").write_text(json.dumps(listing))
    (cache / "bb" / "22").write_text(json.dumps(listing))  # read only if ".dir" went unchecked
    outs = [{"path": "outputs/ingest", **({"md5": lock_md5} if lock_md5 else {})}]
    (ws / "dvc.lock").write_text(yaml.safe_dump({"stages": {"ingest": {"outs": outs}}}))
    return ws / "outputs" / "ingest"


def test_reads_the_cache_copy_dvc_lock_points_at(tmp_path: Path) -> None:
    out = _project(tmp_path)
    assert previous_manifest(tmp_path, out) == [ROW]


def test_a_relative_out_dir_is_taken_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _project(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert previous_manifest(tmp_path, Path("outputs/ingest")) == [ROW]
    monkeypatch.chdir(tmp_path / ".dvc")  # outputs/ingest from here is not the locked output
    assert previous_manifest(tmp_path, Path("outputs/ingest")) == []


def test_the_file_still_in_place_wins_over_the_cache(tmp_path: Path) -> None:
    out = _project(tmp_path)
    out.mkdir(parents=True)
    here = {"video_id": "a_copy", "path": "videos/a_copy.mp4"}
    (out / "manifest.jsonl").write_text(json.dumps(here) + "\n")
    assert previous_manifest(tmp_path, out) == [here]


def test_rows_that_are_not_objects_or_not_json_are_skipped(tmp_path: Path) -> None:
    raw = b'{"video_id": "a"}\nnot json\n[1, 2]\n"text"\n{"video_id": "caf\xe9"}\n'
    out = _project(tmp_path, manifest=raw)
    assert previous_manifest(tmp_path, out) == [{"video_id": "a"}, {"video_id": "caf\ufffd"}]


def test_an_out_dir_outside_the_project_has_no_previous_manifest(tmp_path: Path) -> None:
    _project(tmp_path / "ws")
    elsewhere = tmp_path / "other" / "outputs" / "ingest"
    assert previous_manifest(tmp_path / "ws", elsewhere) == []


@pytest.mark.parametrize(
    ("listing", "lock_md5"),
    [
        (None, None),  # dvc.lock has no md5 for the output yet
        (None, "bb22"),  # a file output, not a directory listing
        ([{"md5": "cc33", "relpath": "quarantine.jsonl"}], "bb22.dir"),  # no manifest in it
        ([{"relpath": "manifest.jsonl"}], "bb22.dir"),  # an entry without its md5
        (["manifest.jsonl"], "bb22.dir"),  # entries that are not objects
        (5, "bb22.dir"),  # not a list at all
        (None, "dd44.dir"),  # the listing is not in the cache (pulled without it)
        ([{"md5": "ee55", "relpath": "manifest.jsonl"}], "bb22.dir"),  # the object is missing
        ([{"md5": 7, "relpath": "manifest.jsonl"}], "bb22.dir"),  # an md5 that is no string
    ],
)
def test_anything_it_cannot_read_gives_no_rows(
    tmp_path: Path, listing: object, lock_md5: str | None
) -> None:
    out = _project(tmp_path, listing=listing, lock_md5=lock_md5)
    assert previous_manifest(tmp_path, out) == []


def test_a_listing_that_is_not_json_gives_no_rows(tmp_path: Path) -> None:
    out = _project(tmp_path)
    (tmp_path / ".dvc" / "cache" / "files" / "md5" / "bb" / "22.dir").write_text("{not json")
    assert previous_manifest(tmp_path, out) == []


def test_no_dvc_lock_gives_no_rows(tmp_path: Path) -> None:
    out = _project(tmp_path)
    (tmp_path / "dvc.lock").unlink()
    assert previous_manifest(tmp_path, out) == []
