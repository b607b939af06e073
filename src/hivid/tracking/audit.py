"""`hivid lineage`: walk a model back to its raw videos and verify every link that can be verified.

Chain: model version -> train_stage2 run -> train_stage1 run (-> the warm-start parent model, when
stage 1 continued the champion) -> build_dataset run -> validate run
(quality-gate result) -> annotate run (models, prompts) -> ingest run -> data.dvc md5 + git commit
-> raw videos (content hashes). Runs are linked by the ``upstream.<stage>.run`` tags every stage
sets; each link is VERIFIED (recomputed and equal), MISMATCH (recomputed and different) or
UNVERIFIED (nothing to recompute against, with the reason).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import mlflow
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from hivid.tracking.runs import configure

Status = Literal["VERIFIED", "MISMATCH", "UNVERIFIED"]
CHAIN = ("train_stage2", "train_stage1", "build_dataset", "validate", "annotate", "ingest")


@dataclass
class Link:
    """One link of the chain: what it is, what was checked, and the outcome."""

    name: str
    status: Status
    reason: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Lineage:
    model: str
    links: list[Link]

    @property
    def ok(self) -> bool:
        return all(link.status != "MISMATCH" for link in self.links)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "ok": self.ok, "links": [asdict(x) for x in self.links]}


class LineageError(RuntimeError):
    """The model reference cannot be resolved (message says which part)."""


def resolve_model(ref: str) -> tuple[Any | None, str]:
    """(model version or None, source run id) for ``models:/name@alias``, ``models:/name/N`` or a
    run id."""
    client = MlflowClient()
    if ref.startswith("models:/"):
        body = ref[len("models:/") :]
        try:
            if "@" in body:
                name, alias = body.split("@", 1)
                mv = client.get_model_version_by_alias(name, alias)
            else:
                name, version = body.rsplit("/", 1)
                mv = client.get_model_version(name, version)
        except (mlflow.exceptions.MlflowException, ValueError) as exc:
            raise LineageError(f"{ref}: no such model version ({exc})") from None
        if not mv.run_id:
            raise LineageError(f"{ref}: model version {mv.version} has no source run")
        return mv, mv.run_id
    try:
        client.get_run(ref)
    except mlflow.exceptions.MlflowException:
        raise LineageError(f"{ref}: not a models:/ URI and not a run id") from None
    return None, ref


def sha256_dir(path: Path) -> str:
    """sha256 over (relative path, sha256 of content) of every file under ``path``, sorted."""
    h = hashlib.sha256()
    for p in sorted(x for x in path.rglob("*") if x.is_file()):
        h.update(p.relative_to(path).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _object_paths(root: Path, md5: str) -> list[Path]:
    """Where a DVC object may live: the project cache, then a local-directory remote."""
    rel = Path("files") / "md5" / md5[:2] / md5[2:]
    places = [root / ".dvc" / "cache" / rel]
    proc = subprocess.run(
        ["git", "config", "-f", str(root / ".dvc" / "config"), "--get-regexp", r"remote\..*\.url"],
        capture_output=True,
        text=True,
    )
    for line in proc.stdout.splitlines():
        url = line.split(None, 1)[1] if " " in line else ""
        if url and "://" not in url:
            base = Path(url) if Path(url).is_absolute() else (root / ".dvc" / url)
            places.append(base.resolve() / rel)
    return places


def _find_object(root: Path, md5: str) -> Path | None:
    return next((p for p in _object_paths(root, md5) if p.is_file()), None)


def verify_data(root: Path, data_md5: str) -> tuple[Link, dict[str, str]]:
    """Recompute the data directory's md5 from the DVC cache/remote; returns the link and the
    ``relpath -> file md5`` listing (empty when the listing cannot be read)."""
    if not data_md5.endswith(".dir"):
        return Link("data.dvc md5", "UNVERIFIED", "not a directory hash", {"md5": data_md5}), {}
    listing_path = _find_object(root, data_md5)
    if listing_path is None:
        return (
            Link(
                "data.dvc md5",
                "UNVERIFIED",
                "directory listing not in the DVC cache or a local remote (dvc pull first)",
                {"md5": data_md5},
            ),
            {},
        )
    raw = listing_path.read_bytes()
    if _md5(raw) != data_md5[: -len(".dir")]:
        return Link("data.dvc md5", "MISMATCH", f"{listing_path}: listing hash differs", {}), {}
    entries = json.loads(raw)
    bad, missing = [], []
    for entry in entries:
        obj = _find_object(root, entry["md5"])
        if obj is None:
            missing.append(entry["relpath"])
        elif _md5(obj.read_bytes()) != entry["md5"]:
            bad.append(entry["relpath"])
    listing = {e["relpath"]: e["md5"] for e in entries}
    detail = {"md5": data_md5, "files": len(entries), "source": str(listing_path.parent.parent)}
    if bad:
        return Link(
            "data.dvc md5", "MISMATCH", f"cache objects changed: {bad[:5]}", detail
        ), listing
    if missing:
        return (
            Link("data.dvc md5", "UNVERIFIED", f"{len(missing)} objects not in cache", detail),
            listing,
        )
    return Link(
        "data.dvc md5", "VERIFIED", f"recomputed from {len(entries)} DVC objects", detail
    ), listing


def verify_commit(root: Path, sha: str | None) -> Link:
    if not sha:
        return Link("git commit", "UNVERIFIED", "run has no git.commit tag")
    proc = subprocess.run(
        ["git", "cat-file", "-e", f"{sha}^{{commit}}"], cwd=root, capture_output=True, text=True
    )
    if proc.returncode != 0:
        return Link("git commit", "MISMATCH", f"{sha} does not exist in this repository")
    return Link("git commit", "VERIFIED", f"{sha} exists", {"commit": sha})


def _download_json(run_id: str, path: str) -> Any | None:
    try:
        local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path)
    except Exception:
        return None
    return json.loads(Path(local).read_text())


def _run_link(stage: str, run: Run) -> Link:
    keep = ("hivid.stage", "git.commit", "dvc.data.md5", "gx.result", "parent.run")
    detail: dict[str, Any] = {
        k: v for k, v in run.data.tags.items() if k in keep or k.startswith("dvc.lock.")
    }
    detail["run_id"] = run.info.run_id
    if stage == "annotate":
        detail["params"] = {
            k: v
            for k, v in run.data.params.items()
            if "model" in k or "backend" in k or "prompt" in k
        }
        detail["prompts"] = {k: v for k, v in run.data.tags.items() if k.startswith("prompt.")}
    if run.info.status != "FINISHED":
        return Link(f"{stage} run", "MISMATCH", f"run status {run.info.status}", detail)
    if run.data.tags.get("hivid.stage") != stage:
        return Link(f"{stage} run", "MISMATCH", "run is not a run of this stage", detail)
    return Link(f"{stage} run", "VERIFIED", f"run {run.info.run_id} FINISHED", detail)


def trace(root: Path, ref: str) -> Lineage:
    """Walk and verify the chain of ``ref`` (see module docstring)."""
    configure(root)
    client = MlflowClient()
    mv, run_id = resolve_model(ref)
    links: list[Link] = []
    runs: dict[str, Run] = {}
    current: str | None = run_id
    for stage in CHAIN:
        if current is None:
            links.append(Link(f"{stage} run", "UNVERIFIED", "no upstream run recorded"))
            continue
        try:
            run = client.get_run(current)
        except mlflow.exceptions.MlflowException:
            # recorded as this stage's run, yet gone from the store (deleted, or a DVC run-cache
            # restore of an output made against another store): the chain is broken here
            links.append(Link(f"{stage} run", "MISMATCH", f"run {current} not in the store"))
            break
        runs[stage] = run
        links.append(_run_link(stage, run))
        prev = stage
        nxt = CHAIN[CHAIN.index(stage) + 1] if stage != CHAIN[-1] else None
        current = run.data.tags.get(f"upstream.{nxt}.run") if nxt else None
        if nxt == "train_stage1" and current is None:
            current = run.data.tags.get("init.run")
        del prev
    if mv is not None:
        links.insert(0, _verify_model_version(mv))
    if "train_stage1" in runs:
        warm = _verify_warm_start(runs["train_stage1"])
        if warm is not None:
            links.insert(
                links.index(next(x for x in links if x.name == "train_stage1 run")) + 1, warm
            )
    gate = runs.get("validate")
    if gate is not None:
        links.append(_verify_gate(gate, runs))
    ingest = runs.get("ingest")
    tag_source = ingest or next(iter(runs.values()), None)
    data_md5 = tag_source.data.tags.get("dvc.data.md5") if tag_source else None
    commit = tag_source.data.tags.get("git.commit") if tag_source else None
    if data_md5:
        data_link, listing = verify_data(root, data_md5)
    else:
        data_link, listing = Link("data.dvc md5", "UNVERIFIED", "no dvc.data.md5 tag"), {}
    links.append(data_link)
    links.append(verify_commit(root, commit))
    if ingest is not None:
        links.extend(_verify_videos(root, ingest, listing))
    return Lineage(ref, links)


def _verify_model_version(mv: Any) -> Link:
    detail = {"name": mv.name, "version": str(mv.version), "aliases": list(mv.aliases or [])}
    expected = (mv.tags or {}).get("model.sha256")
    if not expected:
        return Link("model version", "UNVERIFIED", "no model.sha256 tag recorded", detail)
    try:
        local = mlflow.artifacts.download_artifacts(f"models:/{mv.name}/{mv.version}")
    except Exception as exc:
        return Link("model version", "UNVERIFIED", f"cannot download artifacts ({exc})", detail)
    # pyfunc keeps the logged directory under artifacts/<its name>; find it by its config file
    configs = sorted(Path(local).glob("artifacts/*/narrator_config.json"))
    actual = sha256_dir(configs[0].parent) if configs else None
    if actual != expected:
        return Link(
            "model version", "MISMATCH", f"checkpoint sha256 {actual} != {expected}", detail
        )
    return Link("model version", "VERIFIED", "checkpoint sha256 recomputed and equal", detail)


def _verify_warm_start(stage1: Run) -> Link | None:
    """The warm-start link: the model stage 1 continued (hivid.training.warmstart), its recorded
    checkpoint hash checked against the registry and recomputed from its artifacts."""
    tags = stage1.data.tags
    mode = tags.get("warm_start.mode")
    if mode is None:  # trained before incremental training existed
        return None
    detail: dict[str, Any] = {
        k.removeprefix("warm_start."): v for k, v in tags.items() if k.startswith("warm_start.")
    }
    if "upstream.warm_start.run" in tags:
        detail["run_id"] = tags["upstream.warm_start.run"]
    if mode != "warm":
        return Link(
            "warm start", "VERIFIED", f"none: trained from scratch ({detail.get('reason')})", detail
        )
    ref, recorded = tags.get("warm_start.parent", ""), tags.get("warm_start.parent_sha256", "")
    name, _, version = ref.rpartition("/")
    try:
        parent = MlflowClient().get_model_version(name, version)
    except (mlflow.exceptions.MlflowException, ValueError):
        return Link("warm start", "MISMATCH", f"parent {ref} is not in the registry", detail)
    detail["parent_lineage"] = f"hivid lineage models:/{ref}"
    if (parent.tags or {}).get("model.sha256") != recorded:
        return Link(
            "warm start", "MISMATCH", f"{ref} is registered with another checkpoint hash", detail
        )
    checked = _verify_model_version(parent)
    if checked.status != "VERIFIED":
        return Link("warm start", checked.status, f"parent {ref}: {checked.reason}", detail)
    return Link(
        "warm start",
        "VERIFIED",
        f"continued {ref} (chain {detail.get('chain')}): its checkpoint sha256 recomputed, equal",
        detail,
    )


def _verify_gate(gate: Run, runs: dict[str, Run]) -> Link:
    tag = gate.data.tags.get("gx.result", "")
    result_id, _, outcome = tag.partition(":")
    detail = {"gx.result": tag}
    report = _download_json(gate.info.run_id, "quality/gate.json")
    if report is None:
        return Link("quality gate", "UNVERIFIED", "gate.json artifact not found", detail)
    if report.get("result_id") != result_id or bool(report.get("success")) != (
        outcome == "success"
    ):
        return Link("quality gate", "MISMATCH", "gate.json differs from the gx.result tag", detail)
    carried = {s: r.data.tags.get("gx.result") for s, r in runs.items() if s.startswith("train")}
    if any(v != tag for v in carried.values()):
        return Link("quality gate", "MISMATCH", f"training runs carry {carried}", detail)
    if outcome != "success":
        return Link("quality gate", "MISMATCH", "the model was trained on a failed gate", detail)
    return Link("quality gate", "VERIFIED", f"result {result_id[:12]} passed", detail)


def _verify_videos(root: Path, ingest: Run, listing: dict[str, str]) -> list[Link]:
    rows = None
    try:
        local = mlflow.artifacts.download_artifacts(
            run_id=ingest.info.run_id, artifact_path="ingest/manifest.jsonl"
        )
        rows = [json.loads(x) for x in Path(local).read_text().splitlines() if x.strip()]
    except Exception as exc:
        return [Link("raw videos", "UNVERIFIED", f"manifest artifact not found ({exc})")]
    links = []
    for row in rows:
        rel = row["path"]
        name = f"raw video {row['video_id']}"
        detail = {"path": f"data/{rel}", "sha256": row["sha256"]}
        obj = _find_object(root, listing[rel]) if rel in listing else None
        source = obj or (root / "data" / rel)
        if not source.is_file():
            links.append(Link(name, "UNVERIFIED", "not in the DVC cache nor the workspace", detail))
            continue
        actual = hashlib.sha256(source.read_bytes()).hexdigest()
        if actual != row["sha256"]:
            links.append(Link(name, "MISMATCH", f"{source}: sha256 {actual[:12]} differs", detail))
            continue
        work = root / "data" / rel
        if obj is not None and work.is_file():
            wsha = hashlib.sha256(work.read_bytes()).hexdigest()
            if wsha != row["sha256"]:
                links.append(
                    Link(
                        name,
                        "MISMATCH",
                        f"data/{rel} changed since training (sha256 {wsha[:12]}, trained on "
                        f"{row['sha256'][:12]}); `hivid checkout-data` restores it",
                        detail,
                    )
                )
                continue
        links.append(Link(name, "VERIFIED", f"sha256 {actual[:12]} recomputed", detail))
    return links


def checkout_data(root: Path, ref: str) -> dict[str, str]:
    """Restore ``data/`` to exactly the version ``ref`` was trained on (DVC cache or remote)."""
    import yaml

    configure(root)
    lineage = trace(root, ref)
    data_link = next(x for x in lineage.links if x.name == "data.dvc md5")
    md5 = data_link.detail.get("md5")
    if not md5:
        raise LineageError(f"{ref}: no data version recorded ({data_link.reason})")
    doc = {"outs": [{"md5": md5, "hash": "md5", "path": "data"}]}
    (root / "data.dvc").write_text(yaml.safe_dump(doc, sort_keys=False))
    import sys

    dvc = [sys.executable, "-m", "dvc"]
    proc = subprocess.run(
        [*dvc, "checkout", "--force", "data.dvc"], cwd=root, capture_output=True, text=True
    )
    if proc.returncode != 0:
        proc = subprocess.run(
            [*dvc, "pull", "--force", "data.dvc"], cwd=root, capture_output=True, text=True
        )
    if proc.returncode != 0:
        raise LineageError(f"dvc could not restore data {md5}: {proc.stderr.strip()[-300:]}")
    return {"md5": md5, "data.dvc": str(root / "data.dvc")}
