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

CHAPTER_SHARE = 0.3
"""Share of the token budget kept for the chapters when the TCoT runs long (thinking budget)."""


def generate_chapters(
    model: HiVidNarrator,
    tokenizer: PreTrainedTokenizerBase,
    sample: Mapping[str, Any],
    dataset_dir: Path,
    max_new_tokens: int = 128,
    chapter_share: float = CHAPTER_SHARE,
    stats: dict[str, Any] | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    """Generate one video's narration -> (raw text, parse_chapters(text)).

    ``sample`` is one record of a dataset split (its tcot/chapters are not used). The TCoT gets
    ``(1 - chapter_share) * max_new_tokens`` tokens; when it has not reached ``<chapters>`` by
    then (a long or looping chain of thought), ``</think>`` and ``<chapters>`` are forced and
    the rest of the budget generates the chapters, so a run-on TCoT cannot starve them.
    ``stats``, when given, receives ``llm_input_tokens`` (the prompt length the LLM reads).
    """
    model.eval()
    prepared = prepare_sample(sample, dataset_dir, tokenizer, model.input_spec(), with_target=False)
    device = next(model.parameters()).device
    batch = {
        k: v.to(device) if isinstance(v, torch.Tensor) else v
        for k, v in collate([prepared], int(tokenizer.pad_token_id)).items()
    }
    if stats is not None:
        stats["llm_input_tokens"] = int(batch["input_ids"].shape[1])  # (1, T): T
    eos, pad = int(tokenizer.eos_token_id), int(tokenizer.pad_token_id)
    think_budget = max(1, round(max_new_tokens * (1.0 - chapter_share)))
    ids = model.generate(batch, think_budget, eos, pad)[0]  # (new,)
    text = tokenizer.decode(ids, skip_special_tokens=True)
    finished = bool((ids == eos).any())
    rest = max_new_tokens - int(ids.shape[0])
    if "<chapters>" not in text and not finished and rest > 0:
        # Cut back to the last complete TCoT line, then close the thought and open the chapters:
        # the model continues from exactly the context it was trained on.
        if "</think>" in text:
            kept = text[: text.index("</think>") + len("</think>")] + "\n<chapters>\n"
        else:
            kept = text[: text.rfind("\n") + 1] + "</think>\n<chapters>\n"
        suffix = torch.tensor([tokenizer.encode(kept, add_special_tokens=False)], device=ids.device)
        more = model.generate(batch, rest, eos, pad, suffix_ids=suffix)[0]  # (1, K) -> (new,)
        text = kept + tokenizer.decode(more, skip_special_tokens=True)
    return text, parse_chapters(text)
