"""``evaluate_files`` (what ``hivid evaluate dense`` runs): it scores what it reads exactly as
``dense_scores`` does with the settings it is given, and records who computed the numbers.

Small files (4 videos of the English fixture) keep each real METEOR run short; the numbers
themselves are checked against the reference in test_eval_dense.py."""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

import pytest

import hivid.evaluation.dense as dense
from hivid.evaluation.dense import DEFINITIONS, dense_scores, evaluate_files, evaluator_identity
from hivid.evaluation.meteor import Meteor
from hivid.evaluation.tokenize import CaptionTokenizer

DATA = Path(__file__).resolve().parents[1] / "data" / "eval"
VIDEOS = ("v_0000", "v_0001", "v_0002", "v_0003")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    d = tmp_path_factory.mktemp("dense_files")
    gt = json.loads((DATA / "dense_gt.json").read_text())
    gt2 = json.loads((DATA / "dense_gt2.json").read_text())
    pred = json.loads((DATA / "dense_pred.json").read_text())
    out = []
    for name, doc in (
        ("gt.json", {v: gt[v] for v in VIDEOS}),
        ("gt2.json", {v: gt2[v] for v in VIDEOS if v in gt2}),
        ("pred.json", {**pred, "results": {v: pred["results"][v] for v in VIDEOS}}),
    ):
        (d / name).write_text(json.dumps(doc))
        out.append(d / name)
    return out[0], out[1], out[2]


@pytest.fixture(scope="module")
def meteor() -> Iterator[Meteor]:
    with Meteor() as m:
        yield m


def _read(p: Path) -> Any:
    return json.loads(p.read_text())


def _quiet(fn: Any, *args: Any, **kwargs: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def test_one_file_with_the_defaults(files: tuple[Path, Path, Path], meteor: Meteor) -> None:
    gt, _, pred = files
    out = _quiet(evaluate_files, gt, pred)
    tok = CaptionTokenizer()
    want = _quiet(dense_scores, [_read(gt)], _read(pred), tok, meteor, names=[str(gt), str(pred)])
    assert out.pop("definitions") == DEFINITIONS
    assert out.pop("evaluator") == evaluator_identity(tok, meteor)
    assert out == want
    assert 0 < out["SODA_c"] < 1 and 0 < out["F1"] < 1


def test_two_files_and_every_setting_is_passed_on(
    files: tuple[Path, Path, Path], meteor: Meteor
) -> None:
    gt, gt2, pred = files
    tious = (0.3, 0.7)
    out = _quiet(
        evaluate_files, [gt, gt2], pred, tious=tious, max_proposals=2, tokenizer_mode="ptb"
    )
    tok = CaptionTokenizer(mode="ptb")
    want = _quiet(
        dense_scores,
        [_read(gt), _read(gt2)],
        _read(pred),
        tok,
        meteor,
        tious,
        2,
        names=[str(gt), str(gt2), str(pred)],
    )
    assert out.pop("evaluator")["tokenizer"] == tok.identity()
    out.pop("definitions")
    assert out == want


class _NoJava:
    """Stands in for the METEOR JVM where a test only checks what happens before scoring."""

    made: ClassVar[list[str]] = []

    def __init__(self, memory: str) -> None:
        _NoJava.made.append(memory)

    def __enter__(self) -> _NoJava:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def test_bad_thresholds_and_files_are_named(
    files: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gt, _, pred = files
    for tious in ([], [0.0], [1.0], [0.5, -0.1]):
        with pytest.raises(ValueError) as err:
            evaluate_files(gt, pred, tious=tious)
        assert str(err.value) == f"tIoU thresholds must lie in (0, 1), got {list(tious)}"
    monkeypatch.setattr(dense, "Meteor", _NoJava)
    _NoJava.made.clear()
    listed = tmp_path / "list.json"
    listed.write_text("[]")
    with pytest.raises(ValueError) as err:
        evaluate_files(gt, listed, meteor_memory="3G")
    assert str(err.value) == f"{listed}: predictions must be a JSON object with 'results'"
    assert _NoJava.made == ["3G"]
    with pytest.raises(ValueError) as err:
        evaluate_files([gt, listed], pred)
    assert str(err.value) == f"{listed}: ground truth must be a JSON object"
    assert _NoJava.made == ["3G", "2G"]
    bad = tmp_path / "bad_pred.json"
    bad.write_text(json.dumps({"results": {"v_0000": "not a list"}}))
    with pytest.raises(ValueError) as err:  # dense_scores' errors name the files read
        evaluate_files(gt, bad)
    assert str(err.value) == f"{bad}: predictions 'v_0000': expected a list of segments"


def test_evaluator_identity_names_code_jar_and_tokenizer(
    meteor: Meteor, monkeypatch: pytest.MonkeyPatch
) -> None:
    tok = CaptionTokenizer(mode="ptb")
    h = hashlib.sha256()
    for f in sorted(Path(dense.__file__).parent.glob("*.py")):
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    ident = evaluator_identity(tok, meteor)
    assert ident == {
        "hivid": metadata.version("hivid"),
        "evaluation_code_sha256": h.hexdigest(),
        **meteor.identity(),
        "tokenizer": tok.identity(),
    }
    assert set(meteor.identity()) == {"meteor_jar", "meteor_jar_sha256"}

    def missing(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", missing)
    assert evaluator_identity(tok, meteor)["hivid"] == "unknown"


def test_scores_without_soda_warnings_and_no_match(meteor: Meteor) -> None:
    gt = {"v": {"duration": 20.0, "timestamps": [[0.0, 10.0]], "sentences": ["a red bottle"]}}
    pred = {
        "version": "VERSION 1.0",
        "results": {
            "v": [{"timestamp": [15.0, 20.0], "sentence": "a red bottle"}],
            "x": [{"timestamp": [0.0, 1.0], "sentence": "not in the ground truth"}],
        },
    }
    tok = CaptionTokenizer()
    with pytest.warns(UserWarning) as rec:
        out = dense_scores(gt, pred, tok, meteor, soda=False, names=["g.json", "p.json"])
    assert [str(w.message) for w in rec.list] == [
        "prediction file lacks ['external_data'] (the reference evaluator rejects it)",
        "1 predicted video id(s) not in the GT are ignored: x",
    ]
    assert "SODA_c" not in out and "SODA_c" not in out["per_video"]["v"]
    assert (out["Precision"], out["Recall"], out["F1"]) == (0.0, 0.0, 0.0)


def test_errors_name_the_prediction_file(meteor: Meteor) -> None:
    gt = {"v": {"duration": 20.0, "timestamps": [[0.0, 10.0]], "sentences": ["a red bottle"]}}
    bad = {"results": {"v": "not a list"}}
    tok = CaptionTokenizer()
    with pytest.raises(ValueError) as err:
        dense_scores(gt, bad, tok, meteor, names=["g.json", "p.json"])
    assert str(err.value) == "p.json: predictions 'v': expected a list of segments"
    with pytest.raises(ValueError) as err:  # two GT files: the prediction file is the last name
        dense_scores([gt, gt], bad, tok, meteor, names=["g1.json", "g2.json", "p.json"])
    assert str(err.value) == "p.json: predictions 'v': expected a list of segments"
    with pytest.raises(ValueError) as err:
        dense_scores(gt, bad, tok, meteor)
    assert str(err.value) == "predictions 'v': expected a list of segments"
