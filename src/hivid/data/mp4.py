"""The one H.264/AAC mp4 writer for generated clips (fault corpus, test fixtures).

``write_mp4`` encodes RGB frames at given times (1 ms time base, so irregular times survive
encoding) and an optional mono audio track. Deterministic for given inputs. The demo corpus
(``hivid.data.demo.encode_mp4``) has its own bit-exact, reproducible encoder settings.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

MS = Fraction(1, 1000)
AUDIO_CHUNK = 1024
"""Samples per encoded audio frame."""


def write_mp4(
    path: Path,
    frames: Iterable[np.ndarray] = (),
    *,
    size: tuple[int, int],
    fps: int,
    times: Sequence[float] | None = None,
    audio: np.ndarray | None = None,
    sample_rate: int = 16000,
    crf: int = 30,
    faststart: bool = False,
    video: bool = True,
) -> Path:
    """Write ``frames`` (RGB ``(H, W, 3)`` uint8, ``size`` = (W, H)) to an H.264 mp4 at ``path``.

    ``times``: presentation time of each frame in seconds (default ``i / fps``); ``audio``: mono
    samples (float in [-1, 1], or int16), AAC at ``sample_rate``; ``video=False`` writes the
    audio track alone; ``faststart`` moves the moov atom to the front. Returns ``path``.
    """
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", format="mp4", options=options) as out:
        vs = None
        if video:
            vs = out.add_stream("libx264", rate=fps)
            vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
            vs.time_base = MS
            vs.codec_context.time_base = MS  # irregular times survive encoding
            vs.options = {"preset": "ultrafast", "crf": str(crf)}
        as_ = None
        if audio is not None:  # every stream must exist before the first packet is muxed
            as_ = out.add_stream("aac", rate=sample_rate)
            as_.layout = "mono"
        if vs is not None:
            for i, img in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
                frame.pts = round((times[i] if times is not None else i / fps) * 1000)
                frame.time_base = MS
                for p in vs.encode(frame):
                    out.mux(p)
            for p in vs.encode():
                out.mux(p)
        if as_ is not None and audio is not None:
            wave = np.asarray(audio)
            if wave.dtype == np.int16:
                wave = wave.astype(np.float32) / 32768.0
            wave = wave.astype(np.float32).reshape(-1)
            for start in range(0, len(wave), AUDIO_CHUNK):
                block = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(wave[None, start : start + AUDIO_CHUNK]),
                    format="flt",
                    layout="mono",
                )
                block.sample_rate = sample_rate
                block.pts = start
                block.time_base = Fraction(1, sample_rate)
                for p in as_.encode(block):
                    out.mux(p)
            for p in as_.encode():
                out.mux(p)
    return path
