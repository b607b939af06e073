"""The promotion decision, branch by branch, with exact reasons and numbers.

``decide`` only reads the registry (model versions, the champion alias, evaluate runs), so these
tests hand it an in-memory registry with the three calls it makes; ``test_promotion.py`` runs the
same rules against a real MLflow store, with the lock and the alias write. Values are binary
fractions (0.25, 0.5, ...) so that "exactly the margin" is exact.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from hivid.configbase import ConfigError
from hivid.tracking.promotion import Decision, PromotionConfig, decide, eval_run_of

NAME = "hivid-narrator"


class Registry:
    """The read side of an MLflow registry + tracking store: versions, aliases, runs."""

    def __init__(self) -> None:
        self.versions: dict[tuple[str, str], Any] = {}
        self.aliases: dict[tuple[str, str], str] = {}
        self.runs: dict[str, Any] = {}

    def get_model_version(self, name: str, version: str) -> Any:
        return self.versions[(name, str(version))]

    def get_model_version_by_alias(self, name: str, alias: str) -> Any:
        return self.versions[(name, self.aliases[(name, alias)])]  # KeyError: no such alias

    def get_run(self, run_id: str) -> Any:
        return self.runs[run_id]  # KeyError: not in the store

    def add(
        self,
        metrics: dict[str, float] | None,
        gate: str | None = "abc:success",
        run_id: str | None = "__auto__",
        scored: str | None = "__own__",
        eval_run: str | None = "__auto__",
    ) -> str:
        """A version with an evaluate run that logged ``metrics`` (None: no evaluate run)."""
        version = str(len(self.versions) + 1)
        train = f"train{version}" if run_id == "__auto__" else run_id
        tags: dict[str, str] = {}
        if gate is not None:
            tags["gx.result"] = gate
        if metrics is not None:
            ev = f"eval{version}" if eval_run == "__auto__" else eval_run
            run_tags = (
                {} if scored is None else {"model.run": train if scored == "__own__" else scored}
            )
            assert ev is not None
            self.runs[ev] = SimpleNamespace(
                info=SimpleNamespace(run_id=ev),
                data=SimpleNamespace(metrics=dict(metrics), tags=run_tags),
            )
            tags["eval.run"] = ev
        elif eval_run not in (None, "__auto__"):
            tags["eval.run"] = eval_run  # recorded, but not in the store
        self.versions[(NAME, version)] = SimpleNamespace(version=version, run_id=train, tags=tags)
        return version

    def crown(self, version: str, alias: str = "champion") -> None:
        self.aliases[(NAME, alias)] = version


def expect(d: Decision, **fields: Any) -> None:
    """``d`` as a dict equals the defaults below updated with ``fields`` (every field checked)."""
    want: dict[str, Any] = {
        "promoted": False,
        "champion_before": None,
        "metric": "SODA_c",
        "challenger_value": None,
        "champion_value": None,
        "baseline": "trivial",
        "baseline_value": None,
        "eval_run": None,
    }
    want.update(fields)
    assert d.to_dict() == want


def test_first_version_above_the_baseline_is_promoted() -> None:
    r = Registry()
    v = r.add({"SODA_c": 0.5, "baseline_trivial.SODA_c": 0.25})
    d = decide(r, NAME, v, PromotionConfig())  # type: ignore[arg-type]
    reasons = [
        "quality gate passed",
        "SODA_c 0.5000 beats the trivial baseline (0.2500) by 0.2500 >= margin 0.0",
        "no current champion; SODA_c=0.5000",
    ]
    expect(
        d,
        promoted=True,
        version="1",
        challenger_value=0.5,
        baseline_value=0.25,
        eval_run="eval1",
        reasons=reasons,
    )
    assert d.text() == "version 1 PROMOTED to champion: " + "; ".join(reasons)


@pytest.mark.parametrize(
    ("gate", "shown"),
    [("abc:failure", "abc:failure"), (None, "missing"), ("abc:success:no", "abc:success:no")],
)
def test_a_version_that_did_not_pass_the_gate_is_never_promoted(
    gate: str | None, shown: str
) -> None:
    r = Registry()
    v = r.add({"SODA_c": 0.9, "baseline_trivial.SODA_c": 0.25}, gate=gate)
    d = decide(r, NAME, v, PromotionConfig())  # type: ignore[arg-type]
    reason = f"quality gate not passed (gx.result={shown})"
    expect(d, version="1", challenger_value=0.9, eval_run="eval1", reasons=[reason])
    assert d.text() == f"version 1 kept as challenger: {reason}"


def test_no_usable_evaluate_run() -> None:
    r = Registry()
    untagged = r.add(None)
    d = decide(r, NAME, untagged, PromotionConfig())  # type: ignore[arg-type]
    why = "no evaluate run recorded for it (eval.run tag missing)"
    expect(d, version="1", reasons=["quality gate passed", why])
    lost = r.add(None, eval_run="gone")
    d = decide(r, NAME, lost, PromotionConfig())  # type: ignore[arg-type]
    why = "its evaluate run gone is not in the tracking store"
    expect(d, version="2", reasons=["quality gate passed", why])
    other = r.add({"SODA_c": 0.9, "baseline_trivial.SODA_c": 0.25}, scored="train1")
    d = decide(r, NAME, other, PromotionConfig())  # type: ignore[arg-type]
    why = (
        "its evaluate run eval3 scored the model of run train1, not this version's source run "
        "train3"
    )
    expect(d, version="3", reasons=["quality gate passed", why])


def test_evaluate_run_without_a_model_run_tag_or_version_without_a_run_is_accepted() -> None:
    r = Registry()
    unnamed = r.add({"SODA_c": 0.5, "baseline_trivial.SODA_c": 0.25}, scored=None)
    run, why = eval_run_of(r, r.get_model_version(NAME, unnamed))  # type: ignore[arg-type]
    assert why == "" and run is r.runs["eval1"]
    orphan = r.add({"SODA_c": 0.5, "baseline_trivial.SODA_c": 0.25}, run_id=None, scored="x")
    run, why = eval_run_of(r, r.get_model_version(NAME, orphan))  # type: ignore[arg-type]
    assert why == "" and run is r.runs["eval2"]
    assert decide(r, NAME, orphan, PromotionConfig()).promoted  # type: ignore[arg-type]


def test_missing_or_non_finite_metric_falls_back_then_refuses() -> None:
    r = Registry()
    f1 = r.add({"SODA_c": float("nan"), "F1": 0.5, "baseline_trivial.F1": 0.25})
    d = decide(r, NAME, f1, PromotionConfig())  # type: ignore[arg-type]
    assert d.promoted and d.metric == "F1" and d.challenger_value == 0.5
    assert d.reasons[1] == "F1 0.5000 beats the trivial baseline (0.2500) by 0.2500 >= margin 0.0"
    d = decide(r, NAME, f1, PromotionConfig(fallback_metric=None))  # type: ignore[arg-type]
    expect(
        d,
        version="1",
        eval_run="eval1",
        reasons=["quality gate passed", "no SODA_c metric logged by its evaluate run"],
    )
    none = r.add({"BLEU": 0.5})
    d = decide(r, NAME, none, PromotionConfig())  # type: ignore[arg-type]
    expect(
        d,
        version="2",
        eval_run="eval2",
        reasons=["quality gate passed", "no SODA_c or F1 metric logged by its evaluate run"],
    )


@pytest.mark.parametrize("base", [None, float("inf"), float("nan")])
def test_no_finite_baseline_value_refuses(base: float | None) -> None:
    r = Registry()
    metrics = {"SODA_c": 0.5} | ({} if base is None else {"baseline_trivial.SODA_c": base})
    v = r.add(metrics)
    d = decide(r, NAME, v, PromotionConfig())  # type: ignore[arg-type]
    why = (
        "its evaluate run logged no baseline_trivial.SODA_c: cannot check that it beats the "
        "trivial baseline (set registry.promotion.baseline: null to skip the floor)"
    )
    expect(
        d, version="1", challenger_value=0.5, eval_run="eval1", reasons=["quality gate passed", why]
    )
    d = decide(r, NAME, v, PromotionConfig(baseline=None))  # type: ignore[arg-type]
    expect(
        d,
        promoted=True,
        version="1",
        challenger_value=0.5,
        baseline=None,
        eval_run="eval1",
        reasons=["quality gate passed", "no current champion; SODA_c=0.5000"],
    )


@pytest.mark.parametrize(
    ("value", "base", "margin", "promoted", "delta"),
    [
        (0.75, 0.25, 0.5, True, "0.5000"),  # exactly the margin: enough
        (0.5, 0.25, 0.5, False, "+0.2500"),  # better, but by less than the margin
        (0.25, 0.25, 0.0, False, "+0.0000"),  # equal is not better, even with margin 0
        (0.25, 0.5, 0.0, False, "-0.2500"),
    ],
)
def test_baseline_floor_boundaries(
    value: float, base: float, margin: float, promoted: bool, delta: str
) -> None:
    r = Registry()
    v = r.add({"SODA_c": value, "baseline_trivial.SODA_c": base})
    d = decide(r, NAME, v, PromotionConfig(baseline_margin=margin))  # type: ignore[arg-type]
    assert d.promoted is promoted and d.baseline_value == base
    if promoted:
        assert d.reasons[1] == (
            f"SODA_c {value:.4f} beats the trivial baseline ({base:.4f}) by {delta} "
            f">= margin {margin}"
        )
    else:
        assert d.reasons == [
            "quality gate passed",
            f"SODA_c {value:.4f} does not beat the trivial baseline ({base:.4f}) by margin "
            f"{margin} (delta {delta})",
        ]


def test_lower_is_better_flips_both_comparisons() -> None:
    r = Registry()
    champ = r.add({"SODA_c": 0.5, "baseline_trivial.SODA_c": 1.0})
    r.crown(champ)
    cfg = PromotionConfig(higher_is_better=False)
    better = r.add({"SODA_c": 0.25, "baseline_trivial.SODA_c": 1.0})
    d = decide(r, NAME, better, cfg)  # type: ignore[arg-type]
    assert d.reasons[1:] == [
        "SODA_c 0.2500 beats the trivial baseline (1.0000) by 0.7500 >= margin 0.0",
        "SODA_c 0.2500 beats champion v1 (0.5000) by 0.2500 >= margin 0.0",
    ]
    assert d.promoted and d.champion_value == 0.5 and d.champion_before == "1"
    worse = r.add({"SODA_c": 0.75, "baseline_trivial.SODA_c": 1.0})
    d = decide(r, NAME, worse, cfg)  # type: ignore[arg-type]
    assert not d.promoted
    assert (
        d.reasons[2]
        == "SODA_c 0.7500 does not beat champion v1 (0.5000) by margin 0.0 (delta -0.2500)"
    )
    above_floor = r.add({"SODA_c": 1.5, "baseline_trivial.SODA_c": 1.0})
    d = decide(r, NAME, above_floor, cfg)  # type: ignore[arg-type]
    assert d.reasons[1:] == [
        "SODA_c 1.5000 does not beat the trivial baseline (1.0000) by margin 0.0 (delta -0.5000)"
    ]


@pytest.mark.parametrize(
    ("value", "margin", "promoted", "delta"),
    [
        (0.75, 0.25, True, "0.2500"),  # exactly the margin
        (0.625, 0.25, False, "0.1250"),
        (0.5, 0.0, False, "0.0000"),  # a tie never moves the champion
        (0.25, 0.0, False, "-0.2500"),
    ],
)
def test_champion_margin_boundaries(
    value: float, margin: float, promoted: bool, delta: str
) -> None:
    r = Registry()
    r.crown(r.add({"SODA_c": 0.5, "baseline_trivial.SODA_c": 0.125}))
    v = r.add({"SODA_c": value, "baseline_trivial.SODA_c": 0.125})
    d = decide(r, NAME, v, PromotionConfig(margin=margin))  # type: ignore[arg-type]
    verb = f"beats champion v1 (0.5000) by {delta} >= margin {margin}"
    if not promoted:
        verb = f"does not beat champion v1 (0.5000) by margin {margin} (delta {delta})"
    expect(
        d,
        promoted=promoted,
        version="2",
        champion_before="1",
        challenger_value=value,
        champion_value=0.5,
        baseline_value=0.125,
        eval_run="eval2",
        reasons=[
            "quality gate passed",
            f"SODA_c {value:.4f} beats the trivial baseline (0.1250) by {value - 0.125:.4f} "
            ">= margin 0.0",
            f"SODA_c {value:.4f} {verb}",
        ],
    )


def test_champion_is_compared_on_the_metric_the_challenger_used() -> None:
    r = Registry()
    # the champion's SODA_c would win; its F1 loses to the challenger's F1
    r.crown(r.add({"SODA_c": 0.9, "F1": 0.25, "baseline_trivial.SODA_c": 0.1}))
    v = r.add({"F1": 0.5, "baseline_trivial.F1": 0.125})
    d = decide(r, NAME, v, PromotionConfig())  # type: ignore[arg-type]
    assert d.promoted and d.metric == "F1" and d.champion_value == 0.25
    assert d.reasons[2] == "F1 0.5000 beats champion v1 (0.2500) by 0.2500 >= margin 0.0"


def test_champion_without_the_metric_is_replaced() -> None:
    r = Registry()
    r.crown(r.add({"BLEU": 0.9}))
    v = r.add({"SODA_c": 0.5, "baseline_trivial.SODA_c": 0.25})
    d = decide(r, NAME, v, PromotionConfig())  # type: ignore[arg-type]
    assert d.promoted and d.champion_before == "1" and d.champion_value is None
    assert d.reasons[2] == "champion v1 has no SODA_c; challenger SODA_c=0.5000"


def test_the_champion_itself_stays_champion() -> None:
    r = Registry()
    v = r.add({"SODA_c": 0.5, "baseline_trivial.SODA_c": 0.25})
    r.crown(v)
    d = decide(r, NAME, v, PromotionConfig())  # type: ignore[arg-type]
    expect(
        d,
        promoted=True,
        version="1",
        champion_before="1",
        challenger_value=0.5,
        champion_value=0.5,
        baseline_value=0.25,
        eval_run="eval1",
        reasons=[
            "quality gate passed",
            "SODA_c 0.5000 beats the trivial baseline (0.2500) by 0.2500 >= margin 0.0",
            "already the champion",
        ],
    )
    # a floor raised above the champion's score keeps it (promotion never demotes) and says so
    d = decide(r, NAME, v, PromotionConfig(baseline_margin=0.5))  # type: ignore[arg-type]
    assert not d.promoted and d.reasons[1] == (
        "SODA_c 0.5000 does not beat the trivial baseline (0.2500) by margin 0.5 (delta +0.2500)"
        "; it stays champion (promotion never demotes)"
    )


def test_another_alias_is_another_champion() -> None:
    r = Registry()
    r.crown(r.add({"SODA_c": 0.75, "baseline_trivial.SODA_c": 0.25}), alias="prod")
    v = r.add({"SODA_c": 0.5, "baseline_trivial.SODA_c": 0.25})
    assert decide(r, NAME, v, PromotionConfig()).champion_before is None  # type: ignore[arg-type]
    d = decide(r, NAME, v, PromotionConfig(champion_alias="prod"))  # type: ignore[arg-type]
    assert not d.promoted and d.champion_before == "1" and d.champion_value == 0.75


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("metric", "", "promotion.metric must not be empty"),
        ("margin", -0.25, "promotion.margin must be >= 0"),
        ("baseline_margin", -0.25, "promotion.baseline_margin must be >= 0"),
        ("baseline", " ", "promotion.baseline must be a baseline name (trivial, teacher) or null"),
        ("lock_timeout_s", 0.0, "promotion.lock_timeout_s must be > 0"),
    ],
)
def test_config_is_validated(field: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        PromotionConfig(**{field: value})  # type: ignore[arg-type]
    assert str(err.value) == message


def test_config_bounds_themselves_are_allowed() -> None:
    cfg = PromotionConfig(margin=0.0, baseline_margin=0.0, baseline=None, lock_timeout_s=0.5)
    assert cfg.baseline is None and cfg.lock_timeout_s == 0.5
    assert PromotionConfig(metric="F1", margin=0.5, baseline_margin=0.5).baseline == "trivial"
