"""Constrained decoding for ``HiVidNarrator.generate``: only tokens of the target grammar and of the
video's own input may be emitted (see ``hivid.models.sequence``), no word token right after
itself (a small model's commonest failure: "the Orvana Orvana Orvana", "$ $ $"), no n-gram twice
in one title or summary ("Glow Cream Glow Cream Glow Cream"), and times only inside
``[<time>-<time>]`` spans.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers.generation import LogitsProcessor


class AllowedTokens(LogitsProcessor):
    """Logits processor of constrained decoding: tokens outside ``allowed`` get -inf."""

    def __init__(self, allowed: torch.Tensor) -> None:
        self.allowed = allowed.long()

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        mask = torch.full_like(scores, float("-inf"))
        keep = self.allowed[self.allowed < scores.shape[-1]].to(scores.device)
        mask[:, keep] = 0.0
        return scores + mask


class NoImmediateRepeat(LogitsProcessor):
    """Logits processor: a token in ``blocked`` cannot follow itself (-inf right after it).

    ``blocked``: the word tokens (``word_token_ids``); whitespace and digit tokens may repeat.
    """

    def __init__(self, blocked: torch.Tensor) -> None:
        self.blocked = blocked.long()

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if input_ids.shape[1] == 0:
            return scores
        last = input_ids[:, -1]  # (B,)
        hit = torch.isin(last, self.blocked.to(last.device)) & (last < scores.shape[-1])
        rows = hit.nonzero().flatten()
        scores = scores.clone()
        scores[rows, last[rows]] = float("-inf")
        return scores


def word_token_ids(decoded: list[str]) -> torch.Tensor:
    """Ids of the tokens whose text (``decoded[i]``) is more than whitespace and not a number."""
    return torch.tensor(
        [i for i, t in enumerate(decoded) if t.strip() and not t.strip().isdigit()],
        dtype=torch.long,
    )


class NoRepeatInSegment(LogitsProcessor):
    """Logits processor: no token ``n``-gram twice within one segment of the text generated so far.

    A segment ends at a token in ``breaks`` (a newline or the ``|`` between a title and its
    summary), so "the Sport Bottle for $36.00" may return in the summary of its chapter and "The
    presenter" in every chapter, while a loop inside one title or summary ("Glow Cream Glow Cream
    Glow Cream", which a copy head falls into: every copied name token points back at the name) is
    cut after its first repeat. When every token is already forbidden, the row is left as it was.
    """

    def __init__(self, n: int, breaks: torch.Tensor) -> None:
        if n < 2:
            raise ValueError(f"n must be >= 2, got {n}")
        self.n = n
        self.breaks = set(breaks.tolist())

    def _banned(self, ids: list[int]) -> list[int]:
        start = max((i + 1 for i, t in enumerate(ids) if t in self.breaks), default=0)
        seg, k = ids[start:], self.n - 1
        if len(seg) < k:
            return []
        prefix = seg[len(seg) - k :]
        return [seg[i + k] for i in range(len(seg) - k) if seg[i : i + k] == prefix]

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        out = scores.clone()
        for b in range(scores.shape[0]):
            banned = [t for t in self._banned(input_ids[b].tolist()) if t < scores.shape[-1]]
            if banned:
                row = out[b].clone()
                row[banned] = float("-inf")
                if bool(torch.isfinite(row).any()):
                    out[b] = row
        return out


def segment_break_ids(decoded: list[str]) -> torch.Tensor:
    """Ids of the tokens that end a ``NoRepeatInSegment`` segment: a newline or a ``|`` in them."""
    return torch.tensor(
        [i for i, t in enumerate(decoded) if "\n" in t or "|" in t], dtype=torch.long
    )


_TIME = re.compile(r"^\d+(?:\.\d+)?s$")
_SPECIAL = re.compile(r"^<\|[^|]*\|>$")
"""A special token's text (``<|eos|>``): it holds a ``|`` but is no title/summary separator."""


