"""Helpers shared by test modules (tests import these, never another test module)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from hivid.data.faults import write_clip
from hivid.data.mp4 import write_mp4

if TYPE_CHECKING:
    from hivid.models.narrator import HiVidNarrator

Scene = tuple[float, tuple[int, int, int]] | tuple[float, tuple[int, int, int], str]
"""(seconds, background rgb) or (seconds, background rgb, on-screen text)."""


def write_scenes(
    path: Path,
    scenes: list[Scene],
    *,
    fps: int,
    size: tuple[int, int] = (320, 180),
    audio: np.ndarray | None = None,
    sample_rate: int = 22050,
) -> Path:
    """H.264 (+ AAC for int16 mono ``audio``) mp4 of solid-colour scenes, each optionally with
    white text drawn on it (the OCR input), written by ``hivid.data.mp4.write_mp4``."""
    frames: list[np.ndarray] = []
    for scene in scenes:
        secs, rgb = scene[0], scene[1]
        img = Image.new("RGB", size, rgb)
        if len(scene) == 3:
            font = ImageFont.load_default(size=24)
            ImageDraw.Draw(img).text((16, 70), scene[2], fill=(255, 255, 255), font=font)
        frames += [np.asarray(img)] * round(secs * fps)
    return write_mp4(path, frames, size=size, fps=fps, audio=audio, sample_rate=sample_rate, crf=20)


def write_video(
    path: Path,
    seconds: float = 3.0,
    fps: int = 10,
    size: tuple[int, int] = (64, 48),
    audio: bool = True,
    seed: int = 0,
) -> Path:
    """An H.264 mp4 with moving colour blocks and an optional sine-tone AAC track (the fault
    generator's writer, at test size)."""
    return write_clip(path, seconds=seconds, fps=fps, size=size, audio=audio, seed=seed)


def tone(seconds: float, hz: float = 440.0, sr: int = 22050) -> np.ndarray:
    """An int16 mono sine of ``seconds`` at ``hz``."""
    t = np.arange(round(seconds * sr)) / sr
    return (0.5 * 32767 * np.sin(2 * np.pi * hz * t)).astype(np.int16)


# ---------------------------------------------------------------------------------------------
# Training datasets

WORDS = [
    "red",
    "bottle",
    "shampoo",
    "soft",
    "hair",
    "foam",
    "rinse",
    "price",
    "bargain",
    "gentle",
    "scent",
    "洗发水",
    "特价",
    "柔顺",
]
"""Words of the random texts of ``make_dataset`` (English and Chinese)."""


def make_dataset(root: Path, n_videos: int = 6, seed: int = 0, image: int = 40) -> Path:
    """Write a dataset directory in the build_dataset format: random frames, short texts."""
    rng = np.random.default_rng(seed)
    (root / "frames").mkdir(parents=True, exist_ok=True)
    splits: dict[str, list[dict[str, Any]]] = {"train": [], "val": [], "test": []}

    def words(k: int) -> str:
        return " ".join(rng.choice(WORDS, size=k))

    for v in range(n_videos):
        n = int(rng.integers(3, 7))
        vid = f"vid{v:02d}"
        np.save(
            root / "frames" / f"{vid}.npy", rng.integers(0, 256, (n, image, image, 3), np.uint8)
        )
        half = n / 2
        rec = {
            "video_id": vid,
            "duration": float(n),
            "frame_times": [float(i) for i in range(n)],
            "frames": f"frames/{vid}.npy",
            "asr": [
                {"start": 0.2, "end": 1.5, "text": words(4)},
                {"start": half + 0.3, "end": n - 0.5, "text": words(3)},
            ]
            if v % 3
            else [],  # some videos have no speech
            "tcot": [{"start": 0.0, "end": half, "observation": words(4)}],
            "chapters": [
                {"start": 0.0, "end": half, "title": words(2), "summary": words(4)},
                {"start": half, "end": float(n), "title": words(2), "summary": words(3)},
            ],
        }
        split = "train" if v < n_videos - 2 else ("val" if v == n_videos - 2 else "test")
        splits[split].append(rec)
    for split, recs in splits.items():
        lines = [json.dumps(r, ensure_ascii=False) for r in recs]
        (root / f"{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


# ---------------------------------------------------------------------------------------------
# Workspaces

TINY_PARAMS: dict[str, Any] = {
    "demo": {"videos": 2},
    "annotate": {"asr_model": "tiny.en"},
    "train_stage1": {"max_steps": 4},
    "train_stage2": {"max_steps": 4},
    "evaluate": {"max_new_tokens": 48},
}
"""Tiny settings of the same classes the demo uses: 2 short videos, the fast English Whisper, a
handful of optimizer steps (``params.yaml`` overrides of a test workspace)."""


def corpus_tokenizer(data: Path) -> Any:
    """A 400-token BPE trained on the training texts of a ``make_dataset`` directory."""
    from hivid.models.tokenizer import train_bpe_tokenizer
    from hivid.training.datamodule import corpus_texts, read_split

    return train_bpe_tokenizer(list(corpus_texts(read_split(data, "train"))) * 3, 400)


def tiny_narrator(tok: Any, work_dir: Path, **options: Any) -> HiVidNarrator:
    """The ``tiny`` preset with ``model.options`` overrides, seeded (same weights every call)."""
    import torch

    from hivid.models.narrator import create_narrator, narrator_config

    torch.manual_seed(0)
    return create_narrator(narrator_config("tiny", {"options": options}), tok, work_dir)


def train_batch(
    model: HiVidNarrator, tok: Any, data: Path, n: int = 2, **extra: Any
) -> dict[str, Any]:
    """The first ``n`` training records of ``data`` (``extra`` set in each), prepared for
    ``model``'s stage and collated."""
    from hivid.training.datamodule import collate, prepare_sample, read_split

    recs = [dict(r, **extra) for r in read_split(data, "train")[:n]]
    samples = [prepare_sample(r, data, tok, model.input_spec()) for r in recs]
    return collate(samples, int(tok.pad_token_id))


# ---------------------------------------------------------------------------------------------
# Network


@contextmanager
def blackhole() -> Iterator[int]:
    """A loopback port that accepts connections and never answers (a hung server)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        yield sock.getsockname()[1]
    finally:
        stop.set()
        t.join()
        for c in held:
            c.close()
        sock.close()


def free_port() -> int:
    """A loopback port nobody listens on (closed again at once)."""
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ScriptedLLM:
    """Test fake LLM: answers from a list, records prompts."""

    name = "scripted"

    def __init__(self, answers: list[str]) -> None:
        self.answers = list(answers)
        self.prompts: list[str] = []

    def complete(
        self, prompt: str, max_new_tokens: int = 128, stop: list[str] | None = None
    ) -> str:
        self.prompts.append(prompt)
        return self.answers.pop(0)
