"""The narrator's tokenizer: a byte-level BPE trained on the dataset (tiny) or a pretrained LLM's.

With no model hub, the random-initialised ``tiny`` narrator gets a real tokenizer trained with HF
``tokenizers`` on the dataset's own texts (ASR sentences, TCoT, chapters, timestamp markers) and
wrapped as ``transformers.PreTrainedTokenizerFast``, so training, saving (``save_pretrained``) and
loading (``from_pretrained``) go through the same code as a pretrained checkpoint's tokenizer.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

BOS_TOKEN = "<|bos|>"
EOS_TOKEN = "<|eos|>"
PAD_TOKEN = "<|pad|>"
VISUAL_TOKEN = "<|vis|>"
"""Placeholder id in ``input_ids`` whose embedding is replaced by a visual (or compressed) token."""

# Markers of the target grammar (sequence.format_target). They are ordinary added tokens, not
# special ones: ``decode(skip_special_tokens=True)`` must keep them so parse_chapters can read them.
STRUCTURE_TOKENS: tuple[str, ...] = ("<think>", "</think>", "<chapters>", "</chapters>")


# GPT-2's pre-tokenizer pattern with two additions in front: "<t=" and a number of seconds ("8.0s")
# are single pieces, so the BPE learns one token per timestamp value. A frame's timestamp
# ``<t=8.0s>`` then costs 3 tokens instead of 8, and a chapter span ``[0.0s-8.0s]`` in the target
# holds the very token the input has for that frame: the model copies a time, it need not spell it.
PRE_TOKEN_PATTERN = (
    r"<t=|\d+(?:\.\d+)?s(?![\p{L}\p{N}])|'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+"
    r"| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
)


class TokenizerError(ValueError):
    """The tokenizer cannot be trained or loaded (the message names the path or the reason)."""


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int = 1000) -> PreTrainedTokenizerFast:
    """Train a deterministic byte-level BPE on ``texts`` and wrap it as a fast HF tokenizer.

    Byte-level pre-tokenisation covers every input (Chinese included) with no unknown token; the
    256 byte symbols are always in the vocabulary, so ``vocab_size`` must leave room for merges.
    """
    corpus = [t for t in texts if t]
    if not corpus:
        raise TokenizerError("cannot train the tokenizer: no text in the training corpus")
    if vocab_size < 300:
        raise TokenizerError(f"vocab_size={vocab_size} is too small for a byte-level BPE (>= 300)")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRE_TOKEN_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, VISUAL_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        additional_special_tokens=[VISUAL_TOKEN],
        clean_up_tokenization_spaces=False,
    )
    wrapped.add_tokens(list(STRUCTURE_TOKENS))
    return wrapped


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    """Load a tokenizer saved with ``save_pretrained`` (or a pretrained LLM's, by path or hub id).

    A pretrained LLM's tokenizer gets the narrator's special and structure tokens added when it
    lacks them; the LLM's embedding matrix must then be resized to ``len(tokenizer)``.
    """
    local = Path(path)
    if local.exists() and not (local / "tokenizer_config.json").is_file():
        raise TokenizerError(f"{local}: no tokenizer_config.json (not a saved tokenizer directory)")
    try:
        tok = AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError) as exc:
        raise TokenizerError(f"{path}: cannot load tokenizer ({exc})") from None
    tok = ensure_narrator_tokens(tok)
    vocab_file = local / CAPTION_VOCAB_FILE
    if vocab_file.is_file():
        try:
            ids = [int(i) for i in json.loads(vocab_file.read_text(encoding="utf-8"))]
        except (ValueError, TypeError) as exc:
            raise TokenizerError(f"{vocab_file}: not a JSON list of token ids ({exc})") from None
        set_caption_vocab(tok, ids)
    return tok


CAPTION_VOCAB_FILE = "caption_vocab.json"
"""Beside the saved tokenizer: the token ids of the caption vocabulary (``set_caption_vocab``)."""


def set_caption_vocab(tok: PreTrainedTokenizerBase, ids: Iterable[int]) -> None:
    """Attach the caption vocabulary: the words written in the chapters of many training videos
    ("The presenter ... the"), which constrained decoding allows beside the video's own input
    (``hivid.training.generate.allowed_token_ids``); it travels with the tokenizer."""
    tok.hivid_caption_vocab = sorted({int(i) for i in ids})  # type: ignore[attr-defined]


def caption_vocab(tok: PreTrainedTokenizerBase) -> list[int]:
    """The caption vocabulary attached with ``set_caption_vocab`` (empty when none is)."""
    return list(getattr(tok, "hivid_caption_vocab", []))


def save_tokenizer(tok: PreTrainedTokenizerBase, out_dir: Path) -> None:
    """``save_pretrained`` plus the caption vocabulary file when one is attached."""
    tok.save_pretrained(out_dir)
    vocab = caption_vocab(tok)
    if vocab:
        (Path(out_dir) / CAPTION_VOCAB_FILE).write_text(json.dumps(vocab), encoding="utf-8")


def ensure_narrator_tokens(tok: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Add the visual placeholder, bos/eos/pad and structure tokens a tokenizer is missing."""
    special: dict[str, object] = {}
    if tok.bos_token is None:
        special["bos_token"] = BOS_TOKEN
    if tok.eos_token is None:
        special["eos_token"] = EOS_TOKEN
    if tok.pad_token is None:
        special["pad_token"] = PAD_TOKEN
    if VISUAL_TOKEN not in tok.get_vocab():
        special["additional_special_tokens"] = [VISUAL_TOKEN]
    if special:
        tok.add_special_tokens(special, replace_additional_special_tokens=False)  # type: ignore[arg-type]
    missing = [t for t in STRUCTURE_TOKENS if t not in tok.get_vocab()]
    if missing:
        tok.add_tokens(missing)
    return tok


def visual_token_id(tok: PreTrainedTokenizerBase) -> int:
    """Id of the visual placeholder token."""
    return int(tok.convert_tokens_to_ids(VISUAL_TOKEN))
