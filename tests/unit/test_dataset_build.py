"""build_dataset: model inputs come from the annotation record as the annotate stage left it."""

from __future__ import annotations

import json
from pathlib import Path

from hivid.dataset.build import DatasetConfig, build_dataset
from tests.helpers import write_video


def test_sentences_dropped_by_the_relevance_filter_are_not_model_input(tmp_path: Path) -> None:
    write_video(tmp_path / "data/videos/v1.mp4", seconds=2.0, audio=False)
    manifest = [{"video_id": "v1", "path": "videos/v1.mp4", "duration": 2.0}]
    segments = [
        {"start": 0.0, "end": 0.9, "text": "the Acme serum", "kept": True, "relevance": 5},
        {"start": 1.0, "end": 1.8, "text": "like and subscribe", "kept": False, "relevance": 1},
        {"start": 1.8, "end": 1.9, "text": "a version 1 record has no kept flag"},
    ]
    chapters = [{"start": 0.0, "end": 2.0, "title": "Serum", "summary": "The serum."}]
    ann = {"asr": {"segments": segments}, "tcot": [], "chapters": chapters}
    cfg = DatasetConfig(val_fraction=0.0, test_fraction=0.0)

    build_dataset(manifest, {"v1": ann}, ["v1"], tmp_path / "data", tmp_path / "ds", cfg)

    row = json.loads((tmp_path / "ds/train.jsonl").read_text().splitlines()[0])
    assert [s["text"] for s in row["asr"]] == [
        "the Acme serum",
        "a version 1 record has no kept flag",
    ]


def _two_videos(tmp_path: Path, gt_text: dict[str, str]) -> tuple[list[dict], dict]:
    manifest, anns = [], {}
    for vid in ("v1", "v2", "v3"):
        write_video(tmp_path / f"data/videos/{vid}.mp4", seconds=2.0, audio=False)
        gt = gt_text.get(vid)
        if gt is not None:
            (tmp_path / "data/ground_truth").mkdir(parents=True, exist_ok=True)
            (tmp_path / f"data/ground_truth/{vid}.json").write_text(gt)
        manifest.append(
            {
                "video_id": vid,
                "path": f"videos/{vid}.mp4",
                "duration": 2.0,
                "ground_truth": f"ground_truth/{vid}.json" if gt is not None else None,
            }
        )
        pseudo = [{"start": 0.0, "end": 2.0, "title": "OCR LINE", "summary": "Said."}]
        anns[vid] = {"asr": {"segments": []}, "tcot": [], "chapters": pseudo}
    return manifest, anns


def test_ground_truth_targets_where_a_video_has_usable_reference_chapters(tmp_path: Path) -> None:
    human = {
        "duration": 2.0,
        "chapters": [
            {"start": 1.0, "end": 2.0, "title": "Buy it", "summary": "Asks to buy.", "label": "c"},
            {"start": 0.0, "end": 1.0, "title": "Why", "summary": "A problem."},
        ],
    }
    broken = json.dumps({"chapters": [{"start": 1.0, "end": 0.5, "title": "x"}]})
    manifest, anns = _two_videos(tmp_path, {"v1": json.dumps(human), "v2": broken})
    cfg = DatasetConfig(val_fraction=0.0, test_fraction=0.0, targets="ground_truth")

    summary = build_dataset(
        manifest, anns, ["v1", "v2", "v3"], tmp_path / "data", tmp_path / "ds", cfg
    )

    rows = {
        r["video_id"]: r
        for r in map(json.loads, (tmp_path / "ds/train.jsonl").read_text().splitlines())
    }
    assert rows["v1"]["target_source"] == "ground_truth"
    assert [(c["start"], c["title"]) for c in rows["v1"]["chapters"]] == [
        (0.0, "Why"),
        (1.0, "Buy it"),
    ]
    assert rows["v1"]["chapters"][1]["label"] == "c"
    # an unusable reference falls back to the pseudo-labels, named with its reason
    assert rows["v2"]["target_source"] == "annotation"
    assert rows["v2"]["chapters"][0]["title"] == "OCR LINE"
    assert rows["v3"]["target_source"] == "annotation"
    assert summary["target_sources"] == {"annotation": 2, "ground_truth": 1}
    assert list(summary["target_errors"]) == ["v2"]
    assert summary["target_errors"]["v2"].endswith("v2.json: chapter 0 has no numeric start < end")

    # the default trains on pseudo-labels only, whatever reference files exist
    summary = build_dataset(
        manifest,
        anns,
        ["v1", "v2", "v3"],
        tmp_path / "data",
        tmp_path / "ds2",
        DatasetConfig(val_fraction=0.0, test_fraction=0.0),
    )
    assert summary["target_sources"] == {"annotation": 3, "ground_truth": 0}


def test_reference_chapter_errors_name_the_file_and_reason(tmp_path: Path) -> None:
    import re

    import pytest

    from hivid.dataset.build import reference_chapters

    cases = {
        "not json": "unreadable reference chapters",
        "[]": "no chapters",
        '{"chapters": []}': "no chapters",
        '{"chapters": [{"start": "0", "end": 1, "title": "t"}]}': "chapter 0 has no numeric start",
        '{"chapters": [{"start": 0, "end": 1, "title": " "}]}': "chapter 0 has no title",
        '{"chapters": [{"start": true, "end": 1, "title": "t"}]}': "chapter 0 has no numeric",
    }
    for i, (text, reason) in enumerate(cases.items()):
        path = tmp_path / f"g{i}.json"
        path.write_text(text)
        with pytest.raises(ValueError, match=re.escape(reason)) as err:
            reference_chapters(path)
        assert str(err.value).startswith(f"{path}: ")
    with pytest.raises(ValueError, match="unreadable"):
        reference_chapters(tmp_path / "missing.json")
    with pytest.raises(
        ValueError, match=r"dataset\.targets must be one of annotation, ground_truth"
    ):
        DatasetConfig(targets="human")  # type: ignore[arg-type]
