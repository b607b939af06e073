"""Samples of a built dataset directory -> padded narrator batches (LightningDataModule).

Dataset layout (written by the build_dataset stage)::

    DATASET/train.jsonl, val.jsonl, test.jsonl   one JSON object (one video) per line:
        {"video_id", "duration", "frame_times": [0.0, 1.0, ...],
         "frames": "frames/<video_id>.npy",          # relative to DATASET, uint8 (N, H, W, 3)
         "asr": [{"start", "end", "text"}], "tcot": [{"start", "end", "observation"}],
         "chapters": [{"start", "end", "title", "summary"}]}

``prepare_sample`` is the one input construction used by training, validation and generation.
Its target is ``format_grounded_target`` over the frames the model actually reads (after
``select_frames``), so every target time is one of the input's timestamp tokens.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler
from transformers import PreTrainedTokenizerBase

from hivid.models.narrator import IMAGE_MEAN, IMAGE_STD, InputSpec
from hivid.models.sequence import (
    DEFAULT_PROMPT,
    IGNORE_INDEX,
    EncodedSequence,
    encode_asr,
    encode_compressed,
    encode_compressed_interleaved,
    encode_interleaved,
    format_grounded_target,
    keyword_example,
    timestamp_text,
)
from hivid.training.augment import AugmentConfig, augment_view, name_pool

SPLITS = ("train", "val", "test")
REQUIRED_KEYS = ("video_id", "frame_times", "frames", "asr", "tcot", "chapters")


class DatasetFormatError(ValueError):
    """A dataset file is missing or malformed (the message names the file and the reason)."""


def read_split(dataset_dir: Path, split: str) -> list[dict[str, Any]]:
    """Records of ``DATASET/<split>.jsonl``; a bad line raises naming ``file:line``."""
    path = Path(dataset_dir) / f"{split}.jsonl"
    if not path.is_file():
        raise DatasetFormatError(f"{path}: missing split file")
    records = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetFormatError(f"{path}:{n}: invalid JSON ({exc.msg})") from None
        missing = [k for k in REQUIRED_KEYS if k not in rec]
        if missing:
            raise DatasetFormatError(f"{path}:{n}: missing key(s) {', '.join(missing)}")
        if not rec["frame_times"]:
            raise DatasetFormatError(f"{path}:{n}: video {rec['video_id']} has no frames")
        records.append(rec)
    return records


def corpus_texts(records: Sequence[Mapping[str, Any]]) -> Iterator[str]:
    """Every text the model reads or writes (tokenizer training corpus)."""
    yield DEFAULT_PROMPT
    for rec in records:
        yield " ".join(timestamp_text(float(t)) for t in rec["frame_times"])
        for s in rec["asr"]:
            yield f"{timestamp_text(float(s['start']))}{s['text']}"
        yield target_text(rec, rec["frame_times"])


_TIME = re.compile(r"^\d+(\.\d+)?s$")


def caption_vocabulary(
    tokenizer: PreTrainedTokenizerBase, records: Sequence[Mapping[str, Any]], min_share: float = 0.1
) -> list[int]:
    """Token ids in the targets of at least max(2, min_share x n) of the n training ``records``,
    less every token that is a product word of a record (a word of >= 3 letters of its metadata
    brand, title, category or attribute values) or a time ("8.0s"): the words captions are written
    with, never a name or a time, which must come from the video itself (constrained decoding
    allows these beside the video's own input; ``hivid.models.tokenizer.set_caption_vocab``)."""
    counts: Counter[int] = Counter()
    names: set[str] = set()
    for rec in records:
        counts.update(set(tokenizer.encode(target_text(rec, rec["frame_times"]))))
        meta = rec.get("metadata") or {}
        attrs = meta.get("attributes") or {}
        for value in [meta.get("brand"), meta.get("title"), meta.get("category"), *attrs.values()]:
            names.update(w.lower() for w in str(value or "").split() if len(w) >= 3)

    def is_name(i: int) -> bool:
        word = tokenizer.decode([i]).strip().lower()
        return (len(word) >= 3 and word.isalpha() and word in names) or bool(_TIME.match(word))

    need = max(2, math.ceil(min_share * len(records)))
    return sorted(i for i, n in counts.items() if n >= need and not is_name(i))


def target_text(record: Mapping[str, Any], times: Sequence[float]) -> str:
    """The grounded target of a row over the frame ``times`` the model reads: human
    (``target_source: ground_truth``) chapters keep their titles, pseudo-labels are titled with
    the product name; the TCoT quotes the row's narration."""
    titles: Literal["product", "chapter"] = (
        "chapter" if record.get("target_source") == "ground_truth" else "product"
    )
    return format_grounded_target(
        record["chapters"], times, record.get("metadata"), record.get("asr") or (), titles
    )


def select_frames(n: int, max_frames: int) -> np.ndarray:
    """At most ``max_frames`` indices spread uniformly over ``n`` frames (first and last kept)."""
    if n <= max_frames:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_frames).round().astype(np.int64))


