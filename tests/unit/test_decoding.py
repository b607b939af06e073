"""Constrained decoding's processors: allowed tokens only, no word token right after itself, no
n-gram twice in one title or summary, and times only inside ``[<time>-<time>]`` spans."""

from __future__ import annotations

import torch

from hivid.models.decoding import (
    AllowedTokens,
    ChapterGrammar,
    NoImmediateRepeat,
    NoRepeatInSegment,
    SectionGrammar,
    SpanGrammar,
    WholeWords,
    chapter_tokens,
    segment_break_ids,
    span_tokens,
    word_token_ids,
)


def test_word_tokens_cannot_follow_themselves_but_spaces_and_numbers_can() -> None:
    decoded = ["\n", " Orvana", " $", "12", " ", ".00", "the"]
    words = word_token_ids(decoded)
    assert words.tolist() == [1, 2, 5, 6]
    proc = NoImmediateRepeat(words)
    scores = torch.zeros(3, 7)
    last = torch.tensor([[6, 1], [4, 3], [0, 0]])  # rows end with " Orvana", "12", "\n"
    out = proc(last, scores)
    assert out[0, 1] == float("-inf") and torch.isfinite(out[0, [0, 2, 3, 4, 5, 6]]).all()
    assert torch.isfinite(out[1]).all()  # "12" may repeat ("1212" is a number)
    assert torch.isfinite(out[2]).all()  # so may a newline
    assert torch.equal(scores, torch.zeros(3, 7))  # the input scores are not changed in place
    assert torch.equal(proc(torch.zeros(3, 0, dtype=torch.long), scores), scores)  # first step


def test_allowed_tokens_mask_every_other_id() -> None:
    out = AllowedTokens(torch.tensor([0, 3, 99]))(
        torch.zeros(1, 0, dtype=torch.long), torch.zeros(1, 5)
    )
    assert torch.isfinite(out[0, [0, 3]]).all()
    assert (out[0, [1, 2, 4]] == float("-inf")).all()


SEG_VOCAB = [" Glow", " Cream", " the", " |", "\n", " for", " $", "<t="]


def test_no_ngram_twice_in_one_segment() -> None:
    breaks = segment_break_ids(SEG_VOCAB)
    assert breaks.tolist() == [3, 4]
    proc = NoRepeatInSegment(3, breaks)
    glow, cream, the, bar, nl = 0, 1, 2, 3, 4
    scores = torch.zeros(1, len(SEG_VOCAB))

    def banned(ids: list[int]) -> list[int]:
        out = proc(torch.tensor([ids]), scores)[0]
        return (out == float("-inf")).nonzero().flatten().tolist()

    # "the Glow Cream the Glow" -> "Cream" would repeat the 3-gram "the Glow Cream"
    assert banned([the, glow, cream, the, glow]) == [cream]
    assert banned([the, glow, cream, the]) == []  # "the Glow" alone has not repeated yet
    # The same words after a "|" (the summary) or a new line start a new segment.
    assert banned([the, glow, cream, bar, the, glow]) == []
    assert banned([the, glow, cream, nl, the, glow]) == []
    # Two earlier occurrences ban both continuations.
    assert banned([the, glow, cream, the, glow, the, the, glow]) == [cream, the]
    assert torch.equal(scores, torch.zeros(1, len(SEG_VOCAB)))  # not changed in place


def test_no_repeat_leaves_a_fully_forbidden_row_alone() -> None:
    proc = NoRepeatInSegment(2, torch.tensor([4]))
    scores = torch.tensor([[0.0, float("-inf")]])
    assert torch.equal(proc(torch.tensor([[0, 0]]), scores), scores)  # banning 0 leaves nothing
    ok = proc(torch.tensor([[1, 0]]), torch.zeros(1, 2))
    assert torch.isfinite(ok).all()


SPAN_VOCAB = ["[", "0.0s", "-", "8.0s", "]", " Glow", " 6", "\n", "12.5s", "<t="]