@dataclass(frozen=True)
class SpanTokens:
    """Token ids of the span grammar ``[<time>-<time>]`` (``span_tokens``)."""

    times: torch.Tensor
    """Tokens that are a whole time, e.g. ``8.0s`` (the BPE keeps each timestamp one token)."""
    open: int
    """The ``[`` token."""
    dash: int
    """The ``-`` token."""
    close: int
    """The ``]`` token."""
    line_ends: torch.Tensor
    """Tokens whose text ends with a newline: a span opens a line."""


def span_tokens(decoded: list[str]) -> SpanTokens | None:
    """The span grammar's tokens of a vocabulary (``decoded[i]`` = token i's text); None when
    the vocabulary has no single ``[``, ``-`` or ``]`` token (the grammar is then not enforced)."""
    single = {t: i for i, t in enumerate(decoded) if t in ("[", "-", "]")}
    if len(single) < 3:
        return None
    return SpanTokens(
        times=torch.tensor([i for i, t in enumerate(decoded) if _TIME.match(t)], dtype=torch.long),
        open=single["["],
        dash=single["-"],
        close=single["]"],
        line_ends=torch.tensor([i for i, t in enumerate(decoded) if t.endswith("\n")]),
    )


class SpanGrammar(LogitsProcessor):
    """Logits processor: times are written only as ``[<time>-<time>]`` at the start of a line.

    After ``[`` only a time, after ``[<time>`` only ``-``, after ``<time>-`` a time, after
    ``-<time>`` only ``]``; a time token anywhere else, ``]`` outside a span and ``[`` inside a
    line get -inf. Without it a small model writes a frame's time into a title ("the 60.0s] Glow
    Cream"). When the tokens the grammar asks for are all forbidden already (e.g. by
    ``AllowedTokens``), the step is left as it was, so decoding never stalls on an all -inf row.
    """

    def __init__(self, spans: SpanTokens) -> None:
        self.s = spans

    def _step(self, ids: list[int], scores: torch.Tensor) -> torch.Tensor:
        s, dev = self.s, scores.device
        times = s.times.to(dev)
        last = ids[-1] if ids else None
        before = ids[-2] if len(ids) > 1 else None
        last_is_time = last is not None and bool((times == last).any())
        before_is_time = before is not None and bool((times == before).any())
        only: torch.Tensor | None = None
        if last == s.open or (last == s.dash and before_is_time):
            only = times
        elif last_is_time and before == s.open:
            only = torch.tensor([s.dash], device=dev)
        elif last_is_time and before == s.dash:
            only = torch.tensor([s.close], device=dev)
        if only is not None:
            out = torch.full_like(scores, float("-inf"))
            keep = only[only < scores.shape[-1]]
            out[keep] = scores[keep]
        else:
            out = scores.clone()
            banned = [times, torch.tensor([s.close], device=dev)]
            line_start = last is None or bool((s.line_ends.to(dev) == last).any())
            if not line_start:
                banned.append(torch.tensor([s.open], device=dev))
            ban = torch.cat(banned)
            out[ban[ban < scores.shape[-1]]] = float("-inf")
        return out if bool(torch.isfinite(out).any()) else scores

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        rows = [self._step(input_ids[b].tolist(), scores[b]) for b in range(scores.shape[0])]
        return torch.stack(rows)


Rule = Callable[[list[int]], tuple[list[int] | None, list[int]]]
"""ids so far -> (only these tokens may follow, or None; these tokens may not)."""


def _apply_rule(
    rule: Rule, prefix: list[int], input_ids: torch.Tensor, scores: torch.Tensor
) -> torch.Tensor:
    """(B, V) scores with each row's ``rule(prefix + its ids)`` applied; a row whose allowed
    tokens would all be -inf is left as it was."""
    rows = []
    for b in range(scores.shape[0]):
        row = scores[b]
        only, banned = rule(prefix + input_ids[b].tolist())
        if only is not None:
            out = torch.full_like(row, float("-inf"))
            keep = torch.tensor([i for i in only if i < row.shape[-1]], dtype=torch.long)
            out[keep] = row[keep]
        else:
            out = row.clone()
            ban = torch.tensor([i for i in banned if i < row.shape[-1]], dtype=torch.long)
            out[ban] = float("-inf")
        rows.append(out if bool(torch.isfinite(out).any()) else row)
    return torch.stack(rows)