def load_pixels(
    path: Path, indices: np.ndarray, image_size: int, expected_frames: int
) -> torch.Tensor:
    """Frames ``indices`` of a uint8 (N, H, W, 3) .npy -> (n, 3, S, S) SigLIP-normalised floats."""
    if not path.is_file():
        raise DatasetFormatError(f"{path}: missing frames file")
    try:
        arr = np.load(path, mmap_mode="r")
    except ValueError as exc:
        raise DatasetFormatError(f"{path}: not a .npy array ({exc})") from None
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise DatasetFormatError(
            f"{path}: expected uint8 (N, H, W, 3), got {arr.dtype} {tuple(arr.shape)}"
        )
    if arr.shape[0] != expected_frames:
        raise DatasetFormatError(
            f"{path}: holds {arr.shape[0]} frames but frame_times lists {expected_frames}"
        )
    x = torch.from_numpy(np.ascontiguousarray(arr[indices])).permute(0, 3, 1, 2).float() / 255.0
    if x.shape[-2:] != (image_size, image_size):
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", antialias=True)
    return (x - IMAGE_MEAN) / IMAGE_STD  # (n, 3, S, S)


def prepare_sample(
    record: Mapping[str, Any],
    dataset_dir: Path,
    tokenizer: PreTrainedTokenizerBase,
    spec: InputSpec,
    with_target: bool = True,
    augment: AugmentConfig | None = None,
    rng: random.Random | None = None,
    pool: Sequence[str] = (),
) -> dict[str, Any]:
    """One video -> unpadded tensors for the narrator (``with_target=False`` for generation).

    ``augment`` (enabled, with ``rng``): a random view of the video (``augment_view``: renamed
    product, shifted timeline, frame subset; ``pool``: replacement name words), training only.
    """
    frames_path = Path(dataset_dir) / str(record["frames"])
    n_all = len(record["frame_times"])
    idx = select_frames(n_all, spec.max_frames)
    if augment is not None and augment.enabled:
        if rng is None:
            raise ValueError("augmentation needs an rng")
        record, idx = augment_view(record, idx, augment, rng, pool)
    times_all = [float(t) for t in record["frame_times"]]
    pixels = load_pixels(frames_path, idx, spec.image_size, len(times_all))
    times = [times_all[i] for i in idx]
    target = target_text(record, times) if with_target else None

    def encode(target: str | None, prompt: str = DEFAULT_PROMPT) -> EncodedSequence:
        if spec.scene_tokens is None:
            return encode_interleaved(
                tokenizer,
                times,
                record["asr"],
                target,
                spec.visual_tokens_per_frame,
                prompt,
                memory=spec.memory_split(len(times)),
            )
        if spec.asr_text:
            assert spec.compressed_tokens_per_frame is not None
            return encode_compressed_interleaved(
                tokenizer,
                times,
                record["asr"],
                target,
                spec.scene_tokens,
                spec.compressed_tokens_per_frame,
                prompt,
                spec.visual_tokens_per_frame if spec.stage1_positions else None,
            )
        return encode_compressed(tokenizer, spec.num_compressed_tokens(len(times)), target, prompt)

    enc = encode(target)
    asr_ids = encode_asr(tokenizer, record["asr"]) if spec.scene_tokens is not None else []
    extra: dict[str, Any] = {}
    if spec.time_text:  # (N, K) timestamp-text ids per frame, right-padded with -1
        per_frame = [tokenizer.encode(timestamp_text(t), add_special_tokens=False) for t in times]
        k = max(len(ids) for ids in per_frame)
        extra["time_ids"] = torch.tensor([ids + [-1] * (k - len(ids)) for ids in per_frame])
    if spec.keyword_task and with_target:
        text = " ".join(str(c.get("summary", "")) for c in record["chapters"])
        example = keyword_example(text, str(record["video_id"]))
        if example is not None:  # SVAD-VLM keyword generation on the same visual input
            kw = encode(example[1], example[0])
            extra = {
                "kw_input_ids": torch.tensor(kw.input_ids, dtype=torch.long),
                "kw_visual_mask": torch.tensor(kw.visual_mask, dtype=torch.bool),
                "kw_labels": torch.tensor(kw.labels, dtype=torch.long),
            }
            if kw.position_ids is not None:
                extra["kw_position_ids"] = torch.tensor(kw.position_ids, dtype=torch.long)
    if enc.copy_ids is not None:
        extra["copy_ids"] = torch.tensor(enc.copy_ids, dtype=torch.long)
    if enc.position_ids is not None:
        extra["position_ids"] = torch.tensor(enc.position_ids, dtype=torch.long)
    return {
        **extra,
        "video_id": str(record["video_id"]),
        "input_ids": torch.tensor(enc.input_ids, dtype=torch.long),
        "visual_mask": torch.tensor(enc.visual_mask, dtype=torch.bool),
        "labels": torch.tensor(enc.labels, dtype=torch.long),
        "pixel_values": pixels,
        "frame_times": torch.tensor(times, dtype=torch.float32),
        "asr_ids": torch.tensor(asr_ids, dtype=torch.long),
        "is_aux": str(record.get("source", "primary")) == "auxiliary",
    }


