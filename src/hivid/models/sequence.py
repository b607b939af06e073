"""Sentence-level interleaved input sequence (paper §3.3, eq. 1) and the target text grammar.

Eq. 1: ``X = [T0, V0, T1, V1, S1, ..., T_{N-1}, V_{N-1}, S_M]``: every frame is a timestamp token
(text ``<t=3.0s>``, tokenized) followed by its ``L_v`` visual placeholders; each ASR sentence is
inserted right after the frame whose time is the latest one <= the sentence start (a sentence that
starts before the first frame goes after frame 0). The LLM input is

    [bos] prompt  X  target [eos]              (stage 1: placeholders = projected vision tokens)
    [bos] prompt  <|vis|> * (S + N(1+E))  target [eos]   (stage 2: placeholders = H_final)

Labels are -100 everywhere except the target and its eos, so the loss is the target's only.

The target is the TCoT followed by the chapters, one item per line, times in seconds::

    <think>
    [0.0s-4.0s] a hand holds a red bottle
    </think>
    <chapters>
    [0.0s-9.5s] Title | summary text
    </chapters>
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from transformers import PreTrainedTokenizerBase

from hivid.models.tokenizer import visual_token_id

IGNORE_INDEX = -100
"""Label value the loss ignores (torch.nn.CrossEntropyLoss default)."""

DEFAULT_PROMPT = (
    "Watch the product video. First think through what happens over time, "
    "then write its chapters with times, titles and summaries.\n"
)


KEYWORD_PROMPT = "Fill in the blank __ with one word from the product video:\n"
"""Prompt of the keyword-generation auxiliary task (SVAD-VLM §4.2); the blanked text follows."""

_WORD = re.compile(r"[A-Za-z][A-Za-z'-]{3,}")


def keyword_example(text: str, seed: str) -> tuple[str, str] | None:
    """(prompt, keyword): one word of ``text`` (>= 4 letters) blanked out, chosen by ``seed``.

    Deterministic for a given (text, seed); None when the text has no such word.
    """
    words = list(_WORD.finditer(text))
    if not words:
        return None
    import hashlib

    pick = words[int(hashlib.sha256(seed.encode()).hexdigest(), 16) % len(words)]
    blanked = text[: pick.start()] + "__" + text[pick.end() :]
    return f"{KEYWORD_PROMPT}{_one_line(blanked)}\n", pick.group(0)


class SequenceError(ValueError):
    """A sample cannot be turned into an input sequence (the message says why)."""


@dataclass(frozen=True)
class Item:
    """One element of eq. 1: a frame's timestamp, its visual tokens, or an ASR sentence."""

    kind: Literal["time", "frame", "asr"]
    index: int
    """Frame index for ``time``/``frame``, sentence index (into the input list) for ``asr``."""


@dataclass(frozen=True)
class EncodedSequence:
    """Token ids of one sample, with the positions of visual placeholders and the loss labels."""

    input_ids: list[int]
    visual_mask: list[bool]
    """True where ``input_ids`` holds the visual placeholder (replaced by an embedding)."""
    labels: list[int]
    """``IGNORE_INDEX`` except on the target tokens (and eos)."""


def timestamp_text(t: float) -> str:
    """Text of a frame's timestamp token, e.g. ``<t=3.0s>``."""
    return f"<t={t:.1f}s>"


def interleave(frame_times: Sequence[float], asr: Sequence[Mapping[str, Any]]) -> list[Item]:
    """Order of eq. 1: per frame ``time, frame``, then the sentences that start in that frame.

    A sentence belongs to the frame with the latest time <= its start (frame 0 if it starts
    earlier). Sentences attached to one frame keep their start order (stable for ties).
    """
    if not frame_times:
        raise SequenceError("a sample needs at least one frame")
    if any(b < a for a, b in itertools.pairwise(frame_times)):
        raise SequenceError("frame_times must be non-decreasing")
    by_frame: dict[int, list[int]] = {}
    order = sorted(range(len(asr)), key=lambda j: float(asr[j]["start"]))
    for j in order:
        start = float(asr[j]["start"])
        frame = 0
        for i, t in enumerate(frame_times):
            if t <= start:
                frame = i
            else:
                break
        by_frame.setdefault(frame, []).append(j)
    items: list[Item] = []
    for i in range(len(frame_times)):
        items += [Item("time", i), Item("frame", i)]
        items += [Item("asr", j) for j in by_frame.get(i, [])]
    return items


def _encode(tok: PreTrainedTokenizerBase, text: str) -> list[int]:
    return list(tok.encode(text, add_special_tokens=False))


def _assemble(
    tok: PreTrainedTokenizerBase,
    context: list[tuple[list[int], bool]],
    target: str | None,
    prompt: str,
) -> EncodedSequence:
    """``[bos] prompt context target [eos]``; ``context`` pieces are (ids, is_visual)."""
    ids: list[int] = [int(tok.bos_token_id), *_encode(tok, prompt)]
    vis: list[bool] = [False] * len(ids)
    for piece, is_visual in context:
        ids += piece
        vis += [is_visual] * len(piece)
    labels = [IGNORE_INDEX] * len(ids)
    if target is not None:
        tgt = [*_encode(tok, target), int(tok.eos_token_id)]
        ids += tgt
        vis += [False] * len(tgt)
        labels += tgt
    return EncodedSequence(input_ids=ids, visual_mask=vis, labels=labels)


