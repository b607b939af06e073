"""Constrained decoding's processors: allowed tokens only, and no word token right after itself."""

from __future__ import annotations

import torch

from hivid.models.decoding import AllowedTokens, NoImmediateRepeat, word_token_ids


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
