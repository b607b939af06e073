"""Pointer-generator copy head (``options.copy_head``): mixture, sources, decoding, stages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from transformers.generation import LogitsProcessorList

from hivid.models.freezing import apply_stage_freezing, trainable_parameter_names
from hivid.models.narrator import (
    IGNORE_INDEX,
    HiVidNarrator,
    load_narrator,
    save_narrator,
)
from hivid.models.options import FOLLOW_INIT, CopyHead, follow_mask, previous_ids
from tests.helpers import corpus_tokenizer, make_dataset, tiny_narrator, train_batch


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("copy") / "dataset", n_videos=4)


@pytest.fixture(scope="module")
def tok(data: Path) -> Any:
    return corpus_tokenizer(data)


def build(tok: Any, tmp: Path, copy_head: bool = True) -> HiVidNarrator:
    return tiny_narrator(tok, tmp, copy_head=copy_head)


def batch_for(model: HiVidNarrator, tok: Any, data: Path, n: int = 2) -> dict[str, Any]:
    return train_batch(model, tok, data, n)


def context_of(b: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """(index of the first target token, the batch cut before it: what generation reads)."""
    first = int((b["labels"][0] != IGNORE_INDEX).nonzero()[0])
    n_tok = b["input_ids"].shape[1]
    prompt = {
        k: v[:, :first] if isinstance(v, torch.Tensor) and v.dim() == 2 and v.shape[1] == n_tok
        else v
        for k, v in b.items()
    }  # fmt: skip
    return first, prompt


def copy_only(model: HiVidNarrator) -> None:
    """Gate fully on copying and uniform attention over the sources (query 0)."""
    assert model.copy_head is not None
    with torch.no_grad():
        model.copy_head.query.weight.zero_()
        model.copy_head.gate.weight.zero_()
        model.copy_head.gate.bias.fill_(-30.0)


def test_mixture_is_a_distribution_and_copies_the_attended_tokens() -> None:
    torch.manual_seed(0)
    head = CopyHead(8)
    h = torch.randn(3, 8)  # (K, D)
    logits = torch.randn(3, 11)  # (K, V)
    attn = torch.tensor([[0.5, 0.5, 0.0], [0.25, 0.25, 0.5], [0.0, 0.0, 0.0]])  # (K, S)
    ids = torch.tensor([[4, 4, 9], [1, 2, 3], [5, 6, 7]])  # (K, S)
    logp = head.log_probs(h, logits, attn, ids)
    assert torch.allclose(logp.exp().sum(-1), torch.ones(3), atol=1e-5)
    g = torch.sigmoid(head.gate(h))[:, 0]
    p_lm = torch.softmax(logits, -1)
    # Row 0: both copy weights land on token 4; token 9 has attention 0 and gets only p_lm.
    assert torch.isclose(logp[0, 4].exp(), g[0] * p_lm[0, 4] + (1 - g[0]), atol=1e-6)
    assert torch.isclose(logp[0, 9].exp(), g[0] * p_lm[0, 9], atol=1e-6)
    assert torch.isclose(logp[1, 3].exp(), g[1] * p_lm[1, 3] + (1 - g[1]) * 0.5, atol=1e-6)
    # Row 2 has nothing to copy from: it is the LM head's distribution exactly.
    assert torch.allclose(logp[2], torch.log_softmax(logits[2], -1), atol=1e-6)


def test_attention_masks_the_non_sources() -> None:
    head = CopyHead(4)
    keys = torch.randn(1, 5, 4)
    src = torch.tensor([[True, False, True, False, False]])
    a = head.attention(torch.randn(1, 2, 4), keys, src)  # (B, Q, S)
    assert torch.allclose(a.sum(-1), torch.ones(1, 2))
    assert torch.equal(a[0, :, 1], torch.zeros(2)) and torch.equal(a[0, :, 3:], torch.zeros(2, 2))
    none = head.attention(torch.randn(1, 2, 4), keys, torch.zeros(1, 5, dtype=torch.bool))
    assert torch.equal(none, torch.zeros(1, 2, 5))


def test_loss_copies_only_from_the_input_text(tok: Any, data: Path, tmp_path: Path) -> None:
    model = build(tok, tmp_path / "m")
    copy_only(model)
    b = batch_for(model, tok, data)
    loss = model(b).loss
    # By hand: uniform attention over each row's text inputs (attended, not visual, unlabelled),
    # so p(y) = g p_lm(y) + (1 - g) count(y) / their number, with g = sigmoid(-30).
    ids, labels = b["input_ids"], b["labels"]
    src = b["attention_mask"].bool() & ~b["visual_mask"].bool() & (labels == IGNORE_INDEX)
    with torch.no_grad():
        hidden = model.llm.model(
            inputs_embeds=model.embed_inputs(b), attention_mask=b["attention_mask"]
        ).last_hidden_state
        p_lm = torch.softmax(model.llm.lm_head(hidden[:, :-1]).float(), -1)  # (B, T - 1, V)
    g = torch.sigmoid(torch.tensor(-30.0))
    nll = []
    for r in range(ids.shape[0]):
        pool = ids[r][src[r]].tolist()
        for t in range(ids.shape[1] - 1):
            y = int(labels[r, t + 1])
            if y == IGNORE_INDEX:
                continue
            p = g * p_lm[r, t, y] + (1 - g) * pool.count(y) / len(pool)
            nll.append(-torch.log(p))
    assert torch.isclose(loss, torch.stack(nll).mean(), rtol=1e-4)


def test_greedy_decoding_matches_the_lm_when_the_gate_generates(
    tok: Any, data: Path, tmp_path: Path
) -> None:
    plain = build(tok, tmp_path / "p", copy_head=False)
    model = build(tok, tmp_path / "c")
    model.llm.load_state_dict(plain.llm.state_dict())
    model.vision.load_state_dict(plain.vision.state_dict())
    model.projector.load_state_dict(plain.projector.state_dict())
    assert model.copy_head is not None
    with torch.no_grad():
        model.copy_head.gate.weight.zero_()
        model.copy_head.gate.bias.fill_(30.0)  # g = 1: the LM head alone
    plain.eval(), model.eval()
    one = batch_for(model, tok, data, n=1)
    eos, pad = int(tok.eos_token_id), int(tok.pad_token_id)
    want = plain.generate(one, 12, eos, pad)  # transformers' generate, KV cache
    got = model.generate(one, 12, eos, pad)  # our loop over the same cache
    assert torch.equal(got, want)
    suffix = torch.tensor([tok.encode("<chapters>\n", add_special_tokens=False)])
    got = model.generate(one, 5, eos, pad, suffix)
    assert torch.equal(got, plain.generate(one, 5, eos, pad, suffix))


def test_copy_only_decoding_writes_the_most_said_input_token(
    tok: Any, data: Path, tmp_path: Path
) -> None:
    model = build(tok, tmp_path / "m")
    copy_only(model)
    model.eval()
    one = batch_for(model, tok, data, n=1)
    ids = one["input_ids"][0][~one["visual_mask"][0].bool()].tolist()
    first = model.generate(one, 1, int(tok.eos_token_id), int(tok.pad_token_id))
    assert first.tolist() == [[max(set(ids), key=ids.count)]]


def test_stages_save_and_load(tok: Any, data: Path, tmp_path: Path) -> None:
    model = build(tok, tmp_path / "m")
    apply_stage_freezing(model, 1)
    names = trainable_parameter_names(model)
    assert {"copy_head.query.weight", "copy_head.key.weight", "copy_head.gate.weight",
            "copy_head.gate.bias"} <= names  # fmt: skip
    with torch.no_grad():
        model.copy_head.gate.bias.fill_(0.7)  # type: ignore[union-attr]
    save_narrator(model, tok, tmp_path / "saved")
    loaded, _ = load_narrator(tmp_path / "saved")
    assert loaded.copy_head is not None
    assert loaded.copy_head.gate.bias.item() == pytest.approx(0.7)
    b = batch_for(model, tok, data)
    model.eval(), loaded.eval()
    assert torch.equal(loaded(b).loss, model(b).loss)
    loaded.add_compressor(loaded.cfg.compressor, loaded.cfg.time_encoder, asr_text=True)
    apply_stage_freezing(loaded, 2)
    assert not any(n.startswith("copy_head") for n in trainable_parameter_names(loaded))
    b2 = batch_for(loaded, tok, data)
    assert torch.isfinite(loaded(b2).loss)  # stage 2 copies from the narration it keeps as text
    # ... and a chapter's time from the T_e(i) slots, as the timestamp token each replaces.
    src, ids = loaded._copy_sources(b2, b2["attention_mask"])
    slots = src & b2["visual_mask"].bool()
    assert int(slots.sum()) == int(b2["frame_mask"].sum())  # one T_e(i) per real frame
    times = {tok.decode([int(i)]) for i in ids[slots]}
    assert times and all(t.endswith("s") and t[:-1].replace(".", "").isdigit() for t in times)
    plain = build(tok, tmp_path / "plain", copy_head=False)
    assert plain.copy_head is None


def test_follow_bonus_raises_the_source_after_the_token_just_written() -> None:
    head = CopyHead(4, follow=True)
    with torch.no_grad():
        head.query.weight.zero_()  # equal scores: only the bonus tells the sources apart
    keys, src = torch.randn(1, 4, 4), torch.ones(1, 4, dtype=torch.bool)
    prev = previous_ids(torch.tensor([[7, 3, 8, 3]]))  # (1, S): [-1, 7, 3, 8]
    follows = follow_mask(prev, torch.tensor([[3]]))  # the query holds token 3
    assert follows.tolist() == [[[False, False, True, False]]]  # position 2 comes after a 3
    a = head.attention(torch.randn(1, 1, 4), keys, src, follows)[0, 0]
    assert torch.isclose(a[2] / a[0], torch.exp(torch.tensor(FOLLOW_INIT)))
    assert torch.isclose(a[0], a[1]) and torch.isclose(a[0], a[3])
    plain = CopyHead(4)  # without follow the mask changes nothing
    with torch.no_grad():
        plain.query.weight.zero_()
    uniform = plain.attention(torch.randn(1, 1, 4), keys, src, follows)
    assert torch.allclose(uniform, torch.full((1, 1, 4), 0.25))


def test_follow_decoding_scores_each_step_as_training_does(
    tok: Any, data: Path, tmp_path: Path
) -> None:
    model = tiny_narrator(tok, tmp_path / "f", copy_head=True, copy_follow=True)
    assert model.copy_head is not None and model.copy_head.follow is not None
    with torch.no_grad():
        model.copy_head.follow.fill_(4.0)
        model.copy_head.gate.bias.fill_(-2.0)  # copy a lot, so the bonus decides tokens
    model.eval()
    b = batch_for(model, tok, data, n=1)
    with torch.no_grad():
        logp = model(b).logits  # (K, V): row j predicts the j-th target token
    first, prompt = context_of(b)
    eos, pad = int(tok.eos_token_id), int(tok.pad_token_id)
    for j in (0, 1, 5, 9):
        suffix = b["input_ids"][:, first : first + j]
        got = model.generate(prompt, 1, eos, pad, suffix)  # the KV loop's first step
        assert got.tolist() == [[int(logp[j].argmax())]], j


@pytest.mark.parametrize("copy_head", [True, False])
def test_stage2_positions_decode_as_training_scores(
    tok: Any, data: Path, tmp_path: Path, copy_head: bool
) -> None:
    """``stage2_positions``: the stage-2 batch carries stage 1's positions, the LLM reads them
    (other logits than 0, 1, 2, ...), and the KV-cache decoding loop (with the copy head or the
    LM head alone) continues them over a forced suffix and its own tokens exactly as training's
    forward scores them."""
    model = tiny_narrator(tok, tmp_path / "p", copy_head=copy_head)
    model.add_compressor(model.cfg.compressor, model.cfg.time_encoder, True, True)
    model.eval()
    b = batch_for(model, tok, data, n=1)
    assert "position_ids" in b and int(b["position_ids"][0, -1]) > b["input_ids"].shape[1]
    with torch.no_grad():
        logp = torch.log_softmax(model(b).logits.float(), dim=-1)  # (K, V): j-th target token
        flat = torch.log_softmax(
            model({k: v for k, v in b.items() if k != "position_ids"}).logits.float(), dim=-1
        )
    assert not torch.allclose(logp, flat, atol=1e-3)
    first, prompt = context_of(b)
    eos, pad = int(tok.eos_token_id), int(tok.pad_token_id)
    seen: list[torch.Tensor] = []

    def record(ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        seen.append(scores[0].float())
        return scores

    target = b["input_ids"][:, first:]
    for j in (0, 1, 5):  # the forced suffix: the first j target tokens
        seen.clear()
        model.generate(prompt, 3, eos, pad, target[:, :j], LogitsProcessorList([record]))
        assert torch.allclose(seen[0], logp[j], atol=1e-4), j
    # Its own tokens: decode the target by forcing it through the processor.
    seen.clear()

    def force(ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        seen.append(scores[0].float().clone())
        out = torch.full_like(scores, -1e9)
        out[0, target[0, ids.shape[1]]] = 0.0
        return out

    model.generate(prompt, 6, eos, pad, None, LogitsProcessorList([force]))
    assert all(torch.allclose(seen[k], logp[k], atol=1e-4) for k in range(6))
