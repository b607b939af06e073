"""Prompt templates shipped as ``hivid/annotate/prompts/<name>.txt`` (package data).

Templates use ``string.Template`` placeholders (``$metadata``, ``$text``, ...), so JSON braces in
the few-shot examples need no escaping. Each prompt's sha256 (of the file's bytes) is recorded in
every annotation record and as the MLflow tag ``prompt.<name>.sha256`` of the annotate run.
"""

from __future__ import annotations

import functools
import hashlib
from importlib import resources
from string import Template

PROMPT_NAMES: tuple[str, ...] = (
    "relevance",
    "correct",
    "tcot_refine",
    "chapter_summary",
    "script_label",
    "frame_describe",
)


class PromptError(KeyError):
    """An unknown prompt name or a template placeholder left without a value."""


@functools.cache
def prompt_text(name: str) -> str:
    """The template text of prompt ``name``."""
    if name not in PROMPT_NAMES:
        raise PromptError(f"unknown prompt {name!r}; known: {', '.join(PROMPT_NAMES)}")
    return (resources.files("hivid.annotate") / "prompts" / f"{name}.txt").read_text("utf-8")


def prompt_sha256(name: str) -> str:
    return hashlib.sha256(prompt_text(name).encode("utf-8")).hexdigest()


def prompt_hashes() -> dict[str, str]:
    """{name: sha256} of every shipped prompt."""
    return {n: prompt_sha256(n) for n in PROMPT_NAMES}


def render(name: str, **values: object) -> str:
    """Prompt ``name`` with every ``$placeholder`` filled (a missing value raises PromptError)."""
    try:
        text = Template(prompt_text(name)).substitute({k: str(v) for k, v in values.items()})
    except KeyError as exc:
        raise PromptError(f"prompt {name!r} needs a value for ${exc.args[0]}") from None
    return text.rstrip("\n")  # completion prompts end right where the answer starts
