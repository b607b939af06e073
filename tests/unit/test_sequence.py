"""Interleaved sequence (eq. 1), label mask, target grammar round-trip, tokenizer."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import PreTrainedTokenizerFast

from hivid.models.sequence import (
    DEFAULT_PROMPT,
    IGNORE_INDEX,
    Item,
    SequenceError,
    encode_asr,
    encode_compressed,
    encode_compressed_interleaved,
    encode_interleaved,
    format_target,
    interleave,
    parse_chapters,
    timestamp_text,
)
from hivid.models.tokenizer import VISUAL_TOKEN, load_tokenizer, train_bpe_tokenizer

TCOT = [
    {"start": 0.0, "end": 2.0, "observation": "a hand lifts a red bottle"},
    {"start": 2.0, "end": 5.5, "observation": "foam\non hair"},
]
CHAPTERS = [
    {"start": 0.0, "end": 3.0, "title": "Product intro", "summary": "The red shampoo bottle."},
    {"start": 3.0, "end": 7.5, "title": "Usage", "summary": "Lather, rinse: soft hair!"},
]
ASR = [
    {"start": 2.4, "end": 3.0, "text": "second sentence"},
    {"start": 0.5, "end": 1.0, "text": "first sentence"},
    {"start": 5.0, "end": 6.0, "text": "late sentence"},
    {"start": 2.0, "end": 2.2, "text": "on the frame"},
]


@pytest.fixture(scope="module")
def tok() -> PreTrainedTokenizerFast:
    texts = [DEFAULT_PROMPT, format_target(TCOT, CHAPTERS)] + [s["text"] for s in ASR]
    texts += [timestamp_text(t) for t in range(10)] + ["洗发水 柔顺 特价"]
    return train_bpe_tokenizer(texts * 5, vocab_size=400)


def test_interleave_order() -> None:
    items = interleave([0.0, 2.0, 4.0], ASR)
    # [T0 V0 S(0.5) T1 V1 S(2.0) S(2.4) T2 V2 S(5.0)]
    assert items == [
        Item("time", 0), Item("frame", 0), Item("asr", 1),
        Item("time", 1), Item("frame", 1), Item("asr", 3), Item("asr", 0),
        Item("time", 2), Item("frame", 2), Item("asr", 2),
    ]  # fmt: skip
    # A sentence before the first frame goes after frame 0.
    assert interleave([1.0], [{"start": 0.0, "text": "x"}]) == [
        Item("time", 0), Item("frame", 0), Item("asr", 0),
    ]  # fmt: skip
    with pytest.raises(SequenceError):
        interleave([], ASR)


def test_encode_interleaved_layout_and_labels(tok: PreTrainedTokenizerFast) -> None:
    target = format_target(TCOT, CHAPTERS)
    enc = encode_interleaved(tok, [0.0, 2.0], ASR[:2], target, visual_tokens_per_frame=3)
    assert len(enc.input_ids) == len(enc.visual_mask) == len(enc.labels)
    vis_id = tok.convert_tokens_to_ids(VISUAL_TOKEN)
    assert [i == vis_id for i in enc.input_ids] == enc.visual_mask
    assert sum(enc.visual_mask) == 6
    assert enc.input_ids[0] == tok.bos_token_id
    # Loss only on the target and its eos.
    first = next(i for i, lab in enumerate(enc.labels) if lab != IGNORE_INDEX)
    assert all(lab == IGNORE_INDEX for lab in enc.labels[:first])
    assert enc.labels[first:] == enc.input_ids[first:]
    assert enc.input_ids[-1] == tok.eos_token_id
    assert tok.decode(enc.input_ids[first:-1]) == target
    # The context reads T0 V0 S1 T1 V1 S2 in that order.
    context = tok.decode(
        [i for i in enc.input_ids[:first] if i != vis_id], skip_special_tokens=True
    )
    expected = ["<t=0.0s>", "first sentence", "<t=2.0s>", "second sentence"]
    positions = [context.index(e) for e in expected]
    assert positions == sorted(positions)
    # Visual runs sit right after each timestamp's tokens.
    ts_ids = tok.encode("<t=2.0s>", add_special_tokens=False)
    at = next(i for i in range(len(enc.input_ids)) if enc.input_ids[i : i + len(ts_ids)] == ts_ids)
    assert enc.visual_mask[at + len(ts_ids) : at + len(ts_ids) + 3] == [True] * 3


def test_generation_input_has_no_labels(tok: PreTrainedTokenizerFast) -> None:
    enc = encode_interleaved(tok, [0.0], [], None, visual_tokens_per_frame=2)
    assert set(enc.labels) == {IGNORE_INDEX} and enc.input_ids[-1] != tok.eos_token_id


def test_encode_compressed_and_asr(tok: PreTrainedTokenizerFast) -> None:
    enc = encode_compressed(tok, 11, "<think>\n</think>")
    assert sum(enc.visual_mask) == 11
    assert tok.decode(encode_asr(tok, ASR[:2])) == (
        "<t=0.5s>first sentence\n<t=2.4s>second sentence\n"
    )
    assert encode_asr(tok, []) == []


def test_encode_compressed_interleaved_keeps_the_narration(tok: PreTrainedTokenizerFast) -> None:
    target = format_target(TCOT, CHAPTERS)
    enc = encode_compressed_interleaved(
        tok, [0.0, 2.0, 4.0], ASR, target, scene_tokens=4, tokens_per_frame=2
    )
    vis_id = tok.convert_tokens_to_ids(VISUAL_TOKEN)
    first = next(i for i, lab in enumerate(enc.labels) if lab != IGNORE_INDEX)
    assert tok.decode(enc.input_ids[first:-1]) == target
    # [prompt, H_scene (4), frame 0 (2), S(0.5), frame 1 (2), S(2.0), S(2.4), frame 2 (2), S(5.0)]
    runs: list[str] = []
    for is_vis, group in itertools.groupby(enc.input_ids[:first], key=lambda i: i == vis_id):
        ids = list(group)
        runs.append(f"V{len(ids)}" if is_vis else tok.decode(ids, skip_special_tokens=True))
    assert runs[1:] == [
        "V6",
        "first sentence\n",
        "V2",
        "on the frame\nsecond sentence\n",
        "V2",
        "late sentence\n",
    ]  # fmt: skip (H_scene and frame 0 are one run of 4 + 2)
    assert sum(enc.visual_mask) == 4 + 3 * 2
    assert "<t=" not in tok.decode(enc.input_ids[:first])  # T_e(i) replaces the timestamp text
    # The copy head copies frame i's timestamp token from T_e(i), the first of its 1 + E slots.
    assert enc.copy_ids is not None and len(enc.copy_ids) == len(enc.input_ids)
    pairs = zip(enc.input_ids, enc.copy_ids, strict=True)
    changed = [i for i, (a, b) in enumerate(pairs) if a != b]
    slots = [i for i, v in enumerate(enc.visual_mask) if v]
    assert changed == [slots[4], slots[6], slots[8]]  # after the 4 scene tokens, every 2nd
    assert [tok.decode([enc.copy_ids[i]]) for i in changed] == ["0.0s", "2.0s", "4.0s"]
    # No narration: the same placeholders as encode_compressed, in one run.
    bare = encode_compressed_interleaved(tok, [0.0, 2.0], [], None, 4, 2)
    assert bare.input_ids == encode_compressed(tok, 4 + 2 * 2, None).input_ids


def test_stage2_positions_are_the_stage1_layouts(tok: PreTrainedTokenizerFast) -> None:
    """``stage1_frame_tokens``: each sentence, T_e(i) and the target sit where stage 1's sequence
    had them (shifted by the scene tokens), so the frozen LLM sees stage 1's token distances."""
    target = format_target(TCOT, CHAPTERS)
    times, scene, per_frame, visual = [0.0, 2.0, 4.0], 4, 2, 16
    one = encode_interleaved(tok, times, ASR, target, visual)
    two = encode_compressed_interleaved(
        tok, times, ASR, target, scene, per_frame, DEFAULT_PROMPT, visual
    )
    plain = encode_compressed_interleaved(tok, times, ASR, target, scene, per_frame)
    assert plain.position_ids is None and two.input_ids == plain.input_ids
    pos = two.position_ids
    assert pos is not None and len(pos) == len(two.input_ids)
    assert pos == sorted(set(pos))  # increasing, no position twice
    # Text tokens (prompt, narration, target): the stage-1 position of the same token, + S
    # after the prompt.
    prompt = 1 + len(tok.encode(DEFAULT_PROMPT, add_special_tokens=False))
    one_text = [i for i, v in enumerate(one.visual_mask) if not v]
    two_text = [i for i, v in enumerate(two.visual_mask) if not v]
    stage1 = [i if i < prompt else i + scene for i in one_text]
    stage1_ids = [one.input_ids[i] for i in one_text]
    at = dict(zip(stage1, stage1_ids, strict=True))
    assert [at.get(pos[i]) for i in two_text] == [two.input_ids[i] for i in two_text]
    # T_e(i) (copy id "2.0s") at stage 1's "2.0s" token; the event token at the end of V_i.
    assert two.copy_ids is not None
    for i, (a, b) in enumerate(zip(two.input_ids, two.copy_ids, strict=True)):
        if a != b:
            assert at[pos[i]] == b
            last_visual = pos[i + 1] - scene  # stage-1 index of the event token's place
            assert one.visual_mask[last_visual] and not one.visual_mask[last_visual + 1]