def _finite(proc: SpanGrammar, ids: list[int], scores: torch.Tensor | None = None) -> list[int]:
    row = torch.zeros(1, len(SPAN_VOCAB)) if scores is None else scores
    out = proc(torch.tensor([ids], dtype=torch.long).view(1, -1), row)
    return torch.isfinite(out[0]).nonzero().flatten().tolist()


def test_span_grammar_writes_times_only_inside_spans() -> None:
    spans = span_tokens(SPAN_VOCAB)
    assert spans is not None
    assert spans.times.tolist() == [1, 3, 8] and (spans.open, spans.dash, spans.close) == (0, 2, 4)
    proc = SpanGrammar(spans)
    everything_but_times = [0, 2, 5, 6, 7, 9]
    assert _finite(proc, []) == everything_but_times  # a line may open a span
    assert _finite(proc, [0]) == [1, 3, 8]  # "[" -> a time
    assert _finite(proc, [0, 1]) == [2]  # "[0.0s" -> "-"
    assert _finite(proc, [0, 1, 2]) == [1, 3, 8]  # "[0.0s-" -> a time
    assert _finite(proc, [0, 1, 2, 3]) == [4]  # "[0.0s-8.0s" -> "]"
    # In a title: no time ("the 60.0s] Glow"), no "]", no "[" before the line ends.
    assert _finite(proc, [0, 1, 2, 3, 4, 5]) == [2, 5, 6, 7, 9]
    assert _finite(proc, [5, 6]) == [2, 5, 6, 7, 9]
    assert _finite(proc, [5, 7]) == everything_but_times  # a new line
    # What the grammar asks for is already forbidden: the step is left unchanged.
    blocked = torch.zeros(1, len(SPAN_VOCAB))
    blocked[0, [1, 3, 8]] = float("-inf")
    assert _finite(proc, [0], blocked) == [0, 2, 4, 5, 6, 7, 9]
    # Rows are independent; the input scores are not changed in place.
    scores = torch.zeros(2, len(SPAN_VOCAB))
    out = proc(torch.tensor([[7, 0], [0, 1]]), scores)
    assert torch.isfinite(out[0]).nonzero().flatten().tolist() == [1, 3, 8]
    assert torch.isfinite(out[1]).nonzero().flatten().tolist() == [2]
    assert torch.equal(scores, torch.zeros(2, len(SPAN_VOCAB)))


def test_span_grammar_needs_its_three_tokens() -> None:
    assert span_tokens(["[", "-", "0.0s"]) is None


CH_VOCAB = ["[", "0.0s", "-", "8.0s", "]", " Glow", " |", "\n", "16.0s", "<chapters>",
            "</chapters>", "<|eos|>", "4.0s"]  # fmt: skip
OPEN, T0, DASH, T8, CLOSE, GLOW, BAR, NL, T16, BEGIN, END, EOS, T4 = range(len(CH_VOCAB))