def _pad(seqs: Sequence[torch.Tensor], value: float | int | bool) -> torch.Tensor:
    """Right-pad 1-D+ tensors along dim 0 -> (B, L_max, ...)."""
    longest = max(s.shape[0] for s in seqs)
    out = seqs[0].new_full((len(seqs), longest, *seqs[0].shape[1:]), value)
    for i, s in enumerate(seqs):
        out[i, : s.shape[0]] = s
    return out


def collate(samples: Sequence[Mapping[str, Any]], pad_id: int) -> dict[str, Any]:
    """Right-padded batch with masks (True = real) for tokens, frames and ASR tokens.

    ``kw_*`` (keyword-generation sequences) are batched when every sample has one.
    """
    kw: dict[str, Any] = {}
    if all("kw_input_ids" in s for s in samples):
        kw_len = torch.tensor([s["kw_input_ids"].shape[0] for s in samples])
        kw = {
            "kw_input_ids": _pad([s["kw_input_ids"] for s in samples], pad_id),
            "kw_attention_mask": (torch.arange(int(kw_len.max()))[None] < kw_len[:, None]).long(),
            "kw_visual_mask": _pad([s["kw_visual_mask"] for s in samples], False),
            "kw_labels": _pad([s["kw_labels"] for s in samples], IGNORE_INDEX),
        }
        if all("kw_position_ids" in s for s in samples):
            kw["kw_position_ids"] = _pad([s["kw_position_ids"] for s in samples], 0)
    if all("time_ids" in s for s in samples):
        n_max = max(s["time_ids"].shape[0] for s in samples)
        k_max = max(s["time_ids"].shape[1] for s in samples)
        ids = torch.full((len(samples), n_max, k_max), -1, dtype=torch.long)
        for i, s in enumerate(samples):
            ids[i, : s["time_ids"].shape[0], : s["time_ids"].shape[1]] = s["time_ids"]
        kw["time_mask"] = ids >= 0  # (B, N, K)
        kw["time_ids"] = ids.clamp_min(0).masked_fill(ids < 0, pad_id)  # (B, N, K)
    if all("copy_ids" in s for s in samples):
        kw["copy_ids"] = _pad([s["copy_ids"] for s in samples], pad_id)  # (B, T)
    if all("position_ids" in s for s in samples):
        kw["position_ids"] = _pad([s["position_ids"] for s in samples], 0)  # (B, T)
    lengths = torch.tensor([s["input_ids"].shape[0] for s in samples])
    n_frames = torch.tensor([s["frame_times"].shape[0] for s in samples])
    n_asr = torch.tensor([s["asr_ids"].shape[0] for s in samples])
    return {
        **kw,
        "video_id": [s["video_id"] for s in samples],
        "input_ids": _pad([s["input_ids"] for s in samples], pad_id),  # (B, T)
        "attention_mask": (torch.arange(int(lengths.max()))[None] < lengths[:, None]).long(),
        "visual_mask": _pad([s["visual_mask"] for s in samples], False),  # (B, T)
        "labels": _pad([s["labels"] for s in samples], IGNORE_INDEX),  # (B, T)
        "pixel_values": _pad([s["pixel_values"] for s in samples], 0.0),  # (B, N, 3, S, S)
        "frame_times": _pad([s["frame_times"] for s in samples], 0.0),  # (B, N)
        "frame_mask": torch.arange(int(n_frames.max()))[None] < n_frames[:, None],  # (B, N)
        "asr_ids": _pad([s["asr_ids"] for s in samples], pad_id),  # (B, L_a)
        "asr_mask": torch.arange(int(n_asr.max()))[None] < n_asr[:, None],  # (B, L_a)
        "is_aux": torch.tensor([bool(s.get("is_aux", False)) for s in samples]),  # (B,)
    }


