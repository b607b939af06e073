"""Property-based tests of the validators (hypothesis): they never crash on any input, and they
say "bad" exactly when the input is bad."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hivid.data.ingest import MetadataError, load_metadata, video_id_problem
from hivid.data.probe import frame_intervals, is_variable_rate
from hivid.quality.tables import BATCH_TABLES, build_tables, coverage, nonfinite_paths

json_scalars = st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats() | st.text()
json_values = st.recursive(
    json_scalars,
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=20,
)
keys = st.sampled_from(
    ["start", "end", "t", "text", "title", "summary", "label", "relevance", "observation", "fps"]
)
items = st.dictionaries(keys, json_scalars, max_size=6)
records = st.fixed_dictionaries(
    {},
    optional={
        "schema_version": json_scalars,
        "video_id": st.just("v") | st.text(max_size=3),
        "duration": json_scalars,
        "asr": st.fixed_dictionaries({}, optional={"segments": st.lists(items, max_size=4)})
        | json_values,
        "frames": st.fixed_dictionaries(
            {}, optional={"fps": json_scalars, "items": st.lists(items, max_size=4)}
        )
        | json_values,
        "tcot": st.lists(items, max_size=4) | json_values,
        "chapters": st.lists(items, max_size=4) | json_values,
    },
)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(
    spans=st.lists(st.tuples(st.floats(-50, 150), st.floats(-50, 150)), max_size=8),
    duration=st.floats(0.1, 100),
)
def test_coverage_is_a_share_and_ignores_order(spans: list, duration: float) -> None:
    c = coverage(spans, duration)
    assert 0.0 <= c <= 1.0 + 1e-9
    assert c == pytest.approx(coverage(list(reversed(spans)), duration))
    assert coverage([*spans, (0.0, duration)], duration) == pytest.approx(1.0)


@FAST
@given(rec=records, duration=json_scalars)
def test_tables_never_crash_and_keep_their_schema(rec: dict, duration: object) -> None:
    manifest = [{"video_id": "v", "duration": duration, "sha256": "0" * 64, "metadata": rec}]
    tables = build_tables(manifest, {"v": rec}, frame_fps=1.0)
    assert set(tables) == set(BATCH_TABLES)
    for name, df in tables.items():
        assert list(df.columns) == list(BATCH_TABLES[name])
        assert {c: str(t) for c, t in df.dtypes.items()} == BATCH_TABLES[name]
    videos = tables["videos"]
    assert len(videos) == 1
    has_nonfinite = bool(nonfinite_paths(rec))
    assert (videos["nonfinite"].iloc[0] is not None) == has_nonfinite


@FAST
@given(value=json_values)
def test_nonfinite_found_exactly_when_json_would_refuse(value: object) -> None:
    try:
        json.dumps(value, allow_nan=False)
        strict_ok = True
    except ValueError:
        strict_ok = False
    assert (nonfinite_paths(value) == []) == strict_ok


@FAST
@given(vid=st.text(max_size=40))
def test_a_safe_id_never_leaves_its_directory(vid: str) -> None:
    out = Path("/srv/hivid/outputs/annotations")
    if video_id_problem(vid) is None:
        target = (out / f"{vid}.json").resolve()
        assert target.parent == out and target.name == f"{vid}.json"
        assert "/" not in vid and "\x00" not in vid and ".." not in vid
    else:
        assert "\n" not in video_id_problem(vid)  # type: ignore[operator]


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(content=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_metadata_loader_returns_typed_metadata_or_one_line_error(
    tmp_path: Path, content: bytes
) -> None:
    p = tmp_path / "m.json"
    p.write_bytes(content)
    try:
        meta = load_metadata(p)
    except MetadataError as exc:
        msg = str(exc)
        assert msg.startswith(f"{p}: ") and "\n" not in msg
        return
    assert isinstance(meta["brand"], str) and meta["brand"].strip()
    assert isinstance(meta["category"], str) and isinstance(meta["attributes"], dict)
    amount = meta["price"]["amount"]
    assert isinstance(amount, int | float) and math.isfinite(amount) and amount >= 0


@FAST
@given(
    fps=st.floats(1, 120),
    n=st.integers(3, 200),
    offset=st.floats(0, 100),
    scale=st.floats(0.01, 100),
)
def test_constant_rate_is_never_vfr_and_vfr_is_scale_free(
    fps: float, n: int, offset: float, scale: float
) -> None:
    times = [offset + i / fps for i in range(n)]
    assert not is_variable_rate(frame_intervals(times))
    bursty = [offset + sum(1 / fps if k % 4 else 5 / fps for k in range(i)) for i in range(n)]
    vfr = is_variable_rate(frame_intervals(bursty))
    assert vfr  # a stall of 5 frame periods among regular frames
    assert is_variable_rate(frame_intervals([t * scale for t in bursty])) == vfr


def _chaptered(vid: str, duration: float, cuts: list[float]) -> tuple[dict, dict]:
    from tests.quality_batches import manifest_row, record

    row = manifest_row(vid, duration=duration)
    rec = record(row)
    bounds = [0.0, *cuts, duration]
    rec["chapters"] = [
        {"start": a, "end": b, "title": f"Part {i + 1}", "summary": "Something happens."}
        for i, (a, b) in enumerate(itertools.pairwise(bounds))
    ]
    return row, rec


@pytest.mark.slow
@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    duration=st.floats(10, 120),
    shares=st.lists(st.floats(0.05, 0.95), min_size=0, max_size=5, unique=True),
    data=st.data(),
)
def test_gate_quarantines_exactly_the_corrupted_chapterings(
    tmp_path_factory: pytest.TempPathFactory, duration: float, shares: list, data: st.DataObject
) -> None:
    from hivid.quality.gate import run_gate
    from hivid.quality.suites import QualityConfig

    duration = math.floor(duration) + 0.5
    cuts = sorted(round(s * duration, 3) for s in shares)
    cuts = [c for i, c in enumerate(cuts) if i == 0 or c - cuts[i - 1] > 0.01]
    manifest, ann = [], {}
    for vid in ("clean", "overlap", "beyond", "nan"):
        row, rec = _chaptered(vid, duration, cuts)
        chapters = rec["chapters"]
        k = data.draw(st.integers(0, len(chapters) - 1), label=f"{vid} chapter")
        if vid == "overlap" and len(chapters) > 1:
            j = max(k, 1)
            chapters[j]["start"] = chapters[j - 1]["start"] + 0.5 * (
                chapters[j - 1]["end"] - chapters[j - 1]["start"]
            )
        elif vid == "overlap":
            chapters.append(dict(chapters[0]))  # a second chapter over the whole video
        elif vid == "beyond":
            chapters[-1]["end"] = duration + data.draw(st.floats(1, 100), label="overrun")
        elif vid == "nan":
            chapters[k][data.draw(st.sampled_from(["start", "end"]), label="field")] = math.nan
        manifest.append(row)
        ann[vid] = rec
    out = tmp_path_factory.mktemp("prop")
    result = run_gate(manifest, ann, QualityConfig(max_quarantine_share=1.0), out)
    assert result.passed == ["clean"], result.quarantined
    assert sorted(q["video_id"] for q in result.quarantined) == ["beyond", "nan", "overlap"]


@FAST
@given(
    assignment=st.dictionaries(
        st.sampled_from([f"v{i}" for i in range(8)]),
        st.sets(st.sampled_from(["train", "val", "test"]), max_size=3),
        max_size=8,
    )
)
def test_split_table_flags_exactly_leaked_and_lost_videos(assignment: dict) -> None:
    from hivid.quality.tables import splits_table

    splits = {
        s: sorted(v for v, ss in assignment.items() if s in ss) for s in ("train", "val", "test")
    }
    df = splits_table({**splits, "seed": 0}, videos=list(assignment))
    flagged = set(df.loc[df["n_splits"] != 1, "video_id"])
    assert flagged == {v for v, ss in assignment.items() if len(ss) != 1}
    assert set(df["video_id"]) == set(assignment)
