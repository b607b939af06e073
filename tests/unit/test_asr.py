"""ASR: packaged model resolution (sha256), sentence splitting, real Whisper runs on speech."""

from __future__ import annotations

import hashlib
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hivid.annotate import asr as asr_mod
from hivid.annotate.asr import (
    ASRBackend,
    ASRError,
    FasterWhisperASR,
    ends_sentence,
    make_asr_backend,
    split_sentences,
    split_text_sentences,
)
from hivid.annotate.config import AnnotateConfig
from hivid.annotate.model_resolve import (
    WHISPER_BASE_SHA256,
    ModelResolveError,
    join_whisper_base,
    resolve_asr_model,
    sha256_file,
)
from hivid.data.decode import decode_audio

SPEECH = (
    "Meet the new red shampoo from Lumina. It comes in a big bottle. "
    "Your hair will feel soft and shiny after one wash. Order yours now."
)


def _w(word: str, start: float, end: float) -> dict[str, object]:
    return {"word": word, "start": start, "end": end, "score": 0.9}


# ------------------------------------------------------------------------------------------------
# Pure sentence splitting
# ------------------------------------------------------------------------------------------------


def test_split_sentences_at_final_punctuation() -> None:
    words = [
        _w(" Hello", 0.0, 0.4),
        _w(" world.", 0.4, 0.9),
        _w(" It", 1.2, 1.3),
        _w(" costs", 1.3, 1.6),
        _w(" $5.99!", 1.6, 2.0),
        _w(" Buy", 2.5, 2.7),
        _w(" it", 2.7, 2.8),
    ]
    segs = split_sentences(words)
    assert [s["text"] for s in segs] == ["Hello world.", "It costs $5.99!", "Buy it"]
    assert [(s["start"], s["end"]) for s in segs] == [(0.0, 0.9), (1.2, 2.0), (2.5, 2.8)]
    assert [w["word"] for w in segs[1]["words"]] == ["It", "costs", "$5.99!"]
    assert set(segs[0]["words"][0]) == {"start", "end", "word", "score"}


def test_long_run_on_sentences_split_at_longest_clause_pause() -> None:
    words = [
        _w(" Tired", 0.0, 1.0),
        _w(" of", 1.0, 2.0),
        _w(" it,", 2.0, 3.0),
        _w(" meet", 3.2, 4.0),
        _w(" this,", 4.0, 5.0),
        _w(" the", 5.6, 6.0),
        _w(" fix.", 6.0, 7.0),
    ]
    assert [s["text"] for s in split_sentences(words)] == ["Tired of it, meet this, the fix."]
    parts = split_sentences(words, max_sentence_s=5.0)
    assert [s["text"] for s in parts] == ["Tired of it, meet this,", "the fix."]
    assert [s["text"] for s in split_sentences(words, max_sentence_s=2.5)] == [
        "Tired of it,",
        "meet this,",
        "the fix.",
    ]
    no_break = [_w(" a", 0.0, 5.0), _w(" b.", 5.0, 10.0)]  # no comma, no pause
    assert len(split_sentences(no_break, max_sentence_s=2.0)) == 1


def test_unpunctuated_narration_split_at_its_longest_pauses() -> None:
    # Whisper sometimes writes a whole narration without punctuation: split at the pauses.
    words = [
        _w(" five", 0.0, 1.0),
        _w(" stars", 1.0, 2.0),
        _w(" The", 3.2, 4.0),  # 1.2 s pause
        _w(" Glow", 4.0, 5.0),
        _w(" Cream", 5.2, 6.0),  # 0.2 s: under MIN_PAUSE_S, not a cut
        _w(" sold", 6.0, 7.0),
        _w(" out", 7.5, 8.0),  # 0.5 s pause
        _w(" today", 8.0, 9.0),
    ]
    assert [s["text"] for s in split_sentences(words, max_sentence_s=5.0)] == [
        "five stars",
        "The Glow Cream sold",
        "out today",
    ]
    assert len(split_sentences(words, max_sentence_s=10.0)) == 1  # short enough: kept whole


def test_split_sentences_cjk_and_quotes() -> None:
    words = [_w("这", 0.0, 0.2), _w("款", 0.2, 0.4), _w("很好。", 0.4, 0.8), _w("买", 1.0, 1.2)]
    segs = split_sentences(words)
    assert [s["text"] for s in segs] == ["这款很好。", "买"]
    assert ends_sentence(' "Wow!"') and not ends_sentence(" 5.5") and not ends_sentence(" ml")


def test_split_text_sentences_spreads_time() -> None:
    segs = split_text_sentences("One two. Three four five six.", 10.0, 13.0)
    assert [s["text"] for s in segs] == ["One two.", "Three four five six."]
    assert segs[0]["start"] == 10.0 and segs[-1]["end"] == 13.0
    assert segs[0]["end"] == segs[1]["start"] and segs[0]["words"] == []


# ------------------------------------------------------------------------------------------------
# Packaged models
# ------------------------------------------------------------------------------------------------