class NarratorDataset(Dataset[dict[str, Any]]):
    """One split of a dataset directory, prepared for a given narrator input spec."""

    def __init__(
        self,
        records: Sequence[Mapping[str, Any]],
        dataset_dir: Path,
        tokenizer: PreTrainedTokenizerBase,
        spec: InputSpec,
        augment: AugmentConfig | None = None,
        seed: int = 0,
    ) -> None:
        """``augment``: every item drawn is a fresh random view (training split only); the
        views come from one ``random.Random(seed)``, so a seed and a sampling order fix them."""
        self.records = list(records)
        self.dataset_dir = Path(dataset_dir)
        self.tokenizer = tokenizer
        self.spec = spec
        self.augment = augment if augment is not None and augment.enabled else None
        self.rng = random.Random(seed)
        self.pool = name_pool(self.records) if self.augment is not None else []

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return prepare_sample(
            self.records[i],
            self.dataset_dir,
            self.tokenizer,
            self.spec,
            augment=self.augment,
            rng=self.rng,
            pool=self.pool,
        )


class _Collator:
    """Picklable collate_fn (worker processes)."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return collate(samples, self.pad_id)


class NarratorDataModule(L.LightningDataModule):
    """train/val/test loaders over ``dataset_dir`` for a narrator's ``InputSpec``."""

    def __init__(
        self,
        dataset_dir: Path,
        tokenizer: PreTrainedTokenizerBase,
        spec: InputSpec,
        batch_size: int = 1,
        num_workers: int = 0,
        focus: Sequence[str] = (),
        focus_share: float = 0.5,
        augment: AugmentConfig | None = None,
        seed: int = 0,
    ) -> None:
        """``focus``: training video ids drawn (with replacement) as ``focus_share`` of the
        samples, the other videos as the rest (a warm start oversamples the new videos and
        replays the old ones against forgetting); empty = plain shuffling. ``augment``: random
        views of the training split's videos (``hivid.training.augment``), seeded by ``seed``."""
        super().__init__()
        if not 0 < focus_share < 1:
            raise ValueError(f"focus_share must be in (0, 1), got {focus_share}")
        self.dataset_dir = Path(dataset_dir)
        self.tokenizer = tokenizer
        self.spec = spec
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.focus = frozenset(focus)
        self.focus_share = focus_share
        self.augment = augment
        self.seed = seed
        self.splits: dict[str, NarratorDataset] = {}

    def setup(self, stage: str | None = None) -> None:
        for split in SPLITS:
            if split not in self.splits:
                records = read_split(self.dataset_dir, split)
                self.splits[split] = NarratorDataset(
                    records,
                    self.dataset_dir,
                    self.tokenizer,
                    self.spec,
                    augment=self.augment if split == "train" else None,
                    seed=self.seed,
                )

    def train_weights(self) -> list[float] | None:
        """Per-sample weights of the train split under ``focus`` (None: uniform)."""
        self.setup()
        ids = [str(r["video_id"]) for r in self.splits["train"].records]
        n_focus = sum(v in self.focus for v in ids)
        if n_focus in (0, len(ids)):
            return None
        rest = len(ids) - n_focus
        return [
            self.focus_share / n_focus if v in self.focus else (1 - self.focus_share) / rest
            for v in ids
        ]

    def _loader(self, split: str, shuffle: bool) -> DataLoader[dict[str, Any]]:
        self.setup()
        weights = self.train_weights() if split == "train" and shuffle else None
        # Lightning wraps a custom sampler in a DistributedSamplerWrapper under DDP.
        sampler = (
            WeightedRandomSampler(weights, num_samples=len(weights), replacement=True)
            if weights is not None
            else None
        )
        return DataLoader(
            self.splits[split],
            batch_size=self.batch_size,
            shuffle=shuffle and sampler is None,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=_Collator(int(self.tokenizer.pad_token_id)),
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader[dict[str, Any]]:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader[dict[str, Any]]:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader[dict[str, Any]]:
        return self._loader("test", shuffle=False)
