"""Greedy chapter generation with the same input construction as training."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase
from transformers.generation import LogitsProcessorList

from hivid.models.decoding import (
    AllowedTokens,
    ChapterGrammar,
    ChapterTokens,
    NoImmediateRepeat,
    NoRepeatInSegment,
    SectionGrammar,
    SpanGrammar,
    SpanTokens,
    WholeWords,
    chapter_tokens,
    segment_break_ids,
    span_tokens,
    word_token_ids,
)
from hivid.models.narrator import HiVidNarrator
from hivid.models.sequence import contiguous_chapters, ground_chapters, parse_chapters
from hivid.training.datamodule import collate, prepare_sample, select_frames

REPEAT_NGRAM = 4
"""No token 4-gram twice within one title, summary or TCoT line (``NoRepeatInSegment``)."""
MAX_TITLE_TOKENS = 16
"""Longest chapter title decoded, in tokens (the demo's training titles: 3-9); then the ``|``."""
MAX_SUMMARY_TOKENS = 32
"""Longest chapter summary decoded (training summaries: 10-17 tokens); then the line ends. Without
the caps a small model ran titles on for 40 tokens ("Get the Zenthe Glowe for $ below and order
...") and the chapters after them never came (stage 2 SODA_c 0.100 -> 0.133 on the demo's test
split, stage 1 0.140 -> 0.146; tighter caps, 10 / 20, helped stage 1 and hurt stage 2)."""
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
    constrained: bool = True,
    whole_words: bool = True,
) -> tuple[str, list[dict[str, Any]]]:
    """Generate one video's narration -> (raw text, chapters in seconds).

    ``sample`` is one record of a dataset split (its tcot/chapters are not used). The chapters
    are ``parse_chapters(text)`` grounded on the frames the model read (``ground_chapters``: each
    generated time is an input frame's timestamp, boundaries fall between frames, nothing lies
    outside [0, duration]; ``duration`` comes from the record, else the last frame time plus one
    frame spacing), then made contiguous (``contiguous_chapters``: they tile [0, duration], each
    generated start is a boundary). The TCoT gets
    ``(1 - chapter_share) * max_new_tokens`` tokens; when it has not reached ``<chapters>`` by
    then (a long or looping chain of thought), ``</think>`` and ``<chapters>`` are forced and
    the rest of the budget generates the chapters, so a run-on TCoT cannot starve them.
    ``stats``, when given, receives ``llm_input_tokens`` (the prompt length the LLM reads).
    ``constrained``: decode only tokens of the grammar, the caption vocabulary and this video's own
    input (its frame timestamps and narration, ``allowed_token_ids``): times come from the frames,
    names from what was said, never from another video remembered from training; no word
    token right after itself (``NoImmediateRepeat``); no token 4-gram twice in one title, summary
    or TCoT line (``NoRepeatInSegment``); the sections in the targets' order (``SectionGrammar``);
    chapters that tile the frames read, one parseable line each (``ChapterGrammar``); a word
    made of this video's own pieces written whole, as its narration spells it (``WholeWords``,
    ``whole_words``).
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
    times_all = [float(t) for t in sample["frame_times"]]
    times = [times_all[i] for i in select_frames(len(times_all), model.input_spec().max_frames)]
    allowed = None
    if constrained:
        ids_ok = allowed_token_ids(tokenizer, prepared, sample.get("asr") or ()).to(device)
        words, spans, breaks, marks = _vocab_rules(tokenizer)
        own_words = video_words(tokenizer, prepared, sample.get("asr") or ())
        generic = generic_token_ids(tokenizer)

        def rules(prefix: list[int]) -> LogitsProcessorList:
            out = [
                AllowedTokens(ids_ok),
                NoImmediateRepeat(words),
                NoRepeatInSegment(REPEAT_NGRAM, breaks),
            ]
            if spans is not None:
                out.append(SpanGrammar(spans))
                if marks is not None:
                    out.append(SectionGrammar(marks, spans, prefix, eos=eos))
                    out.append(
                        ChapterGrammar(
                            marks, spans, times, prefix, eos, MAX_TITLE_TOKENS, MAX_SUMMARY_TOKENS
                        )
                    )
            if whole_words:  # last: it sees what the others left, and yields when it is all
                out.append(WholeWords(_decoded(tokenizer), own_words, generic, prefix))
            return LogitsProcessorList(out)

        allowed = rules([])
    think_budget = max(1, round(max_new_tokens * (1.0 - chapter_share)))
    ids = model.generate(batch, think_budget, eos, pad, processors=allowed)[0]  # (new,)
    text = tokenizer.decode(ids, skip_special_tokens=True)
    finished = bool((ids == eos).any())
    rest = max_new_tokens - int(ids.shape[0])
    if "<chapters>" in text and not finished and rest > 0:
        # The chapters began inside the thinking budget: they go on with the rest of it.
        kept, suffix = text, ids[None]  # (1, new)
    elif not finished and rest > 0:
        # Cut back to the last complete TCoT line, then close the thought and open the chapters:
        # the model continues from exactly the context it was trained on.
        if "</think>" in text:
            kept = text[: text.index("</think>") + len("</think>")] + "\n<chapters>\n"
        else:
            kept = text[: text.rfind("\n") + 1] + "</think>\n<chapters>\n"
        suffix = torch.tensor([tokenizer.encode(kept, add_special_tokens=False)], device=ids.device)
    if not finished and rest > 0:
        more_rules = rules(suffix[0].tolist()) if constrained else None
        more = model.generate(batch, rest, eos, pad, suffix, more_rules)[0]  # (1, K) -> (new,)
        text = kept + tokenizer.decode(more, skip_special_tokens=True)
    if stats is not None:
        stats["raw_chapters"] = len(parse_chapters(text))
    duration = sample_duration(sample)
    chapters = ground_chapters(parse_chapters(text), times, duration, sample.get("asr") or ())
    return text, contiguous_chapters(chapters, duration)


def _decoded(tokenizer: PreTrainedTokenizerBase) -> list[str]:
    """Every token's text, decoded once per tokenizer object."""
    cached = getattr(tokenizer, "_hivid_decoded", None)
    if cached is None:
        cached = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
        tokenizer._hivid_decoded = cached  # type: ignore[attr-defined]
    return cached  # type: ignore[no-any-return]