def test_tiny_en_resolves_to_package_with_sha() -> None:
    m = resolve_asr_model("tiny.en")
    assert Path(m.path, "model.bin").is_file() and m.is_local
    assert m.sha256 == sha256_file(Path(m.path) / "model.bin")


def test_hub_id_passes_through() -> None:
    m = resolve_asr_model("Systran/faster-whisper-large-v3")
    assert (m.path, m.sha256, m.is_local) == ("Systran/faster-whisper-large-v3", None, False)


def test_whisper_base_join_verifies_sha(tmp_path: Path) -> None:
    m = resolve_asr_model("whisper-base", tmp_path)
    target = tmp_path / "whisper-base"
    assert m.path == str(target) and m.sha256 == WHISPER_BASE_SHA256
    assert sha256_file(target / "model.bin") == WHISPER_BASE_SHA256
    assert {p.name for p in target.iterdir()} == {
        "model.bin",
        "config.json",
        "tokenizer.json",
        "vocabulary.json",
    }
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dirs left
    mtime = (target / "model.bin").stat().st_mtime_ns
    assert resolve_asr_model("whisper-base", tmp_path).sha256 == WHISPER_BASE_SHA256
    assert (target / "model.bin").stat().st_mtime_ns == mtime  # joined once, then reused
    # A corrupted copy is detected and rebuilt.
    with (target / "model.bin").open("r+b") as fh:
        fh.write(b"XXXX")
    assert resolve_asr_model("whisper-base", tmp_path).sha256 == WHISPER_BASE_SHA256
    assert sha256_file(target / "model.bin") == WHISPER_BASE_SHA256


def test_join_rejects_wrong_digest_and_writes_nothing(tmp_path: Path) -> None:
    p1, p2, side = tmp_path / "p1", tmp_path / "p2", tmp_path / "side"
    p1.write_bytes(b"abc")
    p2.write_bytes(b"def")
    side.mkdir()
    for n in ("config.json", "tokenizer.json", "vocabulary.json"):
        (side / n).write_text("{}")
    target = tmp_path / "cache" / "m"
    with pytest.raises(ModelResolveError, match="does not match"):
        join_whisper_base(target, (p1, p2), side, expected_sha256="0" * 64)
    assert not target.exists() and list((tmp_path / "cache").iterdir()) == []
    good = hashlib.sha256(b"abcdef").hexdigest()
    assert join_whisper_base(target, (p1, p2), side, expected_sha256=good) == good
    assert (target / "model.bin").read_bytes() == b"abcdef"


def test_local_dir_without_model_bin_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ModelResolveError, match=r"no model\.bin"):
        resolve_asr_model(str(tmp_path))


