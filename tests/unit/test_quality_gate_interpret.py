"""How the gate reads GX results: failed expectations -> per-video reasons and batch failures,
GX's two error formats, the result id, the JSON copy and the failure message. GX result
documents are written by hand here in the shape GX 1.x returns (``to_json_dict``); the real GX
runs are in ``test_quality_gate.py`` and ``test_quality_more.py``."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from hivid.quality.gate import (
    GateFailed,
    GateResult,
    _exception_message,
    _failed_rows,
    _Findings,
    _interpret,
    _result_id,
    enforce,
    jsonable,
)
from hivid.quality.suites import Check, Suite


def gate_result(success: bool, failures: list[str]) -> GateResult:
    return GateResult(
        success=success,
        result_id="f" * 64,
        passed=["a", "b"],
        quarantined=[{"video_id": "c", "stage": "validate", "reasons": ["c: t: x"]}],
        batch_failures=failures,
        results_dir=Path("/out/results"),
        data_docs_dir=Path("/out/data_docs"),
        statistics={"videos": 3},
    )


def test_enforce_and_the_failure_message() -> None:
    ok = gate_result(True, [])
    assert enforce(ok) is ok
    bad = gate_result(False, ["manifest: duplicate content", "3 of 4 videos quarantined"])
    with pytest.raises(GateFailed) as err:
        enforce(bad)
    assert str(err.value) == (
        "quality gate failed (2 passed, 1 quarantined): manifest: duplicate content; "
        "3 of 4 videos quarantined"
    )
    assert err.value.result is bad
    assert str(GateFailed(gate_result(False, []))) == (
        "quality gate failed (2 passed, 1 quarantined): unknown batch failure"
    )
    assert bad.to_dict() == {
        "success": False,
        "result_id": "f" * 64,
        "passed": ["a", "b"],
        "quarantined": [{"video_id": "c", "stage": "validate", "reasons": ["c: t: x"]}],
        "batch_failures": ["manifest: duplicate content", "3 of 4 videos quarantined"],
        "results_dir": "/out/results",
        "data_docs_dir": "/out/data_docs",
        "statistics": {"videos": 3},
    }


def test_jsonable_makes_plain_json() -> None:
    class Odd:
        def __str__(self) -> str:
            return "odd"

    doc = {
        1: np.float32(0.5),
        "n": np.int64(3),
        "t": (1, {2}),
        "nan": math.nan,
        "inf": -math.inf,
        "p": Path("/a/b"),
        "ok": [True, None, "s", 2.5],
        "o": Odd(),
        "deep": {"x": [np.bool_(True)]},
    }
    out = jsonable(doc)
    assert out == {
        "1": 0.5,
        "n": 3,
        "t": [1, [2]],
        "nan": "nan",
        "inf": "-inf",
        "p": "/a/b",
        "ok": [True, None, "s", 2.5],
        "o": "odd",
        "deep": {"x": [True]},
    }
    assert type(out["n"]) is int and type(out["1"]) is float and out["deep"]["x"][0] is True


def test_result_id_is_sha256_of_canonical_json() -> None:
    outcome = [["s", "c", True, {"b": 1, "a": math.inf}, None]]
    blob = '[["s","c",true,{"a":"inf","b":1},null]]'
    assert _result_id(outcome) == hashlib.sha256(blob.encode()).hexdigest()


@pytest.mark.parametrize(
    ("info", "message"),
    [
        (None, None),
        ("boom", None),
        ({"raised_exception": True, "exception_message": "boom\nTraceback ..."}, "boom"),
        ({"raised_exception": True, "exception_message": "  "}, "error"),
        ({"raised_exception": True, "exception_message": None}, "error"),
        ({"raised_exception": False, "exception_message": None}, None),
        ({"raised_exception": False, "exception_message": "stale"}, None),
        # a failed metric: keyed by the metric id, no raised_exception flag
        (
            {"('column_values.nonnull', ...)": {"exception_message": "no column x\n..."}},
            "no column x",
        ),
        ({"m1": {"exception_message": ""}}, None),
        ({"m1": "not a mapping", "m2": {"exception_message": "second"}}, "second"),
        ({"m1": {"raised_exception": False, "exception_message": "x"}}, None),
        ({"m1": {"raised_exception": True, "exception_message": ""}}, "error"),
    ],
)
def test_exception_message_reads_both_gx_formats(info: Any, message: str | None) -> None:
    assert _exception_message(info) == message


def test_failed_rows_are_the_flagged_rows_once_in_order() -> None:
    df = pd.DataFrame({"row": [0, 1, 2], "video_id": ["a", "b", "c"]})
    idx = [{"row": 2, "video_id": "c"}, "junk", {"row": 0, "video_id": "a"}, {"row": 2}]
    rows = _failed_rows({"unexpected_index_list": idx}, df)
    assert rows.to_dict("list") == {"row": [0, 2], "video_id": ["a", "c"]}
    for empty in ({}, {"unexpected_index_list": None}, {"unexpected_index_list": ["junk"]}):
        none = _failed_rows(empty, df)
        assert none.empty and list(none.columns) == ["row", "video_id"]


def explain_rows(rows: pd.DataFrame, observed: Any) -> str:
    return f"rows {','.join(map(str, rows['row']))} observed {observed}"


def broken_explain(rows: pd.DataFrame, observed: Any) -> str:
    raise KeyError("pos")


SUITE = Suite(
    "hivid.t.v1",
    "t",
    1,
    (
        Check("per_video", None, explain_rows),
        Check("dupes", None, explain_rows, batch=True),
        Check("wording_bug", None, broken_explain),
        Check("batch_wording_bug", None, broken_explain, batch=True),
        Check("expect_table_row_count_to_be_between", None, explain_rows),
    ),
)


def outcome(check: str | None, success: bool, result: Any = None, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"type": "expect_table_row_count_to_be_between", "kwargs": {"k": 1}}
    if check is not None:
        config["meta"] = {"check": check}
    return {"expectation_config": config, "success": success, "result": result, **extra}


def flagged(*rows: int) -> dict[str, Any]:
    ids = "abcd"
    return {
        "unexpected_index_list": [{"row": r, "video_id": ids[r]} for r in rows],
        "observed_value": 7,
    }


def interpret(results: list[dict[str, Any]], df: pd.DataFrame | None = None) -> _Findings:
    if df is None:
        df = pd.DataFrame({"row": [0, 1, 2, 3], "video_id": ["a", "b", "b", "d"]})
    findings = _Findings(reasons={}, batch_failures=[], outcome=[])
    _interpret(SUITE, {"results": results}, df, findings)
    return findings


def test_interpret_maps_failed_rows_to_their_videos() -> None:
    f = interpret(
        [
            outcome("per_video", True, {"observed_value": 0}),
            outcome("per_video", False, flagged(3, 1, 2)),
        ]
    )
    assert f.batch_failures == []
    assert f.reasons == {
        "b": ["b: t: rows 1,2 observed 7"],  # one reason per video, over its own rows
        "d": ["d: t: rows 3 observed 7"],
    }
    assert list(f.reasons) == ["b", "d"]
    assert f.outcome == [
        ["hivid.t.v1", "per_video", True, {"k": 1}, {"observed_value": 0}],
        ["hivid.t.v1", "per_video", False, {"k": 1}, flagged(3, 1, 2)],
    ]


def test_interpret_batch_checks_fail_the_batch_and_name_all_rows() -> None:
    f = interpret([outcome("dupes", False, flagged(0, 3))])
    assert f.batch_failures == ["t: rows 0,3 observed 7"]
    assert f.reasons == {"a": ["a: t: rows 0,3 observed 7"], "d": ["d: t: rows 0,3 observed 7"]}
    # a batch check without rows still fails the batch, once
    f = interpret([outcome("dupes", False, {"observed_value": 0})])
    assert f.batch_failures == ["t: rows  observed 0"] and f.reasons == {}


def test_interpret_failures_without_videos_or_with_errors_fail_the_batch() -> None:
    f = interpret(
        [
            outcome(None, False, {"observed_value": 0}),  # table-level: named by its type
            outcome("per_video", False, None),
            outcome(
                "per_video",
                False,
                flagged(1),
                exception_info={"raised_exception": True, "exception_message": "bad regex\n.."},
            ),
            outcome("per_video", False, flagged(1), exception_info={"raised_exception": False}),
        ]
    )
    assert f.batch_failures == [
        "t: check expect_table_row_count_to_be_between failed without naming videos",
        "t: check per_video failed without naming videos",
        "t: check per_video could not run: bad regex",
    ]
    assert f.reasons == {"b": ["b: t: rows 1 observed 7"]}
    assert [o[1] for o in f.outcome] == [
        "expect_table_row_count_to_be_between",
        "per_video",
        "per_video",
        "per_video",
    ]
    # rows of a table without a video_id column cannot be attributed
    f = interpret([outcome("per_video", False, flagged(0))], pd.DataFrame({"row": [0]}))
    assert f.batch_failures == ["t: check per_video failed without naming videos"]


def test_a_wording_bug_never_hides_the_failure() -> None:
    f = interpret([outcome("wording_bug", False, flagged(0))])
    assert f.reasons == {
        "a": ["a: t: check wording_bug failed (a; explanation error: 'pos')"],
    }
    f = interpret([outcome("batch_wording_bug", False, flagged(0))])
    assert f.batch_failures == ["t: check batch_wording_bug failed (t; explanation error: 'pos')"]