def test_chapter_grammar_tiles_the_frames_with_parseable_lines() -> None:
    spans, marks = span_tokens(CH_VOCAB), chapter_tokens(CH_VOCAB)
    assert spans is not None and marks is not None
    assert marks.seconds == {T0: 0.0, T8: 8.0, T16: 16.0, T4: 4.0}
    # The model read frames at 0, 8 and 16 s ("4.0s" is a time of another video).
    proc = ChapterGrammar(marks, spans, [0.0, 8.0, 16.0], eos=EOS)

    def ok(ids: list[int]) -> list[int]:
        out = proc(torch.tensor([ids], dtype=torch.long).view(1, -1), torch.zeros(1, 13))
        return torch.isfinite(out[0]).nonzero().flatten().tolist()

    everything = list(range(len(CH_VOCAB)))
    assert ok([GLOW, NL]) == everything  # before <chapters> (the TCoT): no rule
    assert ok([BEGIN, NL]) == [OPEN]  # the first line opens a span, the chapters cannot close
    assert ok([BEGIN, NL, OPEN]) == [T0]  # ... that starts at the first frame
    assert ok([BEGIN, NL, OPEN, T0, DASH]) == [T8, T16]  # a later frame of this video
    line = [BEGIN, NL, OPEN, T0, DASH, T8, CLOSE]
    no_end = [i for i in everything if i not in (NL, END, EOS)]
    assert ok(line) == [i for i in no_end if i != BAR]  # a title first, not "|"
    assert ok([*line, GLOW]) == no_end  # no line end before the "|"
    assert ok([*line, GLOW, BAR]) == [i for i in no_end if i != BAR]  # a summary, one "|"
    assert ok([*line, GLOW, BAR, GLOW]) == [i for i in everything if i != BAR]
    done = [*line, GLOW, BAR, GLOW, NL]
    assert ok(done) == [OPEN, END]  # another chapter or the end
    assert ok([*done, OPEN]) == [T8]  # it starts where the one before ended
    last = [*done, OPEN, T8, DASH, T16, CLOSE, GLOW, BAR, GLOW, NL]
    assert ok(last) == [END]  # a chapter ended at the last frame: close
    assert ok([*last, END]) == everything  # after </chapters>: no rule
    # A forced "<chapters>\n" before the generated ids counts as context.
    forced = ChapterGrammar(marks, spans, [0.0, 8.0, 16.0], prefix=[BEGIN, NL], eos=EOS)
    out = forced(torch.zeros(1, 0, dtype=torch.long), torch.zeros(1, 13))
    assert torch.isfinite(out[0]).nonzero().flatten().tolist() == [OPEN]
    # What the grammar asks for is already forbidden: the step is left unchanged.
    blocked = torch.zeros(1, 13)
    blocked[0, OPEN] = float("-inf")
    assert torch.equal(proc(torch.tensor([[BEGIN, NL]]), blocked), blocked)


def test_chapter_grammar_caps_title_and_summary_length() -> None:
    spans, marks = span_tokens(CH_VOCAB), chapter_tokens(CH_VOCAB)
    assert spans is not None and marks is not None
    proc = ChapterGrammar(marks, spans, [0.0, 8.0], eos=EOS, max_title=2, max_summary=1)

    def ok(ids: list[int]) -> list[int]:
        out = proc(torch.tensor([ids], dtype=torch.long).view(1, -1), torch.zeros(1, 13))
        return torch.isfinite(out[0]).nonzero().flatten().tolist()

    line = [BEGIN, NL, OPEN, T0, DASH, T8, CLOSE]
    assert BAR not in ok(line) and GLOW in ok([*line, GLOW])  # under the cap: the title goes on
    assert ok([*line, GLOW, GLOW]) == [BAR]  # at the cap: the "|" comes now
    assert ok([*line, GLOW, GLOW, BAR, GLOW]) == [NL]  # a summary at its cap ends the line


def test_chapter_grammar_needs_both_markers() -> None:
    assert chapter_tokens(["<chapters>", "[", "-", "]"]) is None


SEC_VOCAB = ["[", "0.0s", "-", "8.0s", "]", " Glow", " |", "\n", "<think>", "</think>",
             "<chapters>", "</chapters>", "<eos>"]  # fmt: skip
(
    S_OPEN,
    S_T0,
    S_DASH,
    S_T8,
    S_CLOSE,
    S_GLOW,
    S_BAR,
    S_NL,
    THINK,
    THINK_END,
    S_BEGIN,
    S_END,
    S_EOS,
) = range(len(SEC_VOCAB))