def _vocab_rules(
    tokenizer: PreTrainedTokenizerBase,
) -> tuple[torch.Tensor, SpanTokens | None, torch.Tensor, ChapterTokens | None]:
    """``word_token_ids``, ``span_tokens``, ``segment_break_ids`` and ``chapter_tokens`` of the
    tokenizer, built once per tokenizer object (they scan the whole vocabulary; every video
    generated reuses them)."""
    cached = getattr(tokenizer, "_hivid_vocab_rules", None)
    if cached is None:
        decoded = _decoded(tokenizer)
        cached = (
            word_token_ids(decoded),
            span_tokens(decoded),
            segment_break_ids(decoded),
            chapter_tokens(decoded),
        )
        tokenizer._hivid_vocab_rules = cached  # type: ignore[attr-defined]
    return cached  # type: ignore[no-any-return]


def sample_duration(sample: Mapping[str, Any]) -> float:
    """The record's duration, else its last frame time plus the median frame spacing (1 s for
    a single frame)."""
    if sample.get("duration") is not None:
        return float(sample["duration"])
    times = sorted(float(t) for t in sample["frame_times"])
    gaps = sorted(b - a for a, b in itertools.pairwise(times) if b > a)
    return times[-1] + (gaps[len(gaps) // 2] if gaps else 1.0)


GRAMMAR_TEXT = (
    '<think>\n[0.0s-1.0s] shot 1: "no narration"\n</think>\n<chapters>\n'
    "[0.0s-1.0s] Chapter | .\n</chapters>\n 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20"
)
"""Text whose tokens constrained decoding always allows: the target grammar's markers,
brackets, separators, quotes and TCoT wording (``format_grounded_target``)."""


def video_words(
    tokenizer: PreTrainedTokenizerBase, prepared: Mapping[str, Any], asr: Any
) -> list[list[int]]:
    """The token sequences whose words ``WholeWords`` lets this video's names be written as: the
    text the LLM reads (prompt, timestamps, narration), the compressor's ASR ids, and each
    sentence tokenized alone, with and without a leading space."""
    seqs = [
        prepared["input_ids"][~prepared["visual_mask"]].tolist(),
        prepared["asr_ids"].tolist(),
    ]
    for s in asr:
        text = str(s["text"]).strip()
        seqs.append(tokenizer.encode(" " + text, add_special_tokens=False))
        seqs.append(tokenizer.encode(text, add_special_tokens=False))
    return [[int(i) for i in seq] for seq in seqs]


def generic_token_ids(tokenizer: PreTrainedTokenizerBase) -> torch.Tensor:
    """Tokens of the grammar (``GRAMMAR_TEXT``) and the caption vocabulary: words of many
    videos, which ``WholeWords`` leaves free."""
    from hivid.models.tokenizer import caption_vocab

    ids = set(tokenizer.encode(GRAMMAR_TEXT, add_special_tokens=False)) | set(
        caption_vocab(tokenizer)
    )
    return torch.tensor(sorted(ids), dtype=torch.long)


def allowed_token_ids(
    tokenizer: PreTrainedTokenizerBase, prepared: Mapping[str, Any], asr: Any
) -> torch.Tensor:
    """Token ids constrained decoding may emit for one video: the grammar (``GRAMMAR_TEXT``),
    eos, the caption vocabulary the tokenizer carries (words of many training videos' chapters,
    ``hivid.models.tokenizer.caption_vocab``), every text token the stage-1 input holds
    (timestamps, narration) and, for stage 2 whose LLM input has no text, the same timestamps and
    narration tokenized alone."""
    ids = set(tokenizer.encode(GRAMMAR_TEXT, add_special_tokens=False))
    ids.add(int(tokenizer.eos_token_id))
    text = prepared["input_ids"][~prepared["visual_mask"]]
    ids.update(int(i) for i in text.tolist())
    ids.update(int(i) for i in prepared["asr_ids"].tolist())
    from hivid.models.sequence import timestamp_text

    for t in prepared["frame_times"].tolist():
        ids.update(tokenizer.encode(timestamp_text(float(t)), add_special_tokens=False))
    for s in asr:
        ids.update(tokenizer.encode(" " + str(s["text"]).strip() + "\n", add_special_tokens=False))
        ids.update(tokenizer.encode(str(s["text"]).strip(), add_special_tokens=False))
    from hivid.models.tokenizer import caption_vocab, visual_token_id

    ids.update(caption_vocab(tokenizer))
    special = {int(tokenizer.pad_token_id), int(tokenizer.bos_token_id)}

    special.add(visual_token_id(tokenizer))
    return torch.tensor(sorted(ids - special), dtype=torch.long)