def test_format_parse_round_trip() -> None:
    text = format_target(TCOT, CHAPTERS)
    assert text.startswith("<think>\n[0.0s-2.0s] a hand lifts a red bottle\n")
    assert "[2.0s-5.5s] foam on hair" in text  # newlines inside items are flattened
    assert parse_chapters(text) == CHAPTERS


def test_parse_skips_malformed_lines() -> None:
    text = (
        "<think>\n[0.0s-1.0s] looks | like a chapter\n</think>\n<chapters>\n"
        "[0.0s-2.0s] Good | fine\n"
        "[5.0s-2.0s] Backwards | end before start\n"
        "no brackets | here\n"
        "[1.0s-x] Bad time | y\n"
        "[2.0s-3.0s]  | empty title\n"
        "[3s - 4.5s] Loose spacing|ok\n"
        "[4.5s-6.0s] Truncated"
    )
    assert parse_chapters(text) == [
        {"start": 0.0, "end": 2.0, "title": "Good", "summary": "fine"},
        {"start": 3.0, "end": 4.5, "title": "Loose spacing", "summary": "ok"},
    ]
    # Without the <chapters> marker, TCoT lines are never taken as chapters.
    assert parse_chapters("<think>\n[0.0s-1.0s] a | b\n</think>\n[1.0s-2.0s] T | s") == [
        {"start": 1.0, "end": 2.0, "title": "T", "summary": "s"}
    ]
    assert parse_chapters("") == []