def test_section_grammar_writes_the_sections_in_the_targets_order() -> None:
    spans, marks = span_tokens(SEC_VOCAB), chapter_tokens(SEC_VOCAB)
    assert spans is not None and marks is not None
    assert (marks.think, marks.think_end, marks.newline) == (THINK, THINK_END, S_NL)
    proc = SectionGrammar(marks, spans, eos=S_EOS)

    def ok(ids: list[int], grammar: SectionGrammar = proc) -> list[int]:
        out = grammar(torch.tensor([ids], dtype=torch.long).view(1, -1), torch.zeros(1, 13))
        return torch.isfinite(out[0]).nonzero().flatten().tolist()

    everything = list(range(len(SEC_VOCAB)))
    assert ok([]) == [THINK]  # the output opens the thought
    assert ok([THINK]) == [S_NL]
    assert ok([THINK, S_NL]) == [S_OPEN, THINK_END]  # a TCoT line opens a span, or it ends
    line = [THINK, S_NL, S_OPEN, S_T0, S_DASH, S_T8, S_CLOSE, S_GLOW]
    no_marks = [i for i in everything if i not in (THINK, THINK_END, S_BEGIN, S_END, S_EOS)]
    assert ok(line) == no_marks  # inside a line: no marker, no eos
    assert ok([*line, S_NL]) == [S_OPEN, THINK_END]
    thought = [*line, S_NL, THINK_END]
    assert ok(thought) == [S_NL]
    assert ok([*thought, S_NL]) == [S_BEGIN]  # the chapters follow the thought
    chapters = [*thought, S_NL, S_BEGIN, S_NL, S_OPEN]
    assert ok(chapters) == [i for i in everything if i not in (THINK, THINK_END, S_BEGIN)]
    assert ok([*chapters, S_T0, S_DASH, S_T8, S_CLOSE, S_GLOW, S_NL, S_END]) == [S_EOS]
    # A forced "</think>\n<chapters>\n" before the generated ids counts as context.
    forced = SectionGrammar(marks, spans, prefix=[THINK_END, S_NL, S_BEGIN, S_NL], eos=S_EOS)
    assert ok([S_OPEN], forced) == [i for i in everything if i not in (THINK, THINK_END, S_BEGIN)]
    # Without single <think> / </think> tokens the sections are not constrained.
    bare = chapter_tokens([t for t in SEC_VOCAB if t not in ("<think>", "</think>")])
    assert bare is not None and bare.think is None
    assert ok([], SectionGrammar(bare, spans, eos=S_EOS)) == list(range(13))


WW_VOCAB = [" Tr", "ail", "rail", " Bottle", " the", "Bl", "ror", " |", "\n", " pres", "enter", "s"]


def _ww_finite(proc: WholeWords, ids: list[int]) -> set[str]:
    out = proc(torch.tensor([ids]), torch.zeros(1, len(WW_VOCAB)))[0]
    return {WW_VOCAB[i] for i in torch.isfinite(out).nonzero().flatten().tolist()}


def test_whole_words_writes_the_videos_own_words_as_it_spells_them() -> None:
    """'the Trail Bottle' said in the video: ' Tr' may only go on with 'ail' (not 'rail', 'ror')
    and may not end before it; after ' Trail' the word may end. Generic (caption) words stay
    free: ' pres' + 'enter' + 's' needs no narration."""
    idx = {t: i for i, t in enumerate(WW_VOCAB)}
    said = [[idx[" the"], idx[" Tr"], idx["ail"], idx[" Bottle"]]]
    generic = torch.tensor([idx[t] for t in (" the", " pres", "enter", "s", " |", "\n")])
    proc = WholeWords(WW_VOCAB, said, generic)
    everything = set(WW_VOCAB)
    assert _ww_finite(proc, [idx[" the"], idx[" Tr"]]) == {"ail"}  # no end, no other piece
    after = _ww_finite(proc, [idx[" Tr"], idx["ail"]])
    assert "rail" not in after and "ror" not in after and " Bottle" in after and " |" in after
    assert _ww_finite(proc, [idx[" pres"]]) == everything - {"ail", "rail", "Bl", "ror"}
    assert _ww_finite(proc, [idx[" Bottle"], idx["\n"]]) == everything  # no word open
    # Not a word of this video (a remembered name): left to the other processors.
    assert _ww_finite(proc, [idx["Bl"]]) == everything
    # A forced suffix counts: the generated ids go on from it.
    assert _ww_finite(WholeWords(WW_VOCAB, said, generic, [idx[" Tr"]]), []) == {"ail"}
    # A row it would forbid entirely is left as it was.
    blocked = torch.zeros(1, len(WW_VOCAB))
    blocked[0, idx["ail"]] = float("-inf")
    out = proc(torch.tensor([[idx[" Tr"]]]), blocked)
    assert torch.equal(out, blocked)