@dataclass(frozen=True)
class ChapterTokens:
    """Token ids of the chapter-line grammar (``chapter_tokens``)."""

    begin: int
    """The ``<chapters>`` marker token."""
    end: int
    """The ``</chapters>`` marker token."""
    pipes: frozenset[int]
    """Tokens holding the ``|`` between a title and its summary (not ``<|eos|>`` and the like)."""
    newlines: frozenset[int]
    """Tokens holding a newline (a line ends in them)."""
    seconds: dict[int, float]
    """Time token id -> its time in seconds (``8.0s`` -> 8.0)."""
    think: int | None = None
    """The ``<think>`` marker token (None: the vocabulary has none as one token)."""
    think_end: int | None = None
    """The ``</think>`` marker token."""
    newline: int | None = None
    """The token that is one newline alone (written after every section marker)."""


def chapter_tokens(decoded: list[str]) -> ChapterTokens | None:
    """The chapter grammar's tokens of a vocabulary; None without single ``<chapters>`` and
    ``</chapters>`` tokens (the grammar is then not enforced)."""
    names = ("<chapters>", "</chapters>", "<think>", "</think>", "\n")
    marks = {t: i for i, t in enumerate(decoded) if t in names}
    if "<chapters>" not in marks or "</chapters>" not in marks:
        return None
    return ChapterTokens(
        begin=marks["<chapters>"],
        end=marks["</chapters>"],
        pipes=frozenset(i for i, t in enumerate(decoded) if "|" in t and not _SPECIAL.match(t)),
        newlines=frozenset(i for i, t in enumerate(decoded) if "\n" in t),
        seconds={i: float(t[:-1]) for i, t in enumerate(decoded) if _TIME.match(t)},
        think=marks.get("<think>"),
        think_end=marks.get("</think>"),
        newline=marks.get("\n"),
    )


class ChapterGrammar(LogitsProcessor):
    """Logits processor: the chapters tile the frames the model read, one parseable line each.

    Inside ``<chapters>``, as the training targets are written (``format_grounded_target``):
    a line opens with ``[``; the first chapter starts at the first frame and every other one where
    the one before ended; a chapter ends at a later frame of this video; its title is not empty
    and a ``|`` (exactly one) separates it from a summary that is not empty either; neither the
    line nor the chapters end (newline, ``</chapters>``, ``eos``) before that; once a chapter
    ends at the last frame, ``</chapters>`` follows. Without it the small model writes lines that
    no parser reads ("[5.0s-12.0s] Trying the Backpack.", no ``|``), chapters that overlap or run
    backwards ("[17.0s-7.0s]") and ``<chapters>`` again and again. ``spans``: the ``[``, ``-``
    and ``]`` tokens; ``frame_times``: the times of the frames the model read; ``prefix``: ids
    already in the context before the generated ones (a forced ``<chapters>``); ``max_title`` /
    ``max_summary``: after that many title tokens the ``|`` comes, after that many summary
    tokens the line ends (None: no cap). A row whose
    allowed tokens are all -inf already is left as it was.
    """

    def __init__(
        self,
        tokens: ChapterTokens,
        spans: SpanTokens,
        frame_times: list[float],
        prefix: list[int] | None = None,
        eos: int | None = None,
        max_title: int | None = None,
        max_summary: int | None = None,
    ) -> None:
        self.t, self.s = tokens, spans
        self.eos = [] if eos is None else [eos]
        self.prefix = list(prefix or [])
        self.max_title, self.max_summary = max_title, max_summary
        frames = {round(float(f), 1) for f in frame_times}
        # time tokens of this video's frames, by time
        self.times = sorted((v, i) for i, v in tokens.seconds.items() if round(v, 1) in frames)
        self.first = min(frames) if frames else 0.0
        self.last = max(frames) if frames else 0.0

    def _span(self, line: list[int]) -> tuple[float, float] | None:
        s, sec = self.s, self.t.seconds
        if (
            len(line) >= 5
            and (line[0], line[2], line[4]) == (s.open, s.dash, s.close)
            and line[1] in sec
            and line[3] in sec
        ):
            return sec[line[1]], sec[line[3]]
        return None

    def _rule(self, ids: list[int]) -> tuple[list[int] | None, list[int]]:
        """(only these tokens, or None; tokens banned) at the next step of ``ids``."""
        if self.t.begin not in ids:
            return None, []
        region = ids[len(ids) - ids[::-1].index(self.t.begin) :]
        if self.t.end in region:
            return None, []
        lines: list[list[int]] = [[]]
        for i in region:
            if i in self.t.newlines:
                lines.append([])
            else:
                lines[-1].append(i)
        done = [sp for sp in map(self._span, lines[:-1]) if sp is not None]
        start = done[-1][1] if done else self.first
        cur, s = lines[-1], self.s
        if not cur:
            if done and start >= self.last - 1e-6:
                return [self.t.end], []
            return ([s.open, self.t.end] if done else [s.open]), []
        if cur[0] != s.open:
            return None, []
        if len(cur) == 1:
            return [i for v, i in self.times if abs(v - start) < 1e-6] or None, []
        if len(cur) == 2:
            return [s.dash], []
        if len(cur) == 3:
            lo = self.t.seconds.get(cur[1], start)
            return [i for v, i in self.times if v > lo + 1e-6] or None, []
        if len(cur) == 4:
            return [s.close], []
        rest = cur[5:]
        newline_and_end = [*self.t.newlines, self.t.end, *self.eos]
        bar = next((k for k, i in enumerate(rest) if i in self.t.pipes), None)
        if bar is None:  # the title: no line end yet, and no "|" before its first token
            if self.max_title is not None and len(rest) >= self.max_title:
                return sorted(self.t.pipes), []
            return None, [*newline_and_end, *(self.t.pipes if not rest else ())]
        after = rest[bar + 1 :]  # the summary: no second "|", no line end before its first token
        if self.max_summary is not None and len(after) >= self.max_summary:
            return sorted(self.t.newlines), []
        return None, [*self.t.pipes, *(newline_and_end if not after else ())]

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        return _apply_rule(self._rule, self.prefix, input_ids, scores)