def clean(text: str) -> str:
    for marker in ("<think>", "</think>", "<chapters>", "</chapters>"):
        text = text.replace(marker, " ")
    return " ".join(text.split())


_text = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=20),
    st.sampled_from(["</chapters>", "a <think> b", "x|y", "\n", "  "]),
)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 5000), st.integers(0, 500), _text.filter(lambda s: s.strip()), _text
        ),
        max_size=5,
    )
)
def test_round_trip_property(rows: list[tuple[int, int, str, str]]) -> None:
    chapters = [
        {"start": a / 10, "end": (a + d) / 10, "title": t, "summary": s} for a, d, t, s in rows
    ]
    parsed = parse_chapters(format_target([], chapters))
    expected = [
        {
            "start": c["start"],
            "end": c["end"],
            "title": clean(c["title"]).replace("|", "/"),
            "summary": clean(c["summary"]),
        }
        for c in chapters
    ]
    assert parsed == [e for e in expected if e["title"]]


def test_tokenizer_deterministic_and_saved(tok: PreTrainedTokenizerFast, tmp_path: Path) -> None:
    texts = [DEFAULT_PROMPT, format_target(TCOT, CHAPTERS)] + [s["text"] for s in ASR]
    texts += [timestamp_text(t) for t in range(10)] + ["洗发水 柔顺 特价"]
    again = train_bpe_tokenizer(texts * 5, vocab_size=400)
    assert again.get_vocab() == tok.get_vocab()
    tok.save_pretrained(tmp_path / "tok")
    loaded = load_tokenizer(tmp_path / "tok")
    sample = "<think>\n[0.0s-1.0s] 洗发水 unseen wörds</think>"
    assert loaded.encode(sample) == tok.encode(sample)
    assert loaded.decode(loaded.encode(sample, add_special_tokens=False)) == sample
    assert len(tok.encode("<chapters>", add_special_tokens=False)) == 1


# --- grounded targets: every time is an input frame timestamp ------------------------------------

FRAMES = [float(i) for i in range(20)]
META = {
    "title": "Lumora Silk Shampoo 500 ml",
    "brand": "Lumora",
    "attributes": {"volume": "500 ml", "scent": "mint", "color": "red"},
}
TEACHER = [
    {"start": 0.0, "end": 7.35, "title": "Scent: mint", "summary": "Tired of it? Meet Lumora."},
    {"start": 7.35, "end": 14.2, "title": "Silk Shampoo", "summary": "Let me try it."},
    {"start": 14.2, "end": 19.6, "title": "$19.00", "summary": ""},
]


