"""The annotate stage end to end on tiny real clips: schema, cache hits, quarantine, workers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hivid.annotate.asr import ASRResult
from hivid.annotate.batch import AnnotateSummary, annotate_batch
from hivid.annotate.config import AnnotateConfig
from hivid.annotate.keys import cache_key, step_keys
from hivid.annotate.resources import Models
from hivid.annotate.steps import annotate_video
from hivid.configbase import ConfigError, from_mapping
from hivid.data.probe import sha256_file
from hivid.labels import SCRIPT_LABELS, word_budget
from tests.helpers import write_scenes

RED, BLUE = (200, 30, 40), (30, 60, 200)
SPEECH = "Meet the new red shampoo. It costs only fifty nine dollars. Order yours now."


def write_clip(
    path: Path,
    scenes: list[tuple[float, tuple[int, int, int], str]],
    audio: np.ndarray | None = None,
    fps: int = 5,
    size: tuple[int, int] = (320, 180),
    sample_rate: int = 22050,
) -> Path:
    """H.264 (+ AAC for int16 ``audio``) mp4 of scenes [(seconds, background, on-screen text)]."""
    return write_scenes(
        path, list(scenes), fps=fps, size=size, audio=audio, sample_rate=sample_rate
    )


def entry(root: Path, name: str, duration: float, has_audio: bool) -> dict[str, Any]:
    p = root / name
    sha = sha256_file(p) if p.exists() else "0" * 64
    return {
        "video_id": Path(name).stem,
        "path": name,
        "sha256": sha,
        "duration": duration,
        "has_audio": has_audio,
        "metadata": {"brand": "Lumina", "category": "shampoo"},
    }


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    from hivid.data.tts import synthesize

    root = tmp_path_factory.mktemp("data")
    (root / "videos").mkdir()
    pcm, _ = synthesize(SPEECH)
    dur = round(len(pcm) / 22050 + 0.4, 1)
    half = dur / 2
    write_clip(
        root / "videos/talk.mp4",
        [(half, RED, "Red Shampoo"), (dur - half, BLUE, "Only $59")],
        audio=pcm,
    )
    write_clip(root / "videos/mute.mp4", [(2.0, BLUE, "Sale")])
    (root / "videos/corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    entries = [
        entry(root, "videos/talk.mp4", dur, True),
        entry(root, "videos/mute.mp4", 2.0, False),
        entry(root, "videos/corrupt.mp4", 3.0, True),
    ]
    return root, entries


def tiny_cfg(**kw: Any) -> AnnotateConfig:
    return from_mapping(AnnotateConfig, {"asr_model": "tiny.en", "min_chapter_s": 1.0, **kw})


def test_config_validation() -> None:
    cfg = tiny_cfg()
    assert cfg.asr_backend == "faster-whisper" and cfg.fps == 1.0
    with pytest.raises(ConfigError, match="similarity_threshold"):
        tiny_cfg(similarity_threshold=1.5)
    with pytest.raises(ConfigError, match="asr_backend"):
        tiny_cfg(asr_backend="whisper.cpp")
    with pytest.raises(ConfigError, match="unknown key"):
        tiny_cfg(fsp=1.0)


def test_step_keys_track_only_their_own_knobs() -> None:
    ids = {"asr": "m", "embedder": "e", "prompts": {"relevance": "r", "tcot_refine": "t"}}
    meta = {"brand": "Lumina"}

    def keys(sha: str = "a" * 64, m: dict[str, Any] = meta, i: Any = ids, **kw: Any) -> dict:
        return step_keys(sha, m, tiny_cfg(**kw), i)

    base = keys()
    assert base == keys(workers=4, progress_bars=False)
    assert cache_key(base) == cache_key(keys(workers=4))

    def changed(other: dict[str, str]) -> set[str]:
        return {k for k in base if base[k] != other[k]}

    assert changed(keys("b" * 64)) == {"asr", "frames", "correction", "chapters"}
    assert changed(keys(shot_threshold=0.3)) == {"frames", "chapters"}
    assert changed(keys(relevance_threshold=3)) == {"correction", "chapters"}
    assert changed(keys(min_chapter_s=2.0)) == {"chapters"}
    assert changed(keys(topic_shift_threshold=None)) == {"chapters"}
    assert changed(keys(m={"brand": "Other"})) == {"correction", "chapters"}
    assert changed(keys(i={**ids, "asr": "m2"})) == {"asr", "correction", "chapters"}
    assert changed(keys(i={**ids, "prompts": {"relevance": "r2", "tcot_refine": "t"}})) == {
        "correction",
        "chapters",
    }
    # LLM knobs only count when an LLM is configured.
    assert changed(keys(llm_correct=False)) == set()
    llm = {"backend": "endpoint", "model": "qwen"}
    assert changed(keys(llm=llm)) == {"correction", "chapters"}
    assert keys(llm=llm)["correction"] != keys(llm=llm, llm_correct=False)["correction"]
    assert keys(llm=llm)["correction"] == keys(llm={**llm, "timeout_s": 5.0})["correction"]


def test_batch_annotates_caches_and_quarantines(
    corpus: tuple[Path, list[dict[str, Any]]], tmp_path: Path
) -> None:
    root, entries = corpus
    out = tmp_path / "ann"
    seen: list[tuple[str, int, int]] = []
    s = annotate_batch(entries, root, out, tiny_cfg(), progress=lambda *a: seen.append(a))
    assert isinstance(s, AnnotateSummary)
    assert s.annotated == ["mute", "talk"] and s.cached == []
    (q,) = s.quarantined
    assert q["video_id"] == "corrupt" and q["stage"] == "annotate"
    assert q["path"] == "videos/corrupt.mp4"
    assert q["reason"].startswith("videos/corrupt.mp4: ") and "\n" not in q["reason"]
    assert all(isinstance(v, float) for v in s.timings.values()) and s.timings["videos_s"] > 0
    assert [x[1:] for x in seen] == [(1, 3), (2, 3), (3, 3)]
    assert sorted(p.name for p in out.iterdir()) == ["mute.json", "talk.json"]

    text = (out / "talk.json").read_text()
    rec = json.loads(text)
    assert text == json.dumps(rec, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    assert rec["schema_version"] == 2 and rec["video_id"] == "talk"
    assert set(rec["step_keys"]) == {"asr", "frames", "correction", "chapters"}
    assert rec["cached_steps"] == [] and len(rec["prompts"]["relevance"]) == 64
    assert rec["models"]["embedder"] == "all-MiniLM-L6-v2"
    assert len(rec["models"]["embedder_sha256"]) == 64
    assert rec["sha256"] == entries[0]["sha256"]
    asr = rec["asr"]
    assert asr["audio"] is True and asr["model"] == "tiny.en" and asr["language"] == "en"
    assert asr["word_timestamps"] == "faster-whisper" and len(asr["model_sha256"]) == 64
    spoken = " ".join(x["text"] for x in asr["segments"]).lower()
    assert "shampoo" in spoken and "order" in spoken
    for seg in asr["segments"]:
        assert {"text_raw", "relevance", "kept", "corrections"} <= set(seg)
        assert 0 <= seg["relevance"] <= 5 and seg["kept"] == (seg["relevance"] >= 4)
    assert rec["correction"]["relevance_scorer"] == "exemplar-knn"
    assert rec["correction"]["kept"] + rec["correction"]["dropped"] == len(asr["segments"])
    fr = rec["frames"]
    assert [i["t"] for i in fr["items"]] == [float(k) for k in range(len(fr["items"]))]
    assert fr["described"] == sum(i["reused_from"] is None for i in fr["items"]) < len(fr["items"])
    assert sum(i["shot_change"] for i in fr["items"]) == 1
    assert "RedShampoo" in fr["items"][0]["ocr_text"].replace(" ", "")
    ch = rec["chapters"]
    assert len(ch) == 2 and ch[0]["start"] == 0.0 and ch[-1]["end"] == rec["duration"]
    assert ch[0]["end"] == ch[1]["start"]
    assert ch[0]["title"].replace(" ", "") == "RedShampoo" and "59" in ch[1]["title"]
    assert rec["tcot"] and all("Narration" in t["observation"] for t in rec["tcot"])
    for c in ch:
        assert c["script_label"] in SCRIPT_LABELS and c["script_label_source"] == "prototype-nn"
        lo, hi = word_budget(c["end"] - c["start"])
        assert c["word_budget"] == {"min": lo, "max": hi, "unit": "words"}
    assert set(rec["timings"]) == {"asr_s", "frames_s", "correction_s", "chapters_s", "total_s"}

    mute = json.loads((out / "mute.json").read_text())
    assert mute["asr"]["audio"] is False and mute["asr"]["segments"] == []
    assert mute["chapters"][0]["title"] == "Sale" and mute["chapters"][-1]["end"] == 2.0

    # Second run: everything good is served from cache, the corrupt file is quarantined again.
    s2 = annotate_batch(entries, root, out, tiny_cfg())
    assert s2.annotated == [] and sorted(s2.cached) == ["mute", "talk"]
    assert [q["video_id"] for q in s2.quarantined] == ["corrupt"]
    assert s2.step_cache_hits == {"asr": 2, "frames": 2, "correction": 2, "chapters": 2}
    # A chapter knob re-runs only the chapter sub-step: ASR (a fake that fails when called),
    # frames and correction are reused from the previous record.
    cfg = tiny_cfg(min_chapter_s=1.5)
    s3 = annotate_batch(entries[:1], root, out, cfg, models=Models(cfg, asr=SilentASR()))
    assert s3.annotated == ["talk"] and s3.cached == [] and s3.quarantined == []
    rec3 = json.loads((out / "talk.json").read_text())
    assert rec3["cached_steps"] == ["asr", "frames", "correction"]
    assert rec3["asr"] == rec["asr"] and rec3["frames"] == rec["frames"]
    assert s3.step_cache_hits == {"asr": 1, "frames": 1, "correction": 1, "chapters": 0}
    # A frame knob re-runs frames and chapters, not ASR or correction.
    cfg = tiny_cfg(shot_threshold=0.3)
    s4 = annotate_batch(entries[1:2], root, out, cfg, models=Models(cfg, asr=SilentASR()))
    assert s4.annotated == ["mute"] and s4.cached == []
    assert json.loads((out / "mute.json").read_text())["cached_steps"] == ["asr", "correction"]


class SilentASR:
    """Test fake: never called for a video without audio."""

    name = "silent"

    def transcribe(
        self, audio: np.ndarray, sample_rate: int = 16000, language: str | None = None
    ) -> ASRResult:
        raise AssertionError("no audio track: ASR must not run")


class TextDescriber:
    name = "fixed-text"

    def describe(self, image: np.ndarray) -> dict[str, Any]:
        return {"ocr": [{"text": "Sale", "score": 0.9}], "ocr_text": "Sale", "colors": ["#1e3cc8"]}


def test_annotate_video_vision_only(corpus: tuple[Path, list[dict[str, Any]]]) -> None:
    root, entries = corpus
    rec = annotate_video(
        root / "videos/mute.mp4",
        "mute",
        entries[1]["sha256"],
        2.0,
        {},
        tiny_cfg(),
        Models(tiny_cfg(), asr=SilentASR(), describer=TextDescriber()),
    )
    assert rec["asr"]["audio"] is False and rec["asr"]["word_timestamps"] == "none"
    assert rec["frames"]["describer"] == "fixed-text" and rec["frames"]["described"] == 1
    assert [c["title"] for c in rec["chapters"]] == ["Sale"]


@pytest.mark.slow
@pytest.mark.parametrize("parallel", ["process", "dask"])
def test_process_pool_workers(
    corpus: tuple[Path, list[dict[str, Any]]], tmp_path: Path, parallel: str
) -> None:
    root, entries = corpus
    s = annotate_batch(entries, root, tmp_path / "ann", tiny_cfg(workers=2, parallel=parallel))
    assert s.annotated == ["mute", "talk"]
    assert [q["video_id"] for q in s.quarantined] == ["corrupt"]
    rec = json.loads((tmp_path / "ann" / "talk.json").read_text())
    assert "shampoo" in " ".join(x["text"] for x in rec["asr"]["segments"]).lower()


def test_dask_or_ray_fan_out_says_when_not_installed(tmp_path: Path) -> None:
    import importlib.util

    for backend, module in (("dask", "dask"), ("ray", "ray")):
        if importlib.util.find_spec(module) is not None:
            continue  # installed: the slow end-to-end run covers it
        cfg = tiny_cfg(workers=2, parallel=backend)
        rows = [entry(tmp_path, f"videos/{i}.mp4", 1.0, True) for i in range(2)]
        with pytest.raises(RuntimeError, match=f"annotate.parallel is '{backend}' but"):
            annotate_batch(rows, tmp_path, tmp_path / "out", cfg)


class EchoLLM:
    """Test fake LLM: scores 5, returns the sentence unchanged, a fixed label and refinements."""

    name = "echo"

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    def complete(
        self, prompt: str, max_new_tokens: int = 128, stop: list[str] | None = None
    ) -> str:
        last = prompt.rstrip().splitlines()[-1]
        kind = last.split(":")[0]
        self.calls[kind] = self.calls.get(kind, 0) + 1
        if kind == "Score":
            return " 5"
        if kind == "Fixed":
            heard = prompt.rstrip().splitlines()[-2]
            return heard.removeprefix('Heard: "').removesuffix('"')
        if kind == "Type":
            return " product_effect"
        return f" refined {kind.lower()}"


def test_llm_wiring_and_its_cache_identity(
    corpus: tuple[Path, list[dict[str, Any]]], tmp_path: Path
) -> None:
    root, entries = corpus
    cfg = tiny_cfg(llm={"backend": "endpoint", "model": "fake"})
    llm = EchoLLM()
    s = annotate_batch(entries[:1], root, tmp_path / "ann", cfg, models=Models(cfg, llm=llm))
    assert s.annotated == ["talk"]
    rec = json.loads((tmp_path / "ann" / "talk.json").read_text())
    assert rec["correction"]["relevance_scorer"] == "llm:echo"
    assert all(seg["relevance"] == 5 and seg["kept"] for seg in rec["asr"]["segments"])
    assert rec["models"]["llm"] == {
        "backend": "endpoint",
        "model": "fake",
        "base_url": cfg.llm.base_url,
    }
    assert all(c["script_label"] == "product_effect" for c in rec["chapters"])
    assert all(c["script_label_source"] == "llm:echo" for c in rec["chapters"])
    assert all(c["summary"] == "refined summary" and c["summary_coarse"] for c in rec["chapters"])
    assert all(t["observation"] == "refined observation" for t in rec["tcot"])
    assert llm.calls["Score"] == llm.calls["Fixed"] == len(rec["asr"]["segments"])
    # Turning refinement off re-runs only the chapters sub-step, without calling the LLM again.
    cfg2 = tiny_cfg(llm={"backend": "endpoint", "model": "fake"}, llm_refine=False)
    llm2 = EchoLLM()
    annotate_batch(entries[:1], root, tmp_path / "ann", cfg2, models=Models(cfg2, llm=llm2))
    rec2 = json.loads((tmp_path / "ann" / "talk.json").read_text())
    assert rec2["cached_steps"] == ["asr", "frames", "correction"] and llm2.calls == {}
    assert all(c["script_label_source"] == "prototype-nn" for c in rec2["chapters"])


class DownLLM:
    """Test fake LLM whose every call fails like an unreachable endpoint."""

    name = "down"

    def complete(
        self, prompt: str, max_new_tokens: int = 128, stop: list[str] | None = None
    ) -> str:
        from hivid.annotate.llm import LLMError

        raise LLMError("LLM endpoint http://127.0.0.1:9/v1/chat/completions unreachable")


def test_llm_outage_falls_back_and_is_not_cached(
    corpus: tuple[Path, list[dict[str, Any]]], tmp_path: Path
) -> None:
    root, entries = corpus
    cfg = tiny_cfg(llm={"backend": "endpoint", "model": "fake"})
    out = tmp_path / "ann"
    s = annotate_batch(entries[:1], root, out, cfg, models=Models(cfg, llm=DownLLM()))
    assert s.annotated == ["talk"] and s.quarantined == []  # deterministic fallback
    rec = json.loads((out / "talk.json").read_text())
    assert rec["correction"]["llm_errors"] > 0
    assert rec["correction"]["relevance_scorer"] == "llm:down+exemplar-knn"
    assert rec["step_keys"]["correction"] is None and rec["step_keys"]["chapters"] is None
    # With the LLM back, the video is not served from cache: correction and chapters re-run.
    llm = EchoLLM()
    s2 = annotate_batch(entries[:1], root, out, cfg, models=Models(cfg, llm=llm))
    assert s2.annotated == ["talk"] and s2.cached == []
    rec2 = json.loads((out / "talk.json").read_text())
    assert rec2["cached_steps"] == ["asr", "frames"] and rec2["correction"]["llm_errors"] == 0
    assert None not in rec2["step_keys"].values()
    s3 = annotate_batch(entries[:1], root, out, cfg, models=Models(cfg, llm=EchoLLM()))
    assert s3.cached == ["talk"]
