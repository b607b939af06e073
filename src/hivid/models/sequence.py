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

Grounded targets (``format_grounded_target``, what training uses): every time in the target is the
timestamp of an input frame, written exactly as its timestamp token (``<t=8.0s>`` -> ``8.0s``), so
the model copies a time it reads instead of inventing one. A chapter's span runs from its first
frame to the first frame of the next chapter (the last chapter: to the last frame), the TCoT has one
line per chapter (where the new shot starts and what is said first), titles name the product and a
summary is the chapter's first narration sentence. ``ground_chapters`` turns generated frame
times back into seconds: a boundary at frame k lies between frames k-1 and k (at the narration
pause there, as the annotation places it), a chapter ending on the last frame ends with the
video, and nothing can fall outside [0, duration].
"""

from __future__ import annotations

import dataclasses
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
    copy_ids: list[int] | None = None
    """What the copy head (``options.copy_head``) copies at each position where that differs
    from ``input_ids``: stage 2's T_e(i) slot stands for the timestamp token (``8.0s``) of the
    frame it replaces, so a chapter's time can still be copied from it. None: ``input_ids``."""
    position_ids: list[int] | None = None
    """The LLM's position of each token where it is not its index: stage 2 with
    ``stage2_positions`` puts every kept token where stage 1's layout had it. None: 0, 1, 2, ..."""


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
            context.append((_sentence(tok, asr[item.index]), False))
    return _assemble(tok, context, target, prompt)


def _sentence(tok: PreTrainedTokenizerBase, sentence: Mapping[str, Any]) -> list[int]:
    """An ASR sentence as the LLM reads it between frames (eq. 1's S_j): its text, one line."""
    return _encode(tok, str(sentence["text"]).strip() + "\n")


def encode_compressed(
    tok: PreTrainedTokenizerBase,
    num_compressed_tokens: int,
    target: str | None,
    prompt: str = DEFAULT_PROMPT,
) -> EncodedSequence:
    """Stage-2 input ``[prompt, H_final, target]``: H_final's valid tokens fill the placeholders."""
    return _assemble(tok, [([visual_token_id(tok)] * num_compressed_tokens, True)], target, prompt)


