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
