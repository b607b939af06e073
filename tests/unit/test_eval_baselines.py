"""Output checks (duration, ordering) and the baselines the evaluate stage scores."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hivid.evaluation.baselines import product_name_line, shot_spans, trivial_chapters
from hivid.evaluation.checks import check_spans


def ch(start: float, end: float, title: str = "t") -> dict[str, Any]:
    return {"start": start, "end": end, "title": title, "summary": ""}


def test_spans_past_the_end_are_clipped_or_rejected_and_counted() -> None:
    # the case: a prediction spanning 31.4-34.6 s on a 32.5 s video
    r = check_spans([ch(0, 10), ch(31.4, 34.6), ch(33.0, 35.0), ch(-1.0, 0.5)], 32.5)
    assert [(c["start"], c["end"]) for c in r.kept] == [(0.0, 0.5), (0.5, 10.0), (31.4, 32.5)]
    assert r.counts() == {"checked": 4, "kept": 3, "clipped": 3, "rejected": 1, "reordered": 1}
    assert any("past_end" in n and "32.5" in n for n in r.notes)
    assert all(c["end"] <= 32.5 for c in r.kept)


def test_ordering_overlap_and_malformed() -> None:
    items = [ch(5, 9), ch(0, 6), ch(1, 4), ch(7, 7), {"start": "x", "end": 2}, ch(9, float("inf"))]
    r = check_spans(items, 20.0)
    assert [(c["start"], c["end"]) for c in r.kept] == [(0.0, 6.0), (6.0, 9.0)]
    assert r.rejected == 4  # inside the previous chapter, zero length, two malformed
    # TCoT steps may overlap; an unknown duration only orders
    t = check_spans([ch(3, 50), ch(0, 4)], None, "tcot step", allow_overlap=True)
    assert [(c["start"], c["end"]) for c in t.kept] == [(0.0, 4.0), (3.0, 50.0)]
    assert t.clipped == 0 and t.reordered == 1


def frame(t: float, shot: bool = False, ocr: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"t": t, "shot_change": shot, "ocr": [{"text": x, "score": 0.9} for x in ocr]}


def test_trivial_baseline_one_chapter_per_shot_titled_with_the_product_name() -> None:
    frames = [
        frame(0, ocr=("Lumen", "$19")),
        frame(1, ocr=("Lumen Desk Lamp",)),
        frame(2, shot=True, ocr=("$19",)),
        frame(3, ocr=("$19", "warm light")),
        frame(4, shot=True),
        frame(5),
    ]
    assert shot_spans(frames, 6.0) == [(0.0, 1.5), (1.5, 3.5), (3.5, 6.0)]
    meta = {"title": "Lumen Desk Lamp warm light", "brand": "Lumen"}
    assert product_name_line(frames, meta) == "Lumen Desk Lamp"
    assert product_name_line(frames, {}) == "$19"  # no metadata: the line shown most
    chapters = trivial_chapters({"frames": {"items": frames}}, 6.0, meta)
    assert [c["title"] for c in chapters] == ["Lumen Desk Lamp"] * 3
    assert chapters[-1]["end"] == 6.0


@pytest.fixture(scope="module")
def untrained_model(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from hivid.models.narrator import narrator_config
    from hivid.training.fit import TrainConfig, train_stage
    from tests.helpers import make_dataset

    root = tmp_path_factory.mktemp("evalbase")
    data = make_dataset(root / "dataset", n_videos=4)
    tcfg = TrainConfig(max_frames=4, accelerator="cpu", devices=1)
    r = train_stage(1, data, root / "stage1", narrator_config("tiny"), tcfg, max_steps=0)
    return {"root": root, "data": data, "model_dir": r.model_dir}


def test_evaluate_scores_baselines_and_never_scores_past_the_end(
    untrained_model: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import hivid.training.generate as gen
    from hivid.evaluation.stage import EvaluateConfig, evaluate_model

    root, data = untrained_model["root"], untrained_model["data"]
    row = json.loads((data / "test.jsonl").read_text().splitlines()[0])
    vid, dur = row["video_id"], row["duration"]
    ann = root / "annotations"
    ann.mkdir()
    frames = [frame(float(t), shot=(t == 2), ocr=("Acme Kettle",)) for t in range(int(dur))]
    (ann / f"{vid}.json").write_text(
        json.dumps({"frames": {"items": frames}, "chapters": row["chapters"]})
    )
    text = (
        f"<think>\n[0.0s-{dur + 5}s] x\n</think>\n<chapters>\n"
        f"[0.0s-1.0s] Acme Kettle | a\n[{dur - 0.5}s-{dur + 3}s] Later | b\n"
        f"[{dur + 1}s-{dur + 2}s] Ghost | c\n"
    )

    def fake(*args: Any, stats: dict[str, Any] | None = None, **kw: Any) -> tuple[str, list]:
        if stats is not None:
            stats["llm_input_tokens"] = 10
        return text, gen.parse_chapters(text)

    monkeypatch.setattr(gen, "generate_chapters", fake)
    cfg = EvaluateConfig(use_pseudo_labels=True, max_new_tokens=8, title_encoder="")
    out = root / "eval"
    r = evaluate_model(untrained_model["model_dir"], data, root, out, cfg, annotations_dir=ann)
    m = r["metrics"]
    assert m["pred_chapters_clipped"] == 1 and m["pred_chapters_rejected"] == 1
    assert m["pred_tcot_clipped"] == 1
    pred = json.loads((out / "predictions.json").read_text())["results"][vid]
    assert [p["timestamp"] for p in pred] == [[0.0, 1.0], [dur - 0.5, dur]]
    # the teacher (the annotation's chapters) is the pseudo-label ground truth here: perfect
    assert m["baseline_teacher.F1"] == pytest.approx(1.0)
    assert 0 < m["baseline_trivial.F1"] <= 1 and "baseline_trivial.SODA_c" in m
    side = json.loads((out / "baselines.json").read_text())
    assert set(side) >= {"model", "trivial", "teacher", "definitions"}
    assert side["trivial"]["chapters_per_video"] == 2
    trivial = json.loads((out / "baseline_trivial.json").read_text())["results"][vid]
    assert {p["sentence"] for p in trivial} == {"Acme Kettle"}
    gens = [json.loads(line) for line in (out / "generations.jsonl").read_text().splitlines()]
    assert gens[0]["duration"] == dur and any("past_end" in n for n in gens[0]["check_notes"])
    # without annotation records the baselines are skipped, and that is said
    r2 = evaluate_model(untrained_model["model_dir"], data, root, root / "eval2", cfg)
    assert not any(k.startswith("baseline_") for k in r2["metrics"])
    assert any("baselines not scored" in w for w in r2["warnings"])