class SectionGrammar(LogitsProcessor):
    """Logits processor: the output's sections come in the order the targets are written.

    ``<think>``, newline, TCoT lines that each open with ``[``, ``</think>``, newline,
    ``<chapters>``, newline, chapter lines (``ChapterGrammar``), ``</chapters>``, then eos. No
    marker inside a section other than the one that closes it, and no eos before the chapters
    are closed. Without it the small stage-2 model started its output mid-sentence, wrote
    ``</think>`` twice and chapter lines with no ``<chapters>`` before them, and 2 of 7 test
    videos had no parseable chapter. ``prefix``: ids already in the context before the generated
    ones (a forced ``</think>\n<chapters>\n``). A vocabulary without single ``<think>`` and
    ``</think>`` tokens is not constrained; a row whose allowed tokens are all -inf already is
    left as it was.
    """

    def __init__(
        self,
        tokens: ChapterTokens,
        spans: SpanTokens,
        prefix: list[int] | None = None,
        eos: int | None = None,
    ) -> None:
        self.t, self.s = tokens, spans
        self.eos = eos
        self.prefix = list(prefix or [])
        marks = (tokens.think, tokens.think_end, tokens.begin, tokens.end)
        self.marks = {m for m in marks if m is not None}
        self.newline = tokens.newline

    def _rule(self, ids: list[int]) -> tuple[list[int] | None, list[int]]:
        """(only these tokens, or None; tokens banned) at the next step of ``ids``."""
        t = self.t
        if t.think is None or t.think_end is None or self.newline is None:
            return None, []
        seen = [k for k, i in enumerate(ids) if i in self.marks]
        if not seen:
            return [t.think], []
        mark, tail = ids[seen[-1]], ids[seen[-1] + 1 :]
        if mark == t.end:
            return ([self.eos] if self.eos is not None else None), []
        if not tail:
            return [self.newline], []
        eos = [] if self.eos is None else [self.eos]
        if mark == t.think:
            if tail[-1] in t.newlines:  # a TCoT line starts, or the thought ends
                return [self.s.open, t.think_end], []
            return None, [*self.marks, *eos]
        if mark == t.think_end:
            return [t.begin], []
        return None, [t.think, t.think_end, t.begin]  # in the chapters: ChapterGrammar's lines

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        return _apply_rule(self._rule, self.prefix, input_ids, scores)