def test_grounded_target_copies_frame_timestamps() -> None:
    from hivid.models.sequence import format_grounded_target, product_name

    assert product_name(META) == "Silk Shampoo"
    assert product_name(None) == ""
    text = format_grounded_target(TEACHER, FRAMES, META)
    times = {timestamp_text(t)[3:-2] for t in FRAMES}  # "8.0" of "<t=8.0s>"
    parsed = parse_chapters(text)
    # each chapter starts on the first frame of its shot and ends where the next one starts
    assert [(c["start"], c["end"]) for c in parsed] == [(0.0, 8.0), (8.0, 15.0), (15.0, 19.0)]
    assert all(f"{c['start']:.1f}" in times and f"{c['end']:.1f}" in times for c in parsed)
    # titles name the product, summaries are one sentence
    assert [c["title"] for c in parsed] == ["Silk Shampoo"] * 3
    # without metadata the annotation's own title stays
    assert parse_chapters(format_grounded_target(TEACHER, FRAMES))[2]["title"] == "$19.00"
    assert parsed[0]["summary"] == "Tired of it?"
    assert 'shot 2: "Let me try it."' in text and "shot 3: no narration" in text
    # a chapter shorter than the frame spacing cannot be written with frame times: merged
    short = [*TEACHER[:1], {**TEACHER[1], "end": 7.6}, {**TEACHER[2], "start": 7.6}]
    assert len(parse_chapters(format_grounded_target(short, FRAMES, META))) == 2


def test_ground_chapters_keeps_times_inside_the_video() -> None:
    from hivid.models.sequence import ground_chapters

    asr = [{"start": 6.1, "end": 6.9}, {"start": 7.8, "end": 9.0}]
    gen = [
        {"start": 0.0, "end": 8.0, "title": "A", "summary": "a"},
        {"start": 8.2, "end": 15.0, "title": "B", "summary": "b"},  # off-grid: snapped to 8.0
        {"start": 15.0, "end": 19.0, "title": "C", "summary": "c"},  # ends on the last frame
    ]
    out = ground_chapters(gen, FRAMES, 19.6, asr)
    # boundary at frame 8 lies in (7, 8]: at the narration pause 6.9..7.8 -> 7.35
    assert [(c["start"], c["end"]) for c in out] == [(0.0, 7.35), (7.35, 14.5), (14.5, 19.6)]
    # hallucinated times past the video end snap to the last frame; overlaps and empties go
    wild = [
        {"start": 3.0, "end": 35.0, "title": "X", "summary": ""},
        {"start": 2.0, "end": 3.2, "title": "Y", "summary": ""},
        {"start": 50.0, "end": 60.0, "title": "Z", "summary": ""},
    ]
    out = ground_chapters(wild, FRAMES, 19.6)
    assert all(0.0 <= c["start"] < c["end"] <= 19.6 for c in out)
    assert all(a["end"] <= b["start"] for a, b in itertools.pairwise(out))
    assert ground_chapters(wild, [], 5.0) == []


def test_contiguous_chapters_tile_the_video_at_the_generated_starts() -> None:
    from hivid.models.sequence import contiguous_chapters

    gen = [
        {"start": 6.0, "end": 18.0, "title": "A", "summary": "a"},
        {"start": 20.0, "end": 24.0, "title": "B", "summary": "b"},
        {"start": 27.0, "end": 29.0, "title": "C", "summary": "c"},
    ]
    out = contiguous_chapters(gen, 30.9)
    assert [(c["start"], c["end"], c["title"]) for c in out] == [
        (0.0, 20.0, "A"),
        (20.0, 27.0, "B"),
        (27.0, 30.9, "C"),
    ]
    assert gen[0]["start"] == 6.0  # the input is not changed
    assert contiguous_chapters([], 10.0) == []
    assert contiguous_chapters(gen, 0.0) == []
    one = contiguous_chapters([{"start": 3.0, "end": 4.0, "title": "T", "summary": ""}], 9.5)
    assert [(c["start"], c["end"]) for c in one] == [(0.0, 9.5)]


def test_grounded_target_quotes_narration_and_keeps_human_titles() -> None:
    from hivid.models.sequence import SequenceError, format_grounded_target

    asr = [
        {"start": 0.5, "end": 3.0, "text": "Tired of dull hair? Meet it."},
        {"start": 7.6, "end": 9.0, "text": "Let me try it now."},  # boundary (7, 8]: chapter 2
        {"start": 16.0, "end": 18.0, "text": "Buy it today."},
    ]
    human = [{**c, "title": f"Human {i}"} for i, c in enumerate(TEACHER)]
    text = format_grounded_target(human, FRAMES, META, asr, titles="chapter")
    assert 'shot 1: "Tired of dull hair?"' in text
    assert 'shot 2: "Let me try it now."' in text
    assert 'shot 3: "Buy it today."' in text
    assert [c["title"] for c in parse_chapters(text)] == ["Human 0", "Human 1", "Human 2"]
    # product titles for pseudo-labels, whatever titles the chapters carry
    product = format_grounded_target(human, FRAMES, META, asr)
    assert {c["title"] for c in parse_chapters(product)} == {"Silk Shampoo"}
    with pytest.raises(SequenceError, match="titles must be one of product, chapter"):
        format_grounded_target(human, FRAMES, META, asr, titles="ocr")  # type: ignore[arg-type]
