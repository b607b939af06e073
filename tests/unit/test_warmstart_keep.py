"""Warm stages with 0 steps, without the trainer: ``keep_champion`` saves the champion's weights
as the stage's result (stage 1 without its compressor, stage 2 with its compressor on tonight's
stage-1 backbone). Tiny random narrators built and saved here; ``test_warmstart.py`` runs the
same paths through Lightning's ``train_stage``."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import torch

from hivid.models.freezing import StageError
from hivid.models.narrator import (
    NarratorConfig,
    create_narrator,
    create_tokenizer,
    load_narrator,
    narrator_config,
    save_narrator,
)
from hivid.training.config import TrainConfig
from hivid.training.warmstart import keep_champion, warm_model

HEADS = ("compressor.", "time_encoder.")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, NarratorConfig]:
    """(the champion: a stage-2 narrator, tonight's stage-1 narrator, the model config)."""
    d = tmp_path_factory.mktemp("narrators")
    cfg = narrator_config("tiny")
    tok = create_tokenizer(cfg, ["a product video with a few words in it"] * 8)
    torch.manual_seed(1)
    champ = create_narrator(cfg, tok, d / "work-champ")
    champ.add_compressor(cfg.compressor, cfg.time_encoder)
    save_narrator(champ, tok, d / "champion")
    torch.manual_seed(2)
    tonight = create_narrator(cfg, tok, d / "work-s1")
    save_narrator(tonight, tok, d / "stage1")
    return d / "champion", d / "stage1", cfg


def state(model_dir: Path) -> dict[str, torch.Tensor]:
    return load_narrator(model_dir)[0].state_dict()


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], keys: set[str]) -> bool:
    return all(torch.equal(a[k], b[k]) for k in keys)


def test_stage1_keeps_the_champion_without_its_compressor(
    models: tuple[Path, Path, NarratorConfig], tmp_path: Path
) -> None:
    champ, _, cfg = models
    r = keep_champion(1, champ, None, tmp_path, cfg, TrainConfig(max_frames=4))
    assert r.model_dir == tmp_path / "model"
    assert r.lightning_checkpoint == tmp_path / "checkpoints" / "last.ckpt"
    model, _ = load_narrator(r.model_dir)
    assert not model.use_compressor and model.cfg.max_frames == 4
    kept, cs = model.state_dict(), state(champ)
    assert set(kept) == {k for k in cs if not k.startswith(HEADS)} and same(kept, cs, set(kept))
    total = sum(p.numel() for p in model.parameters())
    assert r.metrics == {"steps": 0.0, "trainable_params": float(total), "total_params": total}
    # the same metrics.json a trained stage writes (fit.py): indented JSON
    text = (tmp_path / "metrics.json").read_text(encoding="utf-8")
    assert json.loads(text) == r.metrics and text == json.dumps(r.metrics, indent=2)
    # stage 1 trains everything: every parameter is named, sorted
    assert r.trainable_parameter_names == sorted(n for n, _ in model.named_parameters())


def test_stage2_puts_the_champion_compressor_on_tonights_backbone(
    models: tuple[Path, Path, NarratorConfig], tmp_path: Path
) -> None:
    champ, stage1, cfg = models
    r = keep_champion(2, champ, stage1, tmp_path, cfg, TrainConfig())
    model, _ = load_narrator(r.model_dir)
    assert model.use_compressor and model.cfg.max_frames == cfg.max_frames
    got, cs, s1 = model.state_dict(), state(champ), state(stage1)
    heads = {k for k in got if k.startswith(HEADS)}
    assert heads and same(got, cs, heads)  # the champion's compressor and time encoder
    assert set(got) - heads == set(s1) and same(got, s1, set(s1))  # tonight's stage 1
    assert not same(got, cs, set(s1))  # ... not the champion's backbone
    # stage 2 trains the compressor and time encoder only
    assert r.trainable_parameter_names == sorted(
        n for n, _ in model.named_parameters() if n.startswith(HEADS)
    )
    heads_n = sum(p.numel() for n, p in model.named_parameters() if n.startswith(HEADS))
    assert r.metrics["trainable_params"] == float(heads_n) < r.metrics["total_params"]
    # a stage-1 directory that already carries a compressor gets the champion's
    again = keep_champion(2, champ, champ, tmp_path / "again", cfg, TrainConfig())
    assert same(state(again.model_dir), cs, set(cs))


def test_warm_model_refuses_the_wrong_inputs(models: tuple[Path, Path, NarratorConfig]) -> None:
    champ, stage1, cfg = models
    with pytest.raises(StageError) as err:
        warm_model(1, champ, stage1, cfg)
    assert str(err.value) == "stage 1 takes init_model_dir or warm_from, not both"
    with pytest.raises(StageError) as err:
        warm_model(2, champ, None, cfg)
    assert str(err.value) == "stage 2 needs init_model_dir (the stage-1 model directory)"


def test_rank_zero_writes_the_model_under_ddp(
    models: tuple[Path, Path, NarratorConfig], tmp_path: Path
) -> None:
    """Under torch.distributed only rank 0 writes the stage's files (a one-process group here)."""
    import torch.distributed as dist

    champ, _, cfg = models
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        r = keep_champion(1, champ, None, tmp_path, cfg, TrainConfig())
    finally:
        dist.destroy_process_group()
    assert load_narrator(r.model_dir)[0].cfg.use_compressor is False
    assert json.loads((tmp_path / "metrics.json").read_text(encoding="utf-8")) == r.metrics
