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
    from tests.helpers import make_dataset

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
    report = json.loads((out / "chapters.json").read_text())
    # a 2-step model rarely writes a chapter: then the outputs are written, a warning is printed
    # and the exit status says so
    assert res.exit_code == (0 if report["chapters"] else 2), res.output
    assert "chapters ->" in res.output
    assert bool(report["chapters"]) != any("no chapters" in w for w in report["warnings"])
    assert report["model_dir"] == str(demo_and_model["model_dir"])
    assert report["duration"] == pytest.approx(21.0, abs=1.5)  # the demo video is 20-22 s
    assert report["asr_segments"] >= 1  # espeak narration heard by the packaged Whisper
    assert report["frames"] >= 20  # 1 fps over a >= 20 s video
    assert isinstance(report["chapters"], list) and isinstance(report["tcot"], list)
    assert all(c["end"] <= report["duration"] for c in report["chapters"] + report["tcot"])
    assert set(report["checks"]["chapters"]) >= {"clipped", "rejected", "kept"}
    assert (out / "chapters.vtt").read_text().startswith("WEBVTT\nKind: chapters\n")
    assert (out / "tcot.txt").is_file() and (out / "raw.txt").read_text().strip() != ""
    assert (out / "transcript.txt").read_text().strip() != ""
    sample = json.loads((out / "input.jsonl").read_text().splitlines()[0])
    assert sample["asr"] and sample["frame_times"][0] == pytest.approx(0.0, abs=0.6)


def test_narrate_metadata_corrects_and_filters_the_asr_the_model_reads(
    demo_and_model: dict[str, Any],
) -> None:
    """With --metadata the ASR goes through the annotate stage's correction, as in training: a
    brand spelled one letter away from a word Whisper heard replaces that word in the model's
    input; without it a note says the ASR is read as transcribed."""
    from hivid.annotate.correction import STOP_WORDS
    from hivid.cli import main

    video, root = demo_and_model["video"], demo_and_model["root"]
    common = ["--model", str(demo_and_model["stage_dir"]), "--max-new-tokens", "8",
              "--params", str(ROOT / "params.yaml"), "--allow-empty"]  # fmt: skip
    plain = CliRunner().invoke(main, ["narrate", str(video), "--out", str(root / "o1"), *common])
    assert plain.exit_code == 0, plain.output
    assert "no --metadata: the ASR is read as transcribed" in plain.output
    heard = json.loads((root / "o1" / "chapters.json").read_text())["asr"]
    meta = json.loads((root / "demo" / "metadata" / f"{video.stem}.json").read_text())
    taken = set(json.dumps(meta).lower().replace('"', " ").split())  # words of metadata terms
    word = next(
        w
        for s in heard
        for w in str(s["text"]).split()
        if w.isalpha() and len(w) >= 6 and w.lower() not in STOP_WORDS | taken
    )
    brand = word[:-1].capitalize() + ("q" if word[-1] != "q" else "z")
    meta_path = root / "meta.json"
    meta_path.write_text(json.dumps({**meta, "brand": brand}))
    res = CliRunner().invoke(
        main, ["narrate", str(video), "--out", str(root / "o2"), "--metadata", str(meta_path),
               *common],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert f"ASR checked against {meta_path}" in res.output and "no --metadata" not in res.output
    report = json.loads((root / "o2" / "chapters.json").read_text())
    assert report["correction"]["lexicon_changes"] >= 1
    assert all("text_raw" in s and "kept" in s for s in report["asr"])
    sample = json.loads((root / "o2" / "input.jsonl").read_text().splitlines()[0])
    kept = [s for s in report["asr"] if s["kept"]]
    assert sample["asr"] == [
        {"start": s["start"], "end": s["end"], "text": s["text"]} for s in kept
    ]
    assert any(brand in s["text"] for s in sample["asr"])  # a sentence naming the brand is kept
    bad = CliRunner().invoke(
        main, ["narrate", str(video), "--metadata", str(root / "none.json"), *common]
    )
    assert bad.exit_code != 0 and "none.json: metadata file not found" in bad.output


def _audio_only_copy(video: Path, dest: Path) -> Path:
    """The audio track of ``video`` alone in an .m4a (stream copy: the same narration)."""
    import av

    with av.open(str(video)) as src, av.open(str(dest), "w", format="mp4") as out:
        a_in = src.streams.audio[0]
        a_out = out.add_stream_from_template(a_in)
        for packet in src.demux(a_in):
            if packet.dts is None:
                continue
            packet.stream = a_out
            out.mux(packet)
    return dest


def test_narrate_audio_only_transcribes_and_says_why_no_chapters(
    demo_and_model: dict[str, Any],
) -> None:
    from hivid.cli import main

    audio = _audio_only_copy(demo_and_model["video"], demo_and_model["root"] / "speech.m4a")
    out = demo_and_model["root"] / "out_audio"
    args = ["narrate", str(audio), "--model", str(demo_and_model["stage_dir"]), "--out",
            str(out), "--params", str(ROOT / "params.yaml")]  # fmt: skip
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2, res.output
    assert "audio only (no video stream)" in res.output and "no chapters were made" in res.output
    report = json.loads((out / "chapters.json").read_text())
    assert report["has_video"] is False and report["chapters"] == []
    assert report["asr_segments"] >= 1 and report["duration"] > 15
    assert "[" in (out / "transcript.txt").read_text()
    assert CliRunner().invoke(main, [*args, "--allow-empty"]).exit_code == 0


def test_narrate_clips_and_counts_chapters_past_the_end(
    demo_and_model: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The narrator's output (faked here: a real tiny model rarely writes chapters) is checked
    against the video's duration before anything is written."""
    import hivid.training.generate as gen
    from hivid.cli import main

    text = (
        "<think>\n[0.0s-5.0s] a bottle\n[40.0s-45.0s] later\n</think>\n<chapters>\n"
        "[0.0s-12.0s] Intro | hi\n[10.0s-35.0s] Price | buy\n[40.0s-50.0s] Ghost | none\n"
    )
    monkeypatch.setattr(gen, "generate_chapters", lambda *a, **k: (text, gen.parse_chapters(text)))
    out = demo_and_model["root"] / "out_clip"
    res = CliRunner().invoke(
        main,
        ["narrate", str(demo_and_model["video"]), "--model", str(demo_and_model["stage_dir"]),
         "--out", str(out), "--params", str(ROOT / "params.yaml")],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "2 chapters" in res.output and "2 clipped, 1 rejected" in res.output
    report = json.loads((out / "chapters.json").read_text())
    d = report["duration"]
    assert [(c["start"], c["end"]) for c in report["chapters"]] == [(0.0, 12.0), (12.0, d)]
    assert [t["end"] for t in report["tcot"]] == [5.0]
    assert report["checks"]["chapters"] == {
        "checked": 3, "kept": 2, "clipped": 2, "rejected": 1, "reordered": 0
    }  # fmt: skip
    assert any("past_end" in n for n in report["notes"])
    vtt = (out / "chapters.vtt").read_text()
    assert "Ghost" not in vtt and "00:00:35.000" not in vtt


def test_narrate_missing_video_is_one_line_error(tmp_path: Path) -> None:
    from hivid.cli import main

    res = CliRunner().invoke(main, ["narrate", str(tmp_path / "nope.mp4"), "--model", "x"])
    assert res.exit_code != 0
    assert "nope.mp4: no such video file" in res.output
