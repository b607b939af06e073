"""Caption tokenization: the reference PTB tokenization for English, word segmentation for Chinese.

English follows the reference evaluators exactly: non-ASCII characters become spaces, then Stanford
CoreNLP 3.4.1's ``PTBTokenizer -preserveLines -lowerCase`` (the jar pycocoevalcap ships) and the
removal of pycocoevalcap's punctuation tokens. The reference starts one JVM per call; we tokenize
every distinct sentence of an evaluation in one JVM run.

Chinese: the reference scores it as empty (every character is non-ASCII). Sentences that contain
CJK characters are segmented instead (jieba by default; any :class:`Segmenter`), punctuation tokens
dropped and ASCII lower-cased. ``mode`` picks: ``auto`` (CJK sentences segmented, all others exactly
as the reference), ``ptb`` (the reference for everything) or ``segment`` (the segmenter for all).
"""

from __future__ import annotations

import logging
import re
import subprocess
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Literal, Protocol

from hivid.evaluation.java import PTB_JAR, find_java, jar, sha256

PUNCTUATIONS = frozenset(
    {"''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-"}
    | {"--", "...", ";"}
)
"""Tokens pycocoevalcap drops after PTB tokenization (note: after ``-lowerCase`` the jar emits
``-lrb-``, which this list does not catch — kept as is, the reference keeps it too)."""

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af]")
# PTBLexer treats these ASCII characters as line breaks; -preserveLines would split the sentence.
_PTB_BREAKS = str.maketrans({"\n": " ", "\r": " ", "\x0b": " ", "\x0c": " "})

Mode = Literal["auto", "ptb", "segment"]


def remove_nonascii(text: str) -> str:
    """Every non-ASCII character becomes a space (what densevid_eval and SODA do)."""
    return "".join(c if ord(c) < 128 else " " for c in text)


def has_cjk(text: str) -> bool:
    return bool(_CJK.search(text))


class Segmenter(Protocol):
    """A word segmenter for languages written without spaces."""

    name: str
    version: str

    def cut(self, text: str) -> list[str]: ...


class JiebaSegmenter:
    """jieba's accurate mode with its HMM for unknown words (its bundled dictionary)."""

    name = "jieba"

    def __init__(self) -> None:
        import jieba

        jieba.setLogLevel(logging.WARNING)
        self._jieba = jieba
        self.version = metadata.version("jieba")

    def cut(self, text: str) -> list[str]:
        return list(self._jieba.lcut(text, cut_all=False, HMM=True))


class CharSegmenter:
    """One token per CJK character (a dictionary-free alternative); other runs split on spaces."""

    name = "char"
    version = "1"

    def __init__(self) -> None:
        pass

    def cut(self, text: str) -> list[str]:
        out: list[str] = []
        for piece in re.split(r"(\s+)", text):
            out.extend(
                re.findall(r"[\u3400-\u9fff\uf900-\ufaff]|[^\u3400-\u9fff\uf900-\ufaff]+", piece)
            )
        return out


SEGMENTERS: dict[str, type[JiebaSegmenter] | type[CharSegmenter]] = {
    "jieba": JiebaSegmenter,
    "char": CharSegmenter,
}


def segmenter_identity(name: str) -> str:
    """``name==version`` without loading the segmenter (jieba's dictionary takes a second)."""
    version = metadata.version("jieba") if name == "jieba" else CharSegmenter.version
    return f"{name}=={version}"


def _is_punct(token: str) -> bool:
    return all(unicodedata.category(c).startswith("P") for c in token)


def ptb_tokenize(sentences: Sequence[str]) -> list[str]:
    """PTB-tokenize ``sentences`` (already ASCII) in one JVM run; punctuation tokens removed."""
    if not sentences:
        return []
    lines = [s.translate(_PTB_BREAKS) for s in sentences]
    cmd = [find_java(), "-cp", str(jar(PTB_JAR)), "edu.stanford.nlp.process.PTBTokenizer"]
    cmd += ["-preserveLines", "-lowerCase"]
    proc = subprocess.run(
        cmd,
        input="\n".join(lines).encode("utf-8"),
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        raise RuntimeError(f"PTB tokenizer failed: {err[-1] if err else proc.returncode}")
    out = proc.stdout.decode("utf-8").split("\n")
    if len(out) < len(lines):
        raise RuntimeError(f"PTB tokenizer returned {len(out)} lines for {len(lines)} sentences")
    return [" ".join(w for w in line.rstrip().split(" ") if w not in PUNCTUATIONS) for line in out]


@dataclass
class CaptionTokenizer:
    """Tokenizes every distinct sentence once; remembers results for the rest of the evaluation."""

    mode: Mode = "auto"
    segmenter: str = "jieba"
    _cache: dict[str, str] = field(default_factory=dict, repr=False)
    _seg: Segmenter | None = field(default=None, repr=False)
    used: set[str] = field(default_factory=set, repr=False)

    def __post_init__(self) -> None:
        if self.mode not in ("auto", "ptb", "segment"):
            raise ValueError(f"tokenizer mode must be auto|ptb|segment, not {self.mode!r}")
        if self.segmenter not in SEGMENTERS:
            raise ValueError(f"unknown segmenter {self.segmenter!r} (one of {sorted(SEGMENTERS)})")

    @property
    def seg(self) -> Segmenter:
        if self._seg is None:
            self._seg = SEGMENTERS[self.segmenter]()
        return self._seg

    def _segment(self, text: str) -> str:
        toks = (t.strip().lower() for t in self.seg.cut(text))
        return " ".join(t for t in toks if t and not _is_punct(t))

    def prepare(self, sentences: Iterable[str]) -> None:
        """Tokenize all not-yet-seen sentences (one JVM run for the PTB ones)."""
        todo = [s for s in dict.fromkeys(sentences) if s not in self._cache]
        ptb: list[str] = []
        for s in todo:
            if self.mode == "segment" or (self.mode == "auto" and has_cjk(s)):
                self._cache[s] = self._segment(s)
                self.used.add("segment")
            else:
                ptb.append(s)
        if ptb:
            for s, tok in zip(ptb, ptb_tokenize([remove_nonascii(s) for s in ptb]), strict=False):
                self._cache[s] = tok
            self.used.add("ptb")

    def __call__(self, sentence: str) -> str:
        if sentence not in self._cache:
            self.prepare([sentence])
        return self._cache[sentence]

    def identity(self) -> dict[str, Any]:
        """Name and version of what tokenized (recorded with every result)."""
        info: dict[str, Any] = {"mode": self.mode}
        if self.mode != "segment":
            info["ptb"] = f"stanford-corenlp-3.4.1 sha256:{sha256(jar(PTB_JAR))[:16]}"
        if self.mode != "ptb":
            info["segmenter"] = segmenter_identity(self.segmenter)
        info["name"] = "+".join(n for n in (info.get("ptb") and "ptb", info.get("segmenter")) if n)
        return info
