"""Suites, config and tables of the quality gate (GX validation runs in test_quality_gate)."""

from __future__ import annotations

import math
import re

import pytest

from hivid.configbase import ConfigError, from_mapping
from hivid.quality.suites import QualityConfig, build_suites, chapters_suite
from hivid.quality.tables import (
    BATCH_TABLES,
    TABLES,
    build_tables,
    chapters_table,
    coverage,
    json_type,
    num,
    videos_table,
)
from tests.quality_batches import batch, manifest_row, record


def test_config_defaults_and_validation() -> None:
    cfg = from_mapping(QualityConfig, {"min_chapter_coverage": 0.8, "max_title_words": 8})
    assert cfg.min_chapter_coverage == 0.8 and cfg.max_quarantine_share == 0.5
    assert cfg.min_videos == 1
    with pytest.raises(ConfigError, match="min_chapter_coverage"):
        QualityConfig(min_chapter_coverage=1.5)
    with pytest.raises(ConfigError, match="max_quarantine_share"):
        QualityConfig(max_quarantine_share=-0.1)
    with pytest.raises(ConfigError, match="min_fps"):
        QualityConfig(min_fps=30, max_fps=10)
    with pytest.raises(ConfigError, match="unknown key"):
        from_mapping(QualityConfig, {"min_coverage": 0.9})


def _columns(expectation: object) -> list[str]:
    return [
        getattr(expectation, k)
        for k in ("column", "column_A", "column_B")
        if getattr(expectation, k, None) is not None
    ]


def test_suites_are_named_versioned_and_reference_real_columns() -> None:
    suites = build_suites(QualityConfig())
    assert [x.name for x in suites] == [
        "hivid.manifest.v2",
        "hivid.videos.v2",
        "hivid.asr_segments.v2",
        "hivid.frames.v1",
        "hivid.tcot.v1",
        "hivid.chapters.v2",
    ]
    for suite in suites:
        assert re.fullmatch(rf"hivid\.{suite.table}\.v{suite.version}", suite.name)
        names = [c.name for c in suite.checks]
        assert len(names) == len(set(names)), f"{suite.name}: duplicate check names"
        for c in suite.checks:
            for col in _columns(c.expectation):
                assert col in TABLES[suite.table], f"{suite.name}.{c.name}: no column {col}"
        gx_suite = suite.expectation_suite()
        assert gx_suite.name == suite.name and gx_suite.meta["version"] == suite.version
        assert [e.meta["check"] for e in gx_suite.expectations] == names


def test_thresholds_come_from_the_config() -> None:
    cfg = QualityConfig(max_title_words=5, min_chapter_coverage=0.75, require_metadata=False)
    suites = {x.table: x for x in build_suites(cfg)}
    assert suites["chapters"].check("title_words").expectation.max_value == 5
    assert suites["videos"].check("chapter_coverage").expectation.min_value == 0.75
    assert not any(c.name.startswith("metadata") for c in suites["manifest"].checks)
    assert any(c.name.startswith("metadata") for c in build_suites(QualityConfig())[0].checks)


def test_coverage_of_chapter_spans() -> None:
    assert coverage([(0, 10), (10, 30)], 30) == pytest.approx(1.0)
    assert coverage([(0, 10), (5, 12), (20, 30)], 30) == pytest.approx(22 / 30)
    assert coverage([(0, math.nan), (-5, 3), (28, 40)], 30) == pytest.approx(5 / 30)
    assert coverage([], 30) == 0.0
    assert math.isnan(coverage([(0, 1)], 0.0))


def test_coercion_helpers() -> None:
    assert num(3) == 3.0 and math.isnan(num("3")) and math.isnan(num(True))
    assert math.isnan(num(None)) and num(float("inf")) == math.inf
    assert [json_type(x) for x in ("a", 1, 1.5, True, None, {}, [])] == [
        "str",
        "number",
        "number",
        "bool",
        "null",
        "object",
        "array",
    ]
    assert json_type(None, present=False) == "missing"


def test_chapter_table_derived_columns() -> None:
    rec = record(manifest_row("a"))
    rec["chapters"][1]["start"] = 8.0  # overlaps chapter 1 (ends at 10)
    rec["chapters"][2]["title"] = "  Buy it now today  "
    rec["chapters"][0]["summary"] = None
    df = chapters_table({"a": rec}, {"a": 30.0})
    assert list(df.columns) == list(TABLES["chapters"])
    assert list(df["pos"]) == [1, 2, 3] and list(df["row"]) == [0, 1, 2]
    assert math.isnan(df.loc[0, "prev_end"]) and math.isnan(df.loc[0, "gap_to_prev"])
    assert df.loc[1, "prev_end"] == 10.0 and df.loc[1, "gap_to_prev"] == -2.0
    assert df.loc[2, "title"] == "Buy it now today" and df.loc[2, "title_words"] == 4
    assert df.loc[0, "summary"] is None and math.isnan(df.loc[0, "summary_chars"])
    assert df.loc[2, "overrun"] == 0.0


def test_explanations_name_the_items() -> None:
    rec = record(manifest_row("a"))
    rec["chapters"][1]["start"] = 8.0
    df = chapters_table({"a": rec}, {"a": 30.0})
    suite = chapters_suite(QualityConfig())
    bad = df[df["gap_to_prev"] < -0.05]
    msg = suite.check("no_overlap").explain(bad, None)
    assert msg == "chapter 2 starts at 8 s before chapter 1 ends at 10 s"


def test_videos_table_aggregates() -> None:
    manifest, ann = batch(2)
    ann["v00"]["frames"]["items"] = ann["v00"]["frames"]["items"][:10]
    ann["v01"]["sha256"] = "0" * 64
    df = videos_table(manifest, ann, frame_fps=1.0)
    assert list(df["video_id"]) == ["v00", "v01"]
    assert list(df["n_frames"]) == [10, 30] and list(df["expected_frames"]) == [30.0, 30.0]
    assert list(df["frame_count_error"]) == [-20.0, 0.0]
    assert list(df["sha256_matches"]) == [True, False]
    assert list(df["chapter_coverage"]) == pytest.approx([1.0, 1.0])
    assert df["structure_error"].isna().all() and list(df["schema_version"]) == ["1", "1"]


def test_tables_have_fixed_schema_even_when_empty() -> None:
    manifest, _ = batch(2)
    tables = build_tables(manifest, {}, frame_fps=1.0)
    assert set(tables) == set(BATCH_TABLES)
    for name, df in tables.items():
        assert df.empty and list(df.columns) == list(TABLES[name])
        assert {c: str(t) for c, t in df.dtypes.items()} == TABLES[name]


def test_tables_only_cover_annotated_videos_and_coerce_bad_values() -> None:
    manifest, ann = batch(3)
    del ann["v02"]  # quarantined by annotate: not part of this batch
    ann["v00"]["asr"]["segments"][0]["start"] = "0.5"
    ann["v01"]["frames"]["items"][3]["t"] = None
    tables = build_tables(manifest, ann, frame_fps=1.0)
    assert list(tables["manifest"]["video_id"]) == ["v00", "v01"]
    seg = tables["asr_segments"]
    assert math.isnan(seg.loc[0, "start"]) and seg.loc[0, "video_id"] == "v00"
    fr = tables["frames"]
    assert fr["t"].isna().sum() == 1 and len(fr) == 60
    assert (tables["manifest"]["meta_brand_type"] == "str").all()
