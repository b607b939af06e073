"""Greedy chapter generation with the same input construction as training."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from hivid.models.narrator import HiVidNarrator
from hivid.models.sequence import parse_chapters
from hivid.training.datamodule import collate, prepare_sample


def generate_chapters(
    model: HiVidNarrator,
    tokenizer: PreTrainedTokenizerBase,
    sample: Mapping[str, Any],
    dataset_dir: Path,
    max_new_tokens: int = 128,
) -> tuple[str, list[dict[str, Any]]]:
    """Generate one video's narration -> (raw text, parse_chapters(text)).

    ``sample`` is one record of a dataset split (its tcot/chapters are not used).
    """
    model.eval()
    prepared = prepare_sample(sample, dataset_dir, tokenizer, model.input_spec(), with_target=False)
    device = next(model.parameters()).device
    batch = {
        k: v.to(device) if isinstance(v, torch.Tensor) else v
        for k, v in collate([prepared], int(tokenizer.pad_token_id)).items()
    }
    ids = model.generate(
        batch, max_new_tokens, int(tokenizer.eos_token_id), int(tokenizer.pad_token_id)
    )
    text = tokenizer.decode(ids[0], skip_special_tokens=True)
    return text, parse_chapters(text)
