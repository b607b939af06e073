"""Incremental training: the warm/full plan, warm stages in Lightning, and the registry round trip
(train -> register -> champion -> new videos -> warm_start stage -> warm training -> lineage)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import mlflow
import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

from hivid.configbase import ConfigError
from hivid.models.narrator import load_narrator, narrator_config
from hivid.training.fit import TrainConfig, train_stage
from hivid.training.warmstart import (
    ParentRecord,
    WarmStartConfig,
    model_config_sha256,
    plan_warm_start,
    read_plan,
    split_videos_with_hashes,
    warm_steps,
)
from tests.helpers import make_dataset

STEPS = {"stage1": 300, "stage2": 150}


def parent(videos: dict[str, str], chain: int = 0, cfg_hash: str = "m") -> ParentRecord:
    return ParentRecord("hivid-narrator/1", "sha", videos, cfg_hash, chain)


def train_set(n: int) -> dict[str, str]:
    return {f"v{i}": f"h{i}" for i in range(n)}


def test_plan_full_without_champion_or_when_disabled() -> None:
    p = plan_warm_start(WarmStartConfig(), train_set(4), "m", STEPS, None)
    assert (p.mode, p.steps, p.chain) == ("full", STEPS, 0)
    assert "no @champion" in p.reason
    off = plan_warm_start(
        WarmStartConfig(enabled=False), train_set(4), "m", STEPS, parent(train_set(4))
    )
    assert off.mode == "full" and "enabled is false" in off.reason


def test_plan_warm_scales_steps_to_the_new_share() -> None:
    p = plan_warm_start(WarmStartConfig(), train_set(10), "m", STEPS, parent(train_set(9), 2))
    assert p.mode == "warm" and p.chain == 3
    assert p.new_videos == ["v9"] and p.gone_videos == [] and p.new_fraction == 0.1
    # ceil(300 x 2 x 0.1) = 60; ceil(150 x 0.2) = 30
    assert p.steps == {"stage1": 60, "stage2": 30}
    assert p.parent == "hivid-narrator/1" and p.parent_sha256 == "sha"
    same = plan_warm_start(WarmStartConfig(), train_set(9), "m", STEPS, parent(train_set(9)))
    assert same.mode == "warm" and same.steps == {"stage1": 0, "stage2": 0}
    assert "unchanged" in same.reason


def test_warm_steps_floor_and_cap() -> None:
    cfg = WarmStartConfig(min_steps=10, step_scale=2.0)
    assert warm_steps(300, 0.01, cfg) == 10
    assert warm_steps(5, 0.01, cfg) == 5  # never more than max_steps
    assert warm_steps(300, 0.9, cfg) == 300
    assert warm_steps(300, 0.0, cfg) == 0


@pytest.mark.parametrize(
    ("train", "par", "reason"),
    [
        # a video the champion saw changed content
        ({**train_set(4), "v1": "changed"}, parent(train_set(4)), "no longer in the training"),
        # a video the champion saw moved out of train (to val/test) or was deleted
        ({k: v for k, v in train_set(4).items() if k != "v2"}, parent(train_set(4)), "v2"),
        (train_set(5), parent(train_set(4), cfg_hash="other"), "model config changed"),
        (train_set(5), parent(train_set(4), chain=7), "7 warm start(s) in a row"),
        (train_set(10), parent(train_set(4)), "60% > warm_start.max_new_fraction=50%"),
    ],
)
def test_plan_falls_back_to_full(train: dict[str, str], par: ParentRecord, reason: str) -> None:
    p = plan_warm_start(WarmStartConfig(), train, "m", STEPS, par)
    assert p.mode == "full" and p.steps == STEPS and p.chain == 0
    assert reason in p.reason


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="max_new_fraction"):
        WarmStartConfig(max_new_fraction=0)
    with pytest.raises(ValueError, match="min_steps"):
        WarmStartConfig(min_steps=0)


def test_model_config_hash_ignores_the_compressor_switch() -> None:
    cfg = narrator_config("tiny")
    import dataclasses

    assert model_config_sha256(cfg) == model_config_sha256(
        dataclasses.replace(cfg, use_compressor=True)
    )
    assert model_config_sha256(cfg) != model_config_sha256(dataclasses.replace(cfg, max_frames=7))


def add_hashes(dataset: Path) -> None:
    """Give every dataset row the content hash build_dataset takes from the ingest manifest."""
    for split in ("train", "val", "test"):
        path = dataset / f"{split}.jsonl"
        rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
        for r in rows:
            r["sha256"] = hashlib.sha256(r["video_id"].encode()).hexdigest()
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_split_hashes_strict_and_lenient(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "d", n_videos=4)
    with pytest.raises(ValueError, match="no sha256"):
        split_videos_with_hashes(data, "train")
    assert set(split_videos_with_hashes(data, "train", strict=False).values()) == {""}
    add_hashes(data)
    assert len(split_videos_with_hashes(data, "train")) == 2


def test_warm_stages_start_from_the_champion_weights(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "dataset")
    cfg = narrator_config("tiny")
    tcfg = TrainConfig(max_steps=2, batch_size=2, max_frames=4, limit_val_batches=0)
    r1 = train_stage(1, data, tmp_path / "s1", cfg, tcfg)
    champ = train_stage(2, data, tmp_path / "s2", cfg, tcfg, init_model_dir=r1.model_dir)
    c, _ = load_narrator(champ.model_dir)
    cs = c.state_dict()

    # 0 steps: the champion's weights come back unchanged, stage by stage
    w1 = train_stage(1, data, tmp_path / "w1", cfg, tcfg, warm_from=champ.model_dir, max_steps=0)
    m1, _ = load_narrator(w1.model_dir)
    assert not m1.use_compressor and w1.metrics["steps"] == 0
    assert all(torch.equal(v, cs[k]) for k, v in m1.state_dict().items())
    w2 = train_stage(
        2,
        data,
        tmp_path / "w2",
        cfg,
        tcfg,
        init_model_dir=w1.model_dir,
        warm_from=champ.model_dir,
        max_steps=0,
    )
    m2, _ = load_narrator(w2.model_dir)
    s2 = m2.state_dict()
    assert set(s2) == set(cs) and all(torch.equal(s2[k], cs[k]) for k in cs)
    assert sorted(w2.trainable_parameter_names) == sorted(champ.trainable_parameter_names)

    # steps > 0: training moves the continued weights
    t1 = train_stage(1, data, tmp_path / "t1", cfg, tcfg, warm_from=champ.model_dir, max_steps=1)
    assert t1.metrics["steps"] == 1
    t, _ = load_narrator(t1.model_dir)
    assert any(not torch.equal(v, cs[k]) for k, v in t.state_dict().items())
    with pytest.raises(Exception, match="not both"):
        train_stage(1, data, tmp_path / "x", cfg, tcfg, r1.model_dir, warm_from=champ.model_dir)


PARAMS: dict[str, Any] = {
    "model": {"preset": "tiny", "max_frames": 4},
    "train_stage1": {"max_steps": 20, "batch_size": 2, "limit_val_batches": 0},
    "train_stage2": {"max_steps": 10, "batch_size": 2, "limit_val_batches": 0},
    "warm_start": {"min_steps": 1, "max_new_fraction": 0.6},
}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    (tmp_path / "mlruns").mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    # set_registry_uri exports MLFLOW_REGISTRY_URI: monkeypatched, so later tests do not inherit it
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)
    monkeypatch.delenv("HIVID_PARENT_RUN_ID", raising=False)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    return tmp_path


def _train_and_register(root: Path, dataset: Path, warm: Path | None, tag: str) -> str:
    from hivid.stages import run_register, run_train

    params = root / "params.yaml"
    s1, s2 = root / f"{tag}-s1", root / f"{tag}-s2"
    run_train(root, params, 1, dataset, s1, None, warm)
    run_train(root, params, 2, dataset, s2, s1 / "model", warm)
    return str(run_register(root, params, s2)["version"])


def test_registry_round_trip_warm_start_and_lineage(project: Path) -> None:
    from hivid.stages import run_warm_start
    from hivid.tracking.audit import trace

    params = project / "params.yaml"
    small = make_dataset(project / "d1", n_videos=5)  # train: vid00-vid02
    add_hashes(small)
    out = project / "warm"
    plan = run_warm_start(project, params, small, out)
    assert plan["mode"] == "full" and "no hivid-narrator@champion" in plan["reason"]
    assert plan["steps"] == {"stage1": 20, "stage2": 10}
    v1 = _train_and_register(project, small, out, "v1")
    client = MlflowClient()
    client.set_registered_model_alias("hivid-narrator", "champion", v1)

    big = make_dataset(project / "d2", n_videos=6)  # train: vid00-vid03, same first videos
    add_hashes(big)
    plan = run_warm_start(project, params, big, out)
    assert plan["mode"] == "warm", plan["reason"]
    assert plan["new_videos"] == ["vid03"] and plan["parent"] == f"hivid-narrator/{v1}"
    assert plan["steps"] == {"stage1": 10, "stage2": 5}  # ceil(20 x 2 x 1/4), ceil(10 x 0.5)
    assert (out / "model" / "narrator_config.json").is_file()
    assert read_plan(out).chain == 1
    v2 = _train_and_register(project, big, out, "v2")
    mv = client.get_model_version("hivid-narrator", v2)
    run = client.get_run(mv.run_id)
    assert run.data.tags["warm_start.mode"] == "warm"
    assert run.data.metrics["final_steps"] == 5
    lineage = trace(project, f"models:/hivid-narrator/{v2}")
    warm = next(x for x in lineage.links if x.name == "warm start")
    assert warm.status == "VERIFIED", warm.reason
    assert f"continued hivid-narrator/{v1}" in warm.reason

    # tamper with the parent's registered hash: the warm-start link reports MISMATCH
    client.set_model_version_tag("hivid-narrator", v1, "model.sha256", "0" * 64)
    warm = next(
        x for x in trace(project, f"models:/hivid-narrator/{v2}").links if x.name == "warm start"
    )
    assert warm.status == "MISMATCH"
    # ... and the next warm_start refuses to build on that champion
    plan = run_warm_start(project, params, big, out)
    assert plan["mode"] == "full" and "WARNING" in plan["reason"]


def test_warm_start_section_is_validated(tmp_path: Path) -> None:
    from hivid.config import load_section

    p = tmp_path / "params.yaml"
    p.write_text("warm_start:\n  max_chain: -1\n")
    with pytest.raises(ConfigError, match="max_chain"):
        load_section(p, "warm_start")


def test_focus_videos_get_their_share_of_samples(tmp_path: Path) -> None:
    from hivid.models.narrator import create_narrator, create_tokenizer
    from hivid.training.datamodule import NarratorDataModule, corpus_texts, read_split

    data = make_dataset(tmp_path / "d", n_videos=8)  # train: vid00-vid05
    cfg = narrator_config("tiny")
    tok = create_tokenizer(cfg, corpus_texts(read_split(data, "train")))
    spec = create_narrator(cfg, tok, tmp_path / "init").input_spec()
    dm = NarratorDataModule(data, tok, spec, focus=["vid05"], focus_share=0.5)
    w = dm.train_weights()
    assert w is not None and abs(sum(w) - 1) < 1e-9
    assert w[-1] == pytest.approx(0.5) and w[0] == pytest.approx(0.1)
    assert NarratorDataModule(data, tok, spec).train_weights() is None
    sampler = dm.train_dataloader().sampler
    torch.manual_seed(0)
    drawn = [i for _ in range(200) for i in sampler]
    assert 0.4 < drawn.count(5) / len(drawn) < 0.6
    with pytest.raises(ValueError, match="focus_share"):
        NarratorDataModule(data, tok, spec, focus=["vid05"], focus_share=1.0)


def test_lineage_names_a_recorded_run_missing_from_the_store(project: Path) -> None:
    """e.g. a DVC run-cache restore of an output whose MLflow run was wiped: MISMATCH, no crash."""
    from hivid.tracking.audit import trace
    from hivid.tracking.runs import configure

    configure(project)
    tags = {"hivid.stage": "train_stage2", "upstream.train_stage1.run": "0" * 32}
    with mlflow.start_run(tags=tags) as run:
        pass
    lineage = trace(project, run.info.run_id)
    missing = next(x for x in lineage.links if x.name == "train_stage1 run")
    assert missing.status == "MISMATCH" and "not in the store" in missing.reason
    assert not lineage.ok