class WholeWords(LogitsProcessor):
    """Logits processor: a word made of this video's own pieces is written whole, as its text
    spells it.

    A small copy head stitched names from fragments ("the Blrorailrail Bottle" for "the Trail
    Bottle"): every piece is allowed (it is in the video's input) but the sequence of pieces is
    not a word of it. A word here is a run of tokens where each one begins with a letter or digit
    and the one before ends with one (byte-level BPE: no space between them). ``words``: the token
    sequences of the video's text (its narration, as the LLM reads it and tokenized alone);
    ``generic``: tokens of the caption vocabulary and the grammar, whose words stay free as before
    (they are not this video's names).

    - While the word so far holds a token not in ``generic``, it may only go on as a word of
      ``words`` does, and it may only end where such a word ends.
    - A word of generic tokens may go on with another generic token, or with a piece that makes
      it the prefix of a word of ``words``.
    A row whose every token this would forbid is left as it was (the other processors decide).
    ``prefix``: ids already in the output before the generated ones (a forced suffix).
    """

    def __init__(
        self,
        decoded: list[str],
        words: list[list[int]],
        generic: torch.Tensor,
        prefix: list[int] | None = None,
    ) -> None:
        v = len(decoded)
        self.starts_alnum = torch.tensor([bool(t) and t[0].isalnum() for t in decoded])  # (V,)
        self.ends_alnum = [bool(t) and t[-1].isalnum() for t in decoded]
        self.generic = torch.zeros(v, dtype=torch.bool)
        self.generic[generic[generic < v].long()] = True
        self.prefix = list(prefix or [])
        self.next: dict[tuple[int, ...], set[int]] = {}  # word prefix -> pieces that go on
        self.complete: set[tuple[int, ...]] = set()
        for seq in words:
            for word in self._words(seq):
                for k in range(1, len(word)):
                    self.next.setdefault(tuple(word[:k]), set()).add(word[k])
                self.next.setdefault(tuple(word), set())
                self.complete.add(tuple(word))

    def _glued(self, prev: int, nxt: int) -> bool:
        return (
            0 <= prev < len(self.ends_alnum)
            and 0 <= nxt < len(self.ends_alnum)
            and self.ends_alnum[prev]
            and bool(self.starts_alnum[nxt])
        )

    def _words(self, seq: list[int]) -> list[list[int]]:
        out: list[list[int]] = []
        for i, t in enumerate(seq):
            if i and self._glued(seq[i - 1], t):
                out[-1].append(t)
            else:
                out.append([t])
        return [w for w in out if w and 0 <= w[-1] < len(self.ends_alnum)]

    def _current(self, ids: list[int]) -> tuple[int, ...] | None:
        """The word the output ends in (it could go on), or None."""
        if not ids or not (0 <= ids[-1] < len(self.ends_alnum)) or not self.ends_alnum[ids[-1]]:
            return None
        k = len(ids) - 1
        while k > 0 and self._glued(ids[k - 1], ids[k]):
            k -= 1
        return tuple(ids[k:])

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        rows = []
        v = scores.shape[-1]
        cont = self.starts_alnum[:v].to(scores.device)  # (V,): would glue onto a word
        generic = self.generic[:v].to(scores.device)
        for b in range(scores.shape[0]):
            row = scores[b]
            word = self._current(self.prefix + input_ids[b].tolist())
            if word is None:
                rows.append(row)
                continue
            ok = torch.zeros(v, dtype=torch.bool, device=scores.device)
            nxt = [i for i in self.next.get(word, ()) if i < v]
            ok[nxt] = True
            if bool(generic[[i for i in word if i < v]].all()) and all(i < v for i in word):
                banned = cont & ~generic & ~ok  # generic word: other pieces only into a word
            elif word in self.next:
                banned = cont & ~ok  # own word: only as the video spells it ...
                if word not in self.complete:
                    banned = banned | ~cont  # ... and no end before the word does
            else:
                rows.append(row)  # not a word of this video: nothing to follow
                continue
            out = row.masked_fill(banned, float("-inf"))
            rows.append(out if bool(torch.isfinite(out).any()) else row)
        return torch.stack(rows)
