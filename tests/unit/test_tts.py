"""espeak-ng synthesis through ctypes: deterministic, 22 050 Hz int16, audible."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading

import numpy as np
import pytest

from hivid.data.tts import SAMPLE_RATE, TTSError, synthesize

TEXT = "Meet the Aquavita herbal shampoo, a 500 milliliter bottle for only 59 dollars."


def _digest(audio: np.ndarray) -> str:
    return hashlib.sha256(audio.tobytes()).hexdigest()


def test_output_format_and_not_silent() -> None:
    audio, sr = synthesize(TEXT)
    assert sr == SAMPLE_RATE == 22_050
    assert audio.dtype == np.int16 and audio.ndim == 1
    seconds = audio.size / sr
    assert 2.0 < seconds < 10.0, seconds
    rms = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2)))
    assert rms > 500, rms  # real speech, not near-silence
    assert np.abs(audio.astype(np.int32)).max() > 5000


def test_identical_across_calls_even_after_other_text() -> None:
    # espeak-ng keeps hidden synthesiser state between calls; the output must not depend on it.
    first, _ = synthesize(TEXT)
    synthesize("Something completely different, spoken in between.", rate_wpm=220)
    second, _ = synthesize(TEXT)
    assert first.shape == second.shape
    assert _digest(first) == _digest(second)


def test_identical_across_processes() -> None:
    code = (
        "import hashlib; from hivid.data.tts import synthesize; "
        f"a, _ = synthesize({TEXT!r}); print(hashlib.sha256(a.tobytes()).hexdigest())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == _digest(synthesize(TEXT)[0])


def test_thread_safe() -> None:
    results: list[str] = []

    def work() -> None:
        results.append(_digest(synthesize(TEXT)[0]))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and len(set(results)) == 1


def test_rate_changes_length() -> None:
    slow, _ = synthesize(TEXT, rate_wpm=120)
    fast, _ = synthesize(TEXT, rate_wpm=240)
    assert fast.size < 0.75 * slow.size


def test_bad_input_raises_clear_errors() -> None:
    with pytest.raises(TTSError, match="empty"):
        synthesize("   ")
    with pytest.raises(TTSError, match="no voice named"):
        synthesize("hello", voice="no-such-voice")
    with pytest.raises(TTSError, match="rate_wpm"):
        synthesize("hello", rate_wpm=10)
