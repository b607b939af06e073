"""Property harness over ingest: random corpora of good videos and bad items of every kind.

Each example builds a data root from drawn items (good videos with valid metadata; metadata as
random bytes, random JSON shapes, deep nesting, huge integers, NaN, surrogates, oversize, a
directory or nothing; files that are empty, random bytes, directories named like videos, FIFOs,
symlinks inside / escaping / broken, wrong extensions, second copies and second extensions of a
good video; arbitrary names) and asserts, for every corpus:

- the batch finishes, and fails (``batch_failures``) exactly when fewer than ``min_videos`` good
  videos exist;
- every item is accounted for once: good ones in the manifest with their metadata as written, each
  bad one with exactly one quarantine row whose reason starts with its path and says why in one
  line (never an "unexpected error");
- the outputs are writable and read back as a valid manifest.

``FUZZ_EXAMPLES`` (default 40, plus one explicit corpus holding every kind) sets the number of
random corpora.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hivid.data.ingest import (
    IngestConfig,
    ingest,
    read_manifest,
    shown_path,
    video_id_problem,
    write_ingest_outputs,
)
from tests.helpers import write_video

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
CLIPS = 14
META_LIMIT = 256 * 1024  # above the deep / huge-integer payloads: they must fail on content

META = {
    "brand": "Acme",
    "category": "beauty",
    "attributes": {"volume": "500ml"},
    "price": {"amount": 59.0, "currency": "USD"},
}

json_leaf = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_leaf,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=12,
)

# metadata that must be rejected, one strategy per kind (bytes)
BAD_META: dict[str, st.SearchStrategy[bytes]] = {
    "meta_random_bytes": st.binary(max_size=200).filter(lambda b: not _is_valid_meta(b)),
    "meta_json_shape": json_values.map(lambda v: json.dumps(v).encode()).filter(
        lambda b: not _is_valid_meta(b)
    ),
    # past the manifest's depth limit, and past the interpreter's recursion limit
    "meta_deep": st.sampled_from([33, 900, 5_000, 50_000]).map(lambda d: b"[" * d + b"]" * d),
    "meta_huge_int": st.sampled_from([4301, 20_000]).map(
        lambda n: json.dumps({**META, "price": {"amount": 1}}).replace("1}", "7" * n + "}").encode()
    ),
    "meta_nonfinite": st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999"]).map(
        lambda c: json.dumps(META).replace("59.0", c).encode()
    ),
    "meta_surrogate": st.just(json.dumps(META).replace('"Acme"', '"\\udc80"').encode()),
    "meta_oversize": st.integers(META_LIMIT + 1, META_LIMIT + 4096).map(
        lambda n: json.dumps({**META, "pad": "x" * n}).encode()
    ),
    "meta_not_utf8": st.just(b"\xff\xfe{}"),
}
# a canonical payload per metadata kind: the explicit example covers every kind in every run
CANONICAL = {
    "meta_random_bytes": b"\x00\x01garbage",
    "meta_json_shape": b"[1, {}]",
    "meta_deep": b"[" * 50_000 + b"]" * 50_000,
    "meta_huge_int": json.dumps({**META, "price": {"amount": 1}})
    .replace("1}", "7" * 5000 + "}")
    .encode(),
    "meta_nonfinite": json.dumps(META).replace("59.0", "NaN").encode(),
    "meta_surrogate": json.dumps(META).replace('"Acme"', '"\\udc80"').encode(),
    "meta_oversize": json.dumps({**META, "pad": "x" * META_LIMIT}).encode(),
    "meta_not_utf8": b"\xff\xfe{}",
}
# metadata whose fate is not known up front: valid metadata with one field replaced
mutated_meta = st.tuples(st.sampled_from(sorted(META)), json_values).map(
    lambda kv: json.dumps({**META, kv[0]: kv[1]}).encode()
)

names = st.text(
    alphabet=st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=30,
).filter(lambda s: not s.startswith(".") and len(s.encode()) < 200)

FILE_KINDS = (
    "empty",
    "random_bytes",
    "dir_named_video",
    "fifo",
    "symlink_escaping",
    "symlink_broken",
    "wrong_extension",
    "copy_of_good",
    "second_extension",
    "missing_metadata",
    "metadata_dir",
    "bad_name",
)
item = st.one_of(
    st.tuples(st.sampled_from(FILE_KINDS), names, st.binary(max_size=2000)),
    st.tuples(st.just("mutated_metadata"), names, mutated_meta),
    *(st.tuples(st.just(k), names, strat) for k, strat in BAD_META.items()),
)
items = st.lists(item, max_size=8)
EVERY_KIND = [
    *((k, "name\nwith newline", b"\x00junk") for k in FILE_KINDS),
    *((k, "x", v) for k, v in CANONICAL.items()),
    ("mutated_metadata", "x", json.dumps({**META, "brand": 3}).encode()),
]


def _is_valid_meta(b: bytes) -> bool:
    try:
        v = json.loads(b)
    except (ValueError, RecursionError):
        return False
    return isinstance(v, dict) and {"brand", "category", "attributes", "price"} <= set(v)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    d = tmp_path_factory.mktemp("fuzzclips")
    return [
        write_video(d / f"c{i}.mp4", seconds=1.0, fps=5, size=(32, 24), audio=i % 2 == 0, seed=i)
        for i in range(CLIPS)
    ]


def _build(
    base: Path, clips: list[Path], n_good: int, drawn: list[tuple[Any, ...]]
) -> tuple[Path, dict[str, dict[str, Any]], dict[str, str], set[str]]:
    """The data root; good videos (id -> metadata); bad items (relative path -> kind); items
    whose fate depends on their content (relative paths)."""
    root = base / "data"
    videos, metas = root / "videos", root / "metadata"
    videos.mkdir(parents=True)
    metas.mkdir()
    outside = base / "outside.mp4"
    shutil.copy(clips[0], outside)
    good: dict[str, dict[str, Any]] = {}
    for i in range(n_good):
        vid = f"good_{i}"
        shutil.copy(clips[i], videos / f"{vid}.mp4")
        meta = {**META, "video_id": vid, "attributes": {"n": i}}
        (metas / f"{vid}.json").write_text(json.dumps(meta))
        os.utime(videos / f"{vid}.mp4", (1_000_000 + i, 1_000_000 + i))  # older than any copy
        good[vid] = meta
    bad: dict[str, str] = {}
    either: set[str] = set()
    spare = list(clips[n_good:])  # distinct content for items that reach the metadata check
    used: set[str] = {f"good_{i}" for i in range(n_good)}
    for k, (kind, name, payload) in enumerate(drawn):
        stem = f"item_{k}"
        if kind == "bad_name":
            stem = name
        if stem.lower() in used or (kind == "bad_name" and video_id_problem(stem) is None):
            continue  # a valid random name is just another item; keep the oracle simple
        target = videos / f"{stem}.mp4"
        rel = f"videos/{stem}.mp4"
        if kind.startswith("meta") or kind in ("mutated_metadata", "missing_metadata"):
            if not spare:
                continue
            shutil.copy(spare.pop(), target)
            mp = metas / f"{stem}.json"
            if kind == "metadata_dir":
                mp.mkdir()
            elif kind != "missing_metadata":
                mp.write_bytes(payload)
            if kind == "mutated_metadata":
                either.add(rel)
        elif kind == "empty":
            target.touch()
        elif kind in ("random_bytes", "bad_name"):
            target.write_bytes(payload)
        elif kind == "dir_named_video":
            target.mkdir()
        elif kind == "fifo":
            os.mkfifo(target)
        elif kind == "symlink_escaping":
            target.symlink_to(outside)
        elif kind == "symlink_broken":
            target.symlink_to(base / "nowhere.mp4")
        elif kind == "wrong_extension":
            rel = f"videos/{stem}.txt"
            (videos / f"{stem}.txt").write_bytes(payload)
        elif kind in ("copy_of_good", "second_extension"):
            if not good:
                continue
            src = next(iter(good))
            if kind == "second_extension":
                stem, rel = src, f"videos/{src}.mkv"
                target = videos / f"{src}.mkv"
                if target.exists():
                    continue
            shutil.copy(videos / f"{src}.mp4", target)
            (metas / f"{stem}.json").write_text(json.dumps({**good[src], "video_id": stem}))
        used.add(stem.lower())
        if rel not in either:
            bad[rel] = kind
    return root, good, bad, either


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(n_good=st.integers(0, 3), min_videos=st.integers(0, 3), drawn=items)
@example(n_good=2, min_videos=2, drawn=EVERY_KIND)
def test_any_corpus_keeps_good_videos_and_quarantines_each_bad_item_once(
    tmp_path_factory: pytest.TempPathFactory,
    clips: list[Path],
    n_good: int,
    min_videos: int,
    drawn: list[tuple[Any, ...]],
) -> None:
    base = tmp_path_factory.mktemp("fuzz")
    try:
        root, good, bad, either = _build(base, clips, n_good, drawn)
        cfg = IngestConfig(probe_timeout_s=0, min_videos=min_videos, max_metadata_bytes=META_LIMIT)
        summary = ingest(root, cfg)

        kept = {r["video_id"]: r for r in summary.manifest}
        rows: dict[str, list[dict[str, Any]]] = {}
        for q in summary.quarantined:
            rows.setdefault(q["path"], []).append(q)
        for vid, meta in good.items():  # good items unaffected
            assert vid in kept, (vid, rows)
            assert kept[vid]["metadata"] == meta
            assert kept[vid]["path"] == f"videos/{vid}.mp4"
        for rel, kind in bad.items():  # one row per bad item, naming the file and the reason
            assert len(rows.get(rel, [])) == 1, (rel, kind, rows, sorted(kept))
            reason = rows[rel][0]["reason"]
            assert reason.startswith(f"{shown_path(rel)}: "), reason
            assert len(reason) > len(shown_path(rel)) + 4, reason
            assert "\n" not in reason and len(reason) < 500, reason
            assert "unexpected error" not in reason, reason
        for rel in either:  # accepted with its metadata as written, or one clear row
            stem = Path(rel).stem
            if stem in kept:
                meta = json.loads((root / "metadata" / f"{stem}.json").read_bytes())
                assert kept[stem]["metadata"] == meta
            else:
                assert len(rows.get(rel, [])) == 1, (rel, rows)
                assert "unexpected error" not in rows[rel][0]["reason"]
        accounted = len(summary.manifest) + len(summary.quarantined)
        assert accounted == len(good) + len(bad) + len(either), (kept, rows)
        # the batch fails exactly when too few good videos exist
        usable = len(summary.manifest)
        assert bool(summary.batch_failures(cfg)) == (usable < min_videos)
        out = base / "out"
        write_ingest_outputs(summary, out)
        again = read_manifest(out / "manifest.jsonl")
        assert [r["video_id"] for r in again] == [r["video_id"] for r in summary.manifest]
        for r in again:
            assert all(math.isfinite(v) for v in (r["duration"], r["fps"]))
    finally:
        shutil.rmtree(base, ignore_errors=True)