def encode_interleaved(
    tok: PreTrainedTokenizerBase,
    frame_times: Sequence[float],
    asr: Sequence[Mapping[str, Any]],
    target: str | None,
    visual_tokens_per_frame: int,
    prompt: str = DEFAULT_PROMPT,
    memory: tuple[int, int] = (0, 0),
) -> EncodedSequence:
    """Stage-1 input: the interleaved sequence of eq. 1 (``target=None`` for generation).

    ``memory = (K, M)`` (memory consolidation): the first K frames are replaced by M memory
    placeholders at the start, followed by those frames' ASR sentences, then frames K.. as eq. 1.
    """
    vid = visual_token_id(tok)
    old, m = memory
    context: list[tuple[list[int], bool]] = [([vid] * m, True)] if old else []
    for item in interleave(frame_times, asr):
        if item.kind != "asr" and item.index < old:
            continue  # consolidated into the memory tokens
        if item.kind == "time":
            context.append((_encode(tok, timestamp_text(frame_times[item.index])), False))
        elif item.kind == "frame":
            context.append(([vid] * visual_tokens_per_frame, True))
        else:
            context.append((_encode(tok, str(asr[item.index]["text"]).strip() + "\n"), False))
    return _assemble(tok, context, target, prompt)


def encode_compressed(
    tok: PreTrainedTokenizerBase,
    num_compressed_tokens: int,
    target: str | None,
    prompt: str = DEFAULT_PROMPT,
) -> EncodedSequence:
    """Stage-2 input ``[prompt, H_final, target]``: H_final's valid tokens fill the placeholders."""
    return _assemble(tok, [([visual_token_id(tok)] * num_compressed_tokens, True)], target, prompt)


def encode_asr(tok: PreTrainedTokenizerBase, asr: Sequence[Mapping[str, Any]]) -> list[int]:
    """ASR token ids the compressor embeds: each sentence prefixed by its start timestamp text.

    The compressor sees ASR only as a token sequence (eqs. 2-3), so the start time written before
    each sentence is what lets the fused ASR tokens carry when they were spoken.
    """
    ids: list[int] = []
    for s in sorted(asr, key=lambda s: float(s["start"])):
        ids += _encode(tok, f"{timestamp_text(float(s['start']))}{str(s['text']).strip()}\n")
    return ids


# --- target grammar -------------------------------------------------------------------------------


_MARKERS = re.compile(r"</?(?:think|chapters)>")


def _one_line(text: Any) -> str:
    """Single-line text without the grammar's section markers (they would end a section)."""
    return " ".join(_MARKERS.sub(" ", str(text)).split())


def _span(start: Any, end: Any) -> str:
    return f"[{float(start):.1f}s-{float(end):.1f}s]"


def format_target(tcot: Sequence[Mapping[str, Any]], chapters: Sequence[Mapping[str, Any]]) -> str:
    """TCoT then chapters as text (grammar in the module docstring).

    Newlines and section markers inside texts become spaces and ``|`` in a title becomes ``/`` so
    that every item stays one parseable line; times are written with one decimal.
    """
    lines = ["<think>"]
    lines += [f"{_span(o['start'], o['end'])} {_one_line(o['observation'])}" for o in tcot]
    lines += ["</think>", "<chapters>"]
    for c in chapters:
        title = _one_line(c["title"]).replace("|", "/")
        lines.append(f"{_span(c['start'], c['end'])} {title} | {_one_line(c['summary'])}")
    lines.append("</chapters>")
    return "\n".join(lines)


_CHAPTER_LINE = re.compile(
    r"^\s*\[\s*(\d+(?:\.\d+)?)\s*s?\s*-\s*(\d+(?:\.\d+)?)\s*s?\s*\]\s*([^|]*?)\s*\|\s*(.*?)\s*$"
)


def _chapter_region(text: str) -> str:
    """The text after ``<chapters>`` (up to ``</chapters>``); without it, the text minus TCoT."""
    if "<chapters>" in text:
        region = text.split("<chapters>", 1)[1]
        return region.split("</chapters>", 1)[0]
    # A generation may omit the marker: drop the thinking part so TCoT lines are never chapters.
    text = re.sub(r"<think>.*?</think>", "", text, flags=re.DOTALL)
    return text.split("<think>", 1)[0]


def parse_chapters(text: str) -> list[dict[str, Any]]:
    """Chapters ``[{start, end, title, summary}]`` from generated text; malformed lines are skipped.

    A line is kept when it reads ``[START s-END s] title | summary`` with finite times,
    ``start <= end`` and a non-empty title.
    """
    out: list[dict[str, Any]] = []
    for line in _chapter_region(text).splitlines():
        m = _CHAPTER_LINE.match(line)
        if m is None:
            continue
        start, end = float(m.group(1)), float(m.group(2))
        title = m.group(3).strip()
        if not title or not (math.isfinite(start) and math.isfinite(end)) or end < start:
            continue
        out.append({"start": start, "end": end, "title": title, "summary": m.group(4).strip()})
    return out
