"""Narrate one video: ASR + frames (the annotation and dataset code) -> the narrator -> chapters.

``narrate_video(video, model_ref, out_dir)`` writes::

    chapters.json   {"video_id", "model", "duration", "chapters": [{start, end, title, summary}],
                     "tcot": [...], "checks": {"chapters": counts, "tcot": counts}, "notes",
                     "warnings", "asr": [{start, end, text}], "correction", "asr_note"}
                    (with --metadata, ASR items also hold text_raw, relevance, kept, corrections
                    and "correction" counts them; the narrator reads only the kept ones)
    chapters.vtt    WebVTT chapters track (one cue per chapter: "title" then the summary)
    tcot.txt        the model's temporal chain of thought (the <think> part)
    raw.txt         the generated text as is
    transcript.txt  the ASR sentences, one per line with their times (left-out ones marked)
    input.jsonl     the sample the model read (frame times + ASR), frames/<id>.npy beside it

Generated chapters and TCoT steps are checked against the video's duration and ordering
(``hivid.evaluation.checks``): clipped or rejected, counted in ``checks`` and explained in
``notes``; nothing past the end reaches chapters.json or the WebVTT track. No chapters at all
(nothing parsable, or a file without a video stream: it is transcribed, the narrator is not run)
is a warning in ``warnings``; `hivid narrate` then exits 2 unless ``--allow-empty``.

Preprocessing is annotation-light: audio decoding and the configured ASR backend exactly as the
annotate stage runs them (``hivid.annotate``), frames sampled exactly as the dataset stage does
(``hivid.dataset.build``); no OCR or chapter heuristics. With the product's metadata
(``metadata=``, `hivid narrate --metadata`) the ASR also goes through the annotate stage's
correction (near-miss brand and product words corrected, irrelevant sentences left out), as in
the narrator's training data; without it the ASR is read as transcribed, which a note says (the
narrator then sees misheard product names it never saw in training). The model is a saved narrator
directory, a stage output directory holding ``model/``, or an MLflow ``models:/`` URI.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hivid.io import write_bytes_atomic, write_json, write_jsonl

Progress = Callable[[str, int, int], None]
STEPS = ("model", "audio", "asr", "frames", "generate", "write")


class NarrateError(ValueError):
    """The video or the model cannot be used (the message names it and says why)."""


def media_info(video: Path) -> tuple[float | None, bool, bool]:
    """(duration in seconds or None, has a video stream, has an audio stream) of ``video``."""
    import av

    try:
        container = av.open(str(video), metadata_errors="ignore")
    except (av.FFmpegError, UnicodeDecodeError, ValueError, OSError) as exc:
        raise NarrateError(f"{video}: not a readable media file ({exc})") from None
    try:
        durations = []
        for st in [*container.streams.video[:1], *container.streams.audio[:1]]:
            if st.duration is not None and st.time_base is not None:
                durations.append(float(st.duration * st.time_base))
        if container.streams.video and durations:
            duration: float | None = durations[0]
        elif durations:
            duration = max(durations)
        elif container.duration is not None:
            duration = float(container.duration / av.time_base)
        else:
            duration = None
        return duration, bool(container.streams.video), bool(container.streams.audio)
    finally:
        container.close()


def resolve_model_dir(model_ref: str, root: Path | None = None) -> Path:
    """A narrator directory for ``model_ref``: a local dir (or its ``model/``) or ``models:/``."""
    if model_ref.startswith("models:/"):
        import mlflow

        from hivid.tracking.runs import configure

        if root is not None:
            configure(root)
        try:
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_ref))
        except Exception as exc:  # MlflowException, missing alias, unreachable server
            raise NarrateError(f"{model_ref}: cannot download the model ({exc})") from None
        found = sorted(local.rglob("narrator_config.json"))
        if not found:
            raise NarrateError(f"{model_ref}: the logged model holds no narrator directory")
        return found[0].parent
    path = Path(model_ref)
    for cand in (path, path / "model"):
        if (cand / "narrator_config.json").is_file():
            return cand
    raise NarrateError(f"{path}: not a narrator directory (no narrator_config.json)")


def tcot_text(text: str) -> str:
    """The ``<think>...</think>`` part of a generation (up to the end when it is not closed)."""
    m = re.search(r"<think>(.*?)(?:</think>|<chapters>|$)", text, flags=re.DOTALL)
    return m.group(1).strip() if m else ""


def parse_tcot(text: str) -> list[dict[str, Any]]:
    """``[START s-END s] observation`` lines of the TCoT."""
    rows = []
    for line in tcot_text(text).splitlines():
        m = re.match(r"^\s*\[\s*(\d+(?:\.\d+)?)\s*s?\s*-\s*(\d+(?:\.\d+)?)\s*s?\s*\]\s*(.+)$", line)
        if m and float(m.group(1)) <= float(m.group(2)):
            rows.append(
                {"start": float(m.group(1)), "end": float(m.group(2)), "observation": m.group(3)}
            )
    return rows


def _vtt_time(t: float) -> str:
    ms = round(max(0.0, t) * 1000)
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def webvtt_chapters(chapters: list[dict[str, Any]]) -> str:
    """A WebVTT chapters track: one numbered cue per chapter (title line, summary line)."""
    lines = ["WEBVTT", "Kind: chapters", ""]
    for i, c in enumerate(chapters, start=1):
        end = max(float(c["end"]), float(c["start"]) + 0.001)
        lines += [str(i), f"{_vtt_time(float(c['start']))} --> {_vtt_time(end)}"]
        lines.append(str(c["title"]).replace("-->", "->"))
        if c.get("summary"):
            lines.append(str(c["summary"]).replace("-->", "->"))
        lines.append("")
    return "\n".join(lines)


def narrate_video(
    video: Path,
    model_ref: str,
    out_dir: Path,
    params: Path | None = None,
    root: Path | None = None,
    max_new_tokens: int | None = None,
    progress: Progress | None = None,
    metadata: Path | None = None,
) -> dict[str, Any]:
    """Run preprocessing and the narrator on ``video``; write the outputs; return chapters.json."""
    from hivid.preconditions import MissingInputError, check_narrate

    try:
        check_narrate(Path(video), model_ref)  # before the heavy imports below
    except MissingInputError as exc:
        raise NarrateError(str(exc)) from None
    from hivid.annotate.asr import make_asr_backend
    from hivid.annotate.config import AnnotateConfig
    from hivid.annotate.resources import Models
    from hivid.annotate.steps import correct_asr
    from hivid.config import load_section, read_params
    from hivid.data.decode import decode_audio
    from hivid.data.ingest import MetadataError, load_metadata
    from hivid.dataset.build import DatasetConfig, _npy_bytes, _sample_frames
    from hivid.evaluation.checks import check_spans
    from hivid.models.narrator import load_narrator
    from hivid.training.generate import generate_chapters

    video = Path(video)
    if not video.is_file():
        raise NarrateError(f"{video}: no such video file")
    try:
        meta = load_metadata(Path(metadata)) if metadata is not None else None
    except MetadataError as exc:
        raise NarrateError(str(exc)) from None
    step = 0

    def tick(label: str) -> None:
        nonlocal step
        if progress:
            progress(label, step, len(STEPS))
        step += 1

    if params is not None and params.is_file():
        ann_cfg: AnnotateConfig = load_section(params, "annotate")
        ds_cfg: DatasetConfig = load_section(params, "dataset")
        eval_tokens = int((read_params(params).get("evaluate") or {}).get("max_new_tokens", 512))
    else:
        ann_cfg, ds_cfg, eval_tokens = AnnotateConfig(), DatasetConfig(), 512
    duration, has_video, has_audio = media_info(video)
    if not has_video and not has_audio:
        raise NarrateError(f"{video}: no video and no audio stream")
    tick("model")
    model_dir = resolve_model_dir(model_ref, root)
    model, tok = load_narrator(model_dir) if has_video else (None, None)
    tick("audio")
    audio = decode_audio(video) if has_audio else None
    tick("asr")
    segments: list[dict[str, Any]] = []
    if audio is not None and audio.size:
        result = make_asr_backend(ann_cfg.asr_cfg).transcribe(
            audio, 16000, language=ann_cfg.language
        )
        segments = [
            {"start": float(s["start"]), "end": float(s["end"]), "text": str(s["text"])}
            for s in result.segments
        ]
    correction: dict[str, Any] | None = None
    asr_note: str | None = None
    if meta is not None and segments:
        res = correct_asr(ann_cfg.correction_cfg, Models(ann_cfg), segments, meta)
        segments = res.segments
        correction = {
            "metadata": str(metadata),
            "relevance_scorer": res.relevance_scorer,
            "kept": sum(1 for s in segments if s["kept"]),
            "dropped": sum(1 for s in segments if not s["kept"]),
            "lexicon_changes": res.lexicon_changes,
            "llm_changes": res.llm_changes,
        }
    elif meta is None and segments and has_video:
        asr_note = (
            "no --metadata: the ASR is read as transcribed (the training data's ASR was "
            "corrected and filtered against product metadata by the annotate stage)"
        )
    model_asr = [
        {"start": s["start"], "end": s["end"], "text": s["text"]}
        for s in segments
        if s.get("kept", True)
    ]
    tick("frames")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    vid = video.stem
    warnings: list[str] = []
    text = ""
    chapters: list[dict[str, Any]] = []
    times: list[float] = []
    if has_video:
        frames, times = _sample_frames(video, ds_cfg)
        rel = f"frames/{vid}.npy"
        write_bytes_atomic(out_dir / rel, _npy_bytes(frames))
        record = {
            "video_id": vid,
            "duration": duration,
            "frame_times": times,
            "frames": rel,
            "asr": model_asr,
            "tcot": [],
            "chapters": [],
        }
        write_jsonl(out_dir / "input.jsonl", [record])
        tick("generate")
        assert model is not None and tok is not None
        text, chapters = generate_chapters(
            model, tok, record, out_dir, max_new_tokens=max_new_tokens or eval_tokens
        )
    else:
        tick("generate")
        warnings.append(
            f"{video.name}: audio only (no video stream): transcribed {len(segments)} ASR "
            "segments; no chapters were made (the narrator needs video frames)"
        )
    tick("write")
    ch = check_spans(chapters, duration, "chapter")
    tc = check_spans(parse_tcot(text), duration, "tcot step", allow_overlap=True)
    if has_video and not ch.kept:
        why = (
            f"{ch.checked} generated chapters, all rejected"
            if ch.checked
            else "nothing parsable as chapters in the model's output (see raw.txt)"
        )
        warnings.append(f"{video.name}: no chapters ({why})")
    report = {
        "video_id": vid,
        "video": str(video),
        "model": model_ref,
        "model_dir": str(model_dir),
        "duration": duration,
        "has_video": has_video,
        "has_audio": has_audio,
        "asr_segments": len(segments),
        "frames": len(times),
        "chapters": ch.kept,
        "tcot": tc.kept,
        "checks": {"chapters": ch.counts(), "tcot": tc.counts()},
        "notes": ([asr_note] if asr_note else []) + ch.notes + tc.notes,
        "warnings": warnings,
        "asr": segments,
        "correction": correction,
        "asr_note": asr_note,
    }
    write_json(out_dir / "chapters.json", report)
    (out_dir / "chapters.vtt").write_text(webvtt_chapters(ch.kept), encoding="utf-8")
    (out_dir / "tcot.txt").write_text(tcot_text(text) + "\n", encoding="utf-8")
    (out_dir / "raw.txt").write_text(text + "\n", encoding="utf-8")
    (out_dir / "transcript.txt").write_text(
        "".join(
            f"[{s['start']:.2f}-{s['end']:.2f} s] {s['text'].strip()}"
            + ("" if s.get("kept", True) else "  (left out: not about the product)")
            + "\n"
            for s in segments
        ),
        encoding="utf-8",
    )
    if progress:
        progress("done", len(STEPS), len(STEPS))
    return report
