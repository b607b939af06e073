"""The Java side of the reference caption metrics: the runtime and the two jars pycocoevalcap ships.

The reference evaluators (pycocoevalcap, densevid_eval, SODA) run Stanford CoreNLP 3.4.1's
PTBTokenizer and METEOR 1.5 as Java programs. We run the very same jars (never committed to git:
they come with the pinned ``pycocoevalcap`` package) so tokens and METEOR statistics are identical.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import shutil
from pathlib import Path

PTB_JAR = "tokenizer/stanford-corenlp-3.4.1.jar"
METEOR_JAR = "meteor/meteor-1.5.jar"


class JavaMissingError(RuntimeError):
    """No Java runtime: METEOR 1.5 and the PTB tokenizer cannot run."""


def find_java() -> str:
    """Path of the ``java`` executable: ``$JAVA_HOME/bin/java`` first, then ``PATH``."""
    home = os.environ.get("JAVA_HOME")
    if home:
        cand = Path(home) / "bin" / "java"
        if cand.is_file() and os.access(cand, os.X_OK):
            return str(cand)
    found = shutil.which("java")
    if found:
        return found
    raise JavaMissingError(
        "no Java runtime found (METEOR 1.5 and the PTB tokenizer are Java programs): install one "
        "(e.g. `apt-get install default-jre-headless`) or set JAVA_HOME"
    )


def package_dir() -> Path:
    """Directory of the installed ``pycocoevalcap`` package (holds the jars)."""
    spec = importlib.util.find_spec("pycocoevalcap")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "pycocoevalcap is not installed: it ships the METEOR 1.5 and CoreNLP 3.4.1 jars "
            "(pip install pycocoevalcap==1.2)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def jar(rel: str) -> Path:
    path = package_dir() / rel
    if not path.is_file():
        raise RuntimeError(f"{path}: jar missing from the pycocoevalcap package")
    return path


@functools.lru_cache(maxsize=4)
def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