def encode_compressed_interleaved(
    tok: PreTrainedTokenizerBase,
    frame_times: Sequence[float],
    asr: Sequence[Mapping[str, Any]],
    target: str | None,
    scene_tokens: int,
    tokens_per_frame: int,
    prompt: str = DEFAULT_PROMPT,
    stage1_frame_tokens: int | None = None,
) -> EncodedSequence:
    """Stage-2 input with the ASR text kept: ``[prompt, H_scene, T_e(0), H_event(0), S_j, ...]``.

    The placeholders are in H_final's order (S scene tokens, then 1 + E per frame), so the
    compressor's valid tokens fill them as in ``encode_compressed``; each sentence follows its
    frame's placeholders exactly where eq. 1 puts it after the frame's visual tokens.

    ``stage1_frame_tokens`` (stage 1's L_v, ``stage2_positions``): ``position_ids`` put every
    token where stage 1's sequence had it, shifted by the S scene tokens after the prompt: T_e(i)
    at frame i's timestamp token, H_event(i) spread over the end of V_i, each sentence and the
    target at their stage-1 positions. The frozen LLM's rotary attention then sees the
    distances it learnt (a sentence 64 + 3 tokens after its frame's time, not 2).
    """
    vid = visual_token_id(tok)
    context: list[tuple[list[int], bool]] = [([vid] * scene_tokens, True)]
    copies: list[tuple[int, int]] = []  # (context piece, timestamp token id) of each T_e(i)
    start = 1 + len(_encode(tok, prompt))  # bos, prompt: where the context begins
    positions: list[list[int]] = [list(range(start, start + scene_tokens))]
    cursor = start + scene_tokens  # the next position of stage 1's layout, shifted by S
    time_pos, time = cursor, []
    for item in interleave(frame_times, asr):
        if item.kind == "time":  # stage 1's "<t=8.0s>": T_e(i) takes its time token's place
            full = _encode(tok, timestamp_text(frame_times[item.index]))
            time = _encode(tok, timestamp_text(frame_times[item.index])[3:-1])  # "8.0s"
            at = full.index(time[0]) if len(time) == 1 and time[0] in full else len(full) // 2
            time_pos, cursor = cursor + at, cursor + len(full)
        elif item.kind == "frame":  # T_e(i) and H_event(i) replace "<t=...>" and V_i
            if len(time) == 1:  # frame i's "8.0s", encoded at its "time" item just before
                copies.append((len(context), time[0]))
            context.append(([vid] * tokens_per_frame, True))
            v, e = stage1_frame_tokens or 0, tokens_per_frame - 1
            positions.append([time_pos] + [cursor + (j + 1) * v // e - 1 for j in range(e)])
            cursor += v
        else:
            context.append((_sentence(tok, asr[item.index]), False))
            positions.append(list(range(cursor, cursor + len(context[-1][0]))))
            cursor += len(context[-1][0])
    enc = _assemble(tok, context, target, prompt)
    if stage1_frame_tokens is not None:
        flat = [*range(start), *itertools.chain.from_iterable(positions)]
        flat += range(cursor, cursor + len(enc.input_ids) - len(flat))  # the target
        enc = dataclasses.replace(enc, position_ids=flat)
    copy_ids = list(enc.input_ids)
    begins = [1 + len(_encode(tok, prompt))]  # bos, prompt: where each context piece begins
    for ids, _ in context:
        begins.append(begins[-1] + len(ids))
    for index, time_id in copies:
        copy_ids[begins[index]] = time_id  # T_e(i) is the first of frame i's 1 + E slots
    return dataclasses.replace(enc, copy_ids=copy_ids)


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


# --- grounded targets: times copied from the input's frame timestamps ---------------------------

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
TCOT_WORDS = 6
"""Words of a chapter's first sentence quoted in its TCoT line."""


def frame_index(t: float, frame_times: Sequence[float]) -> int | None:
    """Index of the first frame at or after ``t`` (None when ``t`` is after the last frame)."""
    for k, ft in enumerate(frame_times):
        if ft >= t - 1e-6:
            return k
    return None


def nearest_frame(t: float, frame_times: Sequence[float]) -> int:
    """Index of the frame whose timestamp is closest to ``t`` (ties: the earlier frame)."""
    return min(range(len(frame_times)), key=lambda k: (abs(frame_times[k] - t), k))


def first_sentence(text: Any) -> str:
    """The first sentence of ``text`` (one line; the whole text when it has no sentence end)."""
    one = _one_line(text)
    return _SENTENCE_END.split(one, maxsplit=1)[0] if one else ""


def product_name(metadata: Mapping[str, Any] | None) -> str:
    """The product's name from listing metadata: its title without the leading brand and the
    trailing attribute values ("Lumora Silk Shampoo 500 ml" -> "Silk Shampoo"); "" without one."""
    if not metadata:
        return ""
    title = _one_line(metadata.get("title", ""))
    brand = _one_line(metadata.get("brand", ""))
    if brand and title.lower().startswith(brand.lower() + " "):
        title = title[len(brand) + 1 :]
    values = [_one_line(v) for v in (metadata.get("attributes") or {}).values() if v]
    changed = True
    while changed and title:
        changed = False
        for v in values:
            if v and title.lower().endswith(" " + v.lower()):
                title, changed = title[: -len(v) - 1].rstrip(), True
    return title


def grounded_chapters(
    chapters: Sequence[Mapping[str, Any]], frame_times: Sequence[float]
) -> list[tuple[int, int, Mapping[str, Any]]]:
    """(first frame, end frame, chapter) per chapter: the end frame is the next chapter's first
    frame, the last frame for the last chapter. A chapter that starts after the last frame, or on
    the same frame as the one before it (shorter than the frame spacing), is left out."""
    starts: list[tuple[int, Mapping[str, Any]]] = []
    for c in sorted(chapters, key=lambda c: float(c["start"])):
        k = 0 if not starts else frame_index(float(c["start"]), frame_times)
        if k is None or (starts and k <= starts[-1][0]):
            continue
        starts.append((k, c))
    last = len(frame_times) - 1
    return [
        (k, starts[i + 1][0] if i + 1 < len(starts) else last, c) for i, (k, c) in enumerate(starts)
    ]


def first_said(
    asr: Sequence[Mapping[str, Any]], start: float, end: float, last: bool = False
) -> str:
    """The first narration sentence that starts in [start, end) (to the end for the ``last``
    chapter), "" when none does."""
    for s in sorted(asr, key=lambda s: float(s["start"])):
        t = float(s["start"])
        if t >= start and (last or t < end):
            return first_sentence(s.get("text", ""))
    return ""


TITLE_SOURCES = ("product", "chapter")


def format_grounded_target(
    chapters: Sequence[Mapping[str, Any]],
    frame_times: Sequence[float],
    metadata: Mapping[str, Any] | None = None,
    asr: Sequence[Mapping[str, Any]] = (),
    titles: Literal["product", "chapter"] = "product",
) -> str:
    """The training target with every time copied from ``frame_times`` (module docstring).

    Title (``titles``): ``product``, the product name (``product_name(metadata)``; the chapter's
    own title without one), for pseudo-labels whose titles are on-screen text lines, e.g.
    "Capacity: 450 ml", that the model cannot read at its frame size; ``chapter``, the chapter's
    own title, for human (ground-truth) chapters. Summary: the first sentence of the chapter's
    summary. TCoT: per chapter, where its shot starts and the first words said in it (from
    ``asr`` when given, else from the summary: the annotation's summaries are narration).
    """
    if not frame_times:
        raise SequenceError("a grounded target needs at least one frame")
    if titles not in TITLE_SOURCES:
        raise SequenceError(f"titles must be one of {', '.join(TITLE_SOURCES)}, not {titles!r}")
    name = product_name(metadata) if titles == "product" else ""
    spans = grounded_chapters(chapters, frame_times)
    tcot, lines = [], []
    for i, (a, b, c) in enumerate(spans):
        span = f"[{frame_times[a]:.1f}s-{frame_times[b]:.1f}s]"
        summary = first_sentence(c.get("summary", ""))
        if asr:
            # the boundary at frame a lies in (t[a-1], t[a]]: a sentence said there belongs to it
            lo = float(frame_times[a - 1]) if a > 0 else float("-inf")
            hi = float(frame_times[b - 1]) if i + 1 < len(spans) else float("inf")
            said = first_said(asr, lo, hi, last=i + 1 == len(spans))
        else:
            said = summary
        said = " ".join(said.split()[:TCOT_WORDS])
        tcot.append(f"{span} shot {i + 1}: " + (f'"{said}"' if said else "no narration"))
        title = name or _one_line(c.get("title", "")).replace("|", "/")
        lines.append(f"{span} {title or 'Chapter'} | {summary}")
    return "\n".join(["<think>", *tcot, "</think>", "<chapters>", *lines, "</chapters>"])


def ground_chapters(
    chapters: Sequence[Mapping[str, Any]],
    frame_times: Sequence[float],
    duration: float,
    asr: Sequence[Mapping[str, Any]] = (),
) -> list[dict[str, Any]]:
    """Generated chapters (times that should be input frame timestamps) -> chapters in seconds.

    Each time snaps to the nearest input frame k. A start at frame 0 is 0; any other boundary at
    frame k lies in (t[k-1], t[k]]: at the widest narration pause there, else the midpoint (the
    annotation's own rule, ``hivid.annotate.chapters.refine_boundary``). An end on the last frame
    of the last chapter is the video's end. Chapters are then ordered, made non-overlapping and
    kept inside [0, duration]; empty ones are dropped. Titles and summaries are kept as generated.
    """
    from hivid.annotate.chapters import refine_boundary

    if not frame_times:
        return []
    n = len(frame_times)
    segs = sorted(
        ({"start": float(s["start"]), "end": float(s["end"])} for s in asr),
        key=lambda s: s["start"],
    )

    def boundary(k: int) -> float:
        if k <= 0:
            return 0.0
        return refine_boundary(float(frame_times[k - 1]), float(frame_times[k]), segs)

    spans = []
    for i, c in enumerate(chapters):
        a = nearest_frame(float(c["start"]), frame_times)
        b = nearest_frame(float(c["end"]), frame_times)
        end = duration if (b == n - 1 and i == len(chapters) - 1) else boundary(b)
        spans.append((boundary(a), end, c))
    out: list[dict[str, Any]] = []
    for start, end, c in sorted(spans, key=lambda x: x[0]):
        start = max(0.0, start, out[-1]["end"] if out else 0.0)
        end = min(float(duration), end)
        if end - start <= 1e-6:
            continue
        out.append(
            {
                "start": round(start, 3),
                "end": round(end, 3),
                "title": str(c["title"]),
                "summary": str(c.get("summary", "")),
            }
        )
    return out


def contiguous_chapters(
    chapters: Sequence[Mapping[str, Any]], duration: float
) -> list[dict[str, Any]]:
    """Ordered, non-overlapping chapters -> chapters that tile [0, duration] (the paper's
    "contiguous chapters"): the first starts at 0, each other one where the next starts (the
    generated start is the boundary; a gap before it joins the chapter before), the last ends with
    the video. Titles and summaries are kept."""
    out = [dict(c) for c in chapters]
    if not out or duration <= 0:
        return []
    out[0]["start"] = 0.0
    for prev, cur in itertools.pairwise(out):
        prev["end"] = cur["start"]
    out[-1]["end"] = round(float(duration), 3)
    return [c for c in out if c["end"] - c["start"] > 1e-6]
