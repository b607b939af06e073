"""English speech synthesis with the espeak-ng shared library shipped by ``espeakng-loader``.

No espeak program and no apt step: the library is loaded with ctypes and driven through its C API
(``speak_lib.h``) in synchronous mode, where ``espeak_Synth`` calls our callback with blocks of
int16 samples before it returns. espeak-ng is a formant synthesiser with no randomness, so the same
text, voice and rate give byte-identical samples in every run and process (the demo corpus relies on
this for reproducible videos).

The library keeps global state (voice, rate, callback, and hidden synthesiser phases that
``espeak_Initialize`` does not reset), so every call runs under one process-wide lock on a freshly
loaded private copy of the library (about 10 ms per call; see ``_private_library``).
"""

from __future__ import annotations

import _ctypes
import atexit
import ctypes
import shutil
import tempfile
import threading
from pathlib import Path

import numpy as np

SAMPLE_RATE = 22_050
"""espeak-ng's native output rate (Hz); ``espeak_Initialize`` reports it and we check it."""

# Constants from espeak-ng's speak_lib.h (API revision 12).
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000  # return an error instead of calling exit(1) on bad data
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_RATE = 1
_EE_OK = 0

# int callback(short *wav, int numsamples, espeak_EVENT *events); return 0 to continue.
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class TTSError(RuntimeError):
    """espeak-ng could not be loaded or failed to synthesise (the message says which and why)."""


_LOCK = threading.Lock()
_PRIVATE_LIB: Path | None = None
_CHUNKS: list[np.ndarray] = []


def _on_samples(wav: ctypes._Pointer, numsamples: int, _events: int) -> int:
    if wav and numsamples > 0:
        # Copy out now: the buffer belongs to espeak and is reused for the next block.
        _CHUNKS.append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
    return 0


# One trampoline for the process (ctypes frees it if the Python object is collected).
_CALLBACK = _SYNTH_CALLBACK(_on_samples)


def _locate_espeak() -> tuple[Path, Path]:
    """(shared library, espeak-ng-data dir) from the ``espeakng-loader`` package."""
    try:
        import espeakng_loader
    except ImportError as exc:
        raise TTSError(
            "espeak-ng unavailable: the 'espeakng-loader' package is not installed "
            "(pip install espeakng-loader)"
        ) from exc
    lib_path = Path(espeakng_loader.get_library_path())
    try:
        data_path = Path(espeakng_loader.get_data_path())
    except RuntimeError as exc:
        raise TTSError(f"espeak-ng data missing: {exc}") from exc
    if not lib_path.is_file():
        raise TTSError(f"{lib_path}: espeak-ng shared library not found in espeakng-loader")
    return lib_path, data_path


def _declare_signatures(lib: ctypes.CDLL) -> None:
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [
        ctypes.c_void_p,  # text
        ctypes.c_size_t,  # size in bytes incl. the terminating NUL
        ctypes.c_uint,  # position
        ctypes.c_int,  # position type
        ctypes.c_uint,  # end position (0 = none)
        ctypes.c_uint,  # flags
        ctypes.POINTER(ctypes.c_uint),  # unique identifier (may be NULL)
        ctypes.c_void_p,  # user data
    ]
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_Synchronize.argtypes = []
    lib.espeak_Synchronize.restype = ctypes.c_int
    lib.espeak_Terminate.argtypes = []
    lib.espeak_Terminate.restype = ctypes.c_int


def _private_library() -> Path:
    """A per-process private copy of the shared library (call with ``_LOCK`` held).

    espeak-ng keeps hidden static state that ``espeak_Initialize`` does not reset (the pitch
    flutter phase ``Flutter_ix`` and the glottal wave phase in wavegen.c), so the samples of a
    sentence depend on everything spoken before it in the process. To make every call a pure
    function of its arguments we load the library fresh for each call and unload it afterwards;
    a private copy guarantees nobody else holds a handle that would keep the old state mapped.
    """
    global _PRIVATE_LIB
    if _PRIVATE_LIB is not None and _PRIVATE_LIB.is_file():
        return _PRIVATE_LIB
    lib_path, _ = _locate_espeak()
    tmp = Path(tempfile.mkdtemp(prefix="hivid-espeak-"))
    private = tmp / "libespeak-ng-hivid.so"
    shutil.copyfile(lib_path, private)
    atexit.register(shutil.rmtree, tmp, True)
    _PRIVATE_LIB = private
    return private


def _load_fresh() -> tuple[ctypes.CDLL, int]:
    """dlopen the private copy and initialise it; returns (library, sample rate)."""
    lib_path = _private_library()
    _, data_path = _locate_espeak()
    try:
        lib = ctypes.CDLL(str(lib_path))
    except OSError as exc:
        raise TTSError(f"{lib_path}: cannot load the espeak-ng shared library: {exc}") from exc
    _declare_signatures(lib)
    rate = lib.espeak_Initialize(
        _AUDIO_OUTPUT_SYNCHRONOUS, 0, str(data_path).encode(), _INITIALIZE_DONT_EXIT
    )
    if rate <= 0:
        _unload(lib)
        raise TTSError(f"{data_path}: espeak_Initialize failed (returned {rate})")
    lib.espeak_SetSynthCallback(_CALLBACK)
    return lib, rate


def _unload(lib: ctypes.CDLL) -> None:
    lib.espeak_Terminate()
    _ctypes.dlclose(lib._handle)  # type: ignore[attr-defined]


def synthesize(text: str, voice: str = "en-us", rate_wpm: int = 160) -> tuple[np.ndarray, int]:
    """Speak ``text``; returns (int16 mono samples of shape (n,), sample rate = 22 050 Hz).

    ``voice`` is an espeak-ng voice name ("en-us", "en", "en-gb", ...); ``rate_wpm`` is the speaking
    rate in words per minute (espeak accepts 80..450). Deterministic: the same arguments give the
    same bytes in every call, run and process, whatever was synthesised before.
    """
    if not text.strip():
        raise TTSError("synthesize: text is empty")
    if not 80 <= rate_wpm <= 450:
        raise TTSError(f"synthesize: rate_wpm={rate_wpm} outside espeak's range 80..450")
    encoded = text.encode("utf-8")
    buf = ctypes.create_string_buffer(encoded)  # NUL-terminated copy
    with _LOCK:
        lib, rate = _load_fresh()
        try:
            if rate != SAMPLE_RATE:
                raise TTSError(f"espeak-ng reports {rate} Hz, expected {SAMPLE_RATE} Hz")
            if lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
                raise TTSError(f"synthesize: espeak-ng has no voice named {voice!r}")
            if lib.espeak_SetParameter(_PARAM_RATE, rate_wpm, 0) != _EE_OK:
                raise TTSError(f"synthesize: espeak-ng rejected rate {rate_wpm}")
            _CHUNKS.clear()
            status = lib.espeak_Synth(
                ctypes.cast(buf, ctypes.c_void_p),
                len(encoded) + 1,
                0,
                _POS_CHARACTER,
                0,
                _CHARS_UTF8,
                None,
                None,
            )
            lib.espeak_Synchronize()
            chunks = list(_CHUNKS)
            _CHUNKS.clear()
        finally:
            _unload(lib)
        if status != _EE_OK:
            raise TTSError(f"synthesize: espeak_Synth failed with status {status}")
    if not chunks:
        return np.zeros(0, dtype=np.int16), SAMPLE_RATE
    return np.concatenate(chunks).astype(np.int16, copy=False), SAMPLE_RATE
