"""The caption vocabulary: words many training videos' chapters are written with, which
constrained decoding allows beside the video's own input; it travels with the tokenizer."""

from __future__ import annotations

from pathlib import Path

import torch

from hivid.models.tokenizer import (
    CAPTION_VOCAB_FILE,
    caption_vocab,
    load_tokenizer,
    save_tokenizer,
    set_caption_vocab,
    train_bpe_tokenizer,
)
from hivid.training.datamodule import caption_vocabulary, corpus_texts
from hivid.training.generate import allowed_token_ids


def _record(vid: str, name: str) -> dict:
    return {
        "video_id": vid,
        "frame_times": [0.0, 1.0, 2.0],
        "asr": [{"start": 0.2, "end": 0.9, "text": f"Meet the {name}."}],
        "chapters": [
            {
                "start": 0.0,
                "end": 3.0,
                "title": f"Trying the Acme {name}",
                "summary": "The presenter smiles.",
            }
        ],
        "target_source": "ground_truth",
        "metadata": {"brand": "Acme", "title": f"Acme {name} 500 ml", "category": "serum"},
    }


def test_words_of_many_videos_are_kept_and_one_videos_names_are_not(tmp_path: Path) -> None:
    records = [_record("a", "Zorblax"), _record("b", "Quenthor"), _record("c", "Vimbrel")]
    tok = train_bpe_tokenizer(corpus_texts(records), vocab_size=400)
    vocab = set(caption_vocabulary(tok, records))
    for word in (" presenter", " smiles", " Trying"):
        assert set(tok.encode(word, add_special_tokens=False)) <= vocab, word
    # a name of one video only (tokens no other target has) is not caption vocabulary
    for name in ("Zorblax", "Quenthor", "Vimbrel"):
        only = set(tok.encode(f" {name}", add_special_tokens=False)) - set(
            tok.encode(" presenter smiles Trying the Acme", add_special_tokens=False)
        )
        assert only and not only & vocab, name
    # times every video has ("0.0s", "2.0s") must come from the video's own frames
    assert (
        not set(tok.encode("[0.0s-2.0s]", add_special_tokens=False))
        - set(tok.encode("[-]", add_special_tokens=False))
        & vocab
    )
    # a brand every video shares is still a name: it must come from the video itself
    assert not set(tok.encode(" Acme", add_special_tokens=False)) & vocab
    # a share above every word's: nothing is common enough
    assert caption_vocabulary(tok, records, min_share=1.01) == []

    set_caption_vocab(tok, sorted(vocab))
    save_tokenizer(tok, tmp_path / "tok")
    assert (tmp_path / "tok" / CAPTION_VOCAB_FILE).is_file()
    loaded = load_tokenizer(tmp_path / "tok")
    assert caption_vocab(loaded) == sorted(vocab)

    # constrained decoding allows it, and without it only the video's own input
    prepared = {
        "input_ids": torch.tensor(tok.encode("Meet the Zorblax.", add_special_tokens=False)),
        "visual_mask": torch.zeros(
            len(tok.encode("Meet the Zorblax.", add_special_tokens=False)), dtype=torch.bool
        ),
        "asr_ids": torch.tensor([], dtype=torch.long),
        "frame_times": torch.tensor([0.0, 1.0]),
    }
    smiles = set(tok.encode(" smiles", add_special_tokens=False))
    assert smiles <= set(allowed_token_ids(loaded, prepared, []).tolist())
    bare = load_tokenizer(tmp_path / "tok")
    set_caption_vocab(bare, [])
    (tmp_path / "tok" / CAPTION_VOCAB_FILE).unlink()
    assert caption_vocab(load_tokenizer(tmp_path / "tok")) == []
    assert not smiles <= set(
        allowed_token_ids(load_tokenizer(tmp_path / "tok"), prepared, []).tolist()
    )


def test_a_broken_caption_vocabulary_file_is_named(tmp_path: Path) -> None:
    import pytest

    from hivid.models.tokenizer import TokenizerError

    tok = train_bpe_tokenizer(corpus_texts([_record("a", "X")]), vocab_size=300)
    save_tokenizer(tok, tmp_path / "tok")
    (tmp_path / "tok" / CAPTION_VOCAB_FILE).write_text('{"not": "a list"}')
    with pytest.raises(TokenizerError, match=f"{CAPTION_VOCAB_FILE}: not a JSON list of token ids"):
        load_tokenizer(tmp_path / "tok")
