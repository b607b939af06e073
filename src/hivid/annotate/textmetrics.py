"""Edit distances, WER/CER with a small text normaliser, and a phonetic key for near-miss words.

The normaliser is applied to both reference and hypothesis (as Whisper's evaluation normalisers
are): lower case, "$12" -> "12 dollars", number words -> digits,
unit abbreviations spelled out, hyphens and punctuation
to spaces. Chinese text is scored per character (CER) after removing spaces and punctuation.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

_UNITS = {
    "ml": "milliliters",
    "mm": "millimeters",
    "cm": "centimeters",
    "kg": "kilograms",
    "g": "grams",
    "l": "liters",
    "h": "hours",
    "hrs": "hours",
}
_MONEY = re.compile(r"[$€£¥￥]\s*(\d+(?:[.,]\d+)?)")


def edit_distance(a: Sequence[object], b: Sequence[object]) -> int:
    """Levenshtein distance between two sequences (words or characters)."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def similarity(a: str, b: str) -> float:
    """1 - edit distance / longer length, on the two strings as given (1.0 = equal)."""
    if not a and not b:
        return 1.0
    return 1.0 - edit_distance(a, b) / max(len(a), len(b))


_SMALL = {
    w: i
    for i, w in enumerate(
        [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
        ]
    )
}
_TENS = {
    w: 10 * i
    for i, w in enumerate(
        ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"], 2
    )
}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}


def numbers_to_digits(words: list[str]) -> list[str]:
    """Runs of English number words -> one digit string ("ten thousand" -> "10000")."""
    out: list[str] = []
    total = cur = 0
    in_num = False

    def flush() -> None:
        nonlocal total, cur, in_num
        if in_num:
            out.append(str(total + cur))
        total = cur = 0
        in_num = False

    for w in words:
        if w in _SMALL or w in _TENS:
            if in_num and cur % 10 == 0 and cur % 100 and w in _SMALL and _SMALL[w] < 10:
                cur += _SMALL[w]  # "fifty nine"
            elif in_num and cur and cur % 100 != 0:
                flush()
                cur = _SMALL.get(w, _TENS.get(w, 0))
                in_num = True
            else:
                cur += _SMALL.get(w, _TENS.get(w, 0))
                in_num = True
        elif w in _SCALES and in_num:
            if _SCALES[w] == 100:
                cur = max(1, cur) * 100
            else:
                total += max(1, cur) * _SCALES[w]
                cur = 0
        else:
            flush()
            out.append(w)
    flush()
    return out


def normalize_en(text: str) -> list[str]:
    """Words of ``text`` for WER (see the module docstring)."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"(\d),(\d{3})\b", r"\1\2", text)  # 10,000 -> 10000
    text = _MONEY.sub(lambda m: f"{m.group(1).replace(',', '')} dollars", text)
    text = re.sub(r"(\d)\.0+\b", r"\1", text)  # 12.00 -> 12
    text = re.sub(r"(\d)([a-z]+)\b", r"\1 \2", text)  # 450ml -> 450 ml
    text = re.sub(r"[^\w\s']|_", " ", text).replace("'", "")
    return numbers_to_digits([_UNITS.get(w, w) for w in text.split()])


_ZH_DIGITS = str.maketrans({c: str(i) for i, c in enumerate("零一二三四五六七八九")} | {"〇": "0"})


def normalize_chars(text: str) -> list[str]:
    """Characters of ``text`` for CER: no spaces or punctuation, NFKC, lower case, Chinese numerals
    as digits (一二三 -> 123, 十 -> 10), since Whisper writes either."""
    text = unicodedata.normalize("NFKC", text).lower().translate(_ZH_DIGITS).replace("十", "10")
    return [c for c in text if c.isalnum()]


def wer(reference: str, hypothesis: str) -> tuple[int, int]:
    """(word edits, reference words) after ``normalize_en``; sum both over a corpus."""
    ref, hyp = normalize_en(reference), normalize_en(hypothesis)
    return edit_distance(ref, hyp), len(ref)


def cer(reference: str, hypothesis: str) -> tuple[int, int]:
    """(character edits, reference characters) after ``normalize_chars``."""
    ref, hyp = normalize_chars(reference), normalize_chars(hypothesis)
    return edit_distance(ref, hyp), len(ref)


def phonetic_key(word: str) -> str:
    """A coarse sound key of an English-spelled word (metaphone-like, no vowels after the first).

    "Tessel", "Tassel", "Tesla" -> "TSL"; "mourning", "morning" -> "MRNK"; "deal", "teal" -> "TL".
    """
    w = re.sub(r"[^a-z]", "", word.lower())
    if not w:
        return ""
    for a, b in (
        ("x", "ks"),
        ("ph", "f"),
        ("ck", "k"),
        ("sch", "sk"),
        ("tch", "ch"),
        ("sh", "x"),
        ("ch", "x"),
        ("th", "0"),
        ("qu", "kw"),
        ("wh", "w"),
        ("gh", "g"),
        ("kn", "n"),
        ("wr", "r"),
    ):
        w = w.replace(a, b)
    table = str.maketrans({"d": "t", "b": "p", "v": "f", "z": "s", "q": "k", "c": "k", "g": "k"})
    w = w.translate(table)
    first, rest = w[0], w[1:]
    rest = re.sub(r"[aeiouyhw]", "", rest)
    out = (first if first not in "aeiouy" else "A") + rest
    return re.sub(r"(.)\1+", r"\1", out).upper()
