"""`hivid narrate` on a demo video with a tiny trained checkpoint: chapters JSON, WebVTT, TCoT."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from hivid.narrate import NarrateError, parse_tcot, resolve_model_dir, tcot_text, webvtt_chapters

ROOT = Path(__file__).resolve().parents[2]


def test_webvtt_chapters_format() -> None:
    vtt = webvtt_chapters(
        [
            {"start": 0.0, "end": 4.5, "title": "Intro", "summary": "a red bottle"},
            {"start": 4.5, "end": 3725.25, "title": "Price --> now", "summary": ""},
        ]
    )
    assert vtt.splitlines()[:6] == [
        "WEBVTT", "Kind: chapters", "", "1", "00:00:00.000 --> 00:00:04.500", "Intro"
    ]  # fmt: skip
    assert "00:00:04.500 --> 01:02:05.250\nPrice -> now\n" in vtt


def test_tcot_parts() -> None:
    text = "<think>\n[0.0s-2.0s] a hand\n[bad] x\n</think>\n<chapters>\n[0.0s-2.0s] A | b\n"
    assert tcot_text(text) == "[0.0s-2.0s] a hand\n[bad] x"
    assert parse_tcot(text) == [{"start": 0.0, "end": 2.0, "observation": "a hand"}]
    assert tcot_text("<think> unfinished") == "unfinished"


def test_resolve_model_dir_errors(tmp_path: Path) -> None:
    with pytest.raises(NarrateError, match="not a narrator directory"):
        resolve_model_dir(str(tmp_path))


@pytest.fixture(scope="module")
def demo_and_model(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from hivid.data.demo import DemoConfig, generate_demo_corpus
    from hivid.models.narrator import narrator_config
    from hivid.training.fit import TrainConfig, train_stage
    from tests.unit.test_training import make_dataset

    root = tmp_path_factory.mktemp("narrate")
    cfg = DemoConfig(videos=1, min_duration=20.0, max_duration=22.0)
    ids = generate_demo_corpus(root / "demo", cfg)
    video = root / "demo" / "videos" / f"{ids[0]}.mp4"
    data = make_dataset(root / "dataset", n_videos=4)
    tcfg = TrainConfig(max_steps=2, batch_size=1, max_frames=4, limit_val_batches=0,
                       accelerator="cpu", devices=1)  # fmt: skip
    r = train_stage(1, data, root / "stage1", narrator_config("tiny"), tcfg)
    return {"video": video, "stage_dir": root / "stage1", "model_dir": r.model_dir, "root": root}


def test_narrate_cli_writes_chapters_vtt_tcot(demo_and_model: dict[str, Any]) -> None:
    from hivid.cli import main

    video = demo_and_model["video"]
    assert video.is_file()
    out = demo_and_model["root"] / "out"
    res = CliRunner().invoke(
        main,
        ["narrate", str(video), "--model", str(demo_and_model["stage_dir"]), "--out", str(out),
         "--max-new-tokens", "24", "--params", str(ROOT / "params.yaml")],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "chapters ->" in res.output
    report = json.loads((out / "chapters.json").read_text())
    assert report["model_dir"] == str(demo_and_model["model_dir"])
    assert report["asr_segments"] >= 1  # espeak narration heard by the packaged Whisper
    assert report["frames"] >= 20  # 1 fps over a >= 20 s video
    assert isinstance(report["chapters"], list) and isinstance(report["tcot"], list)
    assert (out / "chapters.vtt").read_text().startswith("WEBVTT\nKind: chapters\n")
    assert (out / "tcot.txt").is_file() and (out / "raw.txt").read_text().strip() != ""
    sample = json.loads((out / "input.jsonl").read_text().splitlines()[0])
    assert sample["asr"] and sample["frame_times"][0] == pytest.approx(0.0, abs=0.6)


def test_narrate_missing_video_is_one_line_error(tmp_path: Path) -> None:
    from hivid.cli import main

    res = CliRunner().invoke(main, ["narrate", str(tmp_path / "nope.mp4"), "--model", "x"])
    assert res.exit_code != 0
    assert "nope.mp4: no such video file" in res.output