# ------------------------------------------------------------------------------------------------
# Real ASR on synthesized speech (espeak-ng through hivid.data.tts)
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def speech16k(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    from hivid.data.tts import synthesize

    pcm, sr = synthesize(SPEECH)
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(pcm.tobytes())
    audio = decode_audio(path)  # 22.05 kHz -> 16 kHz through PyAV's resampler
    assert audio is not None
    return audio


def _check_result(res: asr_mod.ASRResult, duration: float) -> None:
    text = " ".join(s["text"] for s in res.segments).lower()
    for word in ("shampoo", "hair", "order"):
        assert word in text, text
    assert res.language == "en"
    assert len(res.segments) >= 3  # four spoken sentences -> sentence-level segments
    for s in res.segments[:-1]:
        assert ends_sentence(s["text"]), s["text"]
    prev_end = -1.0
    for s in res.segments:
        assert 0.0 <= s["start"] <= s["end"] <= duration + 0.5
        assert s["start"] >= prev_end - 0.05
        prev_end = s["end"]
        assert s["words"] and s["words"][0]["start"] == s["start"]
        for w in s["words"]:
            assert s["start"] <= w["start"] <= w["end"] <= s["end"]
            assert 0.0 <= w["score"] <= 1.0


def test_faster_whisper_tiny_en_recognises_speech(speech16k: np.ndarray) -> None:
    backend = FasterWhisperASR(resolve_asr_model("tiny.en"))
    assert isinstance(backend, ASRBackend)
    res = backend.transcribe(speech16k, 16000)
    assert (res.backend, res.model, res.word_timestamps) == (
        "faster-whisper",
        "tiny.en",
        "faster-whisper",
    )
    assert res.model_sha256 == resolve_asr_model("tiny.en").sha256
    _check_result(res, speech16k.shape[0] / 16000)
    assert backend.transcribe(np.zeros(800, np.float32)).segments == []
    with pytest.raises(ASRError, match="16000 Hz"):
        backend.transcribe(speech16k, 22050)


def test_make_asr_backend_builds_once() -> None:
    cfg = AnnotateConfig(asr_backend="faster-whisper", asr_model="tiny.en")
    a = make_asr_backend(cfg.asr_cfg)
    again = AnnotateConfig(asr_backend="faster-whisper", asr_model="tiny.en").asr_cfg
    assert a is make_asr_backend(again)
    assert a.name == "faster-whisper"


def _tiny_align_model(root: Path) -> Path:
    """A real wav2vec2 CTC model directory (tiny, random weights, English characters), saved and
    loaded back through ``from_pretrained`` as whisperx loads a hub or local align model. No
    wav2vec2 weights are packaged offline (offline-models.md), so its times are meaningless; what
    it exercises is whisperx's alignment path and our handling of its output."""
    import json

    import torch
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2CTCTokenizer,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForCTC,
        Wav2Vec2Processor,
    )

    chars = ["<pad>", "<s>", "</s>", "<unk>", "|", *"abcdefghijklmnopqrstuvwxyz'"]
    root.mkdir(parents=True, exist_ok=True)
    (root / "vocab.json").write_text(json.dumps({c: i for i, c in enumerate(chars)}))
    tok = Wav2Vec2CTCTokenizer(str(root / "vocab.json"), word_delimiter_token="|")
    fe = Wav2Vec2FeatureExtractor(
        sampling_rate=16000, do_normalize=True, return_attention_mask=False
    )
    Wav2Vec2Processor(feature_extractor=fe, tokenizer=tok).save_pretrained(root)
    torch.manual_seed(0)
    cfg = Wav2Vec2Config(
        vocab_size=len(chars),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(32,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        pad_token_id=0,
    )
    Wav2Vec2ForCTC(cfg).save_pretrained(root)
    return root


def _minimal_punkt(root: Path) -> Path:
    """NLTK ``punkt_tab`` data for English with empty parameters (no abbreviations learnt):
    whisperx.align splits sentences with it and would download the real one on first use."""
    lang = root / "tokenizers" / "punkt_tab" / "english"
    lang.mkdir(parents=True)
    for name in ("collocations.tab", "sent_starters.txt", "abbrev_types.txt", "ortho_context.tab"):
        (lang / name).write_text("", encoding="utf-8")
    return root


@pytest.mark.slow
def test_whisperx_tiny_en_aligns_with_a_local_wav2vec2_model(
    speech16k: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The non-failing path offline: `align_model` names a local wav2vec2 directory, whisperx
    loads it and aligns the VAD-batched transcript with it ("whisperx-align" word times)."""
    import nltk

    monkeypatch.setattr(nltk.data, "path", [str(_minimal_punkt(tmp_path / "nltk"))])
    monkeypatch.setattr(asr_mod, "_ALIGN_CACHE", {})
    model_dir = _tiny_align_model(tmp_path / "w2v2")
    backend = asr_mod.WhisperXASR(
        resolve_asr_model("tiny.en"), batch_size=4, align=True, align_model=str(model_dir)
    )
    res = backend.transcribe(speech16k, 16000)
    assert (res.backend, res.word_timestamps) == ("whisperx", "whisperx-align")
    key = ("en", str(model_dir), "cpu")
    assert asr_mod._ALIGN_CACHE[key] is not None  # loaded once, kept for the next video
    _check_result(res, speech16k.shape[0] / 16000)


@pytest.mark.slow
def test_whisperx_tiny_en_offline_falls_back_to_dtw_words(
    speech16k: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    """No align model reachable (offline, nothing at the configured place): whisperx's own loader
    really fails, once, and faster-whisper's DTW word times of the same text are used."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(asr_mod, "_ALIGN_CACHE", {})
    missing = tmp_path / "no-such-align-model"
    backend = asr_mod.WhisperXASR(
        resolve_asr_model("tiny.en"), batch_size=4, align=True, align_model=str(missing)
    )
    with caplog.at_level("WARNING", logger=asr_mod.log.name):
        res = backend.transcribe(speech16k, 16000)
    assert (res.backend, res.word_timestamps) == ("whisperx", "faster-whisper")
    assert list(asr_mod._ALIGN_CACHE.items()) == [(("en", str(missing), "cpu"), None)]
    assert any("whisperx align model for 'en' unavailable" in r.message for r in caplog.records)
    _check_result(res, speech16k.shape[0] / 16000)


def test_whisperx_alignment_failure_falls_back_instead_of_crashing(
    monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    """whisperx.align needs NLTK's punkt_tab, fetched on first use: offline it raises
    LookupError. The ASR step must fall back to DTW word times, not fail the video."""
    from types import SimpleNamespace

    import whisperx

    def no_punkt(*args: object, **kwargs: object) -> None:
        raise LookupError("\n  Resource punkt_tab not found.\n  Please use the NLTK Downloader")

    monkeypatch.setattr(whisperx, "align", no_punkt)
    monkeypatch.setattr(asr_mod, "_ALIGN_CACHE", {("en", "local-w2v2", "cpu"): ("model", {})})
    me = SimpleNamespace(align=True, align_model="local-w2v2", device="cpu")
    chunks = [{"start": 0.0, "end": 1.0, "text": "Red shampoo."}]
    with caplog.at_level("WARNING", logger=asr_mod.log.name):
        got = asr_mod.WhisperXASR._align_wav2vec2(me, chunks, np.zeros(16000, np.float32), "en")  # type: ignore[arg-type]
    assert got is None
    assert [r.getMessage() for r in caplog.records] == [
        "whisperx alignment unavailable (Resource punkt_tab not found.); using faster-whisper "
        "word timestamps"
    ]
